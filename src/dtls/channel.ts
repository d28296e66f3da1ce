/**
 * DTLS sessions as a datagram channel (the interface the CoAP message layer runs on): one
 * connection per peer over a lower channel (a UDP socket). As a server it answers ClientHellos
 * (cookie exchange first, no state before it), as a client it opens a session the first time the
 * layer above sends to a peer it has credentials for. Datagrams reach the layer above with the
 * peer's authenticated identity; nothing else does.
 */
import { EventEmitter } from 'events';
import type { DatagramChannel, Peer } from '../lwm2m/coap/channel';
import { AlertDescription, DtlsConnection } from './connection';
import { CookieJar } from './cookie';
import { encodeClientHello, encodeHelloVerifyRequest, handshakeMessage, HandshakeType, parseClientHello, parseHandshakeFragments } from './messages';
import { ContentType, DTLS_1_0, DTLS_1_2, parseRecords, recordHeader } from './records';
import { DEFAULT_SUITES } from './suites';

export interface PskCredentials {
  identity: Buffer;
  key: Buffer;
}

export interface DtlsChannelOptions {
  /** Accept handshakes: the key of a PSK identity a client presents (undefined: unknown identity). */
  server?: { pskFor(identity: Buffer, peer: Peer): Buffer | undefined };
  /** Open handshakes: the credentials for a peer this side sends to (undefined: none, the datagram is dropped). */
  client?: { credentialsFor(peer: Peer): PskCredentials | undefined };
  suites?: number[];
  /** Sessions kept at most (established and half-open); the oldest goes first. Default 100,000. */
  maxSessions?: number;
  /** A handshake not finished in this time is dropped. Default 120 s (NB-IoT round trips are slow). */
  handshakeTimeoutMs?: number;
  /** First flight retransmission timeout (RFC 6347 §4.2.4.1: 1 s). */
  retransmitMs?: number;
  /** Datagrams held per peer while its handshake runs. Default 16. */
  maxQueuedPerPeer?: number;
  /**
   * Client side: peers it has no credentials for are spoken to in plain CoAP on the same socket
   * (a device that bootstraps over NoSec, then registers over DTLS). A peer with credentials is
   * never heard in plain text. The first byte tells them apart (RFC 7983: DTLS 20–63, CoAP 64–127).
   */
  plaintextWithoutCredentials?: boolean;
}

/** A peer as the layer above sees it: its address and, over DTLS, the identity it proved. */
export type SecurePeer = Peer;

export interface HandshakeEvent {
  peer: Peer;
  identity?: string;
  cipherSuite?: string;
  reason?: string;
  alert?: AlertDescription;
}

interface Session {
  conn: DtlsConnection;
  peer: SecurePeer;
  queue: Buffer[];
  createdAt: number;
}

function keyOf(peer: Peer): string {
  return `${peer.address}|${peer.port}`;
}

function identityText(identity: Buffer | undefined): string | undefined {
  return identity?.toString('utf8');
}

export class DtlsChannel extends EventEmitter implements DatagramChannel {
  private readonly sessions = new Map<string, Session>();
  private readonly cookies = new CookieJar();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly suites: number[];

  constructor(private readonly lower: DatagramChannel, private readonly options: DtlsChannelOptions) {
    super();
    this.suites = options.suites ?? DEFAULT_SUITES;
  }

  get open(): boolean {
    return this.lower.open;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The established session with a peer: its identity and cipher suite. */
  session(peer: Peer): { identity?: string; cipherSuite?: string; connected: boolean } | undefined {
    const s = this.sessions.get(keyOf(peer));
    return s && { identity: identityText(s.conn.identity), cipherSuite: s.conn.cipherSuite, connected: s.conn.connected };
  }

  async start(): Promise<void> {
    this.lower.on('datagram', (datagram: Buffer, peer: Peer) => {
      try {
        this.receive(datagram, peer);
      } catch (err) {
        this.emit('warning', err);
      }
    });
    this.lower.on('warning', (err: Error) => this.emit('warning', err));
    await this.lower.start();
    this.sweeper = setInterval(() => this.sweep(), 5000);
    this.sweeper.unref?.();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const s of [...this.sessions.values()]) s.conn.close();
    this.sessions.clear();
    this.lower.removeAllListeners('datagram');
    await this.lower.stop();
  }

  address(): Peer {
    return this.lower.address();
  }

  /** Ends every session with close_notify; the next datagram to a peer starts a new handshake. */
  closeSessions(): void {
    for (const s of [...this.sessions.values()]) s.conn.close();
    this.sessions.clear();
  }

  send(datagram: Buffer, peer: Peer): void {
    const key = keyOf(peer);
    const s = this.sessions.get(key);
    if (s?.conn.connected) {
      s.conn.send(datagram);
      return;
    }
    if (s) {
      if (s.queue.length < (this.options.maxQueuedPerPeer ?? 16)) s.queue.push(datagram);
      return;
    }
    const credentials = this.options.client?.credentialsFor(peer);
    if (!credentials) {
      if (this.options.plaintextWithoutCredentials) this.lower.send(datagram, peer);
      else this.emit('dropped', 'no DTLS session with this peer', peer);
      return;
    }
    const events = this.events(key, peer);
    const conn = new DtlsConnection(
      { role: 'client', suites: this.suites, identity: credentials.identity, psk: credentials.key, retransmitMs: this.options.retransmitMs },
      events,
    );
    events.bind(conn);
    const session = this.newSession(key, peer, conn);
    session.queue.push(datagram);
    session.conn.start();
  }

