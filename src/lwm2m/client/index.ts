/**
 * A software LwM2M client on CoAP/UDP: registers (directly or after bootstrap), answers the
 * device-management and bootstrap interfaces from its object store (or from DeviceHandlers, which
 * the BC66 emulator uses to forward requests to its serial host), and notifies observers.
 */
import { EventEmitter } from 'events';
import { CoapTransport, Exchange, Peer, ResponseSpec } from '../coap/transport';
import { UdpChannel } from '../coap/channel';
import { CertificateCredentials, DtlsChannel, HandshakeEvent, PskCredentials } from '../../dtls/channel';
import { credentialsOf, securityInstance, ServerAddress } from './security';
import {
  decodePathList, decodeRecords, encodeRecords, recordsToTree, FORMAT_CODES, FormatName, formatLinkFormat, formatName, Link, DecodeError,
} from '../content';
import { ObjectRegistry } from '../model';
import { formatPath, parsePath, pathContains, pathDepth } from '../path';
import { Lwm2mError, Lwm2mPath, ResourceRecord, ResourceValue, ValueTree } from '../types';
import { ATTRIBUTE_NAMES, AttributeStore, NotificationAttributes, passesThresholds } from './attributes';
import { ObjectStore } from './object-store';

export { ObjectStore } from './object-store';
export { ServerAddress, SecurityObjectError } from './security';
export { AttributeStore, NotificationAttributes } from './attributes';

/** One argument of an Execute (Core §5.4.5): `3` or `3='value'`. */
export interface ExecuteArgument {
  digit: number;
  value?: string;
}

/**
 * One Execute argument, Core §5.4.5 ABNF: a digit, optionally ='value' whose characters are
 * %x21 / %x23-26 / %x28-5B / %x5D-7E (printable ASCII but space, double quote, quote, backslash).
 */
const EXECUTE_ARGUMENT = String.raw`([0-9])(?:='([!#-&(-\[\]-~]*)')?`;
const EXECUTE_ARGUMENTS = new RegExp(`^${EXECUTE_ARGUMENT}(?:,${EXECUTE_ARGUMENT})*$`);

/** Parses an Execute payload; an empty one has no arguments. Undefined when the syntax is wrong. */
export function parseExecuteArguments(text: string): ExecuteArgument[] | undefined {
  if (text === '') return [];
  if (!EXECUTE_ARGUMENTS.test(text)) return undefined;
  // the whole list is valid and values hold no quote, so arguments match one after the other
  return [...text.matchAll(new RegExp(`${EXECUTE_ARGUMENT}(?:,|$)`, 'g'))]
    .map((m) => (m[2] === undefined ? { digit: Number(m[1]) } : { digit: Number(m[1]), value: m[2] }));
}

export type ErrorCode = '4.00' | '4.01' | '4.04' | '4.05' | '4.06' | '5.00';

export interface DeviceHandlers {
  read?(path: Lwm2mPath): Promise<ResourceRecord[] | ErrorCode>;
  write?(path: Lwm2mPath, records: ResourceRecord[], mode: 'replace' | 'update'): Promise<'2.04' | ErrorCode>;
  /** `args` as sent; `parsed` is the same list, already checked against Core §5.4.5. */
  execute?(path: Lwm2mPath, args: string, parsed: ExecuteArgument[]): Promise<'2.04' | ErrorCode>;
  observe?(path: Lwm2mPath, start: boolean): Promise<ResourceRecord[] | ErrorCode | void>;
}

export interface ClientOptions {
  endpoint: string;
  /** Where to register; with `psk`, over DTLS (coaps). */
  server?: ServerAddress;
  /** Where to bootstrap; with `psk`, over DTLS (coaps). */
  bootstrap?: ServerAddress;
  lifetime?: number;
  binding?: 'U' | 'UQ';
  lwm2mVersion?: '1.0' | '1.1' | '1.2';
  localAddress?: string;
  localPort?: number;
  type?: 'udp4' | 'udp6';
  registry?: ObjectRegistry;
  requestTimeoutMs?: number;
  autoUpdate?: boolean;
  handlers?: DeviceHandlers;
  /** Retry delays (ms) after a failed registration or bootstrap: [first, max]; doubles per failure, ±25 % jitter. */
  retryDelayMs?: [number, number];
  /** How long to wait for Bootstrap-Finish after the Bootstrap-Request. */
  bootstrapTimeoutMs?: number;
  /**
   * The one content format announced as `ct=` on `</>` at Register/Update, or null to announce none.
   * Default: 110 (SenML JSON) for LwM2M 1.1+, none for 1.0 (TLV is the 1.0 default). Servers such as
   * Wakaama parse `ct` as a single value and refuse the registration otherwise. The client still
   * answers in every format it supports when a request names one with Accept.
   */
  advertisedFormat?: number | null;
}

export type ClientState = 'stopped' | 'bootstrapping' | 'registering' | 'registered' | 'deregistered' | 'error';

export class ClientError extends Lwm2mError {}

interface ClientObservation {
  exchange: Exchange;
  paths: Lwm2mPath[];
  composite: boolean;
  format: FormatName;
  lastSentAt: number;
  lastValue?: ResourceValue;
  pminTimer?: NodeJS.Timeout;
  pmaxTimer?: NodeJS.Timeout;
}

const SUPPORTED_FORMATS: FormatName[] = ['senml-cbor', 'senml-json', 'tlv', 'lwm2m-cbor', 'oma-json', 'text', 'opaque'];

export class Lwm2mClient extends EventEmitter {
  readonly objects = new ObjectStore();
  readonly attributes = new AttributeStore();
  private readonly registry: ObjectRegistry;
  private transport: CoapTransport;
  private channel!: DtlsChannel;
  private handlers: DeviceHandlers;
  private readonly observations = new Set<ClientObservation>();
  /** "objectId/instanceId" → resources declared present without a value here (declareResources). */
  private readonly declared = new Map<string, Set<number>>();
  private location?: string[];
  private currentState: ClientState = 'stopped';
  private updateTimer?: NodeJS.Timeout;
  private retryTimer?: NodeJS.Timeout;
  private bootstrapTimer?: NodeJS.Timeout;
  private retryDelay: number;
  private bootstrapDone?: { resolve: () => void; reject: (err: Error) => void };
  readonly options: ClientOptions & { lifetime: number; binding: 'U' | 'UQ'; lwm2mVersion: '1.0' | '1.1' | '1.2' };

