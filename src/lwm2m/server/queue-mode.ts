/**
 * Queue mode (LwM2M Core §6.5): requests for a sleeping device wait until it next talks (an Update,
 * a Send, a notification), at most `maxPerDevice` of them, each with its own deadline.
 */
import { DeviceTimeoutError, QueueError } from './errors';
import type { Registration } from './registration';

interface QueuedRequest {
  run: () => void;
  fail: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface DevicePresence {
  awake: boolean;
  queued: number;
  lastHeard?: Date;
}

export class QueueMode {
  private readonly queues = new Map<string, QueuedRequest[]>(); // by registration id
  /** When each queue-mode device last talked (registration id → ms); others are always reachable. */
  private readonly lastHeard = new Map<string, number>();

  constructor(
    private readonly maxPerDevice: number,
    private readonly awakeMs: number,
    private readonly onWakeup: (registration: Registration) => void,
  ) {}

  /** The device talked: it is awake, and what waited for it goes out now. */
  heard(registration: Registration): void {
    if (registration.queueMode) this.lastHeard.set(registration.id, Date.now());
    const queue = this.queues.get(registration.id);
    if (!queue || queue.length === 0) return;
    this.queues.delete(registration.id);
    this.onWakeup(registration);
    for (const q of queue) {
      clearTimeout(q.timer);
      q.run();
    }
  }

  private awake(registration: Registration): boolean {
    if (!registration.queueMode) return true;
    return Date.now() - (this.lastHeard.get(registration.id) ?? 0) < this.awakeMs;
  }

  /** What a device browser shows: awake or asleep, requests waiting, when a queue-mode device last talked. */
  presence(registration: Registration): DevicePresence {
    const heard = this.lastHeard.get(registration.id);
    return { awake: this.awake(registration), queued: this.queues.get(registration.id)?.length ?? 0, lastHeard: heard === undefined ? undefined : new Date(heard) };
  }

  /** Runs `send` now, or when the queue-mode device next talks. */
  whenAwake<T>(registration: Registration, path: string | undefined, timeoutMs: number, send: () => Promise<T>): Promise<T> {
    if (this.awake(registration)) return send();
    let queue = this.queues.get(registration.id);
    if (!queue) this.queues.set(registration.id, (queue = []));
    if (queue.length >= this.maxPerDevice) {
      return Promise.reject(new QueueError(registration.endpoint, `queue full (${this.maxPerDevice} requests waiting for the device to wake up)`));
    }
    return new Promise<T>((resolve, reject) => {
      const entry: QueuedRequest = {
        run: () => send().then(resolve, reject),
        fail: reject,
        timer: setTimeout(() => {
          const list = this.queues.get(registration.id);
          const i = list ? list.indexOf(entry) : -1;
          if (list && i >= 0) list.splice(i, 1);
          reject(new DeviceTimeoutError(registration.endpoint, path, `device did not wake up within ${timeoutMs} ms (queue mode)`));
        }, timeoutMs),
      };
      queue!.push(entry);
    });
  }

  /** The registration is gone: its queued requests fail. */
  forget(registration: Registration): void {
    const queue = this.queues.get(registration.id);
    if (queue) {
      this.queues.delete(registration.id);
      for (const q of queue) {
        clearTimeout(q.timer);
        q.fail(new QueueError(registration.endpoint, 'registration ended before the queued request was sent'));
      }
    }
    this.lastHeard.delete(registration.id);
  }

  clear(err: Error): void {
    for (const queue of this.queues.values()) {
      for (const q of queue) {
        clearTimeout(q.timer);
        q.fail(err);
      }
    }
    this.queues.clear();
    this.lastHeard.clear();
  }
}
