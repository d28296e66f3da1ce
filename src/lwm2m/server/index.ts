/**
 * The LwM2M server: the registration interface and Send (registration-handler.ts), device
 * management requests (device-management.ts), observations (observations.ts), queue mode
 * (queue-mode.ts) and, in a fleet, the link to the other instances (cluster/), on a NoSec socket
 * (coap, 5683) and a DTLS one (coaps, 5684). Every request to a device leaves from
 * the socket it registered on, over the DTLS session it registered with.
 */
import { PeerCredential, rpkIdentity, verifyChain } from '../../dtls/certificates';
import { DtlsChannel, HandshakeEvent, PeerMovedEvent } from '../../dtls/channel';
import { UdpChannel } from '../coap/channel';
import { CoapRequestSpec, CoapResponse, CoapTransport, Exchange, Observation, Peer } from '../coap/transport';
import { ObjectRegistry } from '../model';
import { Lwm2mError } from '../types';
import { ServerStoppedError } from './errors';
import { ObservationService } from './observations';
import { PersistenceError, RegistrationFile } from './persistence';
import { DevicePresence, QueueMode } from './queue-mode';
import { newRegistrationId, parseQuery, Registration } from './registration';
import { RegistrationHandler } from './registration-handler';
import { ResolvedServerOptions, ServerOptions, withDefaults } from './options';
import { MemorySecurityStore, SecurityStore } from './security';
import { RegistrationStore } from './store';
import { DeviceManagement } from './device-management';
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

export class Lwm2mServer extends DeviceManagement {
  readonly registry: ObjectRegistry;
  /** The NoSec socket's transport (not opened when `nosec` is off). */
  readonly transport: CoapTransport;
  /** The DTLS socket's transport, when `secure` is set. */
  readonly secureTransport: CoapTransport | null = null;
  readonly security: SecurityStore;
  /** In a fleet of instances (options.shared): this instance's link to the others. */
  readonly cluster: ClusterLink | null = null;
  protected readonly store: RegistrationStore;
  protected readonly options: ResolvedServerOptions;
  private readonly persistence: RegistrationFile | null;
  protected readonly queue: QueueMode;
  protected readonly observations: ObservationService;
  private readonly registrations: RegistrationHandler;
  private bootstrapHandler: ((exchange: Exchange) => void) | null = null;
  private started = false;

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
    this.registrations = new RegistrationHandler({
      store: this.store, security: this.security, queue: this.queue, registry: this.registry,
      minLifetime: this.options.minLifetime, expiryGraceMs: this.options.expiryGraceMs,
      allowAddressChange: this.options.allowAddressChange, maxPayloadBytes: this.options.maxRegistrationPayload, maxLinks: this.options.maxRegistrationLinks,
      newRegistrationId: () => newRegistrationId((id) => this.store.byRegistrationId(id) !== undefined),
      forget: (reg) => this.forget(reg),
      emit: (event, ...args) => this.emit(event, ...args),
      shared: this.cluster?.shared,
      origin: this.cluster?.origin,
    });
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

  // ---- a fleet ----

  /**
   * In a fleet: a notification of an observation another instance started (its device now reaches
   * this one, after a failover): taken over and decoded here, where its tag finds the flow that
   * asked for it; the registration moves here. Never across identities; over NoSec from another
   * address only when address changes are allowed.
   */
  private adoptObservation(peer: Peer & { identity?: string }, token: Buffer, adopt: (request?: CoapRequestSpec) => Observation): boolean {
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
    this.observations.track(record.endpoint, record.path, adopt(record.request), record.basePath, record.request, record.tag);
    if (moved || registration.owner !== this.cluster!.instanceId) this.cluster!.moveHere(registration, peer.address, peer.port);
    return true;
  }
}
