/**
 * The LwM2M server: registration interface (/rd), Send (/dp), device management and observations,
 * all on one CoapTransport so that every request to a device leaves from the listening port.
 */
import { EventEmitter } from 'events';
import {
  CoapRequestSpec, CoapResponse, CoapTimeoutError, CoapTransport, Exchange, Observation, Peer,
} from '../coap/transport';
import { DEFAULT_PARAMETERS, maxTransmitWaitMs } from '../coap/params';
import {
  decodeRecords, encodePathList, encodeRecords, FORMAT_CODES, FormatName, formatName, Link, NEW_INSTANCE_FORMATS,
  parseLinkFormat, recordsToComposite, recordsToTree, toFormatName, treeToRecords, DecodeError,
} from '../content';
import { ObjectRegistry } from '../model';
import { formatPath, parsePath, pathDepth } from '../path';
import { Lwm2mError, Lwm2mPath, ResourceRecord, ResourceValue, ValueTree } from '../types';
import {
  DeviceNotFoundError, DeviceTimeoutError, QueueError, RequestFailedError, ServerStoppedError,
} from './errors';
import {
  BadRegistrationError, parseBinding, parseLifetime, parseObjectLinks, parseQuery, parseRegisterQuery, Registration,
} from './registration';
import { RegistrationFile } from './persistence';
import { RegistrationStore } from './store';

export * from './errors';
export { PersistenceError } from './persistence';
export { Registration, RegisteredObject, BadRegistrationError } from './registration';
export { RegistrationStore } from './store';

export interface ServerOptions {
  port?: number;
  address?: string;
  type?: 'udp4' | 'udp6';
  requestTimeoutMs?: number;
  defaultFormat?: FormatName;
  registry?: ObjectRegistry;
  queueMaxPerDevice?: number;
  /** How long a queue-mode device counts as awake after its last message (LwM2M: MAX_TRANSMIT_WAIT, 93 s). */
  queueAwakeMs?: number;
  minLifetime?: number;
  maxRegistrations?: number;
  /** Extra time after the lifetime before a registration expires. */
  expiryGraceMs?: number;
  /** A JSON file that keeps the registrations across restarts (none: memory only). */
  persistenceFile?: string;
}

export interface RequestOptions {
  format?: FormatName | number | string;
  timeoutMs?: number;
}

/** Notification attributes; `null` removes one (sent as the bare key, e.g. `?pmin`). */
export interface WriteAttributes {
  pmin?: number | null; pmax?: number | null; gt?: number | null; lt?: number | null; st?: number | null;
  epmin?: number | null; epmax?: number | null;
}

const ATTRIBUTE_KEYS = ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax'] as const;
const NUMERIC_TYPES = new Set(['integer', 'unsigned', 'float']);

export interface Notification {
  endpoint: string;
  path: string | string[];
  value: ValueTree | Record<string, ValueTree>;
  records: ResourceRecord[];
  observationId: string;
  code: string;
  format?: FormatName;
  receivedAt: Date;
}

/** What a device pushed with the Send operation (POST /dp), emitted as 'send'. */
export interface SendEvent {
  endpoint: string;
  /** Keyed by full path, like a Read-Composite result; the newest value of a path. */
  value: Record<string, ResourceValue>;
  /** Every record, time-stamped ones (SenML bt/t) with their `time`. */
  records: ResourceRecord[];
  format: FormatName;
}

export interface ObservationInfo {
  observationId: string;
  endpoint: string;
  path: string | string[];
}

interface ActiveObservation extends ObservationInfo {
  handle: Observation;
  basePath?: Lwm2mPath;
  /** The request that started it (an active cancel repeats it with Observe 1). */
  request: Omit<CoapRequestSpec, 'observe'>;
}

interface QueuedRequest {
  run: () => void;
  fail: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Register/Update payloads are CoRE link format (40); some clients (LwM2M 1.0 era, and a few
 * modems) label them text/plain (0): accept both, refuse others.
 */
function checkLinkPayloadFormat(contentFormat: number | undefined): void {
  if (contentFormat !== undefined && contentFormat !== FORMAT_CODES['link-format'] && contentFormat !== FORMAT_CODES.text) {
    throw new BadRegistrationError(`registration payload must be link-format (40), not ${contentFormat}`);
  }
}

export class Lwm2mServer extends EventEmitter {
  readonly registry: ObjectRegistry;
  readonly transport: CoapTransport;
  private readonly store: RegistrationStore;
  private readonly options: Required<Omit<ServerOptions, 'registry' | 'defaultFormat' | 'address' | 'persistenceFile'>> & ServerOptions;
  private readonly persistence: RegistrationFile | null;
  private readonly observations = new Map<string, ActiveObservation>(); // `${endpoint}\n${pathKey}`
  private readonly queues = new Map<string, QueuedRequest[]>(); // by registration id
  /** When each queue-mode device last talked (registration id → ms); others are always reachable. */
  private readonly lastHeard = new Map<string, number>();
  private bootstrapHandler: ((exchange: Exchange) => void) | null = null;
  private nextId = 1;
  private idPrefix = Date.now().toString(36);

