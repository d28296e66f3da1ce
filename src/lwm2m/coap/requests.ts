/**
 * The requesting side of exchanges: requests this side sends and the responses that match them
 * (piggybacked in the ACK by message id, separate ones by token and peer), RST and time-outs,
 * NSTART per peer, RFC 7959 block-wise in both directions (Block1 for large request bodies,
 * Block2 for large answers and notifications), and the observations this side holds.
 */
import type { CoapRequestSpec, CoapResponse } from './api';
import type { DatagramChannel, Peer } from './channel';
import { CoapResetError, CoapTimeoutError, CoapTransportError } from './errors';
import {
  blockOptionOf, blockOptionValue, blockSize, CoapMessage, CoapOption, encodeMessage, findOption, MessageType,
  METHOD_CODES, OptionNumber, codeString, stringOptions, uintOption, uintOptionOf,
} from './message';
import { ClientObservation } from './observe';
import type { PeerTable } from './peers';
import type { ReliableSender, Transmission } from './reliability';
import type { ScheduledTask, Scheduler } from './scheduler';
import type { TokenSource } from './tokens';

const EMPTY = Buffer.alloc(0);
const CONTINUE = 0x5f; // 2.31

export interface RequesterOptions {
  /** Payload bytes per block this side sends (16…1024, a power of two). */
  blockSize: number;
  /** Largest response body accepted through Block2. */
  maxBodySize: number;
  /** Time allowed to fetch the rest of a large notification. */
  blockTransferTimeoutMs: number;
  /** MAX_TRANSMIT_WAIT of the transmission parameters: when a CON's retransmissions give up at the latest. */
  maxTransmitWaitMs: number;
}

class PendingRequest implements ScheduledTask {
  slot?: number;
  transmission?: Transmission;
  settled = false;

  constructor(
    private readonly owner: Requester,
    readonly tokenKey: string,
    readonly peerKey: string,
    /** The peer's authenticated identity (DTLS): its answers count from any address (connection ID). */
    readonly identity: string | undefined,
    readonly label: string,
    private readonly resolve: (m: CoapMessage) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  /** The request's deadline passed. */
  run(): void {
    this.fail(new CoapTimeoutError(`no response to ${this.label} in time`));
  }

  succeed(m: CoapMessage): void {
    if (this.settle()) this.resolve(m);
  }

  fail(err: Error): void {
    if (this.settle()) this.reject(err);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.owner.forget(this);
    return true;
  }
}

export function responseOf(m: CoapMessage, peer: Peer, payload = m.payload): CoapResponse {
  return {
    code: codeString(m.code),
    payload,
    contentFormat: uintOptionOf(m, OptionNumber.ContentFormat),
    observe: uintOptionOf(m, OptionNumber.Observe),
    locationPath: stringOptions(m, OptionNumber.LocationPath),
    peer,
  };
}

/** An answer comes from the peer asked: the same address, or over DTLS the same identity (its address may have moved). */
function sameSender(asked: { peerKey: string; identity?: string }, peer: Peer, peerKey: string): boolean {
  return asked.peerKey === peerKey || (asked.identity !== undefined && asked.identity === peer.identity);
}

/** Uri-Path options by path: a server asks thousands of devices for the same few paths. Bounded. */
const pathOptions = new Map<string, CoapOption[]>();
const MAX_CACHED_PATHS = 1024;

function uriPathOptions(path: string): CoapOption[] {
  let options = pathOptions.get(path);
  if (!options) {
    options = [];
    for (const segment of path.split('/')) if (segment) options.push({ number: OptionNumber.UriPath, value: Buffer.from(segment) });
    if (pathOptions.size >= MAX_CACHED_PATHS) pathOptions.clear();
    pathOptions.set(path, options);
  }
  return options;
}

function requestOptions(spec: CoapRequestSpec): CoapOption[] {
  const options: CoapOption[] = [];
  if (spec.observe !== undefined) options.push({ number: OptionNumber.Observe, value: uintOption(spec.observe) });
  for (const o of uriPathOptions(spec.path)) options.push(o);
  if (spec.contentFormat !== undefined) options.push({ number: OptionNumber.ContentFormat, value: uintOption(spec.contentFormat) });
  for (const q of spec.query ?? []) options.push({ number: OptionNumber.UriQuery, value: Buffer.from(q) });
  if (spec.accept !== undefined) options.push({ number: OptionNumber.Accept, value: uintOption(spec.accept) });
  return options;
}

interface Outgoing {
  code: number;
  options: CoapOption[];
  payload: Buffer;
}

export class Requester {
  private readonly pending = new Map<string, PendingRequest>();
  private readonly observations = new Map<string, ClientObservation>();
  /** How to fetch the rest of an observation's large notifications. */
  private readonly followUps = new WeakMap<ClientObservation, Outgoing>();
  private readonly szx: number;

