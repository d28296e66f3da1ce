/**
 * The LwM2M server: the registration interface and Send (registration-handler.ts), device
 * management requests (here), observations (observations.ts) and queue mode (queue-mode.ts), on a
 * NoSec socket (coap, 5683) and a DTLS one (coaps, 5684). Every request to a device leaves from
 * the socket it registered on, over the DTLS session it registered with.
 */
import { EventEmitter } from 'events';
import { PeerCredential, rpkIdentity, verifyChain } from '../../dtls/certificates';
import { DtlsChannel, HandshakeEvent, PeerMovedEvent } from '../../dtls/channel';
import { UdpChannel } from '../coap/channel';
import {
  CoapRequestSpec, CoapResponse, CoapTimeoutError, CoapTransport, Exchange, Observation, Peer,
} from '../coap/transport';
import {
  encodePathList, encodeRecords, FORMAT_CODES, FormatName, Link, NEW_INSTANCE_FORMATS,
  parseLinkFormat, recordsToComposite, recordsToTree, treeToRecords, DecodeError,
} from '../content';
import { ObjectRegistry } from '../model';
import { formatPath, parsePath, pathDepth } from '../path';
import { Lwm2mError, ResourceRecord, ValueTree } from '../types';
import { DeviceNotFoundError, DeviceTimeoutError, RequestFailedError, RequestLimitError, ServerStoppedError } from './errors';
import { attributeQuery, compositeFormat, decodeAnswer, negotiateFormat, WriteAttributes } from './formats';
import { ObservationInfo, ObservationService } from './observations';
import { PersistenceError, RegistrationFile } from './persistence';
import { DevicePresence, QueueMode } from './queue-mode';
import { newRegistrationId, parseQuery, Registration } from './registration';
import { RegistrationHandler } from './registration-handler';
import { RequestOptions, ResolvedServerOptions, ServerOptions, withDefaults } from './options';
import { MemorySecurityStore, SecurityStore } from './security';
import { RegistrationStore } from './store';
import { ClusterLink, replicatedSecurity } from './cluster/cluster-link';

export * from './errors';
export { PersistenceError } from './persistence';
export { Registration, RegisteredObject, BadRegistrationError } from './registration';
export { RegistrationStore } from './store';
export { EventOrigin, ForwardedError } from './cluster/cluster-link';
export { RedisStore, RedisStoreOptions, SharedStoreError } from './cluster/redis-store';
export { SharedStore } from './cluster/shared-store';
export { WriteAttributes } from './formats';
export { DevicePresence } from './queue-mode';
export { Notification, ObservationInfo, ObservationLimitError } from './observations';
export { ReplacedEvent, SendEvent, SecurityRefusal } from './registration-handler';
export { MemorySecurityStore, PskEntry, pskEntry, SecurityConfigError, SecurityStore } from './security';
export { RequestOptions, SecureSocketOptions, ServerOptions } from './options';

export class Lwm2mServer extends EventEmitter {
  readonly registry: ObjectRegistry;
  /** The NoSec socket's transport (not opened when `nosec` is off). */
  readonly transport: CoapTransport;
  /** The DTLS socket's transport, when `secure` is set. */
  readonly secureTransport: CoapTransport | null = null;
  readonly security: SecurityStore;
  /** In a fleet of instances (options.shared): this instance's link to the others. */
  readonly cluster: ClusterLink | null = null;
  private readonly store: RegistrationStore;
  private readonly options: ResolvedServerOptions;
  private readonly persistence: RegistrationFile | null;
  private readonly queue: QueueMode;
  private readonly observations: ObservationService;
  private readonly registrations: RegistrationHandler;
  private bootstrapHandler: ((exchange: Exchange) => void) | null = null;
  private started = false;
  private pendingRequests = 0;
  private lastLimitWarning = 0;

