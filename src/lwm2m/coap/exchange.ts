/**
 * The answering side of one exchange: a request this side received, its response (piggybacked
 * in the ACK, or separate after an empty ACK when the handler is slow), a large response sent
 * block-wise, and — for an Observe registration — the notifications that follow (RFC 7641 §4).
 */
import type { Exchange, IncomingRequest, ResponseSpec } from './api';
import type { DatagramChannel, Peer } from './channel';
import { bodyKeyOf, Block2Cache } from './blockwise';
import type { Deduplicator } from './dedup';
import {
  BlockOption, blockOptionValue, blockSize, CoapMessage, CoapOption, emptyMessage, encodeMessage, MessageType, OptionNumber,
  parseCode, uintOption,
} from './message';
import type { PeerTable } from './peers';
import type { ReliableSender, Transmission } from './reliability';
import type { ScheduledTask, Scheduler } from './scheduler';

/** What an exchange needs of the message layer it lives in. */
export interface ExchangeContext {
  readonly channel: DatagramChannel;
  readonly reliable: ReliableSender;
  readonly peers: PeerTable;
  readonly scheduler: Scheduler;
  readonly dedup: Deduplicator;
  readonly block2: Block2Cache;
  /** Largest SZX this side sends. */
  readonly szx: number;
  /** How long a slow handler may take before the request gets an empty ACK (§5.2.2). */
  readonly separateAfterMs: number;
  /** Observe relations by peer and token; an exchange adds itself after its 2.xx answer. */
  readonly relations: Map<string, ServerExchange>;
  /** A NON notification's message id, so that a RST to it cancels the relation. */
  trackNon(peerKey: string, messageId: number, exchange: ServerExchange): void;
  warn(err: unknown): void;
}

const EMPTY = Buffer.alloc(0);
const SEQUENCE_MASK = 0xffffff;

export class ServerExchange implements Exchange, ScheduledTask {
  slot?: number;
  responded = false;
  private acked = false;
  private cancelled = false;
  private sequence: number;
  private readonly cancelListeners: Array<() => void> = [];
  private lastNotification?: { transmission?: Transmission; settle: (delivered: boolean) => void };
  readonly isObserveRequest: boolean;

  constructor(
    private readonly ctx: ExchangeContext,
    readonly request: IncomingRequest,
    private readonly message: CoapMessage,
    readonly peerKey: string,
    private readonly dedupKey: string,
    /** The Block1 option of the last block, echoed in the answer to an assembled request. */
    private readonly block1: BlockOption | undefined,
    /** The Block2 option of the request: which block of a large answer it wants. */
    private readonly block2: BlockOption | undefined,
  ) {
    this.isObserveRequest = request.observe === 0 && (message.code === 1 || message.code === 5);
    this.sequence = Math.floor(Math.random() * 0x10000);
  }

  /** After the handler returned: a CON request it has not answered yet gets its empty ACK after a while (§5.2.2). */
  handlerReturned(): void {
    if (!this.responded && this.message.type === MessageType.CON && !this.acked) {
      this.ctx.scheduler.schedule(this, Date.now() + this.ctx.separateAfterMs);
    }
  }

  /** Observe relations are kept by peer and token (computed for observe requests only). */
  get relationKey(): string {
    return `${this.peerKey}|${this.message.token.toString('hex')}`;
  }

  get peer(): Peer {
    return this.request.peer;
  }

  /** Key of this request's answer in the Block2 cache (computed only for large answers). */
  private get bodyKey(): string {
    const r = this.request;
    return bodyKeyOf(this.peerKey, this.message.code, r.pathSegments, r.query, r.accept, this.message.payload);
  }

  get observing(): boolean {
    return this.isObserveRequest && this.responded && !this.cancelled;
  }

  /** The separate-response timer: the handler is slow, so the request gets an empty ACK now. */
  run(): void {
    this.ackNow();
  }