  constructor(
    private readonly channel: DatagramChannel,
    private readonly reliable: ReliableSender,
    private readonly scheduler: Scheduler,
    private readonly peers: PeerTable,
    private readonly tokens: TokenSource,
    private readonly options: RequesterOptions,
  ) {
    this.szx = Math.max(0, Math.min(6, Math.round(Math.log2(options.blockSize)) - 4));
  }

  private tokenInUse = (key: string): boolean => this.pending.has(key) || this.observations.has(key);

  /**
   * Asked about a notification whose token no observation here knows (before it is refused with
   * RST): true once it called `adopt` for it — an observation another server instance started.
   */
  adopter: ((peer: Peer, peerKey: string, m: CoapMessage) => boolean) | null = null;

  /**
   * Registers an observation started elsewhere, from one of its notifications (`m`), which becomes
   * its first answer; `request`, the one that started it, fetches the rest of large notifications.
   */
  adopt(peer: Peer, peerKey: string, m: CoapMessage, request?: CoapRequestSpec): ClientObservation {
    const tokenKey = m.token.toString('hex');
    const observation = new ClientObservation(Buffer.from(m.token), peerKey, peer.identity, (o) => {
      if (this.observations.get(tokenKey) === o) this.observations.delete(tokenKey);
    });
    this.observations.get(tokenKey)?.end();
    this.observations.set(tokenKey, observation);
    const method = request && METHOD_CODES[request.method];
    if (request && method) {
      this.followUps.set(observation, { code: method, options: requestOptions(request).filter((o) => o.number !== OptionNumber.Observe), payload: request.payload ?? EMPTY });
    }
    observation.start(responseOf(m, peer));
    return observation;
  }

  forget(p: PendingRequest): void {
    if (this.pending.get(p.tokenKey) === p) this.pending.delete(p.tokenKey);
    this.scheduler.cancel(p);
    if (p.transmission) this.reliable.cancel(p.transmission);
  }

  /**
   * Sends a request when NSTART allows and resolves with its final response (body reassembled).
   * For Observe 0 with a 2.xx answer carrying Observe, `observation` is the registered observation.
   */
  request(peer: Peer, peerKey: string, spec: CoapRequestSpec, timeoutMs: number):
    Promise<{ response: CoapResponse; observation?: ClientObservation; token: Buffer }> {
    const deadline = Date.now() + timeoutMs;
    const label = `${spec.method} ${spec.path || '/'} to ${peer.address}:${peer.port}`;
    return new Promise((resolve, reject) => {
      let started = false;
      let queued: ScheduledTask | undefined;
      const release = () => this.peers.release(peerKey);
      const start = () => {
        started = true;
        if (queued) this.scheduler.cancel(queued);
        this.transfer(peer, peerKey, spec, deadline, label).then((r) => {
          release();
          resolve(r);
        }, (err: Error) => {
          release();
          reject(err);
        });
      };
      this.peers.acquire(peerKey, start, reject);
      if (started) return;
      // waiting for NSTART: the request's deadline holds in the queue too
      queued = {
        run: () => {
          if (started) return;
          this.peers.withdraw(peerKey, start);
          reject(new CoapTimeoutError(`${label}: still waiting for earlier requests to the same peer after ${timeoutMs} ms (NSTART)`));
        },
      };
      this.scheduler.schedule(queued, deadline);
    });
  }

  private transfer(peer: Peer, peerKey: string, spec: CoapRequestSpec, deadline: number, label: string):
    Promise<{ response: CoapResponse; observation?: ClientObservation; token: Buffer }> {
    const method = METHOD_CODES[spec.method];
    if (!method) return Promise.reject(new CoapTransportError(`unknown method ${spec.method}`));
    const options = requestOptions(spec);
    const payload = spec.payload ?? EMPTY;
    const confirmable = spec.confirmable ?? true;
    const token = spec.token ?? this.tokens.next(this.tokenInUse).token;
    const first = payload.length > blockSize(this.szx)
      ? this.sendBlock1(peer, peerKey, { code: method, options, payload }, token, confirmable, deadline, label)
      : this.exchange(peer, peerKey, { code: method, options, payload }, token, confirmable, deadline, label);
    return first.then((answer) => (spec.observe === undefined && !findOption(answer, OptionNumber.Block2)
      ? { response: responseOf(answer, peer), token } // the common case: the answer is one datagram
      : this.answered(peer, peerKey, spec, method, options, payload, token, answer, deadline, label)));
  }

