/**
 * One DTLS 1.2 connection with one peer (RFC 6347 over RFC 5246): what both roles share —
 * handshake messages reassembled in message_seq order and handed to the role's state machine
 * (server-connection.ts, client-connection.ts), flights retransmitted on a doubling timer
 * (§4.2.4), the master secret (extended, RFC 7627) and keys, the peer's certificate checked,
 * alerts and close_notify. Records are the record layer's (record-layer.ts).
 */
import { createECDH, KeyObject, timingSafeEqual } from 'crypto';
import type { Peer } from '../lwm2m/coap/channel';
import { CertificateType, LocalCertificate, parseCertificate, PeerVerifier, publicKeyOf } from './certificates';
import { own, sha256 } from './crypto';
import { fragmentMessage, HANDSHAKE_HEADER, handshakeMessage, HandshakeType, parseHandshakeFragments } from './messages';
import { OpenedRecord, RecordLayer, RecordSink } from './record-layer';
import { ContentType } from './records';
import { deriveKeys, masterSecret, verifyData, CipherSuite } from './suites';

export const enum AlertDescription {
  CloseNotify = 0, UnexpectedMessage = 10, BadRecordMac = 20, HandshakeFailure = 40, BadCertificate = 42, IllegalParameter = 47,
  DecodeError = 50, DecryptError = 51, ProtocolVersion = 70, InternalError = 80, UnknownPskIdentity = 115,
}

export class DtlsAlert extends Error {
  constructor(readonly description: AlertDescription, message: string) {
    super(message);
  }
}

/** What a later handshake needs to resume a session without a new key exchange. */
export interface SessionState {
  sessionId: Buffer;
  master: Buffer;
  suite: number;
  extendedMasterSecret: boolean;
  identity: Buffer;
}

export interface ConnectionEvents {
  /** Sends one datagram to the peer. */
  send(datagram: Buffer): void;
  connected(): void;
  data(plaintext: Buffer): void;
  /** Ended: closed by either side, a fatal alert either way, or the handshake timed out. */
  closed(reason: string, alert?: AlertDescription): void;
}

export interface ConnectionOptions {
  role: 'client' | 'server';
  /** Cipher suites in preference order. */
  suites: number[];
  /** Client: the identity and key it authenticates with. */
  identity?: Buffer;
  psk?: Buffer;
  /** Client: a session to resume (its id goes in the ClientHello). */
  resume?: SessionState;
  /** Client: offer the connection_id extension (we take no CID ourselves, the server may give one). */
  offerConnectionId?: boolean;
  /** Server: the key of an identity, or undefined for an unknown one. */
  pskFor?: (identity: Buffer, peer: Peer) => Buffer | undefined;
  /** Server: a cached session for a ClientHello's session id. */
  sessionFor?: (sessionId: Buffer, peer: Peer) => SessionState | undefined;
  /** Server: a new CID for a client that offers the extension (undefined: CIDs not used). */
  newConnectionId?: () => Buffer;
  /** ECDHE_ECDSA: our key and certificate chain or raw public key (server: required for the suite; client: to answer a CertificateRequest). */
  certificate?: LocalCertificate;
  /** ECDHE_ECDSA: accepts the peer's certificate chain or raw public key, and names its identity. */
  verifyPeer?: PeerVerifier;
  /** First retransmission timeout (1 s, §4.2.4.1), doubled up to `maxRetransmitMs`. */
  retransmitMs?: number;
  maxRetransmitMs?: number;
  /** Flights sent before the handshake is given up. */
  maxFlightTransmissions?: number;
}

/** Handshake bodies above this are refused: PSK handshakes are a few hundred bytes. */
const MAX_HANDSHAKE_MESSAGE = 16 * 1024;
/** How far ahead of the next expected message_seq a fragment may be buffered. */
const MAX_SEQ_AHEAD = 8;
/** Handshake fragment payload per record, to keep datagrams under common MTUs. */
const MAX_FRAGMENT = 1100;
const MAX_DATAGRAM = 1400;
const EMPTY = Buffer.alloc(0);

export interface FlightRecord { type: ContentType; epoch: number; payload: Buffer }
interface Reassembly { type: number; body: Buffer; filled: Uint8Array; missing: number }