  /** Sends the empty ACK of a CON request still being processed (also when a duplicate arrives). */
  ackNow(): void {
    if (this.responded || this.acked || this.message.type !== MessageType.CON) return;
    this.acked = true;
    this.ctx.scheduler.cancel(this);
    const ack = emptyMessage(MessageType.ACK, this.message.messageId);
    this.ctx.dedup.answered(this.dedupKey, ack);
    this.ctx.channel.send(ack, this.peer);
  }

  respond(spec: ResponseSpec): void {
    if (this.responded) return;
    this.responded = true;
    this.ctx.scheduler.cancel(this);
    let code: number;
    try {
      code = parseCode(spec.code);
    } catch (err) {
      this.ctx.warn(err);
      code = parseCode('5.00');
    }
    const ok = code >> 5 === 2;
    const options: CoapOption[] = [];
    if (spec.contentFormat !== undefined) options.push({ number: OptionNumber.ContentFormat, value: uintOption(spec.contentFormat) });
    for (const segment of spec.locationPath ?? []) options.push({ number: OptionNumber.LocationPath, value: Buffer.from(segment) });
    if (spec.maxAge !== undefined) options.push({ number: OptionNumber.MaxAge, value: uintOption(spec.maxAge) });
    if (this.block1) options.push({ number: OptionNumber.Block1, value: blockOptionValue({ ...this.block1, more: false }) });
    const observing = this.isObserveRequest && ok && !this.cancelled;
    if (observing) options.push({ number: OptionNumber.Observe, value: uintOption(this.nextSequence()) });
    const payload = this.blockOf(spec.payload ?? EMPTY, spec.contentFormat, options, ok);
    if (payload === undefined) {
      this.send({ code: parseCode('4.02'), options: [], payload: Buffer.from('no such block') });
      return;
    }
    this.send({ code, options, payload });
    if (observing) {
      this.ctx.relations.get(this.relationKey)?.cancel();
      this.ctx.relations.set(this.relationKey, this);
    } else if (this.isObserveRequest) {
      this.cancelled = true;
    }
  }

  /**
   * The block of `body` to send now (with Block2 and Size2 added to `options`); the whole body
   * when it fits in one block; undefined when the block asked for lies past the end.
   */
  private blockOf(body: Buffer, contentFormat: number | undefined, options: CoapOption[], ok: boolean): Buffer | undefined {
    const szx = Math.min(this.ctx.szx, this.block2?.szx ?? 7);
    const size = blockSize(szx);
    const num = this.block2?.num ?? 0;
    if (!ok || (body.length <= size && num === 0 && !this.block2)) return body;
    if (num * size >= body.length && !(num === 0 && body.length === 0)) return undefined;
    const more = (num + 1) * size < body.length;
    options.push({ number: OptionNumber.Block2, value: blockOptionValue({ num, more, szx }) });
    if (num === 0) options.push({ number: OptionNumber.Size2, value: uintOption(body.length) });
    if (more) this.ctx.block2.put(this.bodyKey, body, contentFormat);
    else if (num > 0) this.ctx.block2.remove(this.bodyKey);
    return body.subarray(num * size, (num + 1) * size);
  }

  private nextSequence(): number {
    this.sequence = (this.sequence + 1) & SEQUENCE_MASK;
    return this.sequence;
  }

  private send(fields: { code: number; options: CoapOption[]; payload: Buffer }): void {
    const { message, ctx } = this;
    if (message.type === MessageType.CON && !this.acked) {
      const datagram = encodeMessage({ type: MessageType.ACK, messageId: message.messageId, token: message.token, ...fields });
      ctx.dedup.answered(this.dedupKey, datagram);
      ctx.channel.send(datagram, this.peer);
      return;
    }
    const messageId = ctx.peers.nextMessageId(this.peerKey);
    if (message.type === MessageType.NON) {
      ctx.channel.send(encodeMessage({ type: MessageType.NON, messageId, token: message.token, ...fields }), this.peer);
      return;
    }
    // a separate response: CON, retransmitted until the client ACKs it (§5.2.2)
    const datagram = encodeMessage({ type: MessageType.CON, messageId, token: message.token, ...fields });
    ctx.reliable.send(this.peerKey, messageId, datagram, this.peer, {
      onAck: () => undefined,
      onReset: () => this.cancel(),
      onGiveUp: () => undefined,
    });
  }