  constructor(options: ServerOptions = {}) {
    super();
    this.options = withDefaults(options);
    this.registry = options.registry ?? ObjectRegistry.withBuiltins();
    const localSecurity = options.security ?? new MemorySecurityStore();
    // in a fleet, credentials set here reach every instance
    this.security = options.shared ? replicatedSecurity(localSecurity, () => this.cluster!) : localSecurity;
    const anyAddress = this.options.type === 'udp6' ? '::' : '0.0.0.0';
    const transportOptions = {
      requestTimeoutMs: this.options.requestTimeoutMs,
      // a registration storm after a power cut arrives all at once
      receiveBufferSize: 4 * 1024 * 1024,
      maxQueuePerPeer: this.options.queueMaxPerDevice,
    };
    this.transport = new CoapTransport({ ...transportOptions, type: this.options.type, port: this.options.port, address: options.address ?? anyAddress });
    this.transport.on('warning', (err) => this.emit('warning', err));
    this.transport.setHandler((exchange) => this.route(exchange, this.options.nosec === 'bootstrap'));
    if (options.secure) {
      const s = options.secure;
      const dtls = new DtlsChannel(
        new UdpChannel({ type: this.options.type, port: s.port ?? 5684, address: s.address ?? options.address ?? anyAddress, receiveBufferSize: transportOptions.receiveBufferSize }),
        {
          server: {
            pskFor: (identity) => this.security.byIdentity(identity.toString('utf8'))?.key,
            certificate: s.certificate,
            verifyPeer: (c) => this.verifyDevice(c),
          },
          handshakeTimeoutMs: s.handshakeTimeoutMs,
          maxSessions: s.maxSessions,
        },
      );
      // (a handshake storm need not build events nobody listens to)
      dtls.on('handshake', (e: HandshakeEvent) => this.listenerCount('secureSession') > 0 && this.emit('secureSession', { ...e, event: 'established' }));
      dtls.on('handshakeFailed', (e: HandshakeEvent) => this.emit('secureSession', { ...e, event: 'failed' }));
      dtls.on('sessionClosed', (e: HandshakeEvent) => this.emit('secureSession', { ...e, event: 'closed' }));
      // NAT rebinding without a new handshake (connection ID): the registration follows its session
      dtls.on('peerMoved', (e: PeerMovedEvent) => this.moved(e));
      this.secureTransport = new CoapTransport({ ...transportOptions, channel: dtls });
      this.secureTransport.on('warning', (err) => this.emit('warning', err));
      this.secureTransport.setHandler((exchange) => this.route(exchange, false));
    }
    this.store = new RegistrationStore(this.options.maxRegistrations, (reg) => {
      this.forget(reg);
      // in a fleet, one instance takes each expiry and every one hears of it
      if (this.cluster) this.cluster.expired(reg);
      else this.emit('expire', reg);
    });
    this.queue = new QueueMode(this.options.queueMaxPerDevice, this.options.queueAwakeMs, (reg) => this.emit('wakeup', reg));
    this.observations = new ObservationService({
      registry: this.registry,
      registrationOf: (endpoint) => this.store.byEndpointName(endpoint),
      heard: (reg) => this.queue.heard(reg),
      emit: (event, ...args) => this.emit(event, ...args),
      tracked: (record) => this.cluster?.observationTracked(record),
      ended: (id) => this.cluster?.observationEnded(id),
    }, this.options.maxObservationsPerDevice, this.options.maxObservations);
    this.registrations = new RegistrationHandler({
      store: this.store, security: this.security, queue: this.queue, registry: this.registry,
      minLifetime: this.options.minLifetime, expiryGraceMs: this.options.expiryGraceMs,
      allowAddressChange: this.options.allowAddressChange, maxPayloadBytes: this.options.maxRegistrationPayload, maxLinks: this.options.maxRegistrationLinks,
      newRegistrationId: () => newRegistrationId((id) => this.store.byRegistrationId(id) !== undefined),
      forget: (reg) => this.forget(reg),
      emit: (event, ...args) => this.emit(event, ...args),
      shared: options.shared,
      origin: options.shared ? { instance: options.shared.instanceId, remote: false } : undefined,
    });
    if (options.shared) {
      this.cluster = new ClusterLink(options.shared, {
        store: this.store, security: localSecurity, requestTimeoutMs: this.options.requestTimeoutMs,
        forget: (reg) => this.forget(reg),
        emit: (event, ...args) => this.emit(event, ...args),
        on: (event: string, listener: (...args: never[]) => void) => this.on(event, listener as (...args: unknown[]) => void),
        invoke: (method, args) => (this as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method](...args),
      });
      for (const transport of [this.transport, this.secureTransport]) {
        transport?.setObservationAdopter((peer, notification, adopt) => this.adoptObservation(peer as Peer & { identity?: string }, notification.token, adopt));
      }
    }
    this.persistence = options.persistenceFile ? new RegistrationFile(options.persistenceFile) : null;
    if (this.persistence) {
      const save = () => this.persistence!.scheduleSave(() => this.store.list());
      for (const event of ['register', 'update', 'deregister', 'expire', 'moved']) this.on(event, save);
    }
  }

