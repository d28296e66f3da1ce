/**
 * What this side keeps per peer it sends to: the next message id (RFC 7252 §4.4: an id is not
 * reused with the same peer within EXCHANGE_LIFETIME, so each peer counts on its own from a
 * random start) and NSTART (§4.7: at most `nstart` outstanding requests; the rest wait in that
 * peer's queue, unlimited across peers). Idle entries are dropped after EXCHANGE_LIFETIME; the
 * table holds at most `maxPeers` entries, past which a peer gets a random id each time.
 */
import { randomInt } from 'crypto';
import type { Peer } from './channel';

export function peerKey(peer: Peer): string {
  return `${peer.address}|${peer.port}`;
}

export class QueueFullError extends Error {}

interface Waiting {
  start: () => void;
  fail: (err: Error) => void;
}

export class PeerState {
  nextMessageId = randomInt(65536);
  inFlight = 0;
  readonly queue: Waiting[] = [];
  lastUsed = Date.now();
}

export class PeerTable {
  private readonly peers = new Map<string, PeerState>();
  private lastSweep = Date.now();

  constructor(
    private readonly nstart: number,
    private readonly idleMs: number,
    private readonly maxPeers: number,
    private readonly maxQueuePerPeer: number,
  ) {}

  private state(key: string): PeerState | undefined {
    let s = this.peers.get(key);
    if (!s) {
      this.sweep();
      if (this.peers.size >= this.maxPeers) return undefined;
      this.peers.set(key, (s = new PeerState()));
    }
    s.lastUsed = Date.now();
    return s;
  }

  nextMessageId(key: string): number {
    const s = this.state(key);
    if (!s) return randomInt(65536);
    const id = s.nextMessageId;
    s.nextMessageId = (id + 1) & 0xffff;
    return id;
  }

  /**
   * Starts an interaction with the peer now, or queues it until one in flight ends. `start` runs
   * synchronously when a slot is free; every started interaction must call release() once.
   */
  acquire(key: string, start: () => void, fail: (err: Error) => void): void {
    const s = this.state(key);
    if (!s || s.inFlight < this.nstart) {
      if (s) s.inFlight++;
      start();
      return;
    }
    if (s.queue.length >= this.maxQueuePerPeer) {
      fail(new QueueFullError(`${this.maxQueuePerPeer} requests already wait for this peer (NSTART ${this.nstart})`));
      return;
    }
    s.queue.push({ start, fail });
  }

  release(key: string): void {
    const s = this.peers.get(key);
    if (!s) return;
    s.lastUsed = Date.now();
    const next = s.queue.shift();
    if (next) next.start();
    else if (s.inFlight > 0) s.inFlight--;
  }

  /** Removes a queued start that has not run (its request timed out or was cancelled). */
  withdraw(key: string, start: () => void): void {
    const s = this.peers.get(key);
    if (!s) return;
    const i = s.queue.findIndex((w) => w.start === start);
    if (i >= 0) s.queue.splice(i, 1);
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.lastSweep < this.idleMs / 4 && this.peers.size < this.maxPeers) return;
    this.lastSweep = now;
    for (const [key, s] of this.peers) {
      if (s.inFlight === 0 && s.queue.length === 0 && now - s.lastUsed > this.idleMs) this.peers.delete(key);
    }
  }

  /** Fails everything queued. */
  close(err: Error): void {
    for (const s of this.peers.values()) for (const w of s.queue.splice(0)) w.fail(err);
    this.peers.clear();
  }
}
