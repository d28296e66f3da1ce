/**
 * One server instance in a fleet of them (issue: beyond one machine). Each instance keeps every
 * registration of the fleet in its own memory store — a replica the shared store's events keep
 * current, so lookups stay as fast as on one machine — and writes its own changes through the
 * shared store, atomically, before it answers the device. A request for a device whose datagrams
 * reach another instance (its `owner`, behind a load balancer with source-address affinity) is
 * forwarded there, so it leaves from the address and port the device talks to; the answer, and
 * the notifications of an observation started that way, come back through the shared store.
 */
import { randomBytes } from 'crypto';
import { Lwm2mError } from '../../types';
import { DeviceNotFoundError } from '../errors';
import type { Notification, ObservationRecord } from '../observations';
import type { Registration } from '../registration';
import type { PskEntry, SecurityStore } from '../security';
import type { RegistrationStore } from '../store';
import type { ForwardedAnswer, ForwardedCall, RegistrationEvent, SharedStore } from './shared-store';

/** An error from the instance a request was forwarded to, with its name and CoAP code. */
export class ForwardedError extends Lwm2mError {
  constructor(name: string, message: string, readonly code?: string) {
    super(message);
    this.name = name;
  }
}

/** What a fleet's instance may be asked to send for another: the device management requests. */
const FORWARDABLE = new Set(['read', 'readComposite', 'discover', 'write', 'writeComposite', 'writeAttributes', 'execute', 'create', 'delete', 'observe', 'observeComposite', 'cancelObservation']);
/** Each method's parameter count: its last parameter is the request options. */
const ARITY: Record<string, number> = {
  read: 3, readComposite: 3, discover: 3, write: 4, writeComposite: 3, writeAttributes: 4, execute: 4, create: 4, delete: 3, observe: 3, observeComposite: 3, cancelObservation: 3,
};
/** Forwarded calls waiting for their answer, at most; beyond, a request fails at once. */
export const MAX_FORWARDED_PENDING = 10_000;
/** Observations started for other instances whose notifications go to them, and observations of the fleet known here, at most each. */
export const MAX_FORWARDED_OBSERVATIONS = 100_000;

export interface ClusterContext {
  readonly store: RegistrationStore;
  readonly security: SecurityStore;
  readonly requestTimeoutMs: number;
  forget(registration: Registration): void;
  emit(event: string, ...args: unknown[]): boolean;
  on(event: 'notify', listener: (n: Notification) => void): void;
  on(event: 'deregister' | 'expire', listener: (registration: Registration, origin?: EventOrigin) => void): void;
  /** Runs a forwarded call on this instance's socket. */
  invoke(method: string, args: unknown[]): Promise<unknown>;
}

/** Where an event came from, as the last argument of 'register', 'update', 'deregister' and 'expire'. */
export interface EventOrigin {
  /** The instance whose devices' datagrams this was. */
  instance: string;
  /** True when another instance made the change (flows that want each event once per fleet skip it). */
  remote: boolean;
}

export class ClusterLink {
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** observationId → the instance that asked for it. */
  private readonly forwardedObservations = new Map<string, string>();
  private readonly local: EventOrigin;
  private started = false;
  /** The fleet's observations by id (token), for notifications that arrive here after a failover. */
  private readonly fleetObservations = new Map<string, ObservationRecord>();
  private readonly fleetObservationsOf = new Map<string, Set<string>>();

  constructor(readonly shared: SharedStore, private readonly ctx: ClusterContext) {
    this.local = { instance: shared.instanceId, remote: false };
    shared.onRegistrationEvent((e) => this.apply(e));
    shared.onSecurityEvent((e) => {
      if (e.origin === shared.instanceId) return;
      const entry = e.entry;
      if (e.type === 'put' && entry && typeof entry.endpoint === 'string' && typeof entry.identity === 'string' && (entry.key === undefined || Buffer.isBuffer(entry.key))) ctx.security.set(entry);
      if (e.type === 'remove' && typeof e.identity === 'string') ctx.security.delete({ identity: e.identity });
    });
    shared.onObservationEvent((e) => {
      if (e.origin === shared.instanceId) return;
      if (e.type === 'put' && e.record && typeof e.record.observationId === 'string') this.keepObservation(e.record);
      if (e.type === 'remove' && typeof e.observationId === 'string') this.dropObservation(e.observationId);
    });
    shared.onCall((call) => void this.serve(call));
    shared.onAnswer((a) => this.answered(a));
    shared.onNotification((n) => {
      if (n && typeof n === 'object' && n.notification) ctx.emit('notify', n.notification as Notification);
    });
    // a device gone from the fleet: its observations with it (the instance that removed it says so in Redis)
    const gone = (registration: Registration, origin?: EventOrigin) => {
      const ids = this.fleetObservationsOf.get(registration.endpoint);
      if (!ids) return;
      for (const id of [...ids]) {
        this.dropObservation(id);
        if (!origin?.remote && this.started) this.shared.removeObservation(id).catch((err: Error) => ctx.emit('warning', err));
      }
    };
    ctx.on('deregister', gone);
    ctx.on('expire', gone);
    ctx.on('notify', (n) => {
      const to = this.forwardedObservations.get(n.observationId);
      if (to) shared.notify(to, { observationId: n.observationId, notification: n });
    });
  }