  constructor(options: ServerOptions = {}) {
    super();
    this.options = {
      port: 5683,
      type: 'udp4',
      // MAX_TRANSMIT_WAIT: room for all of CoAP's retransmissions (NB-IoT needs them)
      requestTimeoutMs: maxTransmitWaitMs(DEFAULT_PARAMETERS),
      queueMaxPerDevice: 100,
      queueAwakeMs: 93000,
      minLifetime: 1,
      maxRegistrations: 1_000_000,
      expiryGraceMs: 2000,
      ...options,
    };
    this.registry = options.registry ?? ObjectRegistry.withBuiltins();
    this.transport = new CoapTransport({
      type: this.options.type,
      port: this.options.port,
      address: options.address ?? (this.options.type === 'udp6' ? '::' : '0.0.0.0'),
      requestTimeoutMs: this.options.requestTimeoutMs,
      // a registration storm after a power cut arrives all at once
      receiveBufferSize: 4 * 1024 * 1024,
    });
    this.transport.on('warning', (err) => this.emit('warning', err));
    this.transport.setHandler((exchange) => this.route(exchange));
    this.store = new RegistrationStore(this.options.maxRegistrations, (reg) => this.expired(reg));
    this.persistence = options.persistenceFile ? new RegistrationFile(options.persistenceFile) : null;
    if (this.persistence) {
      const save = () => this.persistence!.scheduleSave(() => this.store.list());
      for (const event of ['register', 'update', 'deregister', 'expire']) this.on(event, save);
    }
  }

  get running(): boolean {
    return this.transport.listening;
  }

  async start(): Promise<void> {
    await this.transport.open();
    if (this.persistence) {
      // devices registered before a restart stay known (and reachable at their last address)
      const saved = await this.persistence.load().catch((err: Error) => {
        this.emit('warning', err);
        return [];
      });
      for (const registration of saved) if (!this.store.byEndpointName(registration.endpoint)) this.store.add(registration);
    }
  }

  async stop(): Promise<void> {
    if (this.persistence && this.running) {
      await this.persistence.flush(() => this.store.list()).catch((err: Error) => this.emit('warning', err));
    }
    for (const obs of this.observations.values()) obs.handle.close();
    this.observations.clear();
    for (const queue of this.queues.values()) {
      for (const q of queue) {
        clearTimeout(q.timer);
        q.fail(new ServerStoppedError('server stopped before the queued request was sent'));
      }
    }
    this.queues.clear();
    this.store.clear();
    this.lastHeard.clear();
    await this.transport.close();
  }

  address(): Peer {
    return this.transport.address();
  }

  setBootstrapHandler(handler: ((exchange: Exchange) => void) | null): void {
    this.bootstrapHandler = handler;
  }

  getRegistration(endpoint: string): Registration | undefined {
    return this.store.byEndpointName(endpoint);
  }

  getRegistrationById(id: string): Registration | undefined {
    return this.store.byRegistrationId(id);
  }

  listRegistrations(): Registration[] {
    return this.store.list();
  }

  // ---- incoming requests ----

  private route(exchange: Exchange): void {
    const [first] = exchange.request.pathSegments;
    if (first === 'rd') this.registrationInterface(exchange);
    else if (first === 'dp') this.sendInterface(exchange);
    else if (first === 'bs' && this.bootstrapHandler) this.bootstrapHandler(exchange);
    else exchange.respond({ code: '4.04', payload: Buffer.from('unknown interface') });
  }

  private reject(exchange: Exchange, code: string, message: string): void {
    exchange.respond({ code, payload: Buffer.from(message) });
    this.emit('warning', new BadRegistrationError(`${exchange.request.peer.address}:${exchange.request.peer.port}: ${message}`));
  }

