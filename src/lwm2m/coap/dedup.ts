/**
 * RFC 7252 §4.5 duplicate detection: every CON and NON message received is remembered by
 * (peer, message id) for EXCHANGE_LIFETIME, with the answer it got (a piggybacked response, an
 * empty ACK, or nothing yet), so a retransmission is answered again without being processed again.
 *
 * Two generations swapped every half lifetime: O(1) per message, no timer per entry, and a
 * hard bound: when the current generation holds `maxEntries / 2`, it is swapped early (an old
 * entry forgotten early costs at most one re-processed duplicate, never memory).
 */
export interface DedupEntry {
  /** What to send again when a duplicate arrives; undefined while the first copy is being processed. */
  answer?: Buffer;
  /** The exchange still processing the first copy: a duplicate CON makes it send its empty ACK now. */
  pending?: { ackNow(): void };
}

export class Deduplicator {
  private current = new Map<string, DedupEntry>();
  private previous = new Map<string, DedupEntry>();
  private swappedAt = Date.now();

  constructor(private readonly lifetimeMs: number, private readonly maxEntries: number) {}

  /** The entry of an earlier copy of this message, if one was received within the lifetime. */
  seen(key: string): DedupEntry | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  /** Records a message as received (after seen() said it is new). */
  add(key: string): DedupEntry {
    const now = Date.now();
    if (now - this.swappedAt >= this.lifetimeMs / 2 || this.current.size >= this.maxEntries / 2) {
      this.previous = this.current;
      this.current = new Map();
      this.swappedAt = now;
    }
    const entry: DedupEntry = {};
    this.current.set(key, entry);
    return entry;
  }

  /** Records the answer sent for a message recorded by add(). */
  answered(key: string, answer: Buffer): void {
    const entry = this.current.get(key) ?? this.previous.get(key);
    if (!entry) return;
    entry.answer = answer;
    entry.pending = undefined; // the exchange (and its request) need not live for the whole lifetime
  }

  clear(): void {
    this.current.clear();
    this.previous.clear();
  }
}
