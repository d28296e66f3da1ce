/**
 * DTLS sessions as a datagram channel (the interface the CoAP message layer runs on): one
 * connection per peer over a lower channel (a UDP socket). As a server it answers ClientHellos
 * (cookie exchange first, no state before it), resumes cached sessions, hands out connection IDs
 * and follows a peer whose address changed (NAT rebinding) when its record carries a known CID.
 * As a client it opens a session the first time the layer above sends to a peer it has
 * credentials for, resuming the last one when it can. Datagrams reach the layer above with the
 * peer's authenticated identity; nothing else does.
 */
import { EventEmitter } from 'events';
import type { DatagramChannel, Peer } from '../lwm2m/coap/channel';
import { peerKey } from '../lwm2m/coap/peers';
import { ClientConnection } from './client-connection';
import { AlertDescription, ConnectionEvents, ConnectionOptions, DtlsConnection, SessionState } from './connection';
import { ServerConnection } from './server-connection';
import { random } from './crypto';
import type { LocalCertificate, PeerVerifier } from './certificates';
import { CookieJar } from './cookie';
import { encodeHelloVerifyRequest, handshakeMessage, HandshakeType, scanClientHello } from './messages';
import { ContentType, DTLS_1_0, DTLS_1_2, recordHeader } from './records';
import { DEFAULT_SUITES } from './suites';

export interface PskCredentials {
  identity: Buffer;
  key: Buffer;
}

/** ECDHE_ECDSA: our key with its chain or raw public key, and what decides whether the peer's is trusted. */
export interface CertificateCredentials {
  certificate: LocalCertificate;
  verifyPeer: PeerVerifier;
}

export interface DtlsChannelOptions {
  /**
   * Accept handshakes: the key of a PSK identity a client presents (undefined: unknown identity);
   * with `certificate` and `verifyPeer`, also TLS_ECDHE_ECDSA (X.509 or raw public keys).
   */
  server?: { pskFor?(identity: Buffer, peer: Peer): Buffer | undefined; certificate?: LocalCertificate; verifyPeer?: PeerVerifier };
  /** Open handshakes: the credentials for a peer this side sends to (undefined: none, the datagram is dropped). */
  client?: { credentialsFor(peer: Peer): PskCredentials | CertificateCredentials | undefined };
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
  /** Server: sessions kept for resumption (abbreviated handshakes). Default 100,000; 0 turns resumption off. */
  maxCachedSessions?: number;
  /** Server: hand out connection IDs of this many bytes to clients that offer the extension (RFC 9146). 0: none. Default 6. */
  connectionIdLength?: number;
}

/** A peer as the layer above sees it: its address and, over DTLS, the identity it proved. */
export type SecurePeer = Peer;

export interface HandshakeEvent {
  peer: Peer;
  identity?: string;
  cipherSuite?: string;
  /** The session was resumed (abbreviated handshake). */
  resumed?: boolean;
  reason?: string;
  alert?: AlertDescription;
}

/** A session that followed its peer to a new address (connection ID, RFC 9146 §6). */
export interface PeerMovedEvent {
  from: Peer;
  to: Peer;
  identity?: string;
}

/** What a session asks of its channel (one object per channel, so a session holds no closures). */
interface SessionOwner {
  send(session: Session, datagram: Buffer): void;
  connected(session: Session): void;
  data(session: Session, plaintext: Buffer): void;
  closed(session: Session, reason: string, alert?: AlertDescription): void;
}

/** One peer's connection as the channel keeps it; the connection's events come back through it. */
class Session implements ConnectionEvents {
  conn!: DtlsConnection;
  /** Datagrams from above waiting for the handshake (none once established). */
  queue: Buffer[] | undefined = [];
  readonly createdAt = Date.now();
  cid?: string;

  constructor(private readonly owner: SessionOwner, public key: string, readonly peer: SecurePeer) {}

  send(datagram: Buffer): void {
    this.owner.send(this, datagram);
  }