  private registrationInterface(exchange: Exchange): void {
    const { method, pathSegments } = exchange.request;
    try {
      if (pathSegments.length === 1 && method === 'POST') this.register(exchange);
      else if (pathSegments.length === 2 && method === 'POST') this.update(exchange, pathSegments[1]);
      else if (pathSegments.length === 2 && method === 'DELETE') this.deregister(exchange, pathSegments[1]);
      else exchange.respond({ code: '4.05' });
    } catch (err) {
      if (err instanceof BadRegistrationError) this.reject(exchange, err.code, err.message);
      else throw err;
    }
  }

  private register(exchange: Exchange): void {
    const req = exchange.request;
    const params = parseRegisterQuery(req.query, this.options.minLifetime);
    checkLinkPayloadFormat(req.contentFormat);
    const objectLinks = req.payload.toString('utf8');
    const parsed = parseObjectLinks(objectLinks);
    // the Objects and Object Instances are a mandatory parameter of Register
    if (parsed.objects.length === 0) throw new BadRegistrationError('Register names no object: the payload needs links like </1/0>,</3/0>');
    if (!this.store.byEndpointName(params.endpoint) && this.store.full) {
      exchange.respond({ code: '5.03', payload: Buffer.from('registration store is full') });
      return;
    }
    const now = new Date();
    const registration: Registration = {
      id: `${this.idPrefix}${(this.nextId++).toString(36)}`,
      endpoint: params.endpoint,
      lifetime: params.lifetime,
      lwm2mVersion: params.lwm2mVersion,
      binding: params.binding,
      queueMode: params.queueMode,
      smsNumber: params.smsNumber,
      rootPath: parsed.rootPath,
      objectLinks,
      objects: parsed.objects,
      supportedFormats: parsed.supportedFormats,
      address: req.peer.address,
      port: req.peer.port,
      registeredAt: now,
      updatedAt: now,
      expiresAt: this.expiry(params.lifetime),
    };
    const previous = this.store.add(registration);
    if (previous) this.forget(previous);
    if (registration.queueMode) this.lastHeard.set(registration.id, Date.now());
    exchange.respond({ code: '2.01', locationPath: ['rd', registration.id] });
    this.emit('register', registration, previous);
  }

  private update(exchange: Exchange, id: string): void {
    const registration = this.store.byRegistrationId(id);
    if (!registration) {
      exchange.respond({ code: '4.04', payload: Buffer.from(`no registration ${id}`) });
      return;
    }
    const req = exchange.request;
    const q = parseQuery(req.query);
    // the endpoint name belongs to Register only: an Update cannot change it
    if (q.has('ep')) throw new BadRegistrationError('Update must not carry ep= (the endpoint name is given at Register only)');
    const lifetime = parseLifetime(q.get('lt'), this.options.minLifetime);
    const binding = parseBinding(q.get('b'));
    if (req.payload.length > 0) checkLinkPayloadFormat(req.contentFormat);
    const parsed = req.payload.length > 0 ? parseObjectLinks(req.payload.toString('utf8')) : undefined;
    const previous = { ...registration };
    if (lifetime !== undefined) registration.lifetime = lifetime;
    if (binding !== undefined) registration.binding = binding;
    if (registration.lwm2mVersion === '1.0') {
      // LwM2M 1.0 says queue mode in the binding (UQ): an Update with a binding switches it
      if (binding !== undefined) registration.queueMode = binding.includes('Q') || q.has('Q');
      else if (q.has('Q')) registration.queueMode = true;
    }
    // LwM2M 1.1+: queue mode is the Q parameter of Register only; an Update (b=U or not) keeps it
    if (q.has('sms')) registration.smsNumber = q.get('sms') || undefined;
    if (parsed) {
      registration.objectLinks = req.payload.toString('utf8');
      registration.objects = parsed.objects;
      registration.rootPath = parsed.rootPath;
      if (parsed.supportedFormats.length) registration.supportedFormats = parsed.supportedFormats;
    }
    // NB-IoT NATs rebind often: the device is wherever its Update came from
    registration.address = req.peer.address;
    registration.port = req.peer.port;
    registration.updatedAt = new Date();
    registration.expiresAt = this.expiry(registration.lifetime);
    this.store.touched(registration, previous.address, previous.port);
    exchange.respond({ code: '2.04' });
    this.heard(registration);
    this.emit('update', registration, previous);
  }

  private deregister(exchange: Exchange, id: string): void {
    const registration = this.store.byRegistrationId(id);
    if (!registration) {
      exchange.respond({ code: '4.04', payload: Buffer.from(`no registration ${id}`) });
      return;
    }
    this.store.remove(registration);
    this.forget(registration);
    exchange.respond({ code: '2.02' });
    this.emit('deregister', registration);
  }