type State = 'wait-server-hello' | 'wait-server-certificate' | 'wait-server-hello-done' | 'wait-server-finished'
  | 'wait-client-hello' | 'wait-client-certificate' | 'wait-client-key-exchange' | 'wait-certificate-verify' | 'wait-client-finished'
  | 'connected' | 'closed';

export abstract class DtlsConnection implements RecordSink {
  protected state: State;
  readonly records: RecordLayer;
  protected sendSeq = 0;
  protected recvSeq = 0;
  protected transcript: Buffer[] = [];
  /** receive(): a record of the datagram authenticated and was the newest yet. */
  private advanced = false;
  private lastHash?: { of: Buffer[]; count: number; hash: Buffer };
  /** Handshake messages being reassembled (created when needed, dropped once established: idle sessions stay small). */
  protected reassembly: Map<number, Reassembly> | undefined;
  protected flight: FlightRecord[] = [];
  protected flightTimer: NodeJS.Timeout | null = null;
  protected flightTimeoutMs: number;
  protected flightTransmissions = 0;
  protected expectFlightReply = false;
  protected cookie = Buffer.alloc(0);
  protected clientRandom = Buffer.alloc(0);
  protected serverRandom = Buffer.alloc(0);
  protected sessionId = Buffer.alloc(0);
  protected suite?: CipherSuite;
  protected extendedMasterSecret = false;
  protected master?: Buffer;
  /** An abbreviated handshake: the server sends its Finished first. */
  protected resumed = false;
  protected ecdh?: ReturnType<typeof createECDH>;
  protected peerEcdhPublic?: Buffer;
  /** ECDHE_ECDSA: the certificate types agreed (RFC 7250), the peer's public key, whether ours was asked for. */
  protected serverCertType = CertificateType.X509;
  protected clientCertType = CertificateType.X509;
  protected peerKey?: KeyObject;
  protected certificateRequested = false;
  /** The PSK identity: the client's own, or the one a client authenticated with. */
  identity?: Buffer;
  /** The session this connection established, for later resumption (when the server gave it an id). */
  session?: SessionState;
  readonly role: 'client' | 'server';

