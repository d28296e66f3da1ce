/**
 * One UDP socket that both serves CoAP requests and sends its own, on top of the npm `coap`
 * package. LwM2M needs this: a server's requests to a device must leave from the port the
 * device registered with (devices and NATs drop anything else), and a client's notifications
 * and answers must leave from the port it registered from.
 */
import * as dgram from 'dgram';
import { EventEmitter } from 'events';
import * as coap from 'coap';
import { Lwm2mError } from '../types';
import { FastRequester, FastResponse, RetransmissionCache, serveFast } from './fast-path';

export type CoapMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

export interface Peer {
  address: string;
  port: number;
}

export interface CoapRequestSpec {
  method: CoapMethod;
  /** Uri-Path as a "/a/b/c" string ("/" or "" for none). */
  path: string;
  /** Uri-Query entries, each "key=value" or "key". */
  query?: string[];
  accept?: number;
  contentFormat?: number;
  payload?: Buffer;
  /** 0 registers an observation, 1 cancels one (active cancel). */
  observe?: 0 | 1;
  confirmable?: boolean;
  /** Token to use (an active observe cancel repeats the observation's token); random when absent. */
  token?: Buffer;
  /** Overall time to wait for a response, including CoAP retransmissions. */
  timeoutMs?: number;
}

export interface CoapResponse {
  code: string;
  payload: Buffer;
  contentFormat?: number;
  observe?: number;
  locationPath: string[];
  peer: Peer;
}

export interface IncomingRequest {
  method: string;
  pathSegments: string[];
  /** Raw Uri-Query entries ("ep=foo"). */
  query: string[];
  contentFormat?: number;
  accept?: number;
  observe?: number;
  payload: Buffer;
  peer: Peer;
  token: Buffer;
}

export interface ResponseSpec {
  code: string;
  payload?: Buffer;
  contentFormat?: number;
  locationPath?: string[];
}

/** What a request handler gets to answer with; observe registrations may keep notifying. */
export interface Exchange {
  readonly request: IncomingRequest;
  respond(spec: ResponseSpec): void;
  /**
   * Only for GET/FETCH with Observe 0, after respond(): sends one notification. Resolves true
   * once delivered (NON: when sent; CON: when ACKed), false when the observer reset it, it was
   * not observing any more, or no ACK came within `ackTimeoutMs`.
   */
  notify(spec: ResponseSpec, confirmable?: boolean, ackTimeoutMs?: number): Promise<boolean>;
  /** True until the observer cancelled (RST / Observe 1 / transport closed). */
  readonly observing: boolean;
  onCancel(listener: () => void): void;
}

export type RequestHandler = (exchange: Exchange) => void;

export class CoapTimeoutError extends Lwm2mError {}
export class CoapTransportError extends Lwm2mError {}

/** A running observation started by this side: notifications arrive as 'notification' events. */
export interface Observation extends EventEmitter {
  readonly first: CoapResponse;
  readonly token: Buffer;
  /** Stops listening; the next notification is answered with RST (passive cancel). */
  close(): void;
  on(event: 'notification', listener: (response: CoapResponse) => void): this;
  on(event: 'end', listener: () => void): this;
}

export interface TransportOptions {
  type?: 'udp4' | 'udp6';
  port?: number;
  address?: string;
  /** Default for CoapRequestSpec.timeoutMs. */
  requestTimeoutMs?: number;
  /** Socket receive buffer in bytes (the OS may cap it): bursts of registrations need room. */
  receiveBufferSize?: number;
  /**
   * Size (bytes of response packets) of the cache that answers retransmitted requests from their
   * first response. coap's default, 32 MiB, keeps ~7 KB of heap per response for 247 s: under a
   * registration storm that is most of the server's memory and GC time. 1 MiB still holds the
   * last ~45k responses, more than a retransmission interval's worth at full load.
   */
  dedupeCacheBytes?: number;
}

const OPTION_CONTENT_FORMAT = 'Content-Format';
const OPTION_ACCEPT = 'Accept';

export function uintOption(value: number): Buffer {
  if (value === 0) return Buffer.alloc(0);
  if (value < 256) return Buffer.from([value]);
  if (value < 65536) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(value);
    return b;
  }
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