  constructor(options: ClientOptions) {
    super();
    if (!options.endpoint) throw new ClientError('an LwM2M client needs an endpoint name');
    if (!options.server && !options.bootstrap) throw new ClientError('give a server or a bootstrap server');
    this.options = { lifetime: 86400, binding: 'U', lwm2mVersion: '1.1', ...options };
    this.registry = options.registry ?? ObjectRegistry.withBuiltins();
    this.handlers = options.handlers ?? {};
    this.retryDelay = this.firstRetryDelay();
    const advertised = this.options.advertisedFormat;
    if (advertised !== undefined && advertised !== null) {
      const name = formatName(advertised);
      if (!name || !SUPPORTED_FORMATS.includes(name) || name === 'text' || name === 'opaque') {
        throw new ClientError(`advertisedFormat ${advertised} is not a multi-value format this client supports`);
      }
    }
    this.transport = this.newTransport();
    this.installDefaultObjects();
  }

  /**
   * One socket for every server: DTLS to those its Security object gives credentials for (coaps,
   * PSK), plain CoAP to the others.
   */
  private newTransport(): CoapTransport {
    const channel = this.channel = new DtlsChannel(
      new UdpChannel({ type: this.options.type ?? 'udp4', port: this.options.localPort ?? 0, address: this.options.localAddress }),
      { client: { credentialsFor: (peer) => this.credentialsFor(peer) }, plaintextWithoutCredentials: true },
    );
    channel.on('handshakeFailed', (e: HandshakeEvent) => this.emit('warning', new ClientError(`DTLS handshake with ${e.peer.address}:${e.peer.port} failed: ${e.reason}`)));
    const transport = new CoapTransport({ channel, requestTimeoutMs: this.options.requestTimeoutMs ?? 10000 });
    transport.on('warning', (err) => this.emit('warning', err));
    transport.setHandler((exchange) => {
      this.handle(exchange).catch((err: Error) => {
        this.emit('warning', err);
        exchange.respond({ code: '5.00', payload: Buffer.from(err.message) });
      });
    });
    return transport;
  }

  private installDefaultObjects(): void {
    const { server, bootstrap, lifetime, binding } = this.options;
    if (server) {
      this.objects.setInstance(0, 0, securityInstance(server, false));
      this.objects.setInstance(1, 0, { 0: 1, 1: lifetime, 2: 0, 3: 0, 6: false, 7: binding });
    } else if (bootstrap) {
      this.objects.setInstance(0, 0, securityInstance(bootstrap, true));
    }
    this.objects.setInstance(3, 0, {
      0: 'node-red-contrib-lwm2m-kit', 1: 'Software LwM2M client', 2: this.options.endpoint, 3: '0.1.0',
      11: { 0: 0 }, 13: new Date(), 16: 'U',
    });
  }

  setHandlers(handlers: DeviceHandlers): void {
    this.handlers = handlers;
  }

  setInstance(objectId: number, instanceId: number, resources: Record<number, ResourceValue | Record<number, ResourceValue>>): void {
    const isNew = !this.objects.instance(objectId, instanceId);
    this.objects.setInstance(objectId, instanceId, resources);
    if (isNew && this.currentState === 'registered') this.update({ objects: true }).catch((err: Error) => this.emit('warning', err));
  }

  deleteObject(objectId: number): void {
    this.objects.deleteObject(objectId);
    for (const key of [...this.declared.keys()]) if (key.startsWith(`${objectId}/`)) this.declared.delete(key);
    if (this.currentState === 'registered') this.update({ objects: true }).catch((err: Error) => this.emit('warning', err));
  }

  setValue(path: string, value: ResourceValue): void {
    const parsed = parsePath(path);
    if (parsed.resourceId === undefined || parsed.instanceId === undefined) throw new ClientError(`setValue needs a resource path, not ${path}`);
    this.objects.write([{ path: parsed, value }], false);
    this.changed(parsed);
  }

  getValue(path: string): ValueTree | undefined {
    const parsed = parsePath(path);
    if (!this.objects.exists(parsed)) return undefined;
    return recordsToTree(parsed, this.objects.read(parsed));
  }

  isObserved(path: string): boolean {
    const parsed = parsePath(path);
    return [...this.observations].some((o) => o.paths.some((p) => pathContains(p, parsed) || pathContains(parsed, p)));
  }

  get state(): ClientState {
    return this.currentState;
  }

  get registrationLocation(): string | undefined {
    return this.location ? `/${this.location.join('/')}` : undefined;
  }

  get localPort(): number {
    return this.transport.address().port;
  }

  private setState(state: ClientState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit('state', state);
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    if (!this.transport.listening) await this.transport.open();
    // the retry delay is not reset here: retries come through start() too, and resetting it
    // made every retry wait the first delay. It resets after a registration and on stop().
    try {
      if (this.options.bootstrap && !this.serverAccount()) await this.bootstrap();
      await this.register();
    } catch (err) {
      this.scheduleRetry();
      throw err;
    }
  }

  private firstRetryDelay(): number {
    return this.options.retryDelayMs?.[0] ?? 1000;
  }