  notify(spec: ResponseSpec, confirmable = false, ackTimeoutMs = 30000): Promise<boolean> {
    if (!this.observing) return Promise.resolve(false);
    const { ctx } = this;
    let code: number;
    try {
      code = parseCode(spec.code);
    } catch {
      return Promise.resolve(false);
    }
    const options: CoapOption[] = [{ number: OptionNumber.Observe, value: uintOption(this.nextSequence()) }];
    if (spec.contentFormat !== undefined) options.push({ number: OptionNumber.ContentFormat, value: uintOption(spec.contentFormat) });
    let payload = spec.payload ?? EMPTY;
    const size = blockSize(ctx.szx);
    if (payload.length > size && code >> 5 === 2) {
      // the first block only; the observer GETs the rest (RFC 7959 §2.6)
      options.push({ number: OptionNumber.Block2, value: blockOptionValue({ num: 0, more: true, szx: ctx.szx }) });
      options.push({ number: OptionNumber.Size2, value: uintOption(payload.length) });
      ctx.block2.put(this.bodyKey, payload, spec.contentFormat);
      payload = payload.subarray(0, size);
    }
    // a newer notification replaces one still being retransmitted (RFC 7641 §4.5.2)
    this.settleLastNotification(false);
    const messageId = ctx.peers.nextMessageId(this.peerKey);
    const token = this.message.token;
    if (!confirmable) {
      ctx.trackNon(this.peerKey, messageId, this);
      ctx.channel.send(encodeMessage({ type: MessageType.NON, code, messageId, token, options, payload }), this.peer);
      if (code >> 5 !== 2) this.cancel();
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const timer: ScheduledTask = { run: () => this.settleLastNotification(false) };
      const entry: { transmission?: Transmission; settle: (delivered: boolean) => void } = {
        settle: (delivered) => {
          if (this.lastNotification === entry) this.lastNotification = undefined;
          ctx.scheduler.cancel(timer);
          if (entry.transmission) ctx.reliable.cancel(entry.transmission);
          resolve(delivered);
        },
      };
      this.lastNotification = entry;
      ctx.scheduler.schedule(timer, Date.now() + ackTimeoutMs);
      entry.transmission = ctx.reliable.send(this.peerKey, messageId, encodeMessage({ type: MessageType.CON, code, messageId, token, options, payload }), this.peer, {
        onAck: () => {
          entry.transmission = undefined;
          entry.settle(true);
        },
        onReset: () => {
          entry.transmission = undefined;
          entry.settle(false);
          this.cancel();
        },
        onGiveUp: () => {
          // RFC 7641 §4.5: an observer that never acknowledges is removed
          entry.transmission = undefined;
          entry.settle(false);
          this.cancel();
        },
      });
      if (code >> 5 !== 2) this.cancel();
    });
  }

  private settleLastNotification(delivered: boolean): void {
    this.lastNotification?.settle(delivered);
  }

  onCancel(listener: () => void): void {
    this.cancelListeners.push(listener);
  }

  /** Ends the relation (RST, Observe 1, replaced, transport closed): listeners hear it once. */
  cancel(): void {
    this.ctx.scheduler.cancel(this);
    if (this.cancelled) return;
    const wasObserving = this.observing;
    this.cancelled = true;
    if (this.ctx.relations.get(this.relationKey) === this) this.ctx.relations.delete(this.relationKey);
    this.settleLastNotification(false);
    if (!wasObserving) return;
    for (const listener of this.cancelListeners.splice(0)) {
      try {
        listener();
      } catch (err) {
        this.ctx.warn(err);
      }
    }
  }
}