  private expired(registration: Registration): void {
    this.forget(registration);
    this.emit('expire', registration);
  }

  private expiry(lifetime: number): Date {
    return new Date(Date.now() + lifetime * 1000 + this.options.expiryGraceMs);
  }

  /** Drops what the server held for a registration that is gone or replaced. */
  private forget(registration: Registration): void {
    for (const [key, obs] of this.observations) {
      if (obs.endpoint === registration.endpoint) {
        obs.handle.close();
        this.observations.delete(key);
      }
    }
    const queue = this.queues.get(registration.id);
    if (queue) {
      this.queues.delete(registration.id);
      for (const q of queue) {
        clearTimeout(q.timer);
        q.fail(new QueueError(registration.endpoint, 'registration ended before the queued request was sent'));
      }
    }
    this.lastHeard.delete(registration.id);
  }

  private sendInterface(exchange: Exchange): void {
    const req = exchange.request;
    const registration = this.store.bySource(req.peer.address, req.peer.port);
    if (!registration || req.method !== 'POST') {
      exchange.respond({ code: registration ? '4.05' : '4.04', payload: Buffer.from('Send needs a registered device') });
      return;
    }
    const format = req.contentFormat !== undefined ? formatName(req.contentFormat) : undefined;
    if (format !== 'senml-json' && format !== 'senml-cbor' && format !== 'lwm2m-cbor') {
      exchange.respond({ code: '4.15', payload: Buffer.from('Send takes SenML JSON/CBOR or LwM2M CBOR') });
      return;
    }
    let records: ResourceRecord[];
    try {
      records = decodeRecords(format, req.payload, { basePath: { objectId: 0 }, types: this.registry });
    } catch (err) {
      exchange.respond({ code: '4.00', payload: Buffer.from((err as Error).message) });
      return;
    }
    exchange.respond({ code: '2.04' });
    this.heard(registration);
    const event: SendEvent = { endpoint: registration.endpoint, value: recordsToComposite(records), records, format };
    this.emit('send', event);
  }

  // ---- queue mode ----

  private heard(registration: Registration): void {
    if (registration.queueMode) this.lastHeard.set(registration.id, Date.now());
    const queue = this.queues.get(registration.id);
    if (!queue || queue.length === 0) return;
    this.queues.delete(registration.id);
    this.emit('wakeup', registration);
    for (const q of queue) {
      clearTimeout(q.timer);
      q.run();
    }
  }

  private awake(registration: Registration): boolean {
    if (!registration.queueMode) return true;
    return Date.now() - (this.lastHeard.get(registration.id) ?? 0) < this.options.queueAwakeMs;
  }

  /** Runs `send` now, or when the queue-mode device next talks. */
  private whenAwake<T>(registration: Registration, path: string | undefined, timeoutMs: number, send: () => Promise<T>): Promise<T> {
    if (this.awake(registration)) return send();
    let queue = this.queues.get(registration.id);
    if (!queue) this.queues.set(registration.id, (queue = []));
    if (queue.length >= this.options.queueMaxPerDevice) {
      return Promise.reject(new QueueError(registration.endpoint, `queue full (${this.options.queueMaxPerDevice} requests waiting for the device to wake up)`));
    }
    return new Promise<T>((resolve, reject) => {
      const entry: QueuedRequest = {
        run: () => send().then(resolve, reject),
        fail: reject,
        timer: setTimeout(() => {
          const list = this.queues.get(registration.id);
          const i = list ? list.indexOf(entry) : -1;
          if (list && i >= 0) list.splice(i, 1);
          reject(new DeviceTimeoutError(registration.endpoint, path, `device did not wake up within ${timeoutMs} ms (queue mode)`));
        }, timeoutMs),
      };
      queue!.push(entry);
    });
  }

  // ---- device management ----

  private registration(endpoint: string): Registration {
    if (!this.running) throw new ServerStoppedError('LwM2M server is not running');
    const registration = this.store.byEndpointName(endpoint);
    if (!registration) throw new DeviceNotFoundError(endpoint);
    return registration;
  }

  private uriPath(registration: Registration, path: string): string {
    const root = registration.rootPath === '/' ? '' : registration.rootPath.replace(/\/$/, '');
    return `${root}${path === '/' ? '' : path}` || '/';
  }