  private newSession(key: string, peer: Peer, conn: DtlsConnection): Session {
    const old = this.sessions.get(key);
    if (old) {
      this.sessions.delete(key);
      old.conn.discard('replaced by a new handshake');
    }
    while (this.sessions.size >= (this.options.maxSessions ?? 100_000)) {
      const [oldestKey, oldest] = this.sessions.entries().next().value as [string, Session];
      this.sessions.delete(oldestKey);
      oldest.conn.discard('session table full');
    }
    const session: Session = { conn, peer: { address: peer.address, port: peer.port }, queue: [], createdAt: Date.now() };
    this.sessions.set(key, session);
    return session;
  }

  private events(key: string, peer: Peer) {
    let conn: DtlsConnection | undefined;
    const mine = () => {
      const s = this.sessions.get(key);
      return s && s.conn === conn ? s : undefined;
    };
    const events = {
      bind: (c: DtlsConnection) => { conn = c; },
      send: (datagram: Buffer) => this.lower.send(datagram, peer),
      connected: () => {
        const s = mine();
        if (!s) return;
        s.peer.identity = identityText(s.conn.identity);
        this.emit('handshake', { peer, identity: s.peer.identity, cipherSuite: s.conn.cipherSuite } satisfies HandshakeEvent);
        for (const d of s.queue.splice(0)) s.conn.send(d);
      },
      data: (plaintext: Buffer) => {
        const s = mine();
        if (s) this.emit('datagram', plaintext, s.peer);
      },
      closed: (reason: string, alert?: AlertDescription) => {
        const s = mine();
        const wasConnected = s?.peer.identity !== undefined;
        if (s) this.sessions.delete(key);
        if (reason === 'replaced by a new handshake') return;
        const event: HandshakeEvent = { peer, identity: identityText(conn?.identity), reason, alert };
        this.emit(wasConnected ? 'sessionClosed' : 'handshakeFailed', event);
      },
    };
    return events;
  }

  private receive(datagram: Buffer, peer: Peer): void {
    const key = keyOf(peer);
    // a ClientHello in epoch 0: type 22, epoch bytes 3–4 zero, handshake type 1
    if (this.options.server && datagram.length > 25 && datagram[0] === ContentType.Handshake && datagram[3] === 0 && datagram[4] === 0
      && datagram[13] === HandshakeType.ClientHello) {
      this.clientHello(datagram, peer, key);
      return;
    }
    const s = this.sessions.get(key);
    if (!s && this.options.plaintextWithoutCredentials && datagram.length > 0 && datagram[0] >= 64 && datagram[0] < 128
      && !this.options.client?.credentialsFor(peer)) {
      this.emit('datagram', datagram, { address: peer.address, port: peer.port });
      return;
    }
    if (!s) {
      this.emit('dropped', 'no DTLS session with this peer', peer);
      return;
    }
    s.conn.receive(datagram);
  }

  private clientHello(datagram: Buffer, peer: Peer, key: string): void {
    const [record] = parseRecords(datagram);
    if (!record) return;
    let fragments;
    let hello;
    try {
      fragments = parseHandshakeFragments(record.fragment);
      const [f] = fragments;
      if (!f || f.fragmentOffset !== 0 || f.body.length !== f.length) return; // a fragmented ClientHello is not served
      hello = { message: f, body: parseClientHello(f.body) };
    } catch {
      this.emit('dropped', 'malformed ClientHello', peer);
      return;
    }
    const existing = this.sessions.get(key);
    if (existing && existing.conn.role === 'server' && !existing.conn.connected && existing.conn.helloRandom.equals(hello.body.random)) {
      existing.conn.receive(datagram); // a retransmitted ClientHello of the handshake under way
      return;
    }
    const params = encodeClientHello({ ...hello.body, cookie: Buffer.alloc(0) });
    if (!this.cookies.valid(hello.body.cookie, peer.address, peer.port, params)) {
      // §4.2.1: stateless; the record sequence number mirrors the ClientHello's
      const hvr = handshakeMessage(HandshakeType.HelloVerifyRequest, hello.message.messageSeq,
        encodeHelloVerifyRequest(DTLS_1_0, this.cookies.cookie(peer.address, peer.port, params)));
      this.lower.send(Buffer.concat([recordHeader(ContentType.Handshake, DTLS_1_2, 0, record.sequence, hvr.length), hvr]), peer);
      return;
    }
    const server = this.options.server!;
    const events = this.events(key, peer);
    const conn = new DtlsConnection({
      role: 'server', suites: this.suites, retransmitMs: this.options.retransmitMs, firstMessageSeq: hello.message.messageSeq, firstRecordSeq: record.sequence,
      pskFor: (identity) => server.pskFor(identity, peer),
    }, events);
    events.bind(conn);
    this.newSession(key, peer, conn);
    conn.receive(datagram);
  }

  /** Drops handshakes that did not finish in time. */
  private sweep(): void {
    const limit = Date.now() - (this.options.handshakeTimeoutMs ?? 120_000);
    for (const s of [...this.sessions.values()]) {
      if (!s.conn.connected && s.createdAt < limit) s.conn.discard('handshake timed out');
    }
  }
}
