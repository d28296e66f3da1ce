/**
 * Registrations, O(1) by endpoint, by registration id and by source address, with lifetime expiry
 * in one-second buckets swept by a single timer (no timer per device: the store holds 100k+).
 */
import { Registration } from './registration';

export type ExpiryListener = (registration: Registration) => void;

export class RegistrationStore {
  private readonly byEndpoint = new Map<string, Registration>();
  private readonly byId = new Map<string, Registration>();
  private readonly byAddress = new Map<string, Registration>();
  private readonly buckets = new Map<number, Set<Registration>>();
  private readonly bucketOf = new Map<Registration, number>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private nextBucket = 0;

  constructor(readonly maxSize: number, private readonly onExpire: ExpiryListener) {}

  get size(): number {
    return this.byEndpoint.size;
  }

  get full(): boolean {
    return this.byEndpoint.size >= this.maxSize;
  }

  byEndpointName(endpoint: string): Registration | undefined {
    return this.byEndpoint.get(endpoint);
  }

  byRegistrationId(id: string): Registration | undefined {
    return this.byId.get(id);
  }

  bySource(address: string, port: number): Registration | undefined {
    return this.byAddress.get(`${address}|${port}`);
  }

  /** Every registration, without a copy (do not change the store while iterating). */
  values(): IterableIterator<Registration> {
    return this.byEndpoint.values();
  }

  list(): Registration[] {
    return [...this.byEndpoint.values()];
  }

  /** Adds a registration, replacing (and returning) one with the same endpoint. */
  add(registration: Registration): Registration | undefined {
    const previous = this.byEndpoint.get(registration.endpoint);
    if (previous) this.remove(previous);
    this.byEndpoint.set(registration.endpoint, registration);
    this.byId.set(registration.id, registration);
    this.byAddress.set(`${registration.address}|${registration.port}`, registration);
    this.schedule(registration);
    return previous;
  }

  /** Call after changing a registration's address or expiry. */
  touched(registration: Registration, oldAddress: string, oldPort: number): void {
    const oldKey = `${oldAddress}|${oldPort}`;
    if (this.byAddress.get(oldKey) === registration) this.byAddress.delete(oldKey);
    this.byAddress.set(`${registration.address}|${registration.port}`, registration);
    this.unschedule(registration);
    this.schedule(registration);
  }

  remove(registration: Registration): boolean {
    if (this.byId.get(registration.id) !== registration) return false;
    this.byId.delete(registration.id);
    if (this.byEndpoint.get(registration.endpoint) === registration) this.byEndpoint.delete(registration.endpoint);
    const key = `${registration.address}|${registration.port}`;
    if (this.byAddress.get(key) === registration) this.byAddress.delete(key);
    this.unschedule(registration);
    return true;
  }

  clear(): void {
    this.byEndpoint.clear();
    this.byId.clear();
    this.byAddress.clear();
    this.buckets.clear();
    this.bucketOf.clear();
    this.stopSweeping();
  }

  stopSweeping(): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }

  private schedule(registration: Registration): void {
    const bucket = Math.ceil(registration.expiresAt.getTime() / 1000);
    let set = this.buckets.get(bucket);
    if (!set) this.buckets.set(bucket, (set = new Set()));
    set.add(registration);
    this.bucketOf.set(registration, bucket);
    if (!this.sweepTimer || bucket < this.nextBucket) this.arm(bucket);
  }

  private unschedule(registration: Registration): void {
    const bucket = this.bucketOf.get(registration);
    if (bucket === undefined) return;
    this.bucketOf.delete(registration);
    const set = this.buckets.get(bucket);
    set?.delete(registration);
    if (set && set.size === 0) this.buckets.delete(bucket);
  }

  private arm(bucket: number): void {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.nextBucket = bucket;
    const delay = Math.max(0, Math.min(bucket * 1000 - Date.now(), 60_000));
    this.sweepTimer = setTimeout(() => this.sweep(), delay);
    this.sweepTimer.unref?.();
  }

  private sweep(): void {
    this.sweepTimer = null;
    const now = Date.now();
    const due = [...this.buckets.keys()].filter((b) => b * 1000 <= now);
    for (const bucket of due) {
      const set = this.buckets.get(bucket);
      this.buckets.delete(bucket);
      for (const registration of set ?? []) {
        this.bucketOf.delete(registration);
        if (registration.expiresAt.getTime() > now) {
          this.schedule(registration);
          continue;
        }
        if (this.remove(registration)) this.onExpire(registration);
      }
    }
    if (this.buckets.size > 0) {
      let earliest = Infinity;
      for (const b of this.buckets.keys()) if (b < earliest) earliest = b;
      this.arm(earliest);
    }
  }
}