  /** Sends one request to a device and maps the outcome to typed errors. */
  private async deviceRequest(endpoint: string, path: string | undefined, spec: CoapRequestSpec, o: RequestOptions = {}): Promise<CoapResponse> {
    const registration = this.registration(endpoint);
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    const response = await this.whenAwake(registration, path, timeoutMs, async () => {
      try {
        return await this.transport.request({ address: registration.address, port: registration.port }, {
          ...spec, path: this.uriPath(registration, spec.path), timeoutMs,
        });
      } catch (err) {
        if (err instanceof CoapTimeoutError) throw new DeviceTimeoutError(endpoint, path, err.message);
        throw err;
      }
    });
    this.expectSuccess(response, endpoint, path);
    return response;
  }

  private expectSuccess(response: CoapResponse, endpoint: string, path: string | undefined): void {
    if (!response.code.startsWith('2.')) {
      const detail = response.payload.length && response.payload.length < 256 ? response.payload.toString('utf8') : undefined;
      throw new RequestFailedError(response.code, endpoint, path, detail);
    }
  }

  /** The format for values to and from this device (LwM2M 1.1 Core §7.2 negotiation). */
  negotiateFormat(registration: Registration, requested?: FormatName | number | string): FormatName {
    if (requested !== undefined && requested !== '' && requested !== 'auto') return toFormatName(requested);
    if (this.options.defaultFormat) return this.options.defaultFormat;
    const advertised = registration.supportedFormats;
    if (registration.lwm2mVersion === '1.0') {
      const json = advertised.includes(FORMAT_CODES['oma-json']) || advertised.includes(1543);
      const tlv = advertised.includes(FORMAT_CODES.tlv) || advertised.includes(1542);
      return json && !tlv ? 'oma-json' : 'tlv';
    }
    // LwM2M 1.1+: the first of these the device advertised in `</>;ct=` (1.0's JSON last, and also its
    // pre-registration code 1543)
    for (const name of ['senml-cbor', 'senml-json', 'lwm2m-cbor', 'tlv', 'oma-json'] as FormatName[]) {
      if (advertised.includes(FORMAT_CODES[name])) return name;
    }
    if (advertised.includes(1542)) return 'tlv';
    if (advertised.includes(1543)) return 'oma-json';
    return 'senml-cbor';
  }

  private decode(response: CoapResponse, basePath: Lwm2mPath, endpoint: string, path: string): { records: ResourceRecord[]; format?: FormatName } {
    if (response.payload.length === 0) return { records: [] };
    const format = response.contentFormat === undefined ? undefined : formatName(response.contentFormat);
    if (!format) throw new DecodeError(`${endpoint} ${path}: unsupported content format ${response.contentFormat ?? '(none)'} in the answer`);
    try {
      return { records: decodeRecords(format, response.payload, { basePath, types: this.registry }), format };
    } catch (err) {
      if (err instanceof DecodeError) throw new DecodeError(`${endpoint} ${path}: ${err.message}`);
      throw err;
    }
  }