  /** The first answer came: Block2 fetches the rest; Observe registers the observation. */
  private async answered(peer: Peer, peerKey: string, spec: CoapRequestSpec, method: number, options: CoapOption[], payload: Buffer, token: Buffer,
    first: CoapMessage, deadline: number, label: string): Promise<{ response: CoapResponse; observation?: ClientObservation; token: Buffer }> {
    let observation: ClientObservation | undefined;
    if (spec.observe === 0 && first.code >> 5 === 2 && findOption(first, OptionNumber.Observe) !== undefined) {
      // registered before the rest of the first answer is fetched: early notifications wait in its backlog
      const tokenKey = first.token.toString('hex');
      observation = new ClientObservation(Buffer.from(first.token), peerKey, peer.identity, (o) => {
        if (this.observations.get(tokenKey) === o) this.observations.delete(tokenKey);
      });
      this.observations.get(tokenKey)?.end();
      this.observations.set(tokenKey, observation);
      observation.accept(uintOptionOf(first, OptionNumber.Observe));
    }
    const block2 = findOption(first, OptionNumber.Block2);
    if (!block2 && !observation) return { response: responseOf(first, peer), token };
    // later blocks are asked for with the same request, without Observe (RFC 7959 §2.6)
    const followUp = { code: method, options: options.filter((o) => o.number !== OptionNumber.Observe), payload: payload.length > blockSize(this.szx) ? EMPTY : payload };
    if (observation) this.followUps.set(observation, followUp);
    try {
      const body = block2 ? await this.collectBlock2(peer, peerKey, first, followUp, token, deadline, label) : first.payload;
      const response = responseOf(first, peer, body);
      observation?.start(response);
      return { response, observation, token };
    } catch (err) {
      observation?.end();
      throw err;
    }
  }

  /** One request/response exchange: a CON retransmitted until ACKed, or a NON; no NSTART, no blocks. */
  private exchange(peer: Peer, peerKey: string, out: Outgoing, token: Buffer, confirmable: boolean, deadline: number, label: string): Promise<CoapMessage> {
    return new Promise((resolve, reject) => {
      const tokenKey = token.toString('hex');
      const p = new PendingRequest(this, tokenKey, peerKey, peer.identity, label, resolve, reject);
      this.pending.get(tokenKey)?.fail(new CoapTransportError(`${label}: replaced by a request with the same token`));
      this.pending.set(tokenKey, p);
      // a CON's retransmissions end it by themselves within MAX_TRANSMIT_WAIT: its deadline needs a
      // timer only when it is sooner, or once an empty ACK says a separate response is to come
      const deadlineFirst = !confirmable || deadline < Date.now() + this.options.maxTransmitWaitMs;
      if (deadlineFirst) this.scheduler.schedule(p, deadline);
      const messageId = this.peers.nextMessageId(peerKey);
      const datagram = encodeMessage({
        type: confirmable ? MessageType.CON : MessageType.NON, code: out.code, messageId, token, options: out.options, payload: out.payload,
      });
      if (!confirmable) {
        this.channel.send(datagram, peer);
        return;
      }
      p.transmission = this.reliable.send(peerKey, messageId, datagram, peer, {
        onAck: (ack) => {
          p.transmission = undefined;
          // piggybacked when the token matches too (RFC 7252 §5.3.2); an empty ACK, or one with
          // another token, acknowledges the request only: a separate response follows
          if (ack.code !== 0 && ack.token.equals(token)) p.succeed(ack);
          else if (!deadlineFirst && !p.settled) this.scheduler.schedule(p, deadline);
        },
        onReset: () => p.fail(new CoapResetError(`${label}: the peer answered with RST`)),
        onGiveUp: () => p.fail(new CoapTimeoutError(`${label}: no ACK to any retransmission`)),
      });
    });
  }

