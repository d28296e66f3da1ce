/**
 * Observations the server holds on devices (LwM2M Core §5.5, RFC 7641): started with Observe or
 * Observe-Composite, one per endpoint and path, their notifications decoded and emitted as
 * 'notify', cancelled passively (RST on the next notification) or actively (the starting request
 * again with Observe 1), and dropped with the registration.
 */
import type { CoapRequestSpec, CoapResponse, Observation } from '../coap/transport';
import type { FormatName } from '../content';
import { recordsToComposite, recordsToTree } from '../content';
import type { ObjectRegistry } from '../model';
import { Lwm2mError, Lwm2mPath, ResourceRecord, ValueTree } from '../types';
import { RequestFailedError } from './errors';
import { decodeAnswer } from './formats';
import type { Registration } from './registration';

export interface Notification {
  endpoint: string;
  path: string | string[];
  value: ValueTree | Record<string, ValueTree>;
  records: ResourceRecord[];
  observationId: string;
  code: string;
  format?: FormatName;
  receivedAt: Date;
  /** The tag the observation was started with (RequestOptions.tag): who asked, the same on every instance of a fleet. */
  tag?: string;
}

export interface ObservationInfo {
  observationId: string;
  endpoint: string;
  path: string | string[];
}

/** What another server instance needs to take an observation over: its notifications decoded there. */
export interface ObservationRecord extends ObservationInfo {
  basePath?: Lwm2mPath;
  /** The request that started it (an active cancel repeats it with Observe 1). */
  request: Omit<CoapRequestSpec, 'observe'>;
  tag?: string;
}

interface ActiveObservation extends ObservationRecord {
  handle: Observation;
}

export interface ObservationContext {
  readonly registry: ObjectRegistry;
  registrationOf(endpoint: string): Registration | undefined;
  /** The device talked (queue mode: it is awake). */
  heard(registration: Registration): void;
  emit(event: string, ...args: unknown[]): boolean;
  /** In a fleet: an observation started here (or taken over), and one that ended. */
  tracked?(record: ObservationRecord): void;
  ended?(observationId: string): void;
}

export class ObservationLimitError extends Lwm2mError {}

export class ObservationService {
  private readonly active = new Map<string, ActiveObservation>(); // `${endpoint}\n${pathKey}`
  private readonly perEndpoint = new Map<string, number>();

  constructor(private readonly ctx: ObservationContext, private readonly maxPerDevice = 64, private readonly maxTotal = 100_000) {}

  /** Throws when a new observation of `path` would pass a limit (replacing one of the same path never does). */
  checkRoom(endpoint: string, path: string | string[]): void {
    if (this.active.has(this.key(endpoint, path))) return;
    if (this.active.size >= this.maxTotal) throw new ObservationLimitError(`${this.maxTotal} observations are active: no more are started`);
    if ((this.perEndpoint.get(endpoint) ?? 0) >= this.maxPerDevice) {
      throw new ObservationLimitError(`${endpoint} has ${this.maxPerDevice} observations already: cancel one first`);
    }
  }

  private counted(endpoint: string, delta: number): void {
    const n = (this.perEndpoint.get(endpoint) ?? 0) + delta;
    if (n > 0) this.perEndpoint.set(endpoint, n);
    else this.perEndpoint.delete(endpoint);
  }

  private key(endpoint: string, path: string | string[]): string {
    return `${endpoint}\n${Array.isArray(path) ? path.join(',') : path}`;
  }

  /** Checks the first answer of an observation; closes it and throws when the device did not accept it. */
  accepted(handle: Observation, endpoint: string, label: string): void {
    const first = handle.first;
    const problem = !first.code.startsWith('2.') ? undefined
      : first.observe === undefined ? 'the device answered without accepting the observation' : null;
    if (problem === null) return;
    handle.close();
    const detail = problem ?? (first.payload.length && first.payload.length < 256 ? first.payload.toString('utf8') : undefined);
    throw new RequestFailedError(first.code, endpoint, label, detail);
  }

  /** Keeps an accepted observation (replacing one of the same endpoint and path); returns its id. */
  track(endpoint: string, path: string | string[], handle: Observation, basePath: Lwm2mPath | undefined, request: Omit<CoapRequestSpec, 'observe'>, tag?: string): string {
    const key = this.key(endpoint, path);
    this.active.get(key)?.handle.close();
    const observationId = handle.token.toString('hex');
    const record: ObservationRecord = { observationId, endpoint, path, basePath, request, ...(tag !== undefined ? { tag } : {}) };
    const active: ActiveObservation = { ...record, handle };
    if (!this.active.has(key)) this.counted(endpoint, 1);
    this.active.set(key, active);
    handle.on('notification', (response) => this.notification(active, response));
    handle.on('end', () => {
      this.ctx.ended?.(observationId);
      if (this.active.get(key) !== active) return;
      this.active.delete(key);
      this.counted(endpoint, -1);
    });
    this.ctx.tracked?.(record);
    return observationId;
  }

  private notification(active: ActiveObservation, response: CoapResponse): void {
    const registration = this.ctx.registrationOf(active.endpoint);
    if (registration) this.ctx.heard(registration);
    if (!response.code.startsWith('2.')) {
      // an error code ends the observation (RFC 7641 §3.2)
      active.handle.close();
      this.ctx.emit('warning', new RequestFailedError(response.code, active.endpoint, String(active.path), 'observation ended by the device'));
      return;
    }
    const label = Array.isArray(active.path) ? 'composite' : active.path;
    let records: ResourceRecord[];
    let format: FormatName | undefined;
    try {
      ({ records, format } = decodeAnswer(response, active.basePath ?? { objectId: 0 }, this.ctx.registry, active.endpoint, label));
    } catch (err) {
      this.ctx.emit('warning', err);
      return;
    }
    const value = active.basePath ? recordsToTree(active.basePath, records) : recordsToComposite(records);
    const notification: Notification = {
      endpoint: active.endpoint, path: active.path, value, records, observationId: active.observationId,
      code: response.code, format, receivedAt: new Date(), ...(active.tag !== undefined ? { tag: active.tag } : {}),
    };
    this.ctx.emit('notify', notification);
  }

  /** Stops listening (passive cancel); returns what an active cancel needs, or throws when there is no such observation. */
  cancel(endpoint: string, path: string | string[]): { request: Omit<CoapRequestSpec, 'observe'>; token: Buffer } {
    const key = this.key(endpoint, path);
    const active = this.active.get(key);
    if (!active) throw new Lwm2mError(`${endpoint}: no observation of ${Array.isArray(path) ? path.join(',') : path}`);
    this.active.delete(key);
    this.counted(endpoint, -1);
    active.handle.close();
    return { request: active.request, token: active.handle.token };
  }

  /** The registration is gone or replaced: its observations end. */
  forget(endpoint: string): void {
    if (!this.perEndpoint.has(endpoint)) return; // none: no need to look through them all
    for (const [key, obs] of this.active) {
      if (obs.endpoint === endpoint) {
        this.active.delete(key);
        obs.handle.close();
      }
    }
    this.perEndpoint.delete(endpoint);
  }

  has(endpoint: string, path: string | string[]): boolean {
    return this.active.has(this.key(endpoint, path));
  }

  list(endpoint?: string): ObservationInfo[] {
    return [...this.active.values()]
      .filter((o) => endpoint === undefined || o.endpoint === endpoint)
      .map(({ observationId, endpoint: ep, path }) => ({ observationId, endpoint: ep, path }));
  }

  clear(): void {
    const all = [...this.active.values()];
    this.active.clear();
    this.perEndpoint.clear();
    for (const obs of all) obs.handle.close();
  }
}
