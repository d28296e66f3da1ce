/**
 * The datagram channel under the CoAP message layer: a UDP socket today, DTLS sessions next.
 * The layer above only sends datagrams to a peer and receives datagrams from one; it never sees
 * the socket, so nothing above it knows which channel it runs on.
 */
import * as dgram from 'dgram';
import { lookup, LookupOneOptions } from 'dns';
import { EventEmitter } from 'events';
import { isIP } from 'net';

export interface Peer {
  address: string;
  port: number;
  /** The identity a secure channel (DTLS) authenticated the peer with; absent over plain UDP. */
  identity?: string;
}

export interface DatagramChannel extends EventEmitter {
  readonly open: boolean;
  /** Binds (or connects); rejects with the bind error (e.g. EADDRINUSE). */
  start(): Promise<void>;
  /** Idempotent; after it, send() is a no-op. */
  stop(): Promise<void>;
  address(): Peer;
  /** Never throws: a closed channel or a failed send is reported as a 'warning' event at most. */
  send(datagram: Buffer, peer: Peer): void;
  on(event: 'datagram', listener: (datagram: Buffer, peer: Peer) => void): this;
  on(event: 'warning', listener: (err: Error) => void): this;
}

export interface UdpChannelOptions {
  type?: 'udp4' | 'udp6';
  port?: number;
  address?: string;
  /** Socket receive buffer in bytes (the OS may cap it): bursts of registrations need room. */
  receiveBufferSize?: number;
}

/**
 * Peers are addresses (a datagram's source) nearly always: those need no lookup, and dns.lookup
 * would still defer every send by a tick. Host names go to dns.lookup as usual.
 */
function literalFirst(host: string, options: LookupOneOptions, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  const family = isIP(host);
  if (family) callback(null, host, family);
  else lookup(host, options, callback);
}

export class UdpChannel extends EventEmitter implements DatagramChannel {
  private socket: dgram.Socket | null = null;

  constructor(private readonly options: UdpChannelOptions = {}) {
    super();
  }

  get open(): boolean {
    return this.socket !== null;
  }

  start(): Promise<void> {
    if (this.socket) return Promise.resolve();
    const socket = dgram.createSocket({ type: this.options.type ?? 'udp4', reuseAddr: false, lookup: literalFirst });
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind(this.options.port ?? 0, this.options.address, () => {
        socket.removeListener('error', onError);
        socket.on('error', (err) => this.emit('warning', err));
        if (this.options.receiveBufferSize) {
          try {
            socket.setRecvBufferSize(this.options.receiveBufferSize);
          } catch (err) {
            this.emit('warning', err);
          }
        }
        socket.on('message', (msg, rinfo) => this.emit('datagram', msg, { address: rinfo.address, port: rinfo.port }));
        this.socket = socket;
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    this.socket = null;
    socket.removeAllListeners('message');
    return new Promise((resolve) => socket.close(() => resolve()));
  }

  address(): Peer {
    if (!this.socket) throw new Error('channel is not open');
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  send(datagram: Buffer, peer: Peer): void {
    const socket = this.socket;
    if (!socket) return;
    try {
      // no callback: a send error comes as the socket's 'error' event (a warning), and a send
      // without one costs no tick per datagram
      socket.send(datagram, peer.port, peer.address);
    } catch (err) {
      this.emit('warning', err);
    }
  }
}