  async read(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; records: ResourceRecord[]; format?: FormatName }> {
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const format = this.negotiateFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES[format] }, o);
    const { records, format: got } = this.decode(response, parsed, endpoint, canonical);
    return { code: response.code, value: recordsToTree(parsed, records), records, format: got };
  }

  async readComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; records: ResourceRecord[]; format?: FormatName }> {
    const parsed = paths.map(parsePath);
    const format = this.compositeFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, paths.join(','), {
      method: 'FETCH', path: '/', accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format], payload: encodePathList(format, parsed),
    }, o);
    const { records, format: got } = this.decode(response, { objectId: 0 }, endpoint, 'composite');
    return { code: response.code, value: recordsToComposite(records), records, format: got };
  }

  private compositeFormat(registration: Registration, requested?: FormatName | number | string): 'senml-json' | 'senml-cbor' | 'lwm2m-cbor' {
    const name = requested !== undefined && requested !== '' && requested !== 'auto' ? toFormatName(requested) : undefined;
    if (name === 'senml-json' || name === 'senml-cbor' || name === 'lwm2m-cbor') return name;
    if (name) throw new Lwm2mError(`composite operations need senml-json, senml-cbor or lwm2m-cbor, not ${name}`);
    for (const candidate of ['senml-cbor', 'senml-json', 'lwm2m-cbor'] as const) {
      if (registration.supportedFormats.includes(FORMAT_CODES[candidate])) return candidate;
    }
    return 'senml-cbor';
  }

  async discover(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; links: Link[] }> {
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES['link-format'] }, o);
    try {
      return { code: response.code, links: parseLinkFormat(response.payload.toString('utf8')) };
    } catch (err) {
      throw new DecodeError(`${endpoint} ${canonical}: ${(err as Error).message}`);
    }
  }

  async write(endpoint: string, path: string, value: ValueTree, o: RequestOptions & { mode?: 'replace' | 'update' } = {}): Promise<{ code: string }> {
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    if (pathDepth(parsed) < 2) throw new Lwm2mError(`write needs an instance or resource path, not ${canonical}`);
    const records = treeToRecords(parsed, value, this.registry);
    let format = this.negotiateFormat(this.registration(endpoint), o.format);
    if ((format === 'text' || format === 'opaque') && records.length !== 1) format = 'tlv';
    const payload = encodeRecords(format, records, { basePath: parsed, types: this.registry });
    const method = (o.mode ?? (pathDepth(parsed) === 2 ? 'update' : 'replace')) === 'replace' ? 'PUT' : 'POST';
    const response = await this.deviceRequest(endpoint, canonical, { method, path: canonical, contentFormat: FORMAT_CODES[format], payload }, o);
    return { code: response.code };
  }

  async writeComposite(endpoint: string, values: Record<string, ValueTree>, o: RequestOptions = {}): Promise<{ code: string }> {
    const records = Object.entries(values).flatMap(([p, v]) => treeToRecords(parsePath(p), v, this.registry));
    const format = this.compositeFormat(this.registration(endpoint), o.format);
    const payload = encodeRecords(format, records, { basePath: { objectId: 0 }, types: this.registry });
    const response = await this.deviceRequest(endpoint, Object.keys(values).join(','), {
      method: 'iPATCH', path: '/', contentFormat: FORMAT_CODES[format], payload,
    }, o);
    return { code: response.code };
  }

  async writeAttributes(endpoint: string, path: string, attrs: WriteAttributes, o: RequestOptions = {}): Promise<{ code: string }> {
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const query = this.attributeQuery(parsed, attrs);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'PUT', path: canonical, query }, o);
    return { code: response.code };
  }

  /**
   * Checks notification attributes before they are sent (LwM2M 1.1 Core §5.1.2): pmin ≤ pmax,
   * epmin ≤ epmax, lt < gt, lt + 2·st < gt (among the values given in this request), periods and
   * st not negative, periods whole seconds; gt/lt/st only on a resource of a numeric type (when the
   * object model knows it). gt and lt may be negative: they are thresholds on the value.
   */
  private attributeQuery(path: Lwm2mPath, attrs: WriteAttributes): string[] {
    if (!attrs || typeof attrs !== 'object') throw new Lwm2mError('write-attributes needs an object like {"pmin": 10, "pmax": 60}');
    const where = formatPath(path);
    const query: string[] = [];
    const v: Partial<Record<(typeof ATTRIBUTE_KEYS)[number], number>> = {};
    for (const key of ATTRIBUTE_KEYS) {
      const value = attrs[key];
      if (value === undefined) continue;
      if (value === null) {
        query.push(key); // no value: remove the attribute
        continue;
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new Lwm2mError(`${where}: attribute ${key} must be a number or null (to remove it), not ${JSON.stringify(value)}`);
      if (key !== 'gt' && key !== 'lt' && value < 0) throw new Lwm2mError(`${where}: attribute ${key} must not be negative (${value})`);
      if (key !== 'gt' && key !== 'lt' && key !== 'st' && !Number.isInteger(value)) throw new Lwm2mError(`${where}: attribute ${key} is a whole number of seconds, not ${value}`);
      v[key] = value;
      query.push(`${key}=${value}`);
    }
    if (query.length === 0) throw new Lwm2mError('write-attributes needs at least one of pmin, pmax, gt, lt, st, epmin, epmax');
    if (v.pmin !== undefined && v.pmax !== undefined && v.pmin > v.pmax) throw new Lwm2mError(`${where}: pmin (${v.pmin}) must not be greater than pmax (${v.pmax})`);
    if (v.epmin !== undefined && v.epmax !== undefined && v.epmin > v.epmax) throw new Lwm2mError(`${where}: epmin (${v.epmin}) must not be greater than epmax (${v.epmax})`);
    if (v.lt !== undefined && v.gt !== undefined) {
      if (!(v.lt < v.gt)) throw new Lwm2mError(`${where}: lt (${v.lt}) must be less than gt (${v.gt})`);
      if (v.st !== undefined && !(v.lt + 2 * v.st < v.gt)) throw new Lwm2mError(`${where}: lt + 2·st (${v.lt} + 2·${v.st}) must be less than gt (${v.gt})`);
    }
    const thresholds = (['gt', 'lt', 'st'] as const).filter((k) => attrs[k] !== undefined && attrs[k] !== null);
    if (thresholds.length) {
      if (path.resourceId === undefined) throw new Lwm2mError(`${where}: ${thresholds.join(', ')} apply to a numeric resource, not to an object or instance`);
      const type = this.registry.resourceType(path.objectId, path.resourceId);
      if (type !== undefined && !NUMERIC_TYPES.has(type)) {
        throw new Lwm2mError(`${where}: ${thresholds.join(', ')} apply to numeric resources only, and this one is ${type}`);
      }
    }
    return query;
  }

  async execute(endpoint: string, path: string, args?: string, o: RequestOptions = {}): Promise<{ code: string }> {
    const parsed = parsePath(path);
    if (pathDepth(parsed) !== 3) throw new Lwm2mError(`execute needs a resource path /o/i/r, not ${path}`);
    const canonical = formatPath(parsed);
    const payload = args ? Buffer.from(args, 'utf8') : undefined;
    const response = await this.deviceRequest(endpoint, canonical, {
      method: 'POST', path: canonical, payload, contentFormat: payload ? FORMAT_CODES.text : undefined,
    }, o);
    return { code: response.code };
  }

  async create(endpoint: string, objectPath: string, value: ValueTree, o: RequestOptions & { instanceId?: number } = {}): Promise<{ code: string; location?: string }> {
    const parsed = parsePath(objectPath);
    if (pathDepth(parsed) !== 1) throw new Lwm2mError(`create needs an object path /o, not ${objectPath}`);
    const canonical = formatPath(parsed);
    let format = this.negotiateFormat(this.registration(endpoint), o.format);
    let payload: Buffer;
    if (o.instanceId !== undefined) {
      const base = { objectId: parsed.objectId, instanceId: o.instanceId };
      payload = encodeRecords(format, treeToRecords(base, value, this.registry), { basePath: format === 'tlv' ? parsed : base, types: this.registry });
    } else {
      // Without an instance id the client picks one. TLV says it plainly (resource TLVs without an
      // instance wrapper, OMA-TS Core §6.3.6 / OMA_LwM2M_for_Developers#422), and Leshan sends only
      // TLV here: its CreateRequest refuses other formats when the instance id is unknown, SenML
      // waiting for OMA (leshan#917, wakaama#434). So: LwM2M 1.0 devices, and devices that
      // advertised TLV or no formats at all, get TLV; a device that advertised other formats only
      // gets its negotiated format — SenML names the records relative to the object, with no base
      // name ("5700", "5700/0"), so that no bn + n reads as an /object/instance path; LwM2M CBOR
      // puts the resource ids at the top level. OMA JSON, text and opaque cannot say it: TLV.
      const registration = this.registration(endpoint);
      const requested = o.format !== undefined && o.format !== '' && o.format !== 'auto';
      const advertised = registration.supportedFormats;
      const tlvOk = registration.lwm2mVersion === '1.0' || advertised.length === 0
        || advertised.includes(FORMAT_CODES.tlv) || advertised.includes(1542);
      if (requested && !NEW_INSTANCE_FORMATS.includes(format)) {
        throw new Lwm2mError(`create without an instance id cannot use ${format}: use tlv, senml-json, senml-cbor or lwm2m-cbor, or give an instance id`);
      }
      if (!requested && (tlvOk || !NEW_INSTANCE_FORMATS.includes(format))) format = 'tlv';
      const base = { objectId: parsed.objectId, instanceId: 0 };
      payload = encodeRecords(format, treeToRecords(base, value, this.registry), { basePath: base, types: this.registry, newInstance: true });
    }
    const response = await this.deviceRequest(endpoint, canonical, { method: 'POST', path: canonical, contentFormat: FORMAT_CODES[format], payload }, o);
    return { code: response.code, location: response.locationPath.length ? `/${response.locationPath.join('/')}` : undefined };
  }

  async delete(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string }> {
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'DELETE', path: canonical }, o);
    return { code: response.code };
  }

  // ---- observe ----

  private observationKey(endpoint: string, path: string | string[]): string {
    return `${endpoint}\n${Array.isArray(path) ? path.join(',') : path}`;
  }

  async observe(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; observationId: string }> {
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const registration = this.registration(endpoint);
    const format = this.negotiateFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = { method: 'GET', path: this.uriPath(registration, canonical), accept: FORMAT_CODES[format] };
    const handle = await this.startObservation(registration, canonical, request, o);
    const { records } = this.decode(handle.first, parsed, endpoint, canonical);
    const observationId = this.track(endpoint, canonical, handle, parsed, request);
    return { code: handle.first.code, value: recordsToTree(parsed, records), observationId };
  }

  async observeComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; observationId: string }> {
    const parsed = paths.map(parsePath);
    const canonical = parsed.map(formatPath);
    const registration = this.registration(endpoint);
    const format = this.compositeFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = {
      method: 'FETCH', path: this.uriPath(registration, '/'), accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format],
      payload: encodePathList(format, parsed),
    };
    const handle = await this.startObservation(registration, canonical.join(','), request, o);
    const { records } = this.decode(handle.first, { objectId: 0 }, endpoint, 'composite');
    const observationId = this.track(endpoint, canonical, handle, undefined, request);
    return { code: handle.first.code, value: recordsToComposite(records), observationId };
  }

  private async startObservation(registration: Registration, label: string, spec: Omit<CoapRequestSpec, 'observe'>, o: RequestOptions): Promise<Observation> {
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    const handle = await this.whenAwake(registration, label, timeoutMs, async () => {
      try {
        return await this.transport.observe({ address: registration.address, port: registration.port }, { ...spec, timeoutMs });
      } catch (err) {
        if (err instanceof CoapTimeoutError) throw new DeviceTimeoutError(registration.endpoint, label, err.message);
        throw err;
      }
    });
    try {
      this.expectSuccess(handle.first, registration.endpoint, label);
      if (handle.first.observe === undefined) {
        throw new RequestFailedError(handle.first.code, registration.endpoint, label, 'the device answered without accepting the observation');
      }
    } catch (err) {
      handle.close();
      throw err;
    }
    return handle;
  }

  private track(endpoint: string, path: string | string[], handle: Observation, basePath: Lwm2mPath | undefined, request: Omit<CoapRequestSpec, 'observe'>): string {
    const key = this.observationKey(endpoint, path);
    this.observations.get(key)?.handle.close();
    const observationId = handle.token.toString('hex');
    const active: ActiveObservation = { observationId, endpoint, path, handle, basePath, request };
    this.observations.set(key, active);
    handle.on('notification', (response) => this.notification(active, response));
    handle.on('end', () => {
      if (this.observations.get(key) === active) this.observations.delete(key);
    });
    return observationId;
  }

  private notification(active: ActiveObservation, response: CoapResponse): void {
    const registration = this.store.byEndpointName(active.endpoint);
    if (registration) this.heard(registration);
    if (!response.code.startsWith('2.')) {
      // an error code ends the observation (RFC 7641 §3.2)
      active.handle.close();
      this.emit('warning', new RequestFailedError(response.code, active.endpoint, String(active.path), 'observation ended by the device'));
      return;
    }
    const label = Array.isArray(active.path) ? 'composite' : active.path;
    let records: ResourceRecord[];
    let format: FormatName | undefined;
    try {
      ({ records, format } = this.decode(response, active.basePath ?? { objectId: 0 }, active.endpoint, label));
    } catch (err) {
      this.emit('warning', err);
      return;
    }
    const value = active.basePath ? recordsToTree(active.basePath, records) : recordsToComposite(records);
    const notification: Notification = {
      endpoint: active.endpoint, path: active.path, value, records, observationId: active.observationId,
      code: response.code, format, receivedAt: new Date(),
    };
    this.emit('notify', notification);
  }

  async cancelObservation(endpoint: string, path: string | string[], o: RequestOptions & { active?: boolean } = {}): Promise<void> {
    const canonical = Array.isArray(path) ? path.map((p) => formatPath(parsePath(p))) : formatPath(parsePath(path));
    const key = this.observationKey(endpoint, canonical);
    const active = this.observations.get(key);
    if (!active) throw new Lwm2mError(`${endpoint}: no observation of ${Array.isArray(canonical) ? canonical.join(',') : canonical}`);
    this.observations.delete(key);
    active.handle.close();
    if (o.active) {
      // active cancel (RFC 7641 §3.6): the request that started it — GET, or for a composite
      // observation FETCH with the same path list and content format — with Observe 1, same token
      const registration = this.registration(endpoint);
      await this.transport.request({ address: registration.address, port: registration.port }, {
        ...active.request, path: this.uriPath(registration, Array.isArray(canonical) ? '/' : canonical),
        observe: 1, token: active.handle.token, timeoutMs: o.timeoutMs,
      }).catch((err: Error) => this.emit('warning', err));
    }
  }

  listObservations(endpoint?: string): ObservationInfo[] {
    return [...this.observations.values()]
      .filter((o) => endpoint === undefined || o.endpoint === endpoint)
      .map(({ observationId, endpoint: ep, path }) => ({ observationId, endpoint: ep, path }));
  }
}