  /**
   * RFC 7959 §2.5: the body in blocks, each its own exchange; 2.31 Continue asks for the next.
   * Every block carries the request's token: §2.5 allows new ones, but servers that key the
   * reassembly by token (npm `coap`) then fail.
   */
  private async sendBlock1(peer: Peer, peerKey: string, out: Outgoing, token: Buffer, confirmable: boolean, deadline: number, label: string): Promise<CoapMessage> {
    let szx = this.szx;
    let offset = 0;
    for (;;) {
      const size = blockSize(szx);
      const more = offset + size < out.payload.length;
      const options = [...out.options, { number: OptionNumber.Block1, value: blockOptionValue({ num: offset / size, more, szx }) }];
      if (offset === 0) options.push({ number: OptionNumber.Size1, value: uintOption(out.payload.length) });
      const response = await this.exchange(peer, peerKey, { code: out.code, options, payload: out.payload.subarray(offset, offset + size) },
        token, confirmable, deadline, label);
      if (!more || response.code !== CONTINUE) return response;
      const asked = blockOptionOf(response, OptionNumber.Block1);
      if (asked && asked.szx < szx) szx = asked.szx; // the server wants smaller blocks (§2.3)
      offset += size;
    }
  }

  /** RFC 7959 §2.4: fetches the rest of a Block2 answer with follow-up requests carrying `token`. */
  private async collectBlock2(peer: Peer, peerKey: string, first: CoapMessage, followUp: Outgoing, token: Buffer, deadline: number, label: string): Promise<Buffer> {
    const block = blockOptionOf(first, OptionNumber.Block2);
    if (!block || !block.more || first.code >> 5 !== 2) return first.payload;
    const etag = findOption(first, OptionNumber.ETag);
    const parts = [first.payload];
    let received = first.payload.length;
    let szx = block.szx;
    for (;;) {
      const num = received / blockSize(szx);
      if (!Number.isInteger(num)) throw new CoapTransportError(`${label}: a block-wise answer with a short block`);
      const options = [...followUp.options.filter((o) => o.number !== OptionNumber.Block1 && o.number !== OptionNumber.Size1),
        { number: OptionNumber.Block2, value: blockOptionValue({ num, more: false, szx }) }];
      const response = await this.exchange(peer, peerKey, { ...followUp, options }, token, true, deadline, label);
      const got = blockOptionOf(response, OptionNumber.Block2);
      if (response.code >> 5 !== 2) throw new CoapTransportError(`${label}: block ${num} answered ${codeString(response.code)}`);
      if (!got || got.num * blockSize(got.szx) !== received) throw new CoapTransportError(`${label}: block ${num} answered out of order`);
      const tag = findOption(response, OptionNumber.ETag);
      if (etag && (!tag || !tag.equals(etag))) throw new CoapTransportError(`${label}: the resource changed during the block-wise transfer`);
      received += response.payload.length;
      if (received > this.options.maxBodySize) throw new CoapTransportError(`${label}: answer larger than ${this.options.maxBodySize} bytes`);
      parts.push(response.payload);
      if (!got.more) return Buffer.concat(parts, received);
      szx = got.szx;
    }
  }

  /**
   * Takes a CON or NON response (a separate response or a notification). Returns false when no
   * request or observation of this peer waits for its token (the caller answers with RST).
   */
  handleResponse(peer: Peer, peerKey: string, m: CoapMessage): boolean {
    const tokenKey = m.token.toString('hex');
    const p = this.pending.get(tokenKey);
    if (p && sameSender(p, peer, peerKey)) {
      p.succeed(m);
      return true;
    }
    let observation = this.observations.get(tokenKey);
    if (!observation && this.adopter && m.code >> 5 === 2 && findOption(m, OptionNumber.Observe) !== undefined && this.adopter(peer, peerKey, m)) {
      observation = this.observations.get(tokenKey);
    }
    if (!observation || !sameSender(observation, peer, peerKey)) return false;
    const sequence = uintOptionOf(m, OptionNumber.Observe);
    if (!observation.accept(sequence)) return true; // stale (§3.4): acknowledged, not delivered
    const block = blockOptionOf(m, OptionNumber.Block2);
    if (!block || !block.more || m.code >> 5 !== 2) {
      observation.deliver(responseOf(m, peer));
      return true;
    }
    // a large notification: its first block came; fetch the rest with GET (RFC 7959 §2.6)
    const followUp = this.followUps.get(observation);
    if (!followUp) return true;
    // a token of its own: the observation's token would make the answers look like notifications
    const token = this.tokens.next(this.tokenInUse).token;
    this.collectBlock2(peer, peerKey, m, followUp, token, Date.now() + this.options.blockTransferTimeoutMs, 'notification')
      .then((body) => observation.deliver(responseOf(m, peer, body)), () => { /* dropped: the next notification will come */ });
    return true;
  }

  /** Fails every request in flight and ends every observation. */
  close(err: Error): void {
    for (const p of [...this.pending.values()]) p.fail(err);
    for (const o of [...this.observations.values()]) o.end();
  }
}