export function readUint(buf: Buffer): number {
  let n = 0;
  for (const byte of buf) n = n * 256 + byte;
  return n;
}

interface RawOption { name: string | number; value: unknown }

/** `coap` converts some option values in place (numbers, media-type names): map them back. */
const MEDIA_TYPE_CODES: Record<string, number> = {
  'text/plain': 0,
  'application/link-format': 40,
  'application/octet-stream': 42,
  'application/json': 50,
  'application/cbor': 60,
  'application/senml+json': 110,
  'application/senml+cbor': 112,
  'application/vnd.oma.lwm2m+tlv': 11542,
  'application/vnd.oma.lwm2m+json': 11543,
  'application/vnd.oma.lwm2m+cbor': 11544,
};

function optionNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (Buffer.isBuffer(value)) return readUint(value);
  if (typeof value === 'string') return MEDIA_TYPE_CODES[value.split(';')[0].trim()];
  return undefined;
}

function optionString(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

function rawOptions(packet: { options?: RawOption[] } | undefined): RawOption[] {
  return packet?.options ?? [];
}

function numericOption(options: RawOption[], name: string): number | undefined {
  const found = options.find((o) => o.name === name);
  return found ? optionNumber(found.value) : undefined;
}

function stringOptions(options: RawOption[], name: string): string[] {
  return options.filter((o) => o.name === name).map((o) => optionString(o.value));
}

type CoapIncoming = coap.IncomingMessage & { _packet: { options?: RawOption[]; token?: Buffer; payload?: Buffer } };

export class CoapTransport extends EventEmitter {
  private socket: dgram.Socket | null = null;
  private server: coap.Server | null = null;
  private agent: coap.Agent | null = null;
  private handler: RequestHandler = (ex) => ex.respond({ code: '4.04' });
  private readonly observations = new Set<ObservationImpl>();
  private readonly exchanges = new Set<ExchangeImpl>();
  readonly options: Required<Omit<TransportOptions, 'address' | 'receiveBufferSize'>> & { address?: string; receiveBufferSize?: number };

  constructor(options: TransportOptions = {}) {
    super();
    this.options = {
      type: options.type ?? 'udp4',
      port: options.port ?? 0,
      address: options.address,
      requestTimeoutMs: options.requestTimeoutMs ?? 10000,
      receiveBufferSize: options.receiveBufferSize,
      dedupeCacheBytes: options.dedupeCacheBytes ?? 1024 * 1024,
    };
  }

  setHandler(handler: RequestHandler): void {
    this.handler = handler;
  }

  private readonly fastPrefixes = new Set<string>();
  private fastCache: RetransmissionCache | null = null;
  private requester: FastRequester | null = null;

  /**
   * Requests whose first Uri-Path segment is one of these (e.g. 'rd') are parsed and answered
   * on the lean path (fast-path.ts); their handler must answer synchronously or soon after.
   */
  setFastPaths(prefixes: string[]): void {
    this.fastPrefixes.clear();
    for (const p of prefixes) this.fastPrefixes.add(p);
  }

  private serveExchange(exchange: Exchange): void {
    try {
      this.handler(exchange);
    } catch (err) {
      this.emit('warning', err);
      exchange.respond({ code: '5.00' });
    }
  }

  get listening(): boolean {
    return this.socket !== null;
  }

  address(): Peer {
    if (!this.socket) throw new CoapTransportError('transport is not open');
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** Binds the socket; rejects with the bind error (e.g. EADDRINUSE). */
  open(): Promise<void> {
    if (this.socket) return Promise.resolve();
    const socket = dgram.createSocket({ type: this.options.type, reuseAddr: false });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind(this.options.port, this.options.address, () => {
        socket.removeListener('error', onError);
        socket.on('error', (err) => this.emit('warning', err));
        if (this.options.receiveBufferSize) {
          try {
            socket.setRecvBufferSize(this.options.receiveBufferSize);
          } catch (err) {
            this.emit('warning', err);
          }
        }
        this.socket = socket;
        const server = coap.createServer({ type: this.options.type, cacheSize: this.options.dedupeCacheBytes });
        server.on('request', (req: coap.IncomingMessage, res: coap.OutgoingMessage) =>
          this.dispatch(req as CoapIncoming, res));
        server.on('error', (err: Error) => this.emit('warning', err));
        server.listen(socket);
        this.server = server;
        const agent = new coap.Agent({ socket });
        agent.on('error', (err: Error) => this.emit('warning', err));
        this.agent = agent;
        // one listener sees each datagram first, then hands what the lean path does not serve to coap
        const coapListeners = socket.listeners('message') as Array<(msg: Buffer, rinfo: dgram.RemoteInfo) => void>;
        socket.removeAllListeners('message');
        const cache = new RetransmissionCache();
        this.fastCache = cache;
        const requester = new FastRequester(socket);
        this.requester = requester;
        socket.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
          if (requester.handle(msg, rinfo)) return;
          this.watchEmptyMessages(msg);
          if (this.fastPrefixes.size > 0 && serveFast(msg, rinfo, socket, this.fastPrefixes, cache, (ex) => this.serveExchange(ex))) return;
          for (const listener of coapListeners) listener(msg, rinfo);
        });
        resolve();
      });
    });
  }

  /** Closes the socket and ends every observation and open exchange. Idempotent. */
  close(): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    this.socket = null;
    for (const obs of [...this.observations]) obs.end();
    for (const ex of [...this.exchanges]) ex.cancel();
    const agent = this.agent;
    this.agent = null;
    this.fastCache?.close();
    this.fastCache = null;
    this.requester?.close();
    this.requester = null;
    const server = this.server;
    this.server = null;
    return new Promise((resolve) => {
      try {
        agent?.close();
      } catch { /* agent already idle */ }
      try {
        server?.close();
      } catch { /* not listening */ }
      for (const [timer, abort] of this.pendingRequests) {
        clearTimeout(timer);
        abort(new CoapTransportError('transport closed before the answer came'));
      }
      this.pendingRequests.clear();
      socket.close(() => resolve());
    });
  }

  /** Requests waiting for an answer: their timeout timer, and how to fail them when the socket closes. */
  private readonly pendingRequests = new Map<NodeJS.Timeout, (err: Error) => void>();

  /**
   * Sends a request from this transport's socket and resolves with the response. Plain CON
   * requests go out on the lean path (fast-path.ts); observe, NON, given tokens and block-wise
   * answers use `coap`'s agent.
   */
  request(peer: Peer, spec: CoapRequestSpec): Promise<CoapResponse> {
    const requester = this.requester;
    // coap keeps only the last block's options of a block-wise answer: Content-Format is lost, and
    // the answer to a request with Accept is in that format (or an error)
    const viaAgent = () => this.send(peer, spec).then(({ response }) => (response.contentFormat === undefined && response.payload.length > 0
      ? { ...response, contentFormat: spec.accept } : response));
    if (!requester || spec.observe !== undefined || spec.confirmable === false || spec.token) return viaAgent();
    const options: Array<{ name: string; value: Buffer }> = [];
    for (const segment of spec.path.split('/').filter(Boolean)) options.push({ name: 'Uri-Path', value: Buffer.from(segment) });
    for (const q of spec.query ?? []) options.push({ name: 'Uri-Query', value: Buffer.from(q) });
    if (spec.accept !== undefined) options.push({ name: OPTION_ACCEPT, value: uintOption(spec.accept) });
    if (spec.contentFormat !== undefined) options.push({ name: OPTION_CONTENT_FORMAT, value: uintOption(spec.contentFormat) });
    if (spec.payload && spec.payload.length > 1024) return viaAgent(); // block-wise
    const timeoutMs = spec.timeoutMs ?? this.options.requestTimeoutMs;
    return requester.send(peer, { code: spec.method, options, payload: spec.payload }, timeoutMs).then((answer) => {
      if (!answer) {
        throw this.listening
          ? new CoapTimeoutError(`no response from ${peer.address}:${peer.port} to ${spec.method} ${spec.path} within ${timeoutMs} ms`)
          : new CoapTransportError('transport closed before the answer came');
      }
      const { packet, rinfo } = answer;
      const raw = packet.options as RawOption[];
      // a block-wise answer needs coap's reassembly: ask again through the agent
      if (raw.some((o) => o.name === 'Block2')) return viaAgent();
      return {
        code: packet.code,
        payload: packet.payload,
        contentFormat: numericOption(raw, OPTION_CONTENT_FORMAT),
        observe: numericOption(raw, 'Observe'),
        locationPath: stringOptions(raw, 'Location-Path'),
        peer: { address: rinfo.address, port: rinfo.port },
      };
    });
  }

  /** Sends GET/FETCH with Observe 0; resolves once the first response arrives. */
  observe(peer: Peer, spec: Omit<CoapRequestSpec, 'observe'>): Promise<Observation> {
    return this.send(peer, { ...spec, observe: 0 }).then(({ response, stream, token }) => {
      const obs = new ObservationImpl(response, token, stream, () => this.observations.delete(obs));
      if (stream && response.observe !== undefined && response.code.startsWith('2.')) {
        this.observations.add(obs);
      } else {
        obs.end();
      }
      return obs;
    });
  }

  private send(peer: Peer, spec: CoapRequestSpec):
    Promise<{ response: CoapResponse; stream?: coap.IncomingMessage; token: Buffer }> {
    const agent = this.agent;
    if (!agent) return Promise.reject(new CoapTransportError('transport is not open'));
    const timeoutMs = spec.timeoutMs ?? this.options.requestTimeoutMs;
    return new Promise((resolve, reject) => {
      let settled = false;
      const req = coap.request({
        host: peer.address,
        port: peer.port,
        method: spec.method as 'GET',
        pathname: spec.path || '/',
        query: spec.query?.join('&'),
        confirmable: spec.confirmable ?? true,
        observe: spec.observe,
        token: spec.token,
        agent,
      });
      const finish = (err: Error | null, value?: { response: CoapResponse; stream?: coap.IncomingMessage; token: Buffer }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pendingRequests.delete(timer);
        if (err) reject(err);
        else resolve(value!);
      };
      const timer = setTimeout(() => {
        try {
          agent.abort(req);
        } catch { /* already gone */ }
        finish(new CoapTimeoutError(
          `no response from ${peer.address}:${peer.port} to ${spec.method} ${spec.path} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pendingRequests.set(timer, (err) => finish(err));
      if (spec.accept !== undefined) req.setOption(OPTION_ACCEPT, uintOption(spec.accept));
      if (spec.contentFormat !== undefined) req.setOption(OPTION_CONTENT_FORMAT, uintOption(spec.contentFormat));
      req.on('response', (res: coap.IncomingMessage) => {
        const incoming = res as CoapIncoming;
        const response = toResponse(incoming, peer);
        finish(null, {
          response,
          stream: spec.observe === 0 ? res : undefined,
          token: (req as unknown as { _packet: { token: Buffer } })._packet.token ?? Buffer.alloc(0),
        });
      });
      req.on('timeout', () => finish(new CoapTimeoutError(
        `no response from ${peer.address}:${peer.port} to ${spec.method} ${spec.path} (CoAP retransmissions exhausted)`)));
      req.on('error', (err: Error) => finish(new CoapTransportError(`${spec.method} ${spec.path} failed: ${err.message}`)));
      req.end(spec.payload ?? undefined);
    });
  }

  /** Message ids of recent notifications, so a RST to one cancels its observation. */
  private readonly notificationIds = new Map<number, ExchangeImpl>();
  private nextMessageId = Math.floor(Math.random() * 65536);

  private trackNotification(exchange: ExchangeImpl): number {
    this.nextMessageId = (this.nextMessageId + 1) % 65536;
    const id = this.nextMessageId;
    this.notificationIds.set(id, exchange);
    exchange.sentIds.push(id);
    if (exchange.sentIds.length > 8) this.notificationIds.delete(exchange.sentIds.shift()!);
    return id;
  }

  private forgetNotifications(exchange: ExchangeImpl): void {
    for (const id of exchange.sentIds) {
      if (this.notificationIds.get(id) === exchange) this.notificationIds.delete(id);
    }
    exchange.sentIds.length = 0;
  }

  /**
   * ACKs and RSTs to our notifications, read straight off the datagram header (RFC 7252 §3):
   * `coap` does not report them, and an observer's RST is how it cancels passively.
   */
  private watchEmptyMessages(msg: Buffer): void {
    if (msg.length < 4 || msg[1] !== 0) return;
    const type = (msg[0] >> 4) & 0x03;
    if (type !== 2 && type !== 3) return;
    const exchange = this.notificationIds.get(msg.readUInt16BE(2));
    if (!exchange) return;
    exchange.acknowledged(msg.readUInt16BE(2), type === 2);
  }

  private dispatch(req: CoapIncoming, res: coap.OutgoingMessage): void {
    if (!req.method || req.code === '0.00') return; // empty messages are handled in watchEmptyMessages
    const options = rawOptions(req._packet);
    const request: IncomingRequest = {
      method: req.method,
      pathSegments: stringOptions(options, 'Uri-Path'),
      query: stringOptions(options, 'Uri-Query'),
      contentFormat: numericOption(options, OPTION_CONTENT_FORMAT),
      accept: numericOption(options, OPTION_ACCEPT),
      observe: numericOption(options, 'Observe'),
      payload: req.payload ?? Buffer.alloc(0),
      peer: { address: req.rsinfo.address, port: req.rsinfo.port },
      token: req._packet.token ?? Buffer.alloc(0),
    };
    const exchange = new ExchangeImpl(request, res, () => {
      this.exchanges.delete(exchange);
      this.forgetNotifications(exchange);
    });
    if (exchange.isObserveRequest) {
      this.exchanges.add(exchange);
      const stream = res as unknown as { _send: (r: unknown, p: { messageId?: number; ack?: boolean }) => void };
      const send = stream._send;
      stream._send = (r, p) => {
        // the first response is piggybacked on the request's ACK and keeps its message id
        if (p.messageId === undefined && !p.ack) {
          p.messageId = this.trackNotification(exchange);
          exchange.recordSent(p.messageId);
        }
        send(r, p);
      };
    }
    try {
      this.handler(exchange);
    } catch (err) {
      this.emit('warning', err);
      if (!exchange.responded) exchange.respond({ code: '5.00' });
    }
  }
}

function toResponse(res: CoapIncoming, peer: Peer): CoapResponse {
  const options = rawOptions(res._packet);
  // a block-wise answer: coap has reassembled the payload, and the packet at hand is the last block
  const blockwise = options.some((o) => o.name === 'Block2');
  return {
    code: res.code,
    payload: (blockwise ? res.payload : res._packet?.payload ?? res.payload) ?? Buffer.alloc(0),
    contentFormat: numericOption(options, OPTION_CONTENT_FORMAT) ?? optionNumber(res.headers?.[OPTION_CONTENT_FORMAT]),
    observe: numericOption(options, 'Observe'),
    locationPath: stringOptions(options, 'Location-Path'),
    peer: { address: res.rsinfo?.address ?? peer.address, port: res.rsinfo?.port ?? peer.port },
  };
}

class ObservationImpl extends EventEmitter implements Observation {
  private ended = false;
  constructor(
    readonly first: CoapResponse,
    readonly token: Buffer,
    private readonly stream: coap.IncomingMessage | undefined,
    private readonly onEnd: () => void,
  ) {
    super();
    if (!stream) return;
    // keep the readable side flowing (notifications are taken from `append` below, with their
    // options); a paused stream would buffer every payload for as long as the observation lives
    stream.on('data', () => {});
    stream.on('error', () => this.end());
    // each packet (first included) goes through 'append'; we hook it to get options per notification
    const original = (stream as unknown as { append: (packet: unknown, first: boolean) => void }).append;
    const self = this;
    (stream as unknown as { append: (packet: unknown, first: boolean) => void }).append =
      function append(this: unknown, packet: unknown, isFirst: boolean) {
        original.call(this, packet, isFirst);
        if (isFirst || self.ended) return;
        const p = packet as { code: string; payload?: Buffer; options?: RawOption[] };
        const options = p.options ?? [];
        self.emit('notification', {
          code: p.code,
          payload: p.payload ?? Buffer.alloc(0),
          contentFormat: numericOption(options, OPTION_CONTENT_FORMAT),
          observe: numericOption(options, 'Observe'),
          locationPath: [],
          peer: first.peer,
        } satisfies CoapResponse);
      };
  }

  close(): void {
    if (this.ended) return;
    try {
      (this.stream as unknown as { close?: (eager?: boolean) => void })?.close?.(false);
    } catch { /* socket already closed */ }
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    this.emit('end');
  }
}

class ExchangeImpl implements Exchange {
  responded = false;
  readonly sentIds: number[] = [];
  private cancelled = false;
  private readonly cancelListeners: Array<() => void> = [];
  readonly isObserveRequest: boolean;

  constructor(
    readonly request: IncomingRequest,
    private readonly res: coap.OutgoingMessage,
    private readonly onDone: () => void,
  ) {
    this.isObserveRequest = request.observe === 0 && (request.method === 'GET' || request.method === 'FETCH');
    const stream = res as unknown as EventEmitter;
    stream.on('finish', () => this.cancel());
    stream.on('close', () => this.cancel());
  }

  get observing(): boolean {
    return this.isObserveRequest && this.responded && !this.cancelled;
  }

  respond(spec: ResponseSpec): void {
    if (this.responded) return;
    this.responded = true;
    const res = this.res;
    res.code = spec.code;
    // observe answers go through coap's ObserveWriteStream, which sends `statusCode`
    (res as unknown as { statusCode: string }).statusCode = spec.code;
    if (spec.contentFormat !== undefined) res.setOption(OPTION_CONTENT_FORMAT, uintOption(spec.contentFormat));
    if (spec.locationPath) res.setOption('Location-Path', spec.locationPath.map((s) => Buffer.from(s)));
    const ok = spec.code.startsWith('2.');
    if (this.isObserveRequest && ok) {
      res.write(spec.payload ?? Buffer.alloc(0));
    } else {
      if (this.isObserveRequest) this.cancelled = true;
      res.end(spec.payload ?? Buffer.alloc(0));
      this.onDone();
    }
  }

  private readonly pendingAcks = new Map<number, (delivered: boolean) => void>();
  private lastSentId: number | undefined;

  /** Called by the transport for an ACK (delivered) or RST (not, and cancels) to one of our notifications. */
  acknowledged(messageId: number, delivered: boolean): void {
    const resolve = this.pendingAcks.get(messageId);
    this.pendingAcks.delete(messageId);
    resolve?.(delivered);
    if (!delivered) this.cancel();
  }

  recordSent(messageId: number): void {
    this.lastSentId = messageId;
  }

  notify(spec: ResponseSpec, confirmable = false, ackTimeoutMs = 30000): Promise<boolean> {
    if (!this.observing) return Promise.resolve(false);
    const res = this.res as unknown as { statusCode: string; _packet: { confirmable: boolean; ack: boolean }; write: (b: Buffer) => void; setOption: (n: string, v: Buffer) => void };
    res.statusCode = spec.code;
    if (spec.contentFormat !== undefined) res.setOption(OPTION_CONTENT_FORMAT, uintOption(spec.contentFormat));
    res._packet.confirmable = confirmable;
    res._packet.ack = false;
    this.lastSentId = undefined;
    res.write(spec.payload ?? Buffer.alloc(0));
    const messageId = this.lastSentId;
    if (!confirmable || messageId === undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(messageId);
        resolve(false);
      }, ackTimeoutMs);
      this.pendingAcks.set(messageId, (delivered) => {
        clearTimeout(timer);
        resolve(delivered);
      });
    });
  }

  onCancel(listener: () => void): void {
    this.cancelListeners.push(listener);
  }

  cancel(): void {
    if (this.cancelled && !this.isObserveRequest) return;
    const wasObserving = this.observing;
    this.cancelled = true;
    for (const resolve of this.pendingAcks.values()) resolve(false);
    this.pendingAcks.clear();
    this.onDone();
    if (wasObserving) for (const l of this.cancelListeners.splice(0)) l();
  }
}