  /**
   * Exponential backoff: the base delay doubles after each failed attempt up to the configured
   * maximum. Each wait is the base ±25 % (capped at the maximum), so devices that lost the server
   * together (a server restart, a cell outage) spread out instead of retrying in lockstep. Not full
   * jitter (0…base): with ±25 % the ranges of successive waits do not overlap (0.75·2b > 1.25·b),
   * so waits really grow and never collapse to ~0.
   */
  private scheduleRetry(): void {
    if (!this.transport.listening || this.retryTimer) return;
    const max = this.options.retryDelayMs?.[1] ?? 60000;
    const base = Math.min(this.retryDelay, max);
    this.retryDelay = Math.min(base * 2, max);
    const delay = Math.min(max, Math.round(base * (0.75 + Math.random() * 0.5)));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start().catch((err: Error) => this.emit('warning', err));
    }, delay);
  }

  /** Stops; a registered client deregisters first unless `deregister` is false (a device that loses power). */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    this.clearTimers();
    this.retryDelay = this.firstRetryDelay(); // a later start() begins a fresh backoff
    if (options.deregister !== false && this.currentState === 'registered' && this.transport.listening) {
      await this.deregister().catch((err: Error) => this.emit('warning', err));
    }
    for (const o of this.observations) this.dropObservation(o);
    this.bootstrapDone?.reject(new ClientError('client stopped'));
    this.bootstrapDone = undefined;
    await this.transport.close();
    this.setState('stopped');
  }

  private clearTimers(): void {
    for (const t of [this.updateTimer, this.retryTimer, this.bootstrapTimer]) if (t) clearTimeout(t);
    this.updateTimer = this.retryTimer = this.bootstrapTimer = undefined;
  }

  /**
   * The PSK of the coaps:// Security instance for this peer (read when a DTLS session starts). A
   * bootstrap server and an LwM2M server may share an address: while bootstrapping the bootstrap
   * account's credentials count, otherwise the server account's.
   */
  private credentialsFor(peer: Peer): PskCredentials | CertificateCredentials | undefined {
    const bootstrapping = this.currentState === 'bootstrapping';
    const ids = this.objects.instanceIds(0)
      .sort((a, b) => Number(this.objects.instance(0, a)!.get(1) !== bootstrapping) - Number(this.objects.instance(0, b)!.get(1) !== bootstrapping));
    for (const instanceId of ids) {
      const sec = this.objects.instance(0, instanceId)!;
      const uri = sec.get(0);
      if (typeof uri !== 'string' || !uri.startsWith('coaps://')) continue;
      const at = parseCoapUri(uri);
      if (!at || at.address !== peer.address || at.port !== peer.port) continue;
      try {
        return credentialsOf(sec);
      } catch (err) {
        this.emit('warning', new ClientError(`${uri}: ${(err as Error).message}`));
        return undefined;
      }
    }
    return undefined;
  }

  /** The non-bootstrap server account from /0 and /1: where to register, with what lifetime. */
  private serverAccount(): { peer: Peer; lifetime: number; binding: string } | undefined {
    for (const instanceId of this.objects.instanceIds(0)) {
      const sec = this.objects.instance(0, instanceId)!;
      if (sec.get(1) === true) continue;
      const uri = sec.get(0);
      if (typeof uri !== 'string') continue;
      const peer = parseCoapUri(uri);
      if (!peer) continue;
      const ssid = sec.get(10);
      const serverInstance = this.objects.instanceIds(1).map((i) => this.objects.instance(1, i)!).find((s) => s.get(0) === ssid)
        ?? this.objects.instance(1, this.objects.instanceIds(1)[0]);
      const lifetime = Number(serverInstance?.get(1) ?? this.options.lifetime);
      const binding = String(serverInstance?.get(7) ?? this.options.binding);
      return { peer, lifetime, binding };
    }
    return undefined;
  }

  private registerQuery(account: { lifetime: number; binding: string }): string[] {
    const query = [`ep=${this.options.endpoint}`, `lt=${account.lifetime}`];
    const version = this.options.lwm2mVersion;
    if (version !== '1.0') query.push(`lwm2m=${version}`);
    const queueMode = account.binding.includes('Q');
    const binding = account.binding.replace('Q', '') || 'U';
    query.push(`b=${version === '1.0' && queueMode ? `${binding}Q` : binding}`);
    if (version !== '1.0' && queueMode) query.push('Q');
    return query;
  }

  /** The `ct` announced on `</>`: the configured one, else SenML JSON for 1.1+ and none for 1.0. */
  private advertisedFormat(): number | undefined {
    const configured = this.options.advertisedFormat;
    if (configured !== undefined) return configured ?? undefined;
    return this.options.lwm2mVersion === '1.0' ? undefined : FORMAT_CODES['senml-json'];
  }

  private objectLinks(): string {
    const root: Record<string, string> = { rt: 'oma.lwm2m' };
    const ct = this.advertisedFormat();
    if (ct !== undefined) root.ct = String(ct);
    const links: Link[] = [{ uri: '/', params: root }];
    for (const objectId of this.objects.objectIds()) {
      if (objectId === 0 || objectId === 21) continue; // Security and OSCORE are never announced
      const version = this.registry.get(objectId)?.version;
      const ver: Record<string, string> = version && version !== '1.0' ? { ver: version } : {};
      const instances = this.objects.instanceIds(objectId);
      if (instances.length === 0) links.push({ uri: `/${objectId}`, params: ver });
      else instances.forEach((i, n) => links.push({ uri: `/${objectId}/${i}`, params: n === 0 ? ver : {} }));
    }
    return formatLinkFormat(links);
  }

  async register(): Promise<void> {
    const account = this.serverAccount();
    if (!account) throw new ClientError('no LwM2M server account in /0 and /1: bootstrap first');
    if (!this.transport.listening) await this.transport.open();
    this.setState('registering');
    let response;
    try {
      response = await this.transport.request(account.peer, {
        method: 'POST', path: '/rd', query: this.registerQuery(account),
        contentFormat: FORMAT_CODES['link-format'], payload: Buffer.from(this.objectLinks()),
      });
    } catch (err) {
      this.setState('error');
      throw err;
    }
    if (response.code !== '2.01' || response.locationPath.length === 0) {
      this.setState('error');
      throw new ClientError(`registration refused: ${response.code} ${response.payload.toString('utf8')}`);
    }
    this.location = response.locationPath;
    this.retryDelay = this.firstRetryDelay(); // only a registration ends the backoff
    this.setState('registered');
    this.scheduleUpdate(account.lifetime);
    this.emit('registered', this.registrationLocation);
  }

  private scheduleUpdate(lifetime: number): void {
    if (this.updateTimer) clearTimeout(this.updateTimer);
    if (this.options.autoUpdate === false) return;
    // well before the lifetime runs out, leaving room for retransmissions
    const delay = Math.max(500, Math.min(lifetime * 900, (lifetime - 10) * 1000));
    this.updateTimer = setTimeout(() => {
      this.updateTimer = undefined;
      this.update().catch((err: Error) => {
        this.emit('warning', err);
        this.setState('error');
        this.scheduleRetry();
      });
    }, delay);
  }

  async update(params: { lifetime?: number; binding?: string; objects?: boolean } = {}): Promise<void> {
    const account = this.serverAccount();
    if (!account || !this.location) throw new ClientError('not registered');
    const query: string[] = [];
    if (params.lifetime !== undefined) {
      query.push(`lt=${params.lifetime}`);
      this.objects.write([{ path: { objectId: 1, instanceId: this.objects.instanceIds(1)[0] ?? 0, resourceId: 1 }, value: params.lifetime }]);
    }
    if (params.binding !== undefined) query.push(`b=${params.binding}`);
    const response = await this.transport.request(account.peer, {
      method: 'POST', path: `/${this.location.join('/')}`, query,
      contentFormat: params.objects ? FORMAT_CODES['link-format'] : undefined,
      payload: params.objects ? Buffer.from(this.objectLinks()) : undefined,
    });
    if (response.code === '4.04') {
      // the server forgot us (expiry, restart): register again
      this.location = undefined;
      await this.register();
      return;
    }
    if (response.code !== '2.04') throw new ClientError(`update refused: ${response.code}`);
    this.scheduleUpdate(params.lifetime ?? account.lifetime);
    this.emit('updated');
  }

  async deregister(): Promise<void> {
    const account = this.serverAccount();
    if (!account || !this.location) throw new ClientError('not registered');
    if (this.updateTimer) clearTimeout(this.updateTimer);
    this.updateTimer = undefined;
    const location = this.location;
    this.location = undefined;
    for (const o of this.observations) this.dropObservation(o);
    this.setState('deregistered');
    const response = await this.transport.request(account.peer, { method: 'DELETE', path: `/${location.join('/')}`, timeoutMs: 5000 });
    this.emit('deregistered', response.code);
  }

  /** Bootstrap-Request, then wait for the bootstrap server's writes and Bootstrap-Finish. */
  async bootstrap(): Promise<void> {
    const bs = this.options.bootstrap;
    if (!bs) throw new ClientError('no bootstrap server configured');
    if (!this.transport.listening) await this.transport.open();
    this.setState('bootstrapping');
    const finished = new Promise<void>((resolve, reject) => {
      this.bootstrapDone = { resolve, reject };
    });
    finished.catch(() => {}); // observed below; avoids an unhandled rejection when stop() cancels it
    this.bootstrapTimer = setTimeout(() => {
      this.bootstrapDone?.reject(new ClientError('bootstrap did not finish in time'));
      this.bootstrapDone = undefined;
    }, this.options.bootstrapTimeoutMs ?? 60000);
    try {
      const response = await this.transport.request({ address: bs.host === 'localhost' ? '127.0.0.1' : bs.host, port: bs.port }, {
        method: 'POST', path: '/bs', query: [`ep=${this.options.endpoint}`, 'pct=112'],
      });
      if (response.code !== '2.04') throw new ClientError(`bootstrap request refused: ${response.code} ${response.payload.toString('utf8')}`);
      await finished;
      // the bootstrap session's credentials are done with: the server account gets a session of its own
      this.channel.closeSessions();
    } catch (err) {
      this.bootstrapDone = undefined;
      this.setState('error');
      throw err;
    } finally {
      if (this.bootstrapTimer) clearTimeout(this.bootstrapTimer);
      this.bootstrapTimer = undefined;
    }
    this.emit('bootstrap-finished');
  }

  /** Send operation: POST /dp with the current values of `paths` (SenML CBOR). */
  async send(paths: string[]): Promise<string> {
    const account = this.serverAccount();
    if (!account || !this.location) throw new ClientError('not registered');
    const records = paths.flatMap((p) => this.objects.read(parsePath(p)));
    const response = await this.transport.request(account.peer, {
      method: 'POST', path: '/dp', contentFormat: FORMAT_CODES['senml-cbor'],
      payload: encodeRecords('senml-cbor', records, { basePath: { objectId: 0 } }),
    });
    return response.code;
  }

  // ---- serving requests ----

  private readable = (objectId: number, resourceId: number): boolean => {
    const ops = this.registry.resource(objectId, resourceId)?.operations;
    return ops === undefined || ops.includes('R');
  };

  private async handle(exchange: Exchange): Promise<void> {
    const req = exchange.request;
    if (req.pathSegments[0] === 'bs' && req.method === 'POST') {
      this.finishBootstrap(exchange);
      return;
    }
    if (req.pathSegments.some((s) => !/^\d{1,5}$/.test(s)) || req.pathSegments.length > 4) {
      exchange.respond({ code: '4.04' });
      return;
    }
    const path: Lwm2mPath | undefined = req.pathSegments.length ? parsePath(req.pathSegments.join('/')) : undefined;
    const bootstrapping = this.currentState === 'bootstrapping';
    switch (req.method) {
      case 'GET':
        if (req.accept === FORMAT_CODES['link-format']) return this.discover(exchange, path, bootstrapping);
        if (!path) return exchange.respond({ code: '4.05' });
        return this.read(exchange, [path], false);
      case 'FETCH': {
        const format = req.contentFormat !== undefined ? formatName(req.contentFormat) : undefined;
        let paths: Lwm2mPath[];
        try {
          paths = decodePathList(format ?? 'senml-cbor', req.payload);
        } catch {
          return exchange.respond({ code: '4.00', payload: Buffer.from('bad path list') });
        }
        return this.read(exchange, paths, true);
      }
      case 'PUT':
        if (!path) return exchange.respond({ code: '4.05' });
        if (req.payload.length === 0 && req.query.length > 0) {
          // Write-Attributes: only on what exists, so that Discover shows what was accepted
          if (!this.present(path)) return exchange.respond({ code: '4.04' });
          return exchange.respond({ code: this.attributes.write(path, req.query, this.isNumeric(path)) ? '2.04' : '4.00' });
        }
        return this.write(exchange, path, 'replace', bootstrapping);
      case 'POST':
        if (!path) return exchange.respond({ code: '4.05' });
        if (pathDepth(path) === 3) return this.execute(exchange, path);
        if (pathDepth(path) === 2) return this.write(exchange, path, 'update', bootstrapping);
        return this.create(exchange, path);
      case 'iPATCH':
        return this.writeComposite(exchange);
      case 'DELETE':
        return this.remove(exchange, path, bootstrapping);
      default:
        return exchange.respond({ code: '4.05' });
    }
  }

  private chooseFormat(accept: number | undefined, paths: Lwm2mPath[], composite: boolean): FormatName | undefined {
    if (accept !== undefined) {
      const name = formatName(accept);
      return name && SUPPORTED_FORMATS.includes(name) ? name : undefined;
    }
    if (composite) return 'senml-cbor';
    if (paths.length === 1 && pathDepth(paths[0]) === 3 && !this.registry.isMultiple(paths[0].objectId, paths[0].resourceId!)) return 'text';
    return this.options.lwm2mVersion === '1.0' ? 'tlv' : 'senml-cbor';
  }

  private async readRecords(path: Lwm2mPath): Promise<ResourceRecord[] | ErrorCode> {
    if (this.handlers.read && path.objectId !== 0 && path.objectId !== 1) {
      const answer = await this.handlers.read(path);
      return answer;
    }
    if (!this.objects.exists(path)) return '4.04';
    if (path.resourceId !== undefined && !this.readable(path.objectId, path.resourceId)) return '4.05';
    return this.objects.read(path, this.readable);
  }

  private encode(format: FormatName, records: ResourceRecord[], basePath: Lwm2mPath): ResponseSpec {
    try {
      return { code: '2.05', contentFormat: FORMAT_CODES[format], payload: encodeRecords(format, records, { basePath, types: this.registry }) };
    } catch {
      return { code: '4.06' };
    }
  }

  private async read(exchange: Exchange, paths: Lwm2mPath[], composite: boolean): Promise<void> {
    const req = exchange.request;
    const format = this.chooseFormat(req.accept, paths, composite);
    if (!format) return exchange.respond({ code: '4.06' });
    const observing = req.observe === 0;
    const cancelling = req.observe === 1;
    if (cancelling) this.cancelByToken(req.token);
    const records: ResourceRecord[] = [];
    for (const path of paths) {
      const answer = observing && this.handlers.observe && path.objectId > 1
        ? (await this.handlers.observe(path, true)) ?? await this.readRecords(path)
        : await this.readRecords(path);
      if (typeof answer === 'string') {
        if (composite && answer === '4.04') continue; // composite reads skip what is absent
        return exchange.respond({ code: answer });
      }
      records.push(...answer);
    }
    const spec = this.encode(format, records, composite ? { objectId: 0 } : paths[0]);
    exchange.respond(spec);
    if (observing && spec.code === '2.05' && exchange.observing) this.addObservation(exchange, paths, composite, format, records);
  }

  private discover(exchange: Exchange, path: Lwm2mPath | undefined, bootstrapping: boolean): void {
    const links: Link[] = [];
    if (!path) {
      links.push({ uri: '/', params: { lwm2m: this.options.lwm2mVersion } });
      for (const objectId of this.objects.objectIds()) {
        const instances = this.objects.instanceIds(objectId);
        if (instances.length === 0) links.push({ uri: `/${objectId}`, params: {} });
        for (const i of instances) {
          const params: Record<string, string> = {};
          const inst = this.objects.instance(objectId, i)!;
          if (objectId === 0 && inst.get(1) !== true && inst.get(10) !== undefined) params.ssid = String(inst.get(10));
          if (objectId === 0 && inst.get(1) !== true && typeof inst.get(0) === 'string') params.uri = inst.get(0) as string;
          if (objectId === 1 && inst.get(0) !== undefined) params.ssid = String(inst.get(0));
          links.push({ uri: `/${objectId}/${i}`, params });
        }
      }
      return exchange.respond({ code: '2.05', contentFormat: FORMAT_CODES['link-format'], payload: Buffer.from(formatLinkFormat(links)) });
    }
    if (bootstrapping && path.instanceId !== undefined) return exchange.respond({ code: '4.00' });
    if (pathDepth(path) === 4) return exchange.respond({ code: '4.00', payload: Buffer.from('Discover targets an object, instance or resource') });
    if (!this.present(path)) return exchange.respond({ code: '4.04' });
    const own = (p: Lwm2mPath): Record<string, string> => attributeParams(this.attributes.get(p));
    const dim = (i: number, rid: number): Record<string, string> => {
      const slot = this.objects.instance(path.objectId, i)?.get(rid);
      if (slot instanceof Map) return { dim: String(slot.size) };
      return this.registry.isMultiple(path.objectId, rid) ? { dim: '0' } : {};
    };
    if (pathDepth(path) === 3) {
      // a resource: its dim and the attributes in force for it, inherited from instance and object
      // levels (Core §5.4.2: </3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2)
      const params = { ...dim(path.instanceId!, path.resourceId!), ...attributeParams(this.attributes.effective(path, {})) };
      return exchange.respond({ code: '2.05', contentFormat: FORMAT_CODES['link-format'], payload: Buffer.from(formatLinkFormat([{ uri: formatPath(path), params }])) });
    }
    // an object or an instance: the object (with its version), its instances and every resource
    // each instance has, with the attributes attached at each level
    if (pathDepth(path) === 1) {
      const version = this.registry.get(path.objectId)?.version;
      links.push({ uri: `/${path.objectId}`, params: { ...(version && version !== '1.0' ? { ver: version } : {}), ...own({ objectId: path.objectId }) } });
    }
    for (const i of this.objects.instanceIds(path.objectId)) {
      if (path.instanceId !== undefined && i !== path.instanceId) continue;
      const instPath = { objectId: path.objectId, instanceId: i };
      links.push({ uri: `/${path.objectId}/${i}`, params: own(instPath) });
      for (const rid of this.presentResources(path.objectId, i)) {
        links.push({ uri: `/${path.objectId}/${i}/${rid}`, params: { ...dim(i, rid), ...own({ ...instPath, resourceId: rid }) } });
      }
    }
    exchange.respond({ code: '2.05', contentFormat: FORMAT_CODES['link-format'], payload: Buffer.from(formatLinkFormat(links)) });
  }

  /**
   * The resources an instance has: those holding a value, those declared with declareResources()
   * (the BC66 emulator's AT+QLWADDOBJ list, whose values live on the serial host), and the
   * executable resources this client implements itself.
   */
  presentResources(objectId: number, instanceId: number): number[] {
    const inst = this.objects.instance(objectId, instanceId);
    if (!inst) return [];
    const ids = new Set<number>(inst.keys());
    for (const rid of this.declared.get(`${objectId}/${instanceId}`) ?? []) ids.add(rid);
    if (objectId === 1) {
      ids.add(8); // Registration Update Trigger
      if (this.options.bootstrap) ids.add(9); // Bootstrap-Request Trigger
    }
    if (objectId === 3) ids.add(4); // Reboot (mandatory; acknowledged)
    return [...ids].sort((a, b) => a - b);
  }

  /** Declares resources of an instance as present though their values are not held here. */
  declareResources(objectId: number, instanceId: number, resourceIds: number[]): void {
    const key = `${objectId}/${instanceId}`;
    this.declared.set(key, new Set([...(this.declared.get(key) ?? []), ...resourceIds]));
  }

  /** Does `path` name something this client has (for Discover and Write-Attributes)? */
  private present(path: Lwm2mPath): boolean {
    if (path.instanceId === undefined) return this.objects.hasObject(path.objectId) || this.registry.get(path.objectId) !== undefined;
    if (path.resourceId === undefined) return this.objects.exists(path);
    if (path.resourceInstanceId !== undefined) return this.objects.exists(path);
    return this.presentResources(path.objectId, path.instanceId).includes(path.resourceId);
  }

  /** Is `path` a numeric resource (or resource instance)? By its type, else by its current value. */
  private isNumeric(path: Lwm2mPath): boolean {
    if (path.resourceId === undefined || path.instanceId === undefined) return false;
    const type = this.registry.resourceType(path.objectId, path.resourceId);
    if (type !== undefined && type !== 'none') return type === 'integer' || type === 'unsigned' || type === 'float';
    const values = this.objects.read(path);
    return values.length > 0 && values.every((r) => typeof r.value === 'number');
  }

  /**
   * A value the object model says is an Integer must be one: the codecs parse text/plain and
   * SenML numbers as JavaScript numbers, so "12.5" would otherwise be stored in an Integer resource.
   */
  private badValue(records: ResourceRecord[]): string | undefined {
    for (const { path, value } of records) {
      const type = path.resourceId === undefined ? undefined : this.registry.resourceType(path.objectId, path.resourceId);
      if (type !== 'integer' && type !== 'unsigned') continue;
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || (type === 'unsigned' && value < 0)) {
        return `${formatPath(path)}: ${String(value)} is not ${type === 'unsigned' ? 'an unsigned integer' : 'an integer'}`;
      }
    }
    return undefined;
  }

  private decodeBody(exchange: Exchange, basePath: Lwm2mPath, newInstance = false): ResourceRecord[] | undefined {
    const req = exchange.request;
    const format = req.contentFormat !== undefined ? formatName(req.contentFormat) : 'text';
    if (!format || format === 'link-format') {
      exchange.respond({ code: '4.15' });
      return undefined;
    }
    let records: ResourceRecord[];
    try {
      records = decodeRecords(format, req.payload, { basePath, types: this.registry, newInstance });
    } catch (err) {
      exchange.respond({ code: '4.00', payload: Buffer.from(err instanceof DecodeError ? err.message : 'bad payload') });
      return undefined;
    }
    const bad = this.badValue(records);
    if (bad) {
      exchange.respond({ code: '4.00', payload: Buffer.from(bad) });
      return undefined;
    }
    return records;
  }

  private writable(path: Lwm2mPath, bootstrapping: boolean): boolean {
    if (bootstrapping) return true;
    if (path.objectId === 0) return false;
    if (path.resourceId === undefined) return true;
    const ops = this.registry.resource(path.objectId, path.resourceId)?.operations;
    return ops === undefined || ops.includes('W');
  }

  private async write(exchange: Exchange, path: Lwm2mPath, mode: 'replace' | 'update', bootstrapping: boolean): Promise<void> {
    const records = this.decodeBody(exchange, path);
    if (!records) return;
    if (records.some((r) => !pathContains(path, r.path))) return exchange.respond({ code: '4.00', payload: Buffer.from('values outside the target path') });
    const target = { objectId: path.objectId, instanceId: path.instanceId };
    if (!bootstrapping && !this.objects.exists(target) && !this.handlers.write) return exchange.respond({ code: '4.04' });
    if (records.some((r) => !this.writable(r.path, bootstrapping))) return exchange.respond({ code: '4.05' });
    if (this.handlers.write && !bootstrapping && path.objectId > 1) {
      const code = await this.handlers.write(path, records, mode);
      if (code !== '2.04') return exchange.respond({ code });
    }
    if (mode === 'replace' && pathDepth(path) === 2) this.objects.setInstance(path.objectId, path.instanceId!, {});
    this.objects.write(records, mode === 'replace' || pathDepth(path) >= 3);
    exchange.respond({ code: '2.04' });
    this.emit('write', formatPath(path), records);
    if (!bootstrapping) {
      for (const r of records) this.changed(r.path);
      if (path.objectId === 1 && records.some((r) => r.path.resourceId === 1) && this.location) {
        this.update({ lifetime: Number(records.find((r) => r.path.resourceId === 1)!.value) }).catch((err: Error) => this.emit('warning', err));
      }
    }
  }

  private async writeComposite(exchange: Exchange): Promise<void> {
    const records = this.decodeBody(exchange, { objectId: 0 });
    if (!records) return;
    if (records.some((r) => !this.objects.exists({ objectId: r.path.objectId, instanceId: r.path.instanceId }))) return exchange.respond({ code: '4.04' });
    if (records.some((r) => !this.writable(r.path, false))) return exchange.respond({ code: '4.05' });
    this.objects.write(records, true);
    exchange.respond({ code: '2.04' });
    this.emit('write', 'composite', records);
    for (const r of records) this.changed(r.path);
  }

  private async execute(exchange: Exchange, path: Lwm2mPath): Promise<void> {
    const ops = this.registry.resource(path.objectId, path.resourceId!)?.operations;
    if (ops !== undefined && ops !== 'E') return exchange.respond({ code: '4.05' });
    const known = this.objects.exists({ objectId: path.objectId, instanceId: path.instanceId });
    if (!known && !this.handlers.execute) return exchange.respond({ code: '4.04' });
    const args = exchange.request.payload.toString('utf8');
    const parsed = parseExecuteArguments(args);
    if (!parsed) return exchange.respond({ code: '4.00', payload: Buffer.from("arguments must be digit[='value'] separated by commas") });
    if (this.handlers.execute && path.objectId > 1) {
      const code = await this.handlers.execute(path, args, parsed);
      exchange.respond({ code });
      if (code !== '2.04') return;
    } else {
      exchange.respond({ code: '2.04' });
    }
    this.emit('execute', formatPath(path), args, parsed);
    // after answering: the triggers of the Server object
    if (path.objectId === 1 && path.resourceId === 8) this.update({ objects: true }).catch((err: Error) => this.emit('warning', err));
    if (path.objectId === 1 && path.resourceId === 9) this.rebootstrap();
  }

  private rebootstrap(): void {
    if (!this.options.bootstrap) return;
    setImmediate(async () => {
      try {
        if (this.location) await this.deregister().catch(() => {});
        for (const i of this.objects.instanceIds(0)) if (this.objects.instance(0, i)!.get(1) !== true) this.objects.deleteInstance(0, i);
        this.objects.deleteObject(1);
        await this.bootstrap();
        await this.register();
      } catch (err) {
        this.emit('warning', err);
        this.scheduleRetry();
      }
    });
  }

  /**
   * SenML / LwM2M CBOR of a Create without an instance id (what Lwm2mServer.create sends): names
   * relative to the object that do not read as instance/resource ("5700"), so they are resources
   * of the new instance.
   */
  private namesResourcesOfNewInstance(exchange: Exchange, path: Lwm2mPath): boolean {
    const format = exchange.request.contentFormat !== undefined ? formatName(exchange.request.contentFormat) : undefined;
    if (format !== 'senml-json' && format !== 'senml-cbor' && format !== 'lwm2m-cbor') return false;
    try {
      return decodeRecords(format, exchange.request.payload, { basePath: path, types: this.registry }).some((r) => r.path.resourceId === undefined);
    } catch {
      return true; // names like "5700" are not paths of their own
    }
  }

  private create(exchange: Exchange, path: Lwm2mPath): void {
    const payload = exchange.request.payload;
    // TLV resources at the top level: the client picks the new instance id
    const tlvWithoutInstance = exchange.request.contentFormat === FORMAT_CODES.tlv && payload.length > 0 && (payload[0] >> 6) !== 0;
    const relativeNames = !tlvWithoutInstance && this.namesResourcesOfNewInstance(exchange, path);
    const records = this.decodeBody(exchange, path, relativeNames);
    if (!records) return;
    const withoutInstance = tlvWithoutInstance || relativeNames;
    const existing = this.objects.instanceIds(path.objectId);
    const instanceId = withoutInstance || records.length === 0
      ? (existing.length ? Math.max(...existing) + 1 : 0)
      : records[0].path.instanceId!;
    if (!withoutInstance && existing.includes(instanceId)) return exchange.respond({ code: '4.00', payload: Buffer.from('instance exists') });
    this.objects.setInstance(path.objectId, instanceId, {});
    this.objects.write(records.map((r) => ({ ...r, path: { ...r.path, instanceId } })));
    exchange.respond({ code: '2.01', locationPath: [String(path.objectId), String(instanceId)] });
    this.emit('create', `/${path.objectId}/${instanceId}`);
    if (this.location) this.update({ objects: true }).catch((err: Error) => this.emit('warning', err));
  }

  private remove(exchange: Exchange, path: Lwm2mPath | undefined, bootstrapping: boolean): void {
    if (bootstrapping) {
      // Bootstrap-Delete: everything named, except the bootstrap account itself
      for (const objectId of this.objects.objectIds()) {
        if (path && path.objectId !== objectId) continue;
        if (objectId === 3) continue; // the Device object is the client's own
        for (const i of this.objects.instanceIds(objectId)) {
          if (path?.instanceId !== undefined && path.instanceId !== i) continue;
          if (objectId === 0 && this.objects.instance(0, i)!.get(1) === true) continue;
          this.objects.deleteInstance(objectId, i);
        }
      }
      return exchange.respond({ code: '2.02' });
    }
    // the Server, Device and other single-instance objects cannot lose their instance
    if (!path || pathDepth(path) !== 2 || path.objectId <= 1 || this.registry.get(path.objectId)?.multiple === false) {
      return exchange.respond({ code: '4.05' });
    }
    if (!this.objects.deleteInstance(path.objectId, path.instanceId!)) return exchange.respond({ code: '4.04' });
    this.declared.delete(`${path.objectId}/${path.instanceId}`);
    exchange.respond({ code: '2.02' });
    this.emit('delete', formatPath(path));
    if (this.location) this.update({ objects: true }).catch((err: Error) => this.emit('warning', err));
  }

  private finishBootstrap(exchange: Exchange): void {
    if (this.currentState !== 'bootstrapping') return exchange.respond({ code: '4.00' });
    if (!this.serverAccount()) {
      exchange.respond({ code: '4.06', payload: Buffer.from('no LwM2M server account was written') });
      this.bootstrapDone?.reject(new ClientError('bootstrap finished without a server account'));
    } else {
      exchange.respond({ code: '2.04' });
      this.bootstrapDone?.resolve();
    }
    this.bootstrapDone = undefined;
  }

  // ---- observations and notifications ----

  private defaultAttributes(): NotificationAttributes {
    const server = this.objects.instance(1, this.objects.instanceIds(1)[0] ?? 0);
    const pmin = Number(server?.get(2) ?? 0);
    const pmax = Number(server?.get(3) ?? 0);
    return { pmin: pmin > 0 ? pmin : undefined, pmax: pmax > 0 ? pmax : undefined };
  }

  private addObservation(exchange: Exchange, paths: Lwm2mPath[], composite: boolean, format: FormatName, records: ResourceRecord[]): void {
    const obs: ClientObservation = {
      exchange, paths, composite, format, lastSentAt: Date.now(),
      lastValue: records.length === 1 ? records[0].value : undefined,
    };
    this.observations.add(obs);
    exchange.onCancel(() => this.dropObservation(obs));
    this.armPmax(obs);
    for (const p of paths) this.emit('observe', formatPath(p), true);
  }

  private dropObservation(obs: ClientObservation): void {
    if (!this.observations.delete(obs)) return;
    if (obs.pminTimer) clearTimeout(obs.pminTimer);
    if (obs.pmaxTimer) clearTimeout(obs.pmaxTimer);
    for (const p of obs.paths) {
      this.emit('observe', formatPath(p), false);
      if (this.handlers.observe && p.objectId > 1) this.handlers.observe(p, false).catch(() => {});
    }
  }

  private cancelByToken(token: Buffer): void {
    for (const o of this.observations) if (o.exchange.request.token.equals(token)) this.dropObservation(o);
  }

  private armPmax(obs: ClientObservation): void {
    if (obs.pmaxTimer) clearTimeout(obs.pmaxTimer);
    const { pmax } = this.attributes.effective(obs.paths[0], this.defaultAttributes());
    if (!pmax) return;
    obs.pmaxTimer = setTimeout(() => this.sendNotification(obs).catch((err: Error) => this.emit('warning', err)), pmax * 1000);
  }

  /** A value changed: notify every observation that covers it, honouring pmin and thresholds. */
  private changed(path: Lwm2mPath): void {
    for (const obs of this.observations) {
      if (!obs.paths.some((p) => pathContains(p, path))) continue;
      const attrs = this.attributes.effective(obs.paths[0], this.defaultAttributes());
      if (!obs.composite && pathDepth(obs.paths[0]) === 3) {
        const [record] = this.objects.read(obs.paths[0]);
        if (record && !passesThresholds(attrs, obs.lastValue, record.value)) continue;
      }
      const wait = (attrs.pmin ?? 0) * 1000 - (Date.now() - obs.lastSentAt);
      if (wait > 0) {
        if (!obs.pminTimer) {
          obs.pminTimer = setTimeout(() => {
            obs.pminTimer = undefined;
            this.sendNotification(obs).catch((err: Error) => this.emit('warning', err));
          }, wait);
        }
        continue;
      }
      this.sendNotification(obs).catch((err: Error) => this.emit('warning', err));
    }
  }

  private async sendNotification(obs: ClientObservation, records?: ResourceRecord[], confirmable = false): Promise<boolean> {
    if (!this.observations.has(obs)) return false;
    let values = records;
    if (!values) {
      values = [];
      for (const p of obs.paths) {
        const answer = this.handlers.read && p.objectId > 1 ? await this.readRecords(p) : this.objects.read(p, this.readable);
        if (typeof answer !== 'string') values.push(...answer);
      }
    }
    obs.lastSentAt = Date.now();
    if (values.length === 1) obs.lastValue = values[0].value;
    this.armPmax(obs);
    const spec = this.encode(obs.format, values, obs.composite ? { objectId: 0 } : obs.paths[0]);
    return obs.exchange.notify(spec, confirmable);
  }

  /** Pushes a notification with these records to every observation covering `path`. */
  async notify(path: string, records?: ResourceRecord[], confirmable = false): Promise<{ observed: boolean; delivered: boolean }> {
    const parsed = parsePath(path);
    if (records) this.objects.write(records, false);
    const targets = [...this.observations].filter((o) => o.paths.some((p) => pathContains(p, parsed) || pathContains(parsed, p)));
    if (targets.length === 0) return { observed: false, delivered: false };
    const results = await Promise.all(targets.map((o) => this.sendNotification(o, records && !o.composite && o.paths.every((p) => pathContains(parsed, p) || pathContains(p, parsed)) ? records : undefined, confirmable)));
    return { observed: true, delivered: results.some(Boolean) };
  }
}

/** Attributes as link parameters, in the order of Core §5.1.2. */
function attributeParams(attrs: NotificationAttributes): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ATTRIBUTE_NAMES) if (attrs[k] !== undefined) out[k] = String(attrs[k]);
  return out;
}

/** coap://host:port or coaps://host:port (5684 by default). */
export function parseCoapUri(uri: string): Peer | undefined {
  const m = /^coaps?:\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(uri.trim());
  if (!m) return undefined;
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { address: host === 'localhost' ? '127.0.0.1' : host, port: m[2] ? Number(m[2]) : uri.startsWith('coaps') ? 5684 : 5683 };
}
