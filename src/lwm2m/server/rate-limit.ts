/**
 * Token buckets per source, in a bounded table (the source heard from longest ago is forgotten
 * first, so a flood of spoofed sources costs a bounded amount of memory).
 */
export class SourceRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** `burst` requests at once, then `perSecond` a second, for each of at most `maxSources` sources. */
  constructor(private readonly burst: number, private readonly perSecond: number, private readonly maxSources = 10_000) {}

  /** Whether a request from `source` may go on now (and counts it). */
  allow(source: string, now = Date.now()): boolean {
    let bucket = this.buckets.get(source);
    if (bucket) {
      this.buckets.delete(source); // re-inserted below: the table's order is least recently heard first
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
      bucket.at = now;
    } else {
      if (this.buckets.size >= this.maxSources) this.buckets.delete(this.buckets.keys().next().value as string);
      bucket = { tokens: this.burst, at: now };
    }
    this.buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}