  /**
   * `firstMessageSeq` and `firstRecordSeq`: where a server continues after a cookie exchange (the
   * next message_seq expected, and the ClientHello's record sequence number: the stateless
   * HelloVerifyRequest mirrored the first one's, and numbering our records from the second one's
   * keeps the client's replay window from taking the ServerHello for a replay of it).
   */
  constructor(protected readonly options: ConnectionOptions, protected readonly events: ConnectionEvents, firstMessageSeq = 0, firstRecordSeq = 0) {
    this.role = options.role;
    this.state = options.role === 'client' ? 'wait-server-hello' : 'wait-client-hello';
    this.flightTimeoutMs = options.retransmitMs ?? 1000;
    this.recvSeq = firstMessageSeq;
    this.records = new RecordLayer(firstRecordSeq);
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  get cipherSuite(): string | undefined {
    return this.suite?.name;
  }

  /** Whether the handshake resumed a session (no key exchange). */
  get wasResumed(): boolean {
    return this.resumed;
  }

  /** The client random of the handshake under way (a retransmitted ClientHello carries the same one). */
  get helloRandom(): Buffer {
    return this.clientRandom;
  }

  // ---- receiving ----

  /**
   * Takes one datagram from the peer; never throws. Returns true when a protected record in it
   * authenticated and was the newest yet (RFC 9146 §6: only then may the peer's address move).
   */
  receive(datagram: Buffer): boolean {
    if (this.closed) return false;
    this.advanced = false;
    try {
      this.records.decode(datagram, this);
    } catch (err) {
      this.failWith(err);
    }
    return this.advanced && !this.closed;
  }

  /** RecordSink: a protected record that did not authenticate. */
  badRecord(): void {
    // §4.1.2.7: bad records are dropped, except the peer's first protected record of a
    // handshake: then the keys differ, which for PSK means a wrong key
    if (!this.connected) throw new DtlsAlert(AlertDescription.DecryptError, 'the peer\'s Finished did not authenticate (wrong pre-shared key?)');
  }

  /** RecordSink: a record that authenticated; false stops the datagram's other records. */
  record(r: OpenedRecord): boolean {
    if (r.epoch > 0 && r.newest) this.advanced = true;
    this.dispatch(r.type, r.epoch, r.plaintext);
    return !this.closed;
  }

  /** What a step of the handshake threw ends the connection with the matching alert. */
  protected failWith(err: unknown): void {
    if (err instanceof DtlsAlert) this.fail(err.description, err.message);
    else this.fail(AlertDescription.DecodeError, `malformed handshake: ${(err as Error).message}`);
  }

  protected dispatch(type: number, epoch: number, plaintext: Buffer): void {
    switch (type) {
      case ContentType.Handshake: return this.receiveHandshake(plaintext, epoch);
      case ContentType.ChangeCipherSpec: return this.receiveChangeCipherSpec(plaintext);
      case ContentType.Alert: return this.receiveAlert(plaintext, epoch);
      case ContentType.ApplicationData:
        if (this.connected && epoch > 0) {
          if (!this.expectFlightReply) this.flight = []; // the peer has our last flight: no more retransmissions
          this.events.data(plaintext);
        }
        return;
      default: return;
    }
  }

  protected receiveAlert(plaintext: Buffer, epoch: number): void {
    if (plaintext.length < 2) return;
    // unauthenticated alerts could be forged by anyone on the path: ignored once keys are in use
    if (epoch === 0 && this.records.readEpoch > 0) return;
    const [level, description] = plaintext;
    if (description === AlertDescription.CloseNotify) {
      if (this.connected) this.sendAlert(1, AlertDescription.CloseNotify);
      this.end('closed by the peer', description);
    } else if (level === 2) {
      this.end(`fatal alert ${description} from the peer`, description);
    }
  }

  protected receiveChangeCipherSpec(plaintext: Buffer): void {
    if (plaintext.length !== 1 || plaintext[0] !== 1 || !this.records.readPending) return;
    const expected = this.role === 'server' ? 'wait-client-finished' : 'wait-server-finished';
    if (this.state === expected) this.records.activateRead();
  }

  protected receiveHandshake(plaintext: Buffer, epoch: number): void {
    if (this.receiveWholeMessage(plaintext, epoch)) return;
    for (const f of parseHandshakeFragments(plaintext)) {
      if (f.messageSeq < this.recvSeq) {
        // the peer retransmits a flight we answered: our answer was lost (§4.2.4)
        if (f.fragmentOffset === 0 && this.flight.length > 0 && !this.expectFlightReply) this.transmitFlight();
        continue;
      }
      if (f.messageSeq > this.recvSeq + MAX_SEQ_AHEAD) continue;
      if (f.length > MAX_HANDSHAKE_MESSAGE) throw new DtlsAlert(AlertDescription.IllegalParameter, 'handshake message too large');
      if (this.connected) continue; // a renegotiation attempt: refused (not reassembled)
      this.reassembly ??= new Map();
      let entry = this.reassembly.get(f.messageSeq);
      if (!entry) {
        entry = { type: f.type, body: Buffer.alloc(f.length), filled: new Uint8Array(f.length), missing: f.length };
        this.reassembly.set(f.messageSeq, entry);
      }
      if (entry.type !== f.type || entry.body.length !== f.length || f.fragmentOffset + f.body.length > f.length) {
        throw new DtlsAlert(AlertDescription.IllegalParameter, 'inconsistent handshake fragments');
      }
      for (let i = 0; i < f.body.length; i++) {
        const at = f.fragmentOffset + i;
        if (!entry.filled[at]) {
          entry.filled[at] = 1;
          entry.body[at] = f.body[i];
          entry.missing--;
        }
      }
    }
    for (let entry = this.reassembly?.get(this.recvSeq); entry && entry.missing === 0; entry = this.reassembly?.get(this.recvSeq)) {
      this.reassembly!.delete(this.recvSeq);
      const seq = this.recvSeq++;
      this.handleMessage(entry.type, entry.body, handshakeMessage(entry.type, seq, entry.body), epoch);
      if (this.closed) return;
    }
  }

  /**
   * The common case without reassembly: the record holds exactly the next message, unfragmented
   * (the message bytes are then its transcript form as they are). False: take the general path.
   */
  private receiveWholeMessage(plaintext: Buffer, epoch: number): boolean {
    if (plaintext.length < HANDSHAKE_HEADER || this.connected || this.reassembly?.size) return false;
    const length = plaintext.readUIntBE(1, 3);
    if (plaintext.length !== HANDSHAKE_HEADER + length || plaintext.readUInt16BE(4) !== this.recvSeq
      || plaintext.readUIntBE(6, 3) !== 0 || plaintext.readUIntBE(9, 3) !== length) return false;
    if (length > MAX_HANDSHAKE_MESSAGE) throw new DtlsAlert(AlertDescription.IllegalParameter, 'handshake message too large');
    this.recvSeq++;
    this.handleMessage(plaintext[0], plaintext.subarray(HANDSHAKE_HEADER), plaintext, epoch);
    return true;
  }

  /** The next complete handshake message in message_seq order, for the role's state machine. */
  protected abstract handleMessage(type: number, body: Buffer, whole: Buffer, epoch: number): void;

  /** The peer's Certificate: accepted by `verifyPeer` (which names its identity), or a bad_certificate alert. */
  protected acceptPeerCertificate(type: CertificateType, body: Buffer): KeyObject {
    const credential = parseCertificate(type, body);
    let key: KeyObject;
    try {
      key = publicKeyOf(credential);
    } catch {
      throw new DtlsAlert(AlertDescription.BadCertificate, 'the peer sent no usable certificate or key');
    }
    if (key.asymmetricKeyType !== 'ec') throw new DtlsAlert(AlertDescription.BadCertificate, 'the peer\'s key is not an EC key');
    const identity = this.options.verifyPeer?.(credential);
    if (!identity) throw new DtlsAlert(AlertDescription.BadCertificate, 'the peer\'s certificate or key is not trusted');
    // the identity a session reports: the one the peer proved (PSK sessions report the PSK identity on both sides)
    this.identity = Buffer.from(identity);
    return key;
  }

  // ---- both ----

  /**
   * The hash of the transcript so far. A PSK server needs the same one twice (the session hash of
   * the extended master secret and the client's Finished cover the same messages): hashed once.
   */
  protected transcriptHash(): Buffer {
    const last = this.lastHash;
    if (last && last.of === this.transcript && last.count === this.transcript.length) return last.hash;
    const hash = sha256(...this.transcript);
    this.lastHash = { of: this.transcript, count: this.transcript.length, hash };
    return hash;
  }

  /** The master secret from a premaster secret (the session hash covers the transcript so far, RFC 7627). */
  protected computeMaster(premaster: Buffer): void {
    this.master = masterSecret(premaster, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? this.transcriptHash() : undefined);
  }

  /** The ECDH shared secret with the peer's point; an illegal_parameter alert when it is not a P-256 point. */
  protected ecdhSecret(ecdh: ReturnType<typeof createECDH>, point: Buffer): Buffer {
    try {
      return ecdh.computeSecret(point);
    } catch {
      throw new DtlsAlert(AlertDescription.IllegalParameter, `the ${this.role === 'server' ? 'client' : 'server'}'s ECDH public key is not a P-256 point`);
    }
  }

  /** Our Finished over the transcript so far (RFC 5246 §7.4.9), added to it. */
  protected finishedMessage(): Buffer {
    const label = this.role === 'server' ? 'server finished' : 'client finished';
    const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master!, label, this.transcriptHash()));
    this.transcript.push(finished);
    return finished;
  }

  /** Checks the peer's Finished over the transcript before it; a decrypt_error alert when it does not verify. */
  protected checkFinished(body: Buffer): void {
    const peer = this.role === 'server' ? 'client' : 'server';
    const expected = verifyData(this.master!, `${peer} finished`, this.transcriptHash());
    if (body.length !== 12 || !timingSafeEqual(body, expected)) throw new DtlsAlert(AlertDescription.DecryptError, `the ${peer}'s Finished does not verify`);
  }

  protected installKeys(): void {
    const keys = deriveKeys(this.suite!, this.master!, this.clientRandom, this.serverRandom);
    this.records.setPending(this.role === 'client' ? keys.serverWrite : keys.clientWrite, this.role === 'client' ? keys.clientWrite : keys.serverWrite);
  }

  protected established(): void {
    this.state = 'connected';
    this.stopFlightTimer();
    if (this.sessionId.length > 0 && this.master && this.identity) {
      // id and master secret share one allocation: a cached session is ~100 bytes of secrets
      const both = own(Buffer.concat([this.sessionId, this.master]));
      this.session = {
        sessionId: both.subarray(0, this.sessionId.length), master: both.subarray(this.sessionId.length), suite: this.suite!.id,
        extendedMasterSecret: this.extendedMasterSecret, identity: this.identity,
      };
    }
    // what only the handshake needed goes: an idle session keeps its keys, windows and identity
    this.transcript = [];
    this.lastHash = undefined;
    this.reassembly = undefined;
    this.ecdh = undefined;
    this.peerEcdhPublic = undefined;
    this.cookie = EMPTY;
    this.clientRandom = EMPTY;
    this.serverRandom = EMPTY;
    this.sessionId = EMPTY;
    this.master = undefined;
    this.events.connected();
  }

  /** Sends application data; false when the connection is not established. */
  send(plaintext: Buffer): boolean {
    if (!this.connected) return false;
    this.events.send(this.records.encode(ContentType.ApplicationData, this.records.writeEpoch, plaintext));
    return true;
  }

  protected sendFlight(records: FlightRecord[], expectReply: boolean): void {
    this.flight = records;
    this.expectFlightReply = expectReply;
    this.flightTransmissions = 0;
    this.flightTimeoutMs = this.options.retransmitMs ?? 1000;
    this.transmitFlight();
  }

  protected transmitFlight(): void {
    if (this.closed) return;
    this.flightTransmissions++;
    const datagrams: Buffer[] = [];
    let current: Buffer[] = [];
    let size = 0;
    for (const r of this.flight) {
      if (r.type === ContentType.ChangeCipherSpec) this.records.activateWrite();
      const pieces = r.type === ContentType.Handshake ? fragmentMessage(r.payload, MAX_FRAGMENT) : [r.payload];
      for (const piece of pieces) {
        const record = this.records.encode(r.type, r.epoch, piece);
        if (size + record.length > MAX_DATAGRAM && current.length > 0) {
          datagrams.push(Buffer.concat(current));
          current = [];
          size = 0;
        }
        current.push(record);
        size += record.length;
      }
    }
    if (current.length) datagrams.push(Buffer.concat(current));
    for (const d of datagrams) this.events.send(d);
    this.stopFlightTimer();
    if (!this.expectFlightReply) return;
    this.flightTimer = setTimeout(() => this.onFlightTimeout(), this.flightTimeoutMs);
    this.flightTimer.unref?.();
  }

  protected onFlightTimeout(): void {
    this.flightTimer = null;
    if (this.closed || this.connected) return;
    if (this.flightTransmissions >= (this.options.maxFlightTransmissions ?? 7)) {
      this.end('handshake timed out');
      return;
    }
    this.flightTimeoutMs = Math.min(this.flightTimeoutMs * 2, this.options.maxRetransmitMs ?? 60_000);
    this.transmitFlight();
  }

  protected stopFlightTimer(): void {
    if (this.flightTimer) clearTimeout(this.flightTimer);
    this.flightTimer = null;
  }

  protected sendAlert(level: 1 | 2, description: AlertDescription): void {
    this.events.send(this.records.encode(ContentType.Alert, this.records.writeEpoch, Buffer.from([level, description])));
  }

  /** A fatal error of ours: tell the peer, then end. */
  protected fail(description: AlertDescription, reason: string): void {
    if (this.closed) return;
    this.sendAlert(2, description);
    this.end(reason, description);
  }

  /** Ends the connection without a word to the peer (it started a new handshake, or is gone). */
  discard(reason: string): void {
    this.end(reason);
  }

  /** Sends close_notify (when established) and ends the connection. */
  close(): void {
    if (this.closed) return;
    if (this.connected) this.sendAlert(1, AlertDescription.CloseNotify);
    this.end('closed');
  }

  protected end(reason: string, alert?: AlertDescription): void {
    if (this.closed) return;
    this.state = 'closed';
    this.stopFlightTimer();
    this.records.dispose();
    this.flight = [];
    this.transcript = [];
    this.reassembly = undefined;
    this.events.closed(reason, alert);
  }
}
