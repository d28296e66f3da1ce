/**
 * One CoAP message layer over one datagram channel: every datagram in is classified here
 * (RFC 7252 §4: empty ACK/RST/ping, request, response), deduplicated, and handed to the
 * requesting side (requests.ts) or the answering side (exchange.ts); every datagram out leaves
 * through the same channel with message ids from one table per peer. Nothing a peer sends
 * throws out of here.
 */
import type { RequestHandler } from './api';
import { Block1Assembler, Block2Cache, BlockLimits, bodyKeyOf } from './blockwise';
import type { DatagramChannel, Peer } from './channel';
import { Deduplicator } from './dedup';
import { CoapTransportError } from './errors';
import { ExchangeContext, ServerExchange } from './exchange';
import {
  blockOptionOf, blockOptionValue, CoapMessage, CoapOption, decodeMessage, emptyMessage, encodeMessage, isMalformed,
  isRequestCode, MessageType, METHOD_NAMES, OptionNumber, parseCode, readUint, szxFor, uintOption, unknownCriticalOption,
} from './message';
import { exchangeLifetimeMs, maxTransmitWaitMs, TransmissionParameters } from './params';
import { peerKey, PeerTable } from './peers';
import { ReliableSender } from './reliability';
import { Requester } from './requests';
import { Scheduler } from './scheduler';
import { TokenSource } from './tokens';

export interface LayerOptions extends TransmissionParameters, BlockLimits {
  blockSize: number;
  maxDedupEntries: number;
  maxPeers: number;
  maxQueuePerPeer: number;
  separateResponseAfterMs: number;
}

/** A reason a datagram was dropped or rejected, for counters and debugging (never logged per datagram). */
export type DropListener = (reason: string, peer: Peer) => void;

const EMPTY = Buffer.alloc(0);
/** NON notifications remembered per relation so that a RST to one of them cancels it. */
const NON_IDS_PER_RELATION = 8;

export class MessageLayer implements ExchangeContext {
  readonly scheduler: Scheduler;
  readonly reliable: ReliableSender;
  readonly peers: PeerTable;
  readonly dedup: Deduplicator;
  readonly block2: Block2Cache;
  readonly relations = new Map<string, ServerExchange>();
  readonly requester: Requester;
  readonly szx: number;
  readonly separateAfterMs: number;
  private readonly block1: Block1Assembler;
  private readonly nonNotifications = new Map<string, ServerExchange>();
  private readonly nonIds = new WeakMap<ServerExchange, string[]>();
  private readonly maxBodySize: number;

  constructor(
    readonly channel: DatagramChannel,
    options: LayerOptions,
    private readonly handler: () => RequestHandler,
    readonly warn: (err: unknown) => void,
    private readonly dropped: DropListener,
  ) {
    this.scheduler = new Scheduler(Math.max(5, Math.min(100, Math.floor(options.ackTimeoutMs / 8))), warn);
    this.reliable = new ReliableSender(channel, this.scheduler, options);
    const lifetime = exchangeLifetimeMs(options);
    this.peers = new PeerTable(options.nstart, lifetime, options.maxPeers, options.maxQueuePerPeer);
    this.dedup = new Deduplicator(lifetime, options.maxDedupEntries);
    this.block1 = new Block1Assembler(options);
    this.block2 = new Block2Cache(options);
    this.szx = szxFor(options.blockSize);
    this.separateAfterMs = options.separateResponseAfterMs;
    this.maxBodySize = options.maxBodySize;
    this.requester = new Requester(channel, this.reliable, this.scheduler, this.peers, new TokenSource(), {
      blockSize: options.blockSize, maxBodySize: options.maxBodySize, blockTransferTimeoutMs: options.transferTimeoutMs,
      maxTransmitWaitMs: maxTransmitWaitMs(options),
    });
    channel.on('datagram', (datagram: Buffer, peer: Peer) => {
      try {
        this.receive(datagram, peer);
      } catch (err) {
        this.warn(err);
      }
    });
  }

