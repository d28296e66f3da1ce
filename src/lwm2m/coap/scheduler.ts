/**
 * One timer for every deadline of a message layer (retransmissions, request timeouts, separate
 * ACKs, abandoned transfers): tasks sit in time slots of `granularityMs`, so scheduling and
 * cancelling are O(1) and 100k requests in flight cost no timer each.
 */
export interface ScheduledTask {
  /** Set by the scheduler: the slot the task waits in, or undefined. */
  slot?: number;
  run(now: number): void;
}

export class Scheduler {
  private readonly slots = new Map<number, Set<ScheduledTask>>();
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastSlot = 0;
  private closed = false;

  constructor(private readonly granularityMs: number, private readonly onError: (err: unknown) => void) {}

  /** Runs `task` at `at` (ms since epoch) or up to one granularity later; replaces an earlier schedule. */
  schedule(task: ScheduledTask, at: number): void {
    this.cancel(task);
    if (this.closed) return;
    if (!this.timer) this.lastSlot = Math.max(this.lastSlot, Math.floor(Date.now() / this.granularityMs));
    const slot = Math.max(Math.ceil(at / this.granularityMs), this.lastSlot + 1);
    let set = this.slots.get(slot);
    if (!set) this.slots.set(slot, (set = new Set()));
    set.add(task);
    task.slot = slot;
    this.count++;
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.granularityMs);
      this.timer.unref?.();
    }
  }

  cancel(task: ScheduledTask): void {
    if (task.slot === undefined) return;
    const set = this.slots.get(task.slot);
    if (set?.delete(task)) {
      this.count--;
      if (set.size === 0) this.slots.delete(task.slot);
    }
    task.slot = undefined;
    if (this.count === 0) this.stopTimer();
  }

  get size(): number {
    return this.count;
  }

  private tick(): void {
    const now = Date.now();
    const upTo = Math.floor(now / this.granularityMs);
    for (let slot = this.lastSlot + 1; slot <= upTo; slot++) {
      const set = this.slots.get(slot);
      if (!set) continue;
      this.slots.delete(slot);
      for (const task of set) {
        this.count--;
        task.slot = undefined;
        try {
          task.run(now);
        } catch (err) {
          this.onError(err);
        }
      }
    }
    this.lastSlot = upTo;
    if (this.count === 0) this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Drops every task; later schedule() calls do nothing. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    for (const set of this.slots.values()) for (const task of set) task.slot = undefined;
    this.slots.clear();
    this.count = 0;
  }
}
