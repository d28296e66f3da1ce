/**
 * The registration interface (/rd: Register, Update, De-register) and Send (/dp), with the
 * authorization of LwM2M Core §7.1 when a device comes over DTLS: an identity registers only the
 * endpoint it is bound to, and only that identity may update, de-register or send for it; an
 * endpoint with credentials cannot register without them.
 */
import type { Exchange, Peer as SecurePeer } from '../coap/transport';
import { decodeRecords, FORMAT_CODES, formatName, recordsToComposite } from '../content';
import type { ObjectRegistry } from '../model';
import type { ResourceRecord, ResourceValue } from '../types';
import type { FormatName } from '../content';
import type { QueueMode } from './queue-mode';
import {
  BadRegistrationError, parseBinding, parseLifetime, parseObjectLinks, parseQuery, parseRegisterQuery, Registration,
} from './registration';
import { inScope, SecurityStore } from './security';
import type { RegistrationStore } from './store';
import type { EventOrigin } from './cluster/cluster-link';
import type { SharedStore } from './cluster/shared-store';

/** What a device pushed with the Send operation (POST /dp), emitted as 'send'. */
export interface SendEvent {
  endpoint: string;
  /** Keyed by full path, like a Read-Composite result; the newest value of a path. */
  value: Record<string, ResourceValue>;
  /** Every record, time-stamped ones (SenML bt/t) with their `time`. */
  records: ResourceRecord[];
  format: FormatName;
}

/** A request refused for security reasons, emitted as 'securityRefused' (no key material in it). */
export interface SecurityRefusal {
  operation: 'register' | 'update' | 'deregister' | 'send' | 'bootstrap';
  endpoint?: string;
  identity?: string;
  address: string;
  port: number;
  reason: string;
}

/** A registration replaced by a Register of the same endpoint from another address, emitted as 'replaced'. */
export interface ReplacedEvent {
  endpoint: string;
  identity?: string;
  from: { address: string; port: number };
  to: { address: string; port: number };
}

export interface RegistrationContext {
  readonly store: RegistrationStore;
  readonly security: SecurityStore;
  readonly queue: QueueMode;
  readonly registry: ObjectRegistry;
  readonly minLifetime: number;
  readonly expiryGraceMs: number;
  /** NoSec: Update and De-register from another address than the registration's are taken (NAT rebinding). */
  readonly allowAddressChange: boolean;
  /** Register and Update payloads above this are refused with 4.13. */
  readonly maxPayloadBytes: number;
  /** Object links in a Register or Update above this are refused with 4.00. */
  readonly maxLinks: number;
  newRegistrationId(): string;
  /** In a fleet: the shared store every change is written to (atomically) before the device is answered. */
  readonly shared?: SharedStore;
  /** The last argument of this instance's registration events (which instance, not remote). */
  readonly origin?: EventOrigin;
  /** Drops what the server held for a registration that is gone or replaced. */
  forget(registration: Registration): void;
  emit(event: string, ...args: unknown[]): boolean;
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


export class RegistrationHandler {
  /** The last argument of the events, in a fleet only (listeners of one server see what they always saw). */
  private readonly origin: EventOrigin[];

  constructor(private readonly ctx: RegistrationContext) {
    this.origin = ctx.origin ? [ctx.origin] : [];
  }

