/**
 * What several server instances share (issue: beyond one machine): registrations, the
 * observations each instance started, and security entries, with events every instance receives
 * and requests one instance asks another to send. The memory store of one instance stays the
 * default (no shared store at all); RedisStore (redis-store.ts) is the shared one.
 */
import type { Registration } from '../registration';
import type { ObservationRecord } from '../observations';
import type { PskEntry } from '../security';

/** A change of the fleet's registrations, as every instance receives it. */
export interface RegistrationEvent {
  type: 'register' | 'update' | 'deregister' | 'expire';
  /** The instance that made the change (its devices' datagrams reach it). */
  origin: string;
  registration: Registration;
  previous?: Registration;
}

/** A request one instance asks another to send from its socket, and the answer. */
export interface ForwardedCall {
  id: string;
  from: string;
  method: string;
  args: unknown[];
}

export interface ForwardedAnswer {
  id: string;
  result?: unknown;
  error?: { name: string; message: string; code?: string };
}

/** A notification of an observation started for another instance, sent on to it. */
export interface ForwardedNotification {
  observationId: string;
  notification: unknown;
}

export interface SharedStore {
  /** This instance's id (unique in the fleet). */
  readonly instanceId: string;
  connect(): Promise<void>;
  close(): Promise<void>;
  /** Whether the store answers now (false while it reconnects). */
  readonly available: boolean;

  /** Every registration not expired. */
  registrations(): Promise<Registration[]>;
  /** Atomically: the registration, replacing its endpoint's previous one (returned). */
  register(registration: Registration): Promise<Registration | undefined>;
  /** Atomically: the registration's new state; false when it is gone (deregistered or expired). */
  update(registration: Registration): Promise<boolean>;
  /** Atomically: removes it; false when it was gone already. */
  deregister(registration: Registration): Promise<boolean>;
  /** Atomically removes it if it is still due: true for exactly one instance of the fleet. */
  expire(registration: Registration, now: number): Promise<boolean>;

  /** Observations of the fleet by id (their token): any instance decodes their notifications. */
  observations(): Promise<ObservationRecord[]>;
  putObservation(record: ObservationRecord): Promise<void>;
  removeObservation(observationId: string): Promise<void>;
  onObservationEvent(listener: (event: { type: 'put' | 'remove'; origin: string; record?: ObservationRecord; observationId?: string }) => void): void;

  /** Security entries, shared by every instance. */
  securityEntries(): Promise<PskEntry[]>;
  putSecurity(entry: PskEntry): Promise<void>;
  removeSecurity(identity: string): Promise<void>;

  /** Instances that are up (they renew their mark every few seconds). */
  isAlive(instanceId: string): Promise<boolean>;
  /** An instance that did not answer: down until it renews its mark. */
  suspect(instanceId: string): void;

  onRegistrationEvent(listener: (event: RegistrationEvent) => void): void;
  onSecurityEvent(listener: (event: { type: 'put' | 'remove'; origin: string; entry?: PskEntry; identity?: string }) => void): void;
  /** Calls forwarded to this instance; answer with `answer`. */
  onCall(listener: (call: ForwardedCall) => void): void;
  call(instanceId: string, call: ForwardedCall): void;
  answer(to: string, answer: ForwardedAnswer): void;
  onAnswer(listener: (answer: ForwardedAnswer) => void): void;
  notify(to: string, notification: ForwardedNotification): void;
  onNotification(listener: (notification: ForwardedNotification) => void): void;
  /** 'up' / 'down' of the store's connection, and errors (never thrown at the caller). */
  on(event: 'up' | 'down', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}