  /** Started (saved registrations loaded too) and listening. */
  get running(): boolean {
    return this.started && (this.transport.listening || Boolean(this.secureTransport?.listening));
  }

  async start(): Promise<void> {
    if (this.options.nosec !== 'off') await this.transport.open();
    try {
      await this.secureTransport?.open();
    } catch (err) {
      await this.transport.close();
      throw err;
    }
    if (this.cluster) {
      // the fleet's registrations, whichever instance their devices talk to
      try {
        this.restore(await this.cluster.start());
      } catch (err) {
        await Promise.all([this.transport.close(), this.secureTransport?.close()]);
        throw err;
      }
    }
    if (this.persistence) {
      // devices registered before a restart stay known (and reachable at their last address)
      const skipped = new Map<string, number>();
      const saved = await this.persistence.load(Date.now(), skipped).catch((err: Error) => {
        this.emit('warning', err);
        return [];
      });
      if (skipped.size > 0) {
        const count = [...skipped.values()].reduce((a, b) => a + b, 0);
        const why = [...skipped].map(([reason, n]) => `${n} ${reason}`).join(', ');
        this.emit('warning', new PersistenceError(`${this.persistence.file}: ${count} saved registration${count === 1 ? '' : 's'} skipped (${why})`));
      }
      this.restore(saved);
    }
    this.started = true;
  }

  /**
   * Takes over registrations another instance held (a saved file, or the node this one replaces
   * at a redeploy): those not expired and not registered again meanwhile. No events: the devices
   * did not register, they are known again.
   */
  restore(registrations: Registration[], now = Date.now()): number {
    let restored = 0;
    for (const registration of registrations) {
      if (registration.expiresAt.getTime() <= now || this.store.byEndpointName(registration.endpoint) || this.store.full) continue;
      this.store.add(registration);
      restored++;
    }
    return restored;
  }

  async stop(): Promise<void> {
    if (this.persistence && this.running) {
      await this.persistence.flush(() => this.store.list()).catch((err: Error) => this.emit('warning', err));
    }
    this.started = false;
    this.observations.clear();
    this.queue.clear(new ServerStoppedError('server stopped before the queued request was sent'));
    this.store.clear();
    await Promise.all([this.transport.close(), this.secureTransport?.close(), this.cluster?.stop()]);
  }

  /** The NoSec socket's address. */
  address(): Peer {
    return this.transport.address();
  }

  /** The DTLS socket's address. */
  secureAddress(): Peer {
    if (!this.secureTransport) throw new Lwm2mError('this server has no DTLS socket');
    return this.secureTransport.address();
  }

  /** Sends a request to a peer over the socket it belongs to: DTLS when it has an identity. */
  request(peer: Peer, spec: CoapRequestSpec): Promise<CoapResponse> {
    return this.transportFor(peer).request(peer, spec);
  }

  private transportFor(peer: Peer): CoapTransport {
    if (peer.identity === undefined) return this.transport;
    if (!this.secureTransport) throw new Lwm2mError('this server has no DTLS socket');
    return this.secureTransport;
  }