  connected(): void {
    this.owner.connected(this);
  }

  data(plaintext: Buffer): void {
    this.owner.data(this, plaintext);
  }

  closed(reason: string, alert?: AlertDescription): void {
    this.owner.closed(this, reason, alert);
  }
}

function identityText(identity: Buffer | undefined): string | undefined {
  return identity?.toString('utf8');
}

export class DtlsChannel extends EventEmitter implements DatagramChannel {
  private readonly sessions = new Map<string, Session>();
  private readonly byCid = new Map<string, Session>();
  /** Server: established sessions by session id, for resumption (insertion order = age). */
  private readonly cache = new Map<string, SessionState>();
  /** Client: the last session with each peer, for resumption. */
  private readonly resumable = new Map<string, SessionState>();
  private readonly cookies = new CookieJar();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly suites: number[];
  private readonly cidLength: number;
  private readonly owner: SessionOwner;
  /** What every server connection is made with (shared: an idle session holds no options of its own). */
  private readonly serverOptions?: ConnectionOptions;

  constructor(private readonly lower: DatagramChannel, private readonly options: DtlsChannelOptions) {
    super();
    this.suites = options.suites ?? DEFAULT_SUITES;
    this.cidLength = options.connectionIdLength ?? 6;
    this.owner = {
      send: (session, datagram) => this.lower.send(datagram, session.peer),
      connected: (session) => this.connected(session),
      data: (session, plaintext) => {
        if (this.sessions.get(session.key) === session) this.emit('datagram', plaintext, session.peer);
      },
      closed: (session, reason, alert) => this.closed(session, reason, alert),
    };
    const server = options.server;
    if (server) {
      this.serverOptions = {
        role: 'server', suites: this.suites, retransmitMs: options.retransmitMs,
        pskFor: server.pskFor?.bind(server),
        certificate: server.certificate,
        verifyPeer: server.verifyPeer,
        sessionFor: (options.maxCachedSessions ?? 100_000) > 0 ? (id, peer) => this.resumableSession(id, peer) : undefined,
        newConnectionId: this.cidLength > 0 ? () => this.newConnectionId() : undefined,
      };
    }
  }

