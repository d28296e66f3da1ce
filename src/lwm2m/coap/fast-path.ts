/**
 * A lean path for the requests a server gets by the ten thousand (Register, Update, Send): parsed
 * and answered straight on the socket with coap-packet, with a light retransmission cache, instead
 * of through `coap`'s per-message stream objects. Profiles of registration storms put most of the
 * server's time in those objects and their garbage (bench/RESULTS.md). Observe requests, block-wise
 * transfers and everything else still go through `coap`.
 */
import type { Socket } from 'dgram';
import { generate, parse, ParsedPacket } from 'coap-packet';
import type { Exchange, IncomingRequest, ResponseSpec } from './transport';

const METHODS: Record<string, string> = {
  '0.01': 'GET', '0.02': 'POST', '0.03': 'PUT', '0.04': 'DELETE', '0.05': 'FETCH', '0.06': 'PATCH', '0.07': 'iPATCH',
};

/** RFC 7252 EXCHANGE_LIFETIME: how long a retransmission of a CON request can still arrive. */
const EXCHANGE_LIFETIME_MS = 247_000;

function uint(value: Buffer): number {
  let n = 0;
  for (const b of value) n = n * 256 + b;
  return n;
}

function uintBytes(n: number): Buffer {
  if (n === 0) return Buffer.alloc(0);
  if (n < 256) return Buffer.from([n]);
  return Buffer.from([n >> 8, n & 255]);
}

/**
 * Answers to CON requests, kept for one exchange lifetime so a retransmitted request gets the same
 * answer without running its handler again. Two generations swapped on a timer: O(1), no per-entry timer.
 */
export class RetransmissionCache {
  private current = new Map<string, Buffer>();
  private previous = new Map<string, Buffer>();
  private readonly timer: NodeJS.Timeout;

  constructor(lifetimeMs = EXCHANGE_LIFETIME_MS) {
    this.timer = setInterval(() => {
      this.previous = this.current;
      this.current = new Map();
    }, lifetimeMs / 2 + 1);
    this.timer.unref?.();
  }

  get(key: string): Buffer | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  set(key: string, answer: Buffer): void {
    this.current.set(key, answer);
  }

  close(): void {
    clearInterval(this.timer);
    this.current.clear();
    this.previous.clear();
  }
}

class FastExchange implements Exchange {
  private responded = false;
  readonly observing = false;

  constructor(
    readonly request: IncomingRequest,
    private readonly packet: ParsedPacket,
    private readonly send: (answer: Buffer) => void,
  ) {}

  respond(spec: ResponseSpec): void {
    if (this.responded) return;
    this.responded = true;
    const options: Array<{ name: string; value: Buffer }> = [];
    for (const segment of spec.locationPath ?? []) options.push({ name: 'Location-Path', value: Buffer.from(segment) });
    if (spec.contentFormat !== undefined) options.push({ name: 'Content-Format', value: uintBytes(spec.contentFormat) });
    const confirmable = this.packet.confirmable;
    this.send(generate({
      code: spec.code,
      // a CON request gets a piggybacked answer in its ACK; a NON request a NON answer
      messageId: confirmable ? this.packet.messageId : (this.packet.messageId + 1) % 65536,
      token: this.packet.token,
      ack: confirmable,
      confirmable: false,
      options: options as never,
      payload: spec.payload ?? Buffer.alloc(0),
    }));
  }

  notify(): Promise<boolean> {
    return Promise.resolve(false);
  }

  onCancel(): void {
    // never observing
  }
}

/**
 * Tries to serve one datagram on the lean path. Returns false when it is not for us (not a request,
 * an observe, a block-wise transfer, another path, unparsable): the caller hands it to `coap`.
 */
export function serveFast(
  msg: Buffer,
  rinfo: { address: string; port: number },
  socket: Socket,
  prefixes: ReadonlySet<string>,
  cache: RetransmissionCache,
  handler: (exchange: Exchange) => void,
): boolean {
  // header: version 1, type CON (0) or NON (1), request code class 0 (methods 1..7)
  if (msg.length < 4 || msg[0] >> 6 !== 1 || ((msg[0] >> 4) & 3) > 1 || msg[1] < 1 || msg[1] > 7) return false;
  const key = `${rinfo.address}|${rinfo.port}|${msg.readUInt16BE(2)}`;
  const cached = cache.get(key);
  if (cached) {
    socket.send(cached, rinfo.port, rinfo.address);
    return true;
  }
  let packet: ParsedPacket;
  try {
    packet = parse(msg);
  } catch {
    return false;
  }
  const pathSegments: string[] = [];
  const query: string[] = [];
  let contentFormat: number | undefined;
  let accept: number | undefined;
  for (const o of packet.options) {
    switch (o.name) {
      case 'Uri-Path': pathSegments.push(o.value.toString('utf8')); break;
      case 'Uri-Query': query.push(o.value.toString('utf8')); break;
      case 'Content-Format': contentFormat = uint(o.value); break;
      case 'Accept': accept = uint(o.value); break;
      case 'Observe': case 'Block1': case 'Block2': return false;
      default: break;
    }
  }
  if (!prefixes.has(pathSegments[0])) return false;
  const request: IncomingRequest = {
    method: METHODS[packet.code],
    pathSegments,
    query,
    contentFormat,
    accept,
    payload: packet.payload,
    peer: { address: rinfo.address, port: rinfo.port },
    token: packet.token,
  };
  const exchange = new FastExchange(request, packet, (answer) => {
    if (packet.confirmable) cache.set(key, answer);
    socket.send(answer, rinfo.port, rinfo.address);
  });
  handler(exchange);
  return true;
}