  private peerOf(registration: Registration): Peer {
    return { address: registration.address, port: registration.port, identity: registration.identity };
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

  /** Whether a device is awake (always, outside queue mode), how many requests wait for it, when it last talked. */
  presence(registration: Registration): DevicePresence {
    return this.queue.presence(registration);
  }

  /** How many devices are registered (without copying the list). */
  get registrationCount(): number {
    return this.store.size;
  }

  /** Every registration, without copying 100k of them (a page of a list, a search). */
  eachRegistration(): IterableIterator<Registration> {
    return this.store.values();
  }

  listRegistrations(): Registration[] {
    return this.store.list();
  }

  // ---- incoming requests ----

  private route(exchange: Exchange, bootstrapOnly: boolean): void {
    const [first] = exchange.request.pathSegments;
    if (first === 'bs' && this.bootstrapHandler) this.bootstrap(exchange);
    else if (bootstrapOnly) exchange.respond({ code: '4.03', payload: Buffer.from('this socket serves the bootstrap interface only: use DTLS') });
    else if (first === 'rd') this.registrations.registrationInterface(exchange);
    else if (first === 'dp') this.registrations.sendInterface(exchange);
    else exchange.respond({ code: '4.04', payload: Buffer.from('unknown interface') });
  }

  /** Bootstrap-Request: over DTLS, only for the endpoint the identity is bound to. */
  private bootstrap(exchange: Exchange): void {
    const ep = parseQuery(exchange.request.query).get('ep');
    if (ep !== undefined && !this.registrations.authorize(exchange, 'bootstrap', ep)) return;
    this.bootstrapHandler!(exchange);
  }

  /** A device's certificate (chain to a trust anchor) or raw public key (known to the security store). */
  private verifyDevice(credential: PeerCredential): string | undefined {
    if (credential.type === 'x509') return verifyChain(credential.chain, this.options.secure?.trustAnchors ?? []);
    const identity = rpkIdentity(credential.spki);
    return this.security.byIdentity(identity) ? identity : undefined;
  }

  private moved(e: PeerMovedEvent): void {
    const registration = this.store.bySource(e.from.address, e.from.port);
    if (!registration || registration.identity !== e.identity) return;
    const previous = { ...registration };
    registration.address = e.to.address;
    registration.port = e.to.port;
    this.store.touched(registration, previous.address, previous.port);
    this.emit('moved', registration, previous);
  }

  /** Drops what the server held for a registration that is gone or replaced. */
  private forget(registration: Registration): void {
    this.observations.forget(registration.endpoint);
    this.queue.forget(registration);
  }

  // ---- device management ----

  /**
   * In a fleet: a notification of an observation another instance started (its device now reaches
   * this one, after a failover): taken over and decoded here, where its tag finds the flow that
   * asked for it; the registration moves here. Never across identities; over NoSec from another
   * address only when address changes are allowed.
   */
  private adoptObservation(peer: Peer & { identity?: string }, token: Buffer, adopt: () => Observation): boolean {
    const record = this.cluster?.observationOf(token.toString('hex'));
    const registration = record && this.store.byEndpointName(record.endpoint);
    if (!record || !registration || peer.identity !== registration.identity) return false;
    const moved = peer.address !== registration.address || peer.port !== registration.port;
    if (moved && peer.identity === undefined && !this.options.allowAddressChange) return false;
    try {
      this.observations.checkRoom(record.endpoint, record.path);
    } catch {
      return false;
    }
    this.observations.track(record.endpoint, record.path, adopt(), record.basePath, record.request, record.tag);
    if (moved || registration.owner !== this.cluster!.instanceId) this.cluster!.moveHere(registration, peer.address, peer.port);
    return true;
  }

  /**
   * In a fleet: a request for a device whose datagrams reach another instance, sent through that
   * instance (null: send it from here).
   */
  private forwarded(endpoint: string, method: string, args: unknown[], o: RequestOptions): Promise<unknown> | null {
    if (!this.cluster || o.viaCluster) return null;
    const registration = this.store.byEndpointName(endpoint);
    const owner = registration && this.cluster.ownerOf(registration);
    return owner ? this.cluster.forward(owner, endpoint, method, args) : null;
  }

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

  /** Sends one request to a device (when it is awake) and maps the outcome to typed errors. */
  private send<T>(registration: Registration, label: string | undefined, timeoutMs: number, send: (t: CoapTransport, peer: Peer) => Promise<T>): Promise<T> {
    const timedOut = (err: unknown): never => {
      if (err instanceof CoapTimeoutError) throw new DeviceTimeoutError(registration.endpoint, label, err.message);
      throw err;
    };
    if (this.pendingRequests >= this.options.maxPendingRequests) {
      const err = new RequestLimitError(`${this.pendingRequests} requests to devices are pending: ${registration.endpoint} ${label ?? ''} is not sent`);
      this.warnSometimes(err);
      return Promise.reject(err);
    }
    this.pendingRequests++;
    return this.queue.whenAwake(registration, label, timeoutMs, () => {
      const peer = this.peerOf(registration);
      return send(this.transportFor(peer), peer).catch(timedOut);
    }).finally(() => {
      this.pendingRequests--;
    });
  }

  /** A warning for a refusal that may come by the thousand: at most one a second. */
  private warnSometimes(err: Error): void {
    const now = Date.now();
    if (now - this.lastLimitWarning < 1000) return;
    this.lastLimitWarning = now;
    this.emit('warning', err);
  }

  private deviceRequest(endpoint: string, path: string | undefined, spec: CoapRequestSpec, o: RequestOptions = {}): Promise<CoapResponse> {
    const registration = this.registration(endpoint);
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    return this.send(registration, path, timeoutMs, (t, peer) => t.request(peer, {
      ...spec, path: this.uriPath(registration, spec.path), timeoutMs,
    })).then((response) => {
      this.expectSuccess(response, endpoint, path);
      return response;
    });
  }

  private expectSuccess(response: CoapResponse, endpoint: string, path: string | undefined): void {
    if (!response.code.startsWith('2.')) {
      const detail = response.payload.length && response.payload.length < 256 ? response.payload.toString('utf8') : undefined;
      throw new RequestFailedError(response.code, endpoint, path, detail);
    }
  }

  /** The format for values to and from this device (LwM2M 1.1 Core §7.2 negotiation). */
  negotiateFormat(registration: Registration, requested?: FormatName | number | string): FormatName {
    return negotiateFormat(registration, requested, this.options.defaultFormat);
  }

  async read(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; records: ResourceRecord[]; format?: FormatName }> {
    const forwarded = this.forwarded(endpoint, 'read', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const format = this.negotiateFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES[format] }, o);
    const { records, format: got } = decodeAnswer(response, parsed, this.registry, endpoint, canonical);
    return { code: response.code, value: recordsToTree(parsed, records), records, format: got };
  }

