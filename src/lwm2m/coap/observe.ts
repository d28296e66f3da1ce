/**
 * RFC 7641 on the observing side: an observation started by this side, the freshness rule of
 * §3.4 (a reordered or retransmitted notification never overwrites a newer one) and the end of
 * an observation (error code, no Observe option, close, transport closed).
 */
import { EventEmitter } from 'events';
import type { CoapResponse, Observation } from './api';

const SEQUENCE_HALF = 1 << 23;
/** §3.4: after 128 s a notification is fresh whatever its number (the 24-bit counter may have wrapped). */
const FRESHNESS_WINDOW_MS = 128_000;

/** Whether V2 (arriving at t2) is newer than V1 (arrived at t1), RFC 7641 §3.4. */
export function isFresher(v1: number, t1: number, v2: number, t2: number): boolean {
  return (v1 < v2 && v2 - v1 < SEQUENCE_HALF) || (v1 > v2 && v1 - v2 > SEQUENCE_HALF) || t2 > t1 + FRESHNESS_WINDOW_MS;
}

export class ClientObservation extends EventEmitter implements Observation {
  first!: CoapResponse;
  private lastSequence: number | undefined;
  private lastAt = 0;
  private ended = false;
  private started = false;
  private readonly backlog: CoapResponse[] = [];

  constructor(
    readonly token: Buffer,
    readonly peerKey: string,
    /** The observed peer's authenticated identity (DTLS), if any. */
    readonly identity: string | undefined,
    private readonly onEnd: (observation: ClientObservation) => void,
  ) {
    super();
  }

  get active(): boolean {
    return !this.ended;
  }

  /** Takes the sequence number of an arriving notification; false when it is stale and must be dropped. */
  accept(sequence: number | undefined, now = Date.now()): boolean {
    if (sequence === undefined) return true; // a final answer (no Observe option) always counts
    if (this.lastSequence !== undefined && !isFresher(this.lastSequence, this.lastAt, sequence, now)) return false;
    this.lastSequence = sequence;
    this.lastAt = now;
    return true;
  }

  /** The first response; notifications that arrived before it are delivered now, in order. */
  start(first: CoapResponse): void {
    this.first = first;
    this.started = true;
    for (const r of this.backlog.splice(0)) this.deliver(r);
  }

  deliver(response: CoapResponse): void {
    if (this.ended) return;
    if (!this.started) {
      if (this.backlog.length < 16) this.backlog.push(response);
      return;
    }
    this.emit('notification', response);
    // an error code or a response without Observe ends the observation (§3.2, §4.2)
    if (!response.code.startsWith('2.') || response.observe === undefined) this.end();
  }

  close(): void {
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.backlog.length = 0;
    this.onEnd(this);
    this.emit('end');
  }
}