// ---- requests this side sends ----

/** RFC 7252 transmission parameters. */
const ACK_TIMEOUT_MS = 2000;
const ACK_RANDOM_FACTOR = 1.5;
const MAX_RETRANSMIT = 4;

export interface FastResponse {
  packet: ParsedPacket;
  rinfo: { address: string; port: number };
}

interface PendingRequest {
  messageId: number;
  tokenKey: string;
  buffer: Buffer;
  peer: { address: string; port: number };
  /** Retransmissions left; -1 once the peer ACKed and a separate response is awaited. */
  retriesLeft: number;
  nextAt: number;
  interval: number;
  deadline: number;
  /** The answer, or null when the deadline passed (or the requester closed) without one. */
  resolve: (response: FastResponse | null) => void;
}

/**
 * Sends CON requests on the socket and matches their responses (piggybacked by message id,
 * separate ones by token), retransmitting with one sweep timer for all of them.
 */
export class FastRequester {
  private readonly byMessageId = new Map<number, PendingRequest>();
  private readonly byToken = new Map<string, PendingRequest>();
  private nextMessageId = Math.floor(Math.random() * 65536);
  private tokenCounter = Math.floor(Math.random() * 0xffffffff);
  private sweeper: NodeJS.Timeout | null = null;

  constructor(private readonly socket: Socket) {}

  get inFlight(): number {
    return this.byMessageId.size;
  }

  /**
   * Sends a CON request; resolves with the response, or with null once `timeoutMs` passed without
   * one (checked by the same sweep that retransmits: no timer per request).
   */
  send(peer: { address: string; port: number }, fields: { code: string; options: Array<{ name: string; value: Buffer }>; payload?: Buffer }, timeoutMs: number):
    Promise<FastResponse | null> {
    let messageId = this.nextMessageId;
    for (let i = 0; i < 65536 && this.byMessageId.has(messageId); i++) messageId = (messageId + 1) % 65536;
    this.nextMessageId = (messageId + 1) % 65536;
    this.tokenCounter = (this.tokenCounter + 1) >>> 0;
    const token = Buffer.alloc(4);
    token.writeUInt32BE(this.tokenCounter);
    const buffer = generate({ code: fields.code, messageId, token, confirmable: true, options: fields.options as never, payload: fields.payload ?? Buffer.alloc(0) });
    return new Promise<FastResponse | null>((resolve) => {
      const now = Date.now();
      const interval = ACK_TIMEOUT_MS * (1 + Math.random() * (ACK_RANDOM_FACTOR - 1));
      const pending: PendingRequest = {
        messageId, tokenKey: token.toString('hex'), buffer, peer, retriesLeft: MAX_RETRANSMIT,
        nextAt: now + interval, interval, deadline: now + timeoutMs, resolve,
      };
      this.byMessageId.set(messageId, pending);
      this.byToken.set(pending.tokenKey, pending);
      this.socket.send(buffer, peer.port, peer.address);
      this.arm(Math.min(250, timeoutMs));
    });
  }

  private forget(p: PendingRequest): void {
    if (this.byMessageId.get(p.messageId) === p) this.byMessageId.delete(p.messageId);
    if (this.byToken.get(p.tokenKey) === p) this.byToken.delete(p.tokenKey);
    if (this.byToken.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
      this.sweepEvery = 250;
    }
  }

  private sweepEvery = 250;

  private arm(period: number): void {
    if (this.sweeper && period >= this.sweepEvery) return;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweepEvery = Math.max(10, period);
    this.sweeper = setInterval(() => this.sweep(), this.sweepEvery);
  }

  private sweep(): void {
    const now = Date.now();
    for (const p of this.byToken.values()) {
      if (p.deadline <= now) {
        this.forget(p);
        p.resolve(null);
        continue;
      }
      if (p.retriesLeft <= 0 || p.nextAt > now) continue;
      p.retriesLeft--;
      p.interval *= 2;
      p.nextAt = now + p.interval;
      this.socket.send(p.buffer, p.peer.port, p.peer.address);
    }
  }

  /** Takes a datagram if it answers one of our requests (ACKing a separate CON response). */
  handle(msg: Buffer, rinfo: { address: string; port: number }): boolean {
    if (msg.length < 4 || msg[0] >> 6 !== 1) return false;
    const type = (msg[0] >> 4) & 3;
    const code = msg[1];
    const messageId = msg.readUInt16BE(2);
    if (code === 0) {
      // an empty ACK: the answer comes separately; stop retransmitting
      const p = type === 2 ? this.byMessageId.get(messageId) : undefined;
      if (!p) return false;
      this.byMessageId.delete(messageId);
      p.retriesLeft = -1;
      return true;
    }
    if (code < 0x40) return false; // a request, not a response
    const tokenLength = msg[0] & 0x0f;
    if (tokenLength > 8 || msg.length < 4 + tokenLength) return false;
    const tokenKey = msg.subarray(4, 4 + tokenLength).toString('hex');
    const p = this.byToken.get(tokenKey);
    if (!p || (type === 2 && this.byMessageId.get(messageId) !== p)) return false;
    let packet: ParsedPacket;
    try {
      packet = parse(msg);
    } catch {
      return false;
    }
    if (type === 0) this.socket.send(generate({ code: '0.00', messageId, ack: true }), rinfo.port, rinfo.address);
    this.forget(p);
    p.resolve({ packet, rinfo });
    return true;
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    const waiting = [...this.byToken.values()];
    this.byMessageId.clear();
    this.byToken.clear();
    for (const p of waiting) p.resolve(null);
  }
}
