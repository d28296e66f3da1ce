/**
 * The CoAP endpoint every LwM2M role stands on: one datagram channel (a UDP socket unless one is
 * given), one message layer on it (layer.ts) that both answers requests and sends its own. LwM2M
 * needs the one socket: a server's requests to a device must leave from the port the device
 * registered with (devices and NATs drop anything else), and a client's notifications and
 * answers must leave from the port it registered from.
 */
import { EventEmitter } from 'events';
import type { CoapRequestSpec, CoapResponse, Observation, RequestHandler } from './api';
import { DatagramChannel, Peer, UdpChannel } from './channel';
import { CoapTransportError } from './errors';
import { MessageLayer } from './layer';
import { ClientObservation } from './observe';
import { checkParameters, DEFAULT_PARAMETERS, maxTransmitWaitMs, TransmissionParameters } from './params';
import { peerKey } from './peers';

export * from './api';
export * from './errors';
export type { Peer, DatagramChannel } from './channel';
export { uintOption, readUint } from './message';

export interface TransportOptions extends Partial<TransmissionParameters> {
  type?: 'udp4' | 'udp6';
  port?: number;
  address?: string;
  /** Socket receive buffer in bytes (the OS may cap it): bursts of registrations need room. */
  receiveBufferSize?: number;
  /** A channel to run on instead of a UDP socket of its own (DTLS sessions). */
  channel?: DatagramChannel;
  /** Default for CoapRequestSpec.timeoutMs: MAX_TRANSMIT_WAIT (93 s), so every retransmission can happen. */
  requestTimeoutMs?: number;
  /** Payload bytes per block this side sends (16–1024). Default 1024. */
  blockSize?: number;
  /** Largest body of one block-wise transfer, either way (4.13 beyond it). Default 1 MiB. */
  maxBodySize?: number;
  /** Bytes held for all block-wise transfers together. Default 16 MiB. */
  maxBufferedBytes?: number;
  /** A block-wise transfer with no block for this long is dropped. Default 120 s. */
  blockTransferTimeoutMs?: number;
  /** Messages remembered for duplicate detection (§4.5). Default 400,000 (~40 MB at most). */
  maxDedupEntries?: number;
  /** Peers whose message-id counters are kept. Default 1,000,000. */
  maxPeers?: number;
  /** Requests waiting for NSTART per peer. Default 256. */
  maxQueuePerPeer?: number;
  /** A slow handler's request gets an empty ACK after this long, and a separate response. Default 1 s. */
  separateResponseAfterMs?: number;
}

export class CoapTransport extends EventEmitter {
  private layer: MessageLayer | null = null;
  private channel: DatagramChannel | null = null;
  private handler: RequestHandler = (ex) => ex.respond({ code: '4.04' });
  readonly parameters: TransmissionParameters;
  readonly requestTimeoutMs: number;

  constructor(private readonly options: TransportOptions = {}) {
    super();
    this.parameters = {
      ackTimeoutMs: options.ackTimeoutMs ?? DEFAULT_PARAMETERS.ackTimeoutMs,
      ackRandomFactor: options.ackRandomFactor ?? DEFAULT_PARAMETERS.ackRandomFactor,
      maxRetransmit: options.maxRetransmit ?? DEFAULT_PARAMETERS.maxRetransmit,
      nstart: options.nstart ?? DEFAULT_PARAMETERS.nstart,
    };
    checkParameters(this.parameters);
    this.requestTimeoutMs = options.requestTimeoutMs ?? maxTransmitWaitMs(this.parameters);
    const blockSize = options.blockSize ?? 1024;
    if (!(blockSize >= 16 && blockSize <= 1024 && (blockSize & (blockSize - 1)) === 0)) {
      throw new RangeError('blockSize must be a power of two from 16 to 1024');
    }
  }

  setHandler(handler: RequestHandler): void {
    this.handler = handler;
  }

  private adopter: ((peer: Peer, notification: { token: Buffer }, adopt: (request?: CoapRequestSpec) => Observation) => boolean) | null = null;

  /**
   * For notifications of observations this transport did not start (another server instance did):
   * `adopter` calls `adopt(request)` (the request that started it) to take one over and returns
   * true, or returns false (RST).
   */
  setObservationAdopter(adopter: ((peer: Peer, notification: { token: Buffer }, adopt: (request?: CoapRequestSpec) => Observation) => boolean) | null): void {
    this.adopter = adopter;
  }

  get listening(): boolean {
    return this.layer !== null;
  }

  address(): Peer {
    if (!this.channel || !this.layer) throw new CoapTransportError('transport is not open');
    return this.channel.address();
  }

  /** Binds the socket (or starts the given channel); rejects with the bind error (e.g. EADDRINUSE). */
  async open(): Promise<void> {
    if (this.layer) return;
    const o = this.options;
    const channel = o.channel ?? new UdpChannel({ type: o.type, port: o.port, address: o.address, receiveBufferSize: o.receiveBufferSize });
    await channel.start();
    if (this.layer) return; // opened meanwhile by a concurrent call
    channel.on('warning', (err: Error) => this.emit('warning', err));
    this.channel = channel;
    this.layer = new MessageLayer(channel, {
      ...this.parameters,
      blockSize: o.blockSize ?? 1024,
      maxBodySize: o.maxBodySize ?? 1024 * 1024,
      maxBufferedBytes: o.maxBufferedBytes ?? 16 * 1024 * 1024,
      transferTimeoutMs: o.blockTransferTimeoutMs ?? 120_000,
      maxDedupEntries: o.maxDedupEntries ?? 400_000,
      maxPeers: o.maxPeers ?? 1_000_000,
      maxQueuePerPeer: o.maxQueuePerPeer ?? 256,
      separateResponseAfterMs: o.separateResponseAfterMs ?? 1000,
    }, () => this.handler, (err) => this.emit('warning', err), (reason, peer) => this.emit('dropped', reason, peer));
    const requester = this.layer.requester;
    requester.adopter = (peer, key, m) => this.adopter !== null && this.adopter(peer, m, (request) => requester.adopt(peer, key, m, request));
  }

  /** Closes the channel and ends every request, exchange and observation. Idempotent. */
  async close(): Promise<void> {
    const layer = this.layer;
    const channel = this.channel;
    if (!layer || !channel) return;
    this.layer = null;
    this.channel = null;
    layer.close();
    channel.removeAllListeners('warning');
    await channel.stop();
  }

  /** Sends a request from this transport's channel and resolves with the response (Block2 reassembled). */
  request(peer: Peer, spec: CoapRequestSpec): Promise<CoapResponse> {
    const layer = this.layer;
    if (!layer) return Promise.reject(new CoapTransportError('transport is not open'));
    return layer.requester.request(peer, peerKey(peer), spec, spec.timeoutMs ?? this.requestTimeoutMs).then(({ response, observation }) => {
      observation?.close();
      return response;
    });
  }

  /** Sends GET/FETCH with Observe 0; resolves once the first response arrives. */
  async observe(peer: Peer, spec: Omit<CoapRequestSpec, 'observe'>): Promise<Observation> {
    const layer = this.layer;
    if (!layer) throw new CoapTransportError('transport is not open');
    const key = peerKey(peer);
    const { response, observation, token } = await layer.requester.request(peer, key, { ...spec, observe: 0 }, spec.timeoutMs ?? this.requestTimeoutMs);
    if (observation) return observation;
    // not accepted as an observation: an ended one that carries the answer
    const ended = new ClientObservation(token, key, peer.identity, () => undefined);
    ended.start(response);
    ended.end();
    return ended;
  }
}