  get instanceId(): string {
    return this.shared.instanceId;
  }

  get origin(): EventOrigin {
    return this.local;
  }

  /** Connects and loads the fleet's registrations and credentials into this instance's memory. */
  async start(): Promise<Registration[]> {
    await this.shared.connect();
    for (const entry of await this.shared.securityEntries()) this.ctx.security.set(entry);
    const registrations = await this.shared.registrations();
    for (const record of await this.shared.observations()) this.keepObservation(record);
    this.started = true;
    return registrations;
  }

  async stop(): Promise<void> {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Lwm2mError('the server stopped before the other instance answered'));
      this.pending.delete(id);
    }
    this.forwardedObservations.clear();
    this.fleetObservations.clear();
    this.fleetObservationsOf.clear();
    this.started = false;
    await this.shared.close();
  }

  /** Credentials set here once running go to every instance (those a node starts with, each instance has). */
  putSecurity(entry: PskEntry): void {
    if (this.started) this.shared.putSecurity(entry).catch((err: Error) => this.ctx.emit('warning', err));
  }

  removeSecurity(identity: string): void {
    if (this.started) this.shared.removeSecurity(identity).catch((err: Error) => this.ctx.emit('warning', err));
  }

  /** Another instance's change, applied to this instance's replica; its event with `remote: true`. */
  private apply(e: RegistrationEvent): void {
    if (e.origin === this.shared.instanceId) return;
    const origin: EventOrigin = { instance: e.origin, remote: true };
    const { store } = this.ctx;
    const incoming = e.registration;
    const current = store.byEndpointName(incoming.endpoint);
    if (e.type === 'register') {
      if (current && current.id !== incoming.id) this.ctx.forget(current);
      store.add(incoming);
      this.ctx.emit('register', incoming, e.previous, origin);
    } else if (e.type === 'update') {
      if (!current || current.id !== incoming.id) {
        store.add(incoming);
      } else {
        const { address, port } = current;
        Object.assign(current, incoming);
        store.touched(current, address, port);
      }
      this.ctx.emit('update', store.byEndpointName(incoming.endpoint), e.previous, origin);
    } else {
      if (current && current.id === incoming.id) {
        store.remove(current);
        this.ctx.forget(current);
      }
      this.ctx.emit(e.type, incoming, origin);
    }
  }

  /** The instance to forward a request for this registration to, or null to send it from here. */
  ownerOf(registration: Registration): string | null {
    return registration.owner && registration.owner !== this.shared.instanceId ? registration.owner : null;
  }

  /** Sends a request through the instance the device talks to, and waits for its answer. */
  async forward(owner: string, endpoint: string, method: string, args: unknown[]): Promise<unknown> {
    if (this.pending.size >= MAX_FORWARDED_PENDING) throw new Lwm2mError(`${MAX_FORWARDED_PENDING} requests forwarded to other instances are waiting already`);
    if (!(await this.shared.isAlive(owner))) {
      throw new DeviceNotFoundError(endpoint, `${endpoint} talks to instance ${owner}, which is down: it is reachable again once it sends an Update (through a running instance)`);
    }
    const id = randomBytes(8).toString('hex');
    const options = (args[ARITY[method] - 1] ?? {}) as { timeoutMs?: number };
    const timeoutMs = (options.timeoutMs ?? this.ctx.requestTimeoutMs) + 5_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.shared.suspect(owner);
        reject(new Lwm2mError(`instance ${owner} did not answer a ${method} of ${endpoint} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      this.shared.call(owner, { id, from: this.shared.instanceId, method, args });
    });
  }

  private answered(a: ForwardedAnswer): void {
    const p = a && typeof a.id === 'string' ? this.pending.get(a.id) : undefined;
    if (!p) return;
    this.pending.delete(a.id);
    clearTimeout(p.timer);
    if (a.error) p.reject(new ForwardedError(String(a.error.name), String(a.error.message), a.error.code));
    else p.resolve(a.result);
  }

  /** A call another instance forwarded: sent from this socket, never forwarded again. */
  private async serve(call: ForwardedCall): Promise<void> {
    if (!call || typeof call.id !== 'string' || typeof call.from !== 'string' || !FORWARDABLE.has(call.method) || !Array.isArray(call.args)) return;
    const args = call.args.slice(0, ARITY[call.method]);
    while (args.length < ARITY[call.method]) args.push(undefined);
    args[args.length - 1] = { ...(args[args.length - 1] as object ?? {}), viaCluster: true };
    try {
      const result = await this.ctx.invoke(call.method, args);
      const observationId = (result as { observationId?: unknown } | null)?.observationId;
      if (typeof observationId === 'string' && this.forwardedObservations.size < MAX_FORWARDED_OBSERVATIONS) this.forwardedObservations.set(observationId, call.from);
      this.shared.answer(call.from, { id: call.id, result });
    } catch (err) {
      const e = err as Error & { code?: unknown };
      this.shared.answer(call.from, { id: call.id, error: { name: e.name, message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
    }
  }

  /** A registration this instance's replica let expire: the fleet's expiry, if no other instance took it. */
  expired(registration: Registration): void {
    this.shared.expire(registration, Date.now()).then((taken) => {
      if (taken) this.ctx.emit('expire', registration, this.local);
    }, (err: Error) => {
      // the shared store is away: the device is gone here; another instance takes the shared expiry
      this.ctx.emit('warning', err);
      this.ctx.emit('expire', registration, this.local);
    });
  }

  private keepObservation(record: ObservationRecord): void {
    if (typeof record.endpoint !== 'string') return;
    if (this.fleetObservations.size >= MAX_FORWARDED_OBSERVATIONS && !this.fleetObservations.has(record.observationId)) return;
    this.dropObservation(record.observationId);
    this.fleetObservations.set(record.observationId, record);
    let ids = this.fleetObservationsOf.get(record.endpoint);
    if (!ids) this.fleetObservationsOf.set(record.endpoint, ids = new Set());
    ids.add(record.observationId);
  }

  private dropObservation(observationId: string): boolean {
    const record = this.fleetObservations.get(observationId);
    if (!record) return false;
    this.fleetObservations.delete(observationId);
    const ids = this.fleetObservationsOf.get(record.endpoint);
    ids?.delete(observationId);
    if (ids && ids.size === 0) this.fleetObservationsOf.delete(record.endpoint);
    return true;
  }

  /** An observation this instance started or took over: every instance can decode its notifications. */
  observationTracked(record: ObservationRecord): void {
    this.keepObservation(record);
    if (this.started) this.shared.putObservation(record).catch((err: Error) => this.ctx.emit('warning', err));
  }

  /** An observation ended here: its notifications go nowhere else either. */
  observationEnded(observationId: string): void {
    this.forwardedObservations.delete(observationId);
    if (this.dropObservation(observationId) && this.started) {
      this.shared.removeObservation(observationId).catch((err: Error) => this.ctx.emit('warning', err));
    }
  }

  /** An observation of the fleet by its token (hex), when this instance is not the one that has it. */
  observationOf(observationId: string): ObservationRecord | undefined {
    return this.fleetObservations.get(observationId);
  }

  /**
   * A device whose datagrams reach this instance now (a notification after a failover): its
   * registration follows, here and in the shared store, as its next Update would make it.
   */
  moveHere(registration: Registration, address: string, port: number): void {
    const previous = { ...registration };
    registration.address = address;
    registration.port = port;
    registration.owner = this.shared.instanceId;
    this.ctx.store.touched(registration, previous.address, previous.port);
    this.shared.update(registration).catch((err: Error) => this.ctx.emit('warning', err));
    this.ctx.emit('moved', registration, previous);
  }
}

/** A security store whose changes made here reach every instance (theirs arrive through the link). */
export function replicatedSecurity(local: SecurityStore, link: () => ClusterLink): SecurityStore {
  return {
    byIdentity: (identity) => local.byIdentity(identity),
    byEndpoint: (endpoint) => local.byEndpoint(endpoint),
    list: () => local.list(),
    set(entry) {
      local.set(entry);
      link().putSecurity(entry);
    },
    delete(selector) {
      const gone = 'identity' in selector ? [selector.identity] : local.byEndpoint(selector.endpoint).map((e) => e.identity);
      const n = local.delete(selector);
      for (const identity of gone) link().removeSecurity(identity);
      return n;
    },
  };
}