  trackNon(key: string, messageId: number, exchange: ServerExchange): void {
    const id = `${key}|${messageId}`;
    this.nonNotifications.set(id, exchange);
    let ids = this.nonIds.get(exchange);
    if (!ids) this.nonIds.set(exchange, (ids = []));
    ids.push(id);
    if (ids.length > NON_IDS_PER_RELATION) {
      const old = ids.shift()!;
      if (this.nonNotifications.get(old) === exchange) this.nonNotifications.delete(old);
    }
    if (!exchange.observing) this.forgetNon(exchange);
  }

  private forgetNon(exchange: ServerExchange): void {
    for (const id of this.nonIds.get(exchange) ?? []) if (this.nonNotifications.get(id) === exchange) this.nonNotifications.delete(id);
    this.nonIds.delete(exchange);
  }

  private receive(datagram: Buffer, peer: Peer): void {
    const m = decodeMessage(datagram);
    if (isMalformed(m)) {
      // §4.2/§4.3: a CON whose header could be read is rejected with RST; everything else is ignored
      if (m.type === MessageType.CON && m.messageId !== undefined) this.channel.send(emptyMessage(MessageType.RST, m.messageId), peer);
      this.dropped(m.malformed, peer);
      return;
    }
    const key = peerKey(peer);
    if (m.code === 0) {
      if (m.type === MessageType.CON) this.channel.send(emptyMessage(MessageType.RST, m.messageId), peer); // ping (§4.3)
      else if (m.type === MessageType.ACK) this.reliable.handle(key, m, false);
      else if (m.type === MessageType.RST) this.reset(key, m);
      return;
    }
    if (m.type === MessageType.RST) return this.dropped('RST with a code', peer);
    if (isRequestCode(m.code)) {
      if (m.type === MessageType.ACK) return this.dropped('request in an ACK', peer);
      this.receiveRequest(m, peer, key);
      return;
    }
    if (m.type === MessageType.ACK) {
      if (!this.reliable.handle(key, m, false)) this.dropped('ACK matching no request', peer);
      return;
    }
    this.receiveResponse(m, peer, key);
  }

  private reset(key: string, m: CoapMessage): void {
    if (this.reliable.handle(key, m, true)) return;
    const relation = this.nonNotifications.get(`${key}|${m.messageId}`);
    if (relation) {
      this.forgetNon(relation);
      relation.cancel();
    }
  }

  /** A separate response or a notification (CON or NON). */
  private receiveResponse(m: CoapMessage, peer: Peer, key: string): void {
    const dedupKey = `${key}|${m.messageId}`;
    const seen = this.dedup.seen(dedupKey);
    if (seen) {
      if (m.type === MessageType.CON && seen.answer) this.channel.send(seen.answer, peer);
      return;
    }
    this.dedup.add(dedupKey);
    const critical = unknownCriticalOption(m);
    const handled = critical === undefined && this.requester.handleResponse(peer, key, m);
    if (m.type === MessageType.CON || !handled) {
      // accepted: ACK; nobody waits for it (e.g. a cancelled observation): RST (RFC 7641 §3.6)
      const answer = emptyMessage(handled ? MessageType.ACK : MessageType.RST, m.messageId);
      this.dedup.answered(dedupKey, answer);
      this.channel.send(answer, peer);
    }
  }