  async readComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; records: ResourceRecord[]; format?: FormatName }> {
    const forwarded = this.forwarded(endpoint, 'readComposite', [endpoint, paths, o], o);
    if (forwarded) return forwarded as never;
    const parsed = paths.map(parsePath);
    const format = compositeFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, paths.join(','), {
      method: 'FETCH', path: '/', accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format], payload: encodePathList(format, parsed),
    }, o);
    const { records, format: got } = decodeAnswer(response, { objectId: 0 }, this.registry, endpoint, 'composite');
    return { code: response.code, value: recordsToComposite(records), records, format: got };
  }

  async discover(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; links: Link[] }> {
    const forwarded = this.forwarded(endpoint, 'discover', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES['link-format'] }, o);
    try {
      return { code: response.code, links: parseLinkFormat(response.payload.toString('utf8')) };
    } catch (err) {
      throw new DecodeError(`${endpoint} ${canonical}: ${(err as Error).message}`);
    }
  }

  async write(endpoint: string, path: string, value: ValueTree, o: RequestOptions & { mode?: 'replace' | 'update' } = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'write', [endpoint, path, value, o], o);
    if (forwarded) return forwarded as never;
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
    const forwarded = this.forwarded(endpoint, 'writeComposite', [endpoint, values, o], o);
    if (forwarded) return forwarded as never;
    const records = Object.entries(values).flatMap(([p, v]) => treeToRecords(parsePath(p), v, this.registry));
    const format = compositeFormat(this.registration(endpoint), o.format);
    const payload = encodeRecords(format, records, { basePath: { objectId: 0 }, types: this.registry });
    const response = await this.deviceRequest(endpoint, Object.keys(values).join(','), {
      method: 'iPATCH', path: '/', contentFormat: FORMAT_CODES[format], payload,
    }, o);
    return { code: response.code };
  }

  async writeAttributes(endpoint: string, path: string, attrs: WriteAttributes, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'writeAttributes', [endpoint, path, attrs, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const query = attributeQuery(parsed, attrs, this.registry);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'PUT', path: canonical, query }, o);
    return { code: response.code };
  }

  async execute(endpoint: string, path: string, args?: string, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'execute', [endpoint, path, args, o], o);
    if (forwarded) return forwarded as never;
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
    const forwarded = this.forwarded(endpoint, 'create', [endpoint, objectPath, value, o], o);
    if (forwarded) return forwarded as never;
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
    const forwarded = this.forwarded(endpoint, 'delete', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'DELETE', path: canonical }, o);
    return { code: response.code };
  }

  // ---- observe ----

  async observe(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; observationId: string }> {
    const forwarded = this.forwarded(endpoint, 'observe', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const registration = this.registration(endpoint);
    const format = this.negotiateFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = { method: 'GET', path: this.uriPath(registration, canonical), accept: FORMAT_CODES[format] };
    const handle = await this.startObservation(registration, canonical, request, o);
    const { records } = decodeAnswer(handle.first, parsed, this.registry, endpoint, canonical);
    const observationId = this.observations.track(endpoint, canonical, handle, parsed, request, o.tag);
    return { code: handle.first.code, value: recordsToTree(parsed, records), observationId };
  }

  async observeComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; observationId: string }> {
    const forwarded = this.forwarded(endpoint, 'observeComposite', [endpoint, paths, o], o);
    if (forwarded) return forwarded as never;
    const parsed = paths.map(parsePath);
    const canonical = parsed.map(formatPath);
    const registration = this.registration(endpoint);
    const format = compositeFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = {
      method: 'FETCH', path: this.uriPath(registration, '/'), accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format],
      payload: encodePathList(format, parsed),
    };
    const handle = await this.startObservation(registration, canonical.join(','), request, o);
    const { records } = decodeAnswer(handle.first, { objectId: 0 }, this.registry, endpoint, 'composite');
    const observationId = this.observations.track(endpoint, canonical, handle, undefined, request, o.tag);
    return { code: handle.first.code, value: recordsToComposite(records), observationId };
  }

  private async startObservation(registration: Registration, label: string, spec: Omit<CoapRequestSpec, 'observe'>, o: RequestOptions): Promise<Observation> {
    try {
      this.observations.checkRoom(registration.endpoint, label.includes(',') ? label.split(',') : label);
    } catch (err) {
      this.warnSometimes(err as Error);
      throw err;
    }
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    const handle = await this.send(registration, label, timeoutMs, (t, peer) => t.observe(peer, { ...spec, timeoutMs }));
    this.observations.accepted(handle, registration.endpoint, label);
    return handle;
  }

  async cancelObservation(endpoint: string, path: string | string[], o: RequestOptions & { active?: boolean } = {}): Promise<void> {
    const forwarded = this.forwarded(endpoint, 'cancelObservation', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = Array.isArray(path) ? path.map((p) => formatPath(parsePath(p))) : formatPath(parsePath(path));
    const { request, token } = this.observations.cancel(endpoint, canonical);
    if (o.active) {
      // active cancel (RFC 7641 §3.6): the request that started it — GET, or for a composite
      // observation FETCH with the same path list and content format — with Observe 1, same token
      const registration = this.registration(endpoint);
      const peer = this.peerOf(registration);
      await this.transportFor(peer).request(peer, {
        ...request, path: this.uriPath(registration, Array.isArray(canonical) ? '/' : canonical),
        observe: 1, token, timeoutMs: o.timeoutMs,
      }).catch((err: Error) => this.emit('warning', err));
    }
  }

  /** Whether `path` (or a composite path list) of the device is observed now. */
  isObserving(endpoint: string, path: string | string[]): boolean {
    return this.observations.has(endpoint, Array.isArray(path) ? path.map((p) => formatPath(parsePath(p))) : formatPath(parsePath(path)));
  }

  listObservations(endpoint?: string): ObservationInfo[] {
    return this.observations.list(endpoint);
  }
}