  get open(): boolean {
    return this.lower.open;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The session with a peer: its identity and cipher suite. */
  session(peer: Peer): { identity?: string; cipherSuite?: string; connected: boolean; resumed: boolean } | undefined {
    const s = this.sessions.get(peerKey(peer));
    return s && { identity: identityText(s.conn.identity), cipherSuite: s.conn.cipherSuite, connected: s.conn.connected, resumed: s.conn.wasResumed };
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
    this.closeSessions();
    this.cache.clear();
    this.resumable.clear();
    this.lower.removeAllListeners('datagram');
    await this.lower.stop();
  }

  address(): Peer {
    return this.lower.address();
  }

  /**
   * Ends every session, with close_notify unless `silently` (as a device that reboots); the next
   * datagram to a peer starts a new handshake.
   */
  closeSessions(silently = false): void {
    for (const s of [...this.sessions.values()]) {
      if (silently) s.conn.discard('closed');
      else s.conn.close();
    }
    this.sessions.clear();
    this.byCid.clear();
  }

  send(datagram: Buffer, peer: Peer): void {
    const key = peerKey(peer);
    const s = this.sessions.get(key);
    if (s?.conn.connected) {
      s.conn.send(datagram);
      return;
    }
    if (s) {
      if (s.queue && s.queue.length < (this.options.maxQueuedPerPeer ?? 16)) s.queue.push(datagram);
      return;
    }
    const credentials = this.options.client?.credentialsFor(peer);
    if (!credentials) {
      if (this.options.plaintextWithoutCredentials) this.lower.send(datagram, peer);
      else this.emit('dropped', 'no DTLS session with this peer', peer);
      return;
    }
    // resume the last session with this peer, if it was made with the same PSK identity
    const psk = 'key' in credentials ? credentials : undefined;
    const last = this.resumable.get(key);
    const resume = last && psk && last.identity.equals(psk.identity) ? last : undefined;
    const session = this.newSession(key, peer, (events) => new ClientConnection({
      role: 'client', suites: this.suites, retransmitMs: this.options.retransmitMs, resume, offerConnectionId: true,
      ...(psk ? { identity: psk.identity, psk: psk.key } : { certificate: (credentials as CertificateCredentials).certificate, verifyPeer: (credentials as CertificateCredentials).verifyPeer }),
    }, events));
    session.queue?.push(datagram);
    (session.conn as ClientConnection).start();
  }

  private newSession(key: string, peer: Peer, make: (session: Session) => DtlsConnection): Session {
    const old = this.sessions.get(key);
    if (old) this.drop(old, 'replaced by a new handshake');
    while (this.sessions.size >= (this.options.maxSessions ?? 100_000)) {
      const oldest = this.sessions.values().next().value as Session;
      this.drop(oldest, 'session table full');
    }
    const session = new Session(this.owner, key, { address: peer.address, port: peer.port });
    session.conn = make(session);
    this.sessions.set(key, session);
    return session;
  }

  private drop(session: Session, reason: string): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.cid && this.byCid.get(session.cid) === session) this.byCid.delete(session.cid);
    session.conn.discard(reason);
  }

  private connected(session: Session): void {
    if (this.sessions.get(session.key) !== session) return;
    const conn = session.conn;
    session.peer.identity = identityText(conn.identity);
    const ownCid = conn.records.ownCid;
    if (ownCid && ownCid.length > 0) {
      session.cid = ownCid.toString('hex');
      this.byCid.set(session.cid, session);
    }
    if (conn.session) {
      if (conn.role === 'server') this.remember(conn.session);
      else {
        this.resumable.delete(session.key);
        if (this.resumable.size >= (this.options.maxCachedSessions ?? 100_000)) this.resumable.delete(this.resumable.keys().next().value as string);
        this.resumable.set(session.key, conn.session);
      }
      conn.session = undefined; // the cache has it: an idle session does not keep a second reference
    }
    this.emit('handshake', { peer: { address: session.peer.address, port: session.peer.port }, identity: session.peer.identity, cipherSuite: conn.cipherSuite, resumed: conn.wasResumed } satisfies HandshakeEvent);
    const queued = session.queue ?? [];
    session.queue = undefined;
    for (const d of queued) conn.send(d);
  }

  private closed(session: Session, reason: string, alert?: AlertDescription): void {
    const wasConnected = session.peer.identity !== undefined;
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.cid && this.byCid.get(session.cid) === session) this.byCid.delete(session.cid);
    // a session a fatal alert ended is not resumed (RFC 5246 §7.2.2)
    if (alert !== undefined && alert !== AlertDescription.CloseNotify) this.resumable.delete(session.key);
    if (reason === 'replaced by a new handshake') return;
    const event: HandshakeEvent = { peer: { address: session.peer.address, port: session.peer.port }, identity: identityText(session.conn.identity), reason, alert };
    this.emit(wasConnected ? 'sessionClosed' : 'handshakeFailed', event);
  }

  private remember(state: SessionState): void {
    const max = this.options.maxCachedSessions ?? 100_000;
    if (max <= 0) return;
    const id = state.sessionId.toString('hex');
    this.cache.delete(id);
    while (this.cache.size >= max) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(id, state);
  }

  private receive(datagram: Buffer, peer: Peer): void {
    const key = peerKey(peer);
    // a ClientHello in epoch 0: type 22, epoch bytes 3–4 zero, handshake type 1
    if (this.options.server && datagram.length > 25 && datagram[0] === ContentType.Handshake && datagram[3] === 0 && datagram[4] === 0
      && datagram[13] === HandshakeType.ClientHello) {
      this.clientHello(datagram, peer, key);
      return;
    }
    let s = this.sessions.get(key);
    if (!s && datagram[0] === ContentType.Tls12Cid && this.cidLength > 0 && datagram.length >= 13 + this.cidLength) {
      // a record with one of our connection IDs from an address we do not know: its peer moved
      s = this.byCid.get(datagram.subarray(11, 11 + this.cidLength).toString('hex'));
      if (s) this.receiveMoved(s, datagram, peer);
      return;
    }
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

  /**
   * RFC 9146 §6: a record with one of our CIDs from a new address moves its session there when it
   * authenticates and is the newest yet. The session is tried at the new address while the record
   * is processed (so an answer to it goes there), and put back when the record does not qualify —
   * a replayed or forged record never moves a session.
   */
  private receiveMoved(session: Session, datagram: Buffer, to: Peer): void {
    const from = { address: session.peer.address, port: session.peer.port };
    this.relocate(session, to);
    if (session.conn.receive(datagram)) {
      this.emit('peerMoved', { from, to: { address: to.address, port: to.port }, identity: session.peer.identity } satisfies PeerMovedEvent);
    } else if (!session.conn.closed) {
      this.relocate(session, from);
    }
  }

  private relocate(session: Session, to: Peer): void {
    const key = peerKey(to);
    const there = this.sessions.get(key);
    if (there && there !== session) this.drop(there, 'replaced by a moved session');
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    session.key = key;
    session.peer.address = to.address;
    session.peer.port = to.port;
    this.sessions.set(key, session);
  }

  private clientHello(datagram: Buffer, peer: Peer, key: string): void {
    const hello = scanClientHello(datagram); // a fragmented ClientHello is not served
    if (!hello) {
      this.emit('dropped', 'malformed ClientHello', peer);
      return;
    }
    const existing = this.sessions.get(key);
    if (existing && existing.conn.role === 'server' && !existing.conn.connected && existing.conn.helloRandom.equals(hello.random)) {
      existing.conn.receive(datagram); // a retransmitted ClientHello of the handshake under way
      return;
    }
    if (!this.cookies.valid(hello.cookie, peer.address, peer.port, hello.withoutCookie)) {
      // §4.2.1: stateless; the record sequence number mirrors the ClientHello's
      const hvr = handshakeMessage(HandshakeType.HelloVerifyRequest, hello.messageSeq,
        encodeHelloVerifyRequest(DTLS_1_0, this.cookies.cookie(peer.address, peer.port, hello.withoutCookie)));
      this.lower.send(Buffer.concat([recordHeader(ContentType.Handshake, DTLS_1_2, 0, hello.recordSequence, hvr.length), hvr]), peer);
      return;
    }
    const session = this.newSession(key, peer, (s) => new ServerConnection(this.serverOptions!, s, s.peer, hello));
    (session.conn as ServerConnection).start(hello);
  }

  /** A cached session, if its PSK identity still has a key (credentials removed since cannot be resumed). */
  private resumableSession(sessionId: Buffer, peer: Peer): SessionState | undefined {
    const state = this.cache.get(sessionId.toString('hex'));
    if (!state) return undefined;
    const certificateSession = state.identity.toString('utf8').startsWith('x509:') || state.identity.toString('utf8').startsWith('rpk:');
    if (!certificateSession && !this.options.server?.pskFor?.(state.identity, peer)) return undefined;
    return state;
  }

  private newConnectionId(): Buffer {
    for (;;) {
      const cid = random(this.cidLength);
      if (!this.byCid.has(cid.toString('hex'))) return cid;
    }
  }

  /** Drops handshakes that did not finish in time. */
  private sweep(): void {
    const limit = Date.now() - (this.options.handshakeTimeoutMs ?? 120_000);
    for (const s of [...this.sessions.values()]) {
      if (!s.conn.connected && s.createdAt < limit) s.conn.discard('handshake timed out');
    }
  }
}