  private receiveRequest(m: CoapMessage, peer: Peer, key: string): void {
    const dedupKey = `${key}|${m.messageId}`;
    const seen = this.dedup.seen(dedupKey);
    if (seen) {
      if (m.type !== MessageType.CON) return;
      if (seen.answer) this.channel.send(seen.answer, peer);
      else seen.pending?.ackNow();
      return;
    }
    const entry = this.dedup.add(dedupKey);
    const reply = (code: string, options: CoapOption[] = [], payload = EMPTY) => this.reply(m, peer, key, dedupKey, code, options, payload);
    if (unknownCriticalOption(m) !== undefined) {
      // §5.4.1: 4.02 to a CON; a NON is ignored
      if (m.type === MessageType.CON) reply('4.02');
      return;
    }
    const method = METHOD_NAMES[m.code];
    if (!method) return reply('4.05');
    const pathSegments: string[] = [];
    const query: string[] = [];
    let contentFormat: number | undefined;
    let accept: number | undefined;
    let observe: number | undefined;
    let size1: number | undefined;
    for (const o of m.options) {
      switch (o.number) {
        case OptionNumber.UriPath: pathSegments.push(o.value.toString('utf8')); break;
        case OptionNumber.UriQuery: query.push(o.value.toString('utf8')); break;
        case OptionNumber.ContentFormat: contentFormat = readUint(o.value); break;
        case OptionNumber.Accept: accept = readUint(o.value); break;
        case OptionNumber.Observe: observe = readUint(o.value); break;
        case OptionNumber.Size1: size1 = readUint(o.value); break;
        default: break;
      }
    }
    const block1 = blockOptionOf(m, OptionNumber.Block1);
    const block2 = blockOptionOf(m, OptionNumber.Block2);
    if (block1 === null || block2 === null) return reply('4.02', [], Buffer.from('bad block option'));
    let payload = m.payload;
    if (block1) {
      const transfer = `${key}|${m.code}|${pathSegments.join('/')}|${query.join('&')}|${contentFormat ?? ''}`;
      const outcome = this.block1.take(transfer, block1, payload, size1);
      if (outcome.kind === 'continue') {
        return reply('2.31', [{ number: OptionNumber.Block1, value: blockOptionValue({ ...block1, more: true }) }]);
      }
      if (outcome.kind === 'error') {
        const options = outcome.code === '4.13' ? [{ number: OptionNumber.Size1, value: uintOption(this.maxBodySize) }] : [];
        return reply(outcome.code, options, Buffer.from(outcome.reason));
      }
      payload = outcome.payload;
    }
    const request = {
      method, pathSegments, query, contentFormat, accept, observe, payload, peer, token: Buffer.from(m.token),
    };
    if (observe === 1) this.relations.get(`${key}|${m.token.toString('hex')}`)?.cancel(); // deregistration (RFC 7641 §3.6)
    const exchange = new ServerExchange(this, request, m, key, dedupKey, block1 ?? undefined, block2 ?? undefined);
    if (m.type === MessageType.CON) entry.pending = exchange;
    if (block2 && block2.num > 0 && !block1) {
      // a later block of a large answer: served from the body kept when block 0 went out
      const cached = this.block2.get(bodyKeyOf(key, m.code, pathSegments, query, accept, m.payload));
      if (cached) return exchange.respond({ code: '2.05', payload: cached.body, contentFormat: cached.contentFormat });
    }
    try {
      this.handler()(exchange);
    } catch (err) {
      this.warn(err);
      exchange.respond({ code: '5.00' });
    }
    exchange.handlerReturned();
  }

  /** Answers a request straight from the layer (errors, 2.31 Continue): piggybacked to a CON, NON to a NON. */
  private reply(m: CoapMessage, peer: Peer, key: string, dedupKey: string, code: string, options: CoapOption[], payload: Buffer): void {
    const confirmable = m.type === MessageType.CON;
    const datagram = encodeMessage({
      type: confirmable ? MessageType.ACK : MessageType.NON,
      code: parseCode(code),
      messageId: confirmable ? m.messageId : this.peers.nextMessageId(key),
      token: m.token,
      options,
      payload,
    });
    if (confirmable) this.dedup.answered(dedupKey, datagram);
    this.channel.send(datagram, peer);
  }

  /** Ends every exchange, request and observation; nothing runs after it. */
  close(): void {
    const closed = new CoapTransportError('transport closed before the answer came');
    this.requester.close(closed);
    this.peers.close(closed);
    this.reliable.close();
    for (const relation of [...this.relations.values()]) relation.cancel();
    this.relations.clear();
    this.scheduler.close();
    this.dedup.clear();
    this.block1.clear();
    this.block2.clear();
    this.nonNotifications.clear();
    this.channel.removeAllListeners('datagram');
  }
}