  /** /rd requests. */
  registrationInterface(exchange: Exchange): void {
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

  private reject(exchange: Exchange, code: string, message: string): void {
    exchange.respond({ code, payload: Buffer.from(message) });
    this.ctx.emit('warning', new BadRegistrationError(`${exchange.request.peer.address}:${exchange.request.peer.port}: ${message}`));
  }

  /** Answers 4.03 and reports the refusal; false, for `return` at the caller (no exception: refusals may come by the thousand). */
  private forbid(exchange: Exchange, operation: SecurityRefusal['operation'], endpoint: string | undefined, reason: string): false {
    const peer = exchange.request.peer as SecurePeer;
    exchange.respond({ code: '4.03', payload: Buffer.from(reason) });
    const refusal: SecurityRefusal = { operation, endpoint, identity: peer.identity, address: peer.address, port: peer.port, reason };
    this.ctx.emit('securityRefused', refusal);
    return false;
  }

  /**
   * Applies a change once the shared store has it (at once without one). A shared store that
   * fails (Redis away) makes the device try again later: 5.03, nothing changed here; one that
   * says the registration is gone (another instance expired or removed it) gives 4.04.
   */
  private commit(exchange: Exchange, write: (() => Promise<boolean>) | undefined, apply: () => void): void {
    if (!write) {
      apply();
      return;
    }
    write().then((done) => {
      if (done) apply();
      else exchange.respond({ code: '4.04', payload: Buffer.from('registration is gone') });
    }, (err: Error) => {
      exchange.respond({ code: '5.03', maxAge: 10, payload: Buffer.from('registration store unavailable') });
      this.ctx.emit('warning', err);
    });
  }

  /**
   * Whether the request's peer may act for `endpoint`: over DTLS, its identity must be bound to the
   * endpoint (for this interface); over NoSec, the endpoint must have no credentials for it.
   */
  authorize(exchange: Exchange, operation: SecurityRefusal['operation'], endpoint: string): boolean {
    const bootstrap = operation === 'bootstrap';
    const identity = (exchange.request.peer as SecurePeer).identity;
    if (identity !== undefined) {
      // an identity in the store is bound to its endpoint; an X.509 identity without an entry to the
      // endpoint named as its certificate's CN (as Leshan does)
      const bound = this.ctx.security.byIdentity(identity);
      const allowed = bound ? bound.endpoint === endpoint && inScope(bound, bootstrap) : identity === `x509:${endpoint}`;
      if (!allowed) {
        return this.forbid(exchange, operation, endpoint, `identity ${identity} is not bound to endpoint ${endpoint}`);
      }
    } else if (this.ctx.security.byEndpoint(endpoint).some((e) => inScope(e, bootstrap))) {
      return this.forbid(exchange, operation, endpoint, `endpoint ${endpoint} has credentials: it must use DTLS`);
    }
    return true;
  }

  /**
   * Update, De-register and Send: only from the identity (or the lack of one) that registered; over
   * NoSec also only from the registration's address, unless address changes are allowed.
   */
  private sameIdentity(exchange: Exchange, operation: SecurityRefusal['operation'], registration: Registration): boolean {
    const peer = exchange.request.peer as SecurePeer;
    if (peer.identity !== registration.identity) {
      return this.forbid(exchange, operation, registration.endpoint, `registration ${registration.id} belongs to ${registration.identity === undefined ? 'a NoSec device' : 'another identity'}`);
    }
    if (peer.identity === undefined && !this.ctx.allowAddressChange && (peer.address !== registration.address || peer.port !== registration.port)) {
      return this.forbid(exchange, operation, registration.endpoint, `registration ${registration.id} was made from another address (without DTLS it stays there)`);
    }
    return true;
  }

  /** A Register or Update payload within the bounds, as text. */
  private linksOf(payload: Buffer): string {
    if (payload.length > this.ctx.maxPayloadBytes) throw new BadRegistrationError(`registration payload of ${payload.length} bytes is over the ${this.ctx.maxPayloadBytes} allowed`, '4.13');
    return payload.toString('utf8');
  }

  private parseLinks(text: string): ReturnType<typeof parseObjectLinks> {
    const parsed = parseObjectLinks(text);
    if (parsed.objects.length > this.ctx.maxLinks) throw new BadRegistrationError(`registration names ${parsed.objects.length} object links, over the ${this.ctx.maxLinks} allowed`);
    return parsed;
  }

  private register(exchange: Exchange): void {
    const req = exchange.request;
    const ctx = this.ctx;
    const params = parseRegisterQuery(req.query, ctx.minLifetime);
    checkLinkPayloadFormat(req.contentFormat);
    if (!this.authorize(exchange, 'register', params.endpoint)) return;
    const objectLinks = this.linksOf(req.payload);
    const parsed = this.parseLinks(objectLinks);
    // the Objects and Object Instances are a mandatory parameter of Register
    if (parsed.objects.length === 0) throw new BadRegistrationError('Register names no object: the payload needs links like </1/0>,</3/0>');
    if (!ctx.store.byEndpointName(params.endpoint) && ctx.store.full) {
      exchange.respond({ code: '5.03', payload: Buffer.from('registration store is full') });
      return;
    }
    const now = new Date();
    const identity = (req.peer as SecurePeer).identity;
    const registration: Registration = {
      id: ctx.newRegistrationId(),
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
      ...(identity !== undefined ? { identity } : {}),
      ...(ctx.shared ? { owner: ctx.shared.instanceId } : {}),
    };
    const shared = ctx.shared;
    this.commit(exchange, shared && (() => shared.register(registration).then(() => true)), () => this.registered(exchange, registration));
  }

  private registered(exchange: Exchange, registration: Registration): void {
    const ctx = this.ctx;
    const identity = registration.identity;
    const previous = ctx.store.add(registration);
    if (previous) ctx.forget(previous);
    if (previous && (previous.address !== registration.address || previous.port !== registration.port)) {
      // the endpoint registered again from elsewhere: a rebooted device behind a NAT, or someone else
      ctx.emit('replaced', {
        endpoint: registration.endpoint, identity, from: { address: previous.address, port: previous.port }, to: { address: registration.address, port: registration.port },
      } satisfies ReplacedEvent);
    }
    ctx.queue.heard(registration);
    exchange.respond({ code: '2.01', locationPath: ['rd', registration.id] });
    ctx.emit('register', registration, previous, ...this.origin);
  }

  private update(exchange: Exchange, id: string): void {
    const ctx = this.ctx;
    const registration = ctx.store.byRegistrationId(id);
    if (!registration) {
      exchange.respond({ code: '4.04', payload: Buffer.from(`no registration ${id}`) });
      return;
    }
    if (!this.sameIdentity(exchange, 'update', registration)) return;
    const req = exchange.request;
    const q = parseQuery(req.query);
    // the endpoint name belongs to Register only: an Update cannot change it
    if (q.has('ep')) throw new BadRegistrationError('Update must not carry ep= (the endpoint name is given at Register only)');
    const lifetime = parseLifetime(q.get('lt'), ctx.minLifetime);
    const binding = parseBinding(q.get('b'));
    if (req.payload.length > 0) checkLinkPayloadFormat(req.contentFormat);
    const parsed = req.payload.length > 0 ? this.parseLinks(this.linksOf(req.payload)) : undefined;
    const previous = { ...registration };
    const next: Registration = { ...registration };
    if (lifetime !== undefined) next.lifetime = lifetime;
    if (binding !== undefined) next.binding = binding;
    if (next.lwm2mVersion === '1.0') {
      // LwM2M 1.0 says queue mode in the binding (UQ): an Update with a binding switches it
      if (binding !== undefined) next.queueMode = binding.includes('Q') || q.has('Q');
      else if (q.has('Q')) next.queueMode = true;
    }
    // LwM2M 1.1+: queue mode is the Q parameter of Register only; an Update (b=U or not) keeps it
    if (q.has('sms')) next.smsNumber = q.get('sms') || undefined;
    if (parsed) {
      next.objectLinks = req.payload.toString('utf8');
      next.objects = parsed.objects;
      next.rootPath = parsed.rootPath;
      if (parsed.supportedFormats.length) next.supportedFormats = parsed.supportedFormats;
    }
    // NB-IoT NATs rebind often: the device is wherever its Update came from
    next.address = req.peer.address;
    next.port = req.peer.port;
    next.updatedAt = new Date();
    next.expiresAt = this.expiry(next.lifetime);
    // in a fleet, the device now talks to this instance (a load balancer moved it, or it came back)
    const shared = ctx.shared;
    if (shared) next.owner = shared.instanceId;
    this.commit(exchange, shared && (() => shared.update(next)), () => {
      if (ctx.store.byRegistrationId(registration.id) !== registration) {
        exchange.respond({ code: '4.04', payload: Buffer.from(`no registration ${id}`) });
        return;
      }
      Object.assign(registration, next);
      ctx.store.touched(registration, previous.address, previous.port);
      exchange.respond({ code: '2.04' });
      ctx.queue.heard(registration);
      ctx.emit('update', registration, previous, ...this.origin);
    });
  }

  private deregister(exchange: Exchange, id: string): void {
    const registration = this.ctx.store.byRegistrationId(id);
    if (!registration) {
      exchange.respond({ code: '4.04', payload: Buffer.from(`no registration ${id}`) });
      return;
    }
    if (!this.sameIdentity(exchange, 'deregister', registration)) return;
    const ctx = this.ctx;
    const shared = ctx.shared;
    let fleetWide = true;
    // a registration another instance removed meanwhile is gone here too, with no second event
    this.commit(exchange, shared && (() => shared.deregister(registration).then((done) => { fleetWide = done; return true; })), () => {
      ctx.store.remove(registration);
      ctx.forget(registration);
      exchange.respond({ code: '2.02' });
      if (fleetWide) ctx.emit('deregister', registration, ...this.origin);
    });
  }

  private expiry(lifetime: number): Date {
    return new Date(Date.now() + lifetime * 1000 + this.ctx.expiryGraceMs);
  }

  /** /dp: data a registered device pushes. */
  sendInterface(exchange: Exchange): void {
    const req = exchange.request;
    const registration = this.ctx.store.bySource(req.peer.address, req.peer.port);
    if (!registration || req.method !== 'POST') {
      exchange.respond({ code: registration ? '4.05' : '4.04', payload: Buffer.from('Send needs a registered device') });
      return;
    }
    if (!this.sameIdentity(exchange, 'send', registration)) return;
    const format = req.contentFormat !== undefined ? formatName(req.contentFormat) : undefined;
    if (format !== 'senml-json' && format !== 'senml-cbor' && format !== 'lwm2m-cbor') {
      exchange.respond({ code: '4.15', payload: Buffer.from('Send takes SenML JSON/CBOR or LwM2M CBOR') });
      return;
    }
    let records: ResourceRecord[];
    try {
      records = decodeRecords(format, req.payload, { basePath: { objectId: 0 }, types: this.ctx.registry });
    } catch (err) {
      exchange.respond({ code: '4.00', payload: Buffer.from((err as Error).message) });
      return;
    }
    exchange.respond({ code: '2.04' });
    this.ctx.queue.heard(registration);
    const event: SendEvent = { endpoint: registration.endpoint, value: recordsToComposite(records), records, format };
    this.ctx.emit('send', event);
  }
}
