/**
 * RFC 7252 §4.2 reliability for the CON messages this side sends (requests, separate responses,
 * notifications): retransmission with exponential back-off from a random initial timeout, and
 * the matching of the peer's ACK or RST by (peer, message id).
 */
import type { DatagramChannel, Peer } from './channel';
import type { CoapMessage } from './message';
import type { TransmissionParameters } from './params';
import type { ScheduledTask, Scheduler } from './scheduler';

export interface TransmissionCallbacks {
  /** The ACK (empty, or carrying a piggybacked response). */
  onAck(ack: CoapMessage): void;
  onReset(): void;
  /** MAX_RETRANSMIT retransmissions and the last timeout passed without ACK or RST. */
  onGiveUp(): void;
}

export class Transmission implements ScheduledTask {
  slot?: number;
  private retriesLeft: number;
  private timeoutMs: number;

  constructor(
    readonly key: string,
    readonly datagram: Buffer,
    readonly peer: Peer,
    readonly callbacks: TransmissionCallbacks,
    private readonly owner: ReliableSender,
    params: TransmissionParameters,
  ) {
    this.retriesLeft = params.maxRetransmit;
    this.timeoutMs = params.ackTimeoutMs * (1 + Math.random() * (params.ackRandomFactor - 1));
  }

  /** Schedules the next retransmission (or the give-up) one timeout from now, then doubles it. */
  arm(now: number): void {
    this.owner.scheduler.schedule(this, now + this.timeoutMs);
    this.timeoutMs *= 2;
  }

  run(now: number): void {
    if (this.retriesLeft === 0) {
      this.owner.forget(this);
      this.callbacks.onGiveUp();
      return;
    }
    this.retriesLeft--;
    this.owner.channel.send(this.datagram, this.peer);
    this.arm(now);
  }
}

export class ReliableSender {
  private readonly pending = new Map<string, Transmission>();

  constructor(
    readonly channel: DatagramChannel,
    readonly scheduler: Scheduler,
    private readonly params: TransmissionParameters,
  ) {}

  /** Sends a CON message (already encoded with `messageId`) and retransmits it until ACK, RST or give-up. */
  send(peerKey: string, messageId: number, datagram: Buffer, peer: Peer, callbacks: TransmissionCallbacks): Transmission {
    const t = new Transmission(`${peerKey}|${messageId}`, datagram, peer, callbacks, this, this.params);
    this.pending.get(t.key)?.callbacks.onGiveUp();
    this.pending.set(t.key, t);
    this.channel.send(datagram, peer);
    t.arm(Date.now());
    return t;
  }

  /** Stops retransmitting without telling anyone (the caller gave up on it). */
  cancel(t: Transmission): void {
    this.forget(t);
  }

  forget(t: Transmission): void {
    if (this.pending.get(t.key) === t) this.pending.delete(t.key);
    this.scheduler.cancel(t);
  }

  /** Takes an ACK or RST; false when it matches nothing this side is retransmitting. */
  handle(peerKey: string, message: CoapMessage, reset: boolean): boolean {
    const t = this.pending.get(`${peerKey}|${message.messageId}`);
    if (!t) return false;
    this.forget(t);
    if (reset) t.callbacks.onReset();
    else t.callbacks.onAck(message);
    return true;
  }

  /** Drops every transmission and tells its owner it gave up. */
  close(): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const t of all) {
      this.scheduler.cancel(t);
      t.callbacks.onGiveUp();
    }
  }
}
