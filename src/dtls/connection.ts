/**
 * One DTLS 1.2 connection with one peer, either role (RFC 6347 over RFC 5246): the handshake —
 * PSK (RFC 4279) and ECDHE_PSK (RFC 5489) key exchange, extended master secret (RFC 7627),
 * abbreviated handshakes that resume a session (RFC 5246 §7.3), connection IDs (RFC 9146) —
 * with messages reassembled in message_seq order and flights retransmitted on a doubling timer
 * (§4.2.4); alerts and close_notify. Records are the record layer's (record-layer.ts).
 *
 * The server side starts at the ClientHello that carried a valid cookie (the channel answers
 * cookieless ones statelessly), so a connection exists only for peers that proved their address.
 */
import { createECDH, KeyObject, timingSafeEqual } from 'crypto';
import {
  CertificateType, encodeCertificate, LocalCertificate, parseCertificate, PeerVerifier, publicKeyOf, signSha256, verifySha256,
} from './certificates';
import { own, random, sha256 } from './crypto';
import {
  ClientHello, EMPTY_RENEGOTIATION_INFO_SCSV, encodeClientHello, encodeConnectionId, encodeEcdhePskClientKeyExchange,
  encodeEcdhePskServerKeyExchange, encodePskIdentity, encodeServerHello, Extension, extensionData, ExtensionType,
  fragmentMessage, handshakeMessage, HandshakeType, hasExtension, parseClientHello, parseConnectionId,
  parseEcdhePskClientKeyExchange, parseEcdhePskServerKeyExchange, parseHandshakeFragments, parseHelloVerifyRequest,
  parsePskIdentity, parseServerHello, SECP256R1, certificateTypesOffered, ECDSA_SHA256, ecdheParams, encodeCertificateRequest,
  encodeDigitallySigned, encodeSignedServerKeyExchange, parseDigitallySigned, parseSignedServerKeyExchange,
} from './messages';
import { RecordLayer } from './record-layer';
import { ContentType, DTLS_1_2 } from './records';
import { deriveKeys, masterSecret, pskPremasterSecret, SUITES, verifyData, CipherSuite } from './suites';
import { Reader, u16, vector } from './wire';

/** An ECDHE ClientKeyExchange (RFC 8422 §5.7): the client's point. */
function parseEcdhPoint(body: Buffer): Buffer {
  return new Reader(body).vector(1);
}

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
  pskFor?: (identity: Buffer) => Buffer | undefined;
  /** Server: a cached session for a ClientHello's session id. */
  sessionFor?: (sessionId: Buffer) => SessionState | undefined;
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
  /** Server: the message_seq of the ClientHello that starts it (1 after a cookie exchange). */
  firstMessageSeq?: number;
  /**
   * Server: the record sequence number of that ClientHello. The stateless HelloVerifyRequest
   * mirrored the first one's; numbering our records from the second one's keeps the client's
   * replay window from taking the ServerHello for a replay of the HelloVerifyRequest.
   */
  firstRecordSeq?: number;
}

/** Handshake bodies above this are refused: PSK handshakes are a few hundred bytes. */
const MAX_HANDSHAKE_MESSAGE = 16 * 1024;
/** How far ahead of the next expected message_seq a fragment may be buffered. */
const MAX_SEQ_AHEAD = 8;
/** Handshake fragment payload per record, to keep datagrams under common MTUs. */
const MAX_FRAGMENT = 1100;
const MAX_DATAGRAM = 1400;
const EMPTY = Buffer.alloc(0);

interface FlightRecord { type: ContentType; epoch: number; payload: Buffer }
interface Reassembly { type: number; body: Buffer; filled: Uint8Array; missing: number }

type State = 'wait-server-hello' | 'wait-server-certificate' | 'wait-server-hello-done' | 'wait-server-finished'
  | 'wait-client-hello' | 'wait-client-certificate' | 'wait-client-key-exchange' | 'wait-certificate-verify' | 'wait-client-finished'
  | 'connected' | 'closed';

export class DtlsConnection {
  private state: State;
  readonly records: RecordLayer;
  private sendSeq = 0;
  private recvSeq = 0;
  private transcript: Buffer[] = [];
  /** Handshake messages being reassembled (created when needed, dropped once established: idle sessions stay small). */
  private reassembly: Map<number, Reassembly> | undefined;
  private flight: FlightRecord[] = [];
  private flightTimer: NodeJS.Timeout | null = null;
  private flightTimeoutMs: number;
  private flightTransmissions = 0;
  private expectFlightReply = false;
  private cookie = Buffer.alloc(0);
  private clientRandom = Buffer.alloc(0);
  private serverRandom = Buffer.alloc(0);
  private sessionId = Buffer.alloc(0);
  private suite?: CipherSuite;
  private extendedMasterSecret = false;
  private master?: Buffer;
  /** An abbreviated handshake: the server sends its Finished first. */
  private resumed = false;
  private ecdh?: ReturnType<typeof createECDH>;
  private peerEcdhPublic?: Buffer;
  /** ECDHE_ECDSA: the certificate types agreed (RFC 7250), the peer's public key, whether ours was asked for. */
  private serverCertType = CertificateType.X509;
  private clientCertType = CertificateType.X509;
  private peerKey?: KeyObject;
  private certificateRequested = false;
  /** The PSK identity: the client's own, or the one a client authenticated with. */
  identity?: Buffer;
  /** The session this connection established, for later resumption (when the server gave it an id). */
  session?: SessionState;
  readonly role: 'client' | 'server';

  constructor(private readonly options: ConnectionOptions, private readonly events: ConnectionEvents) {
    this.role = options.role;
    this.state = options.role === 'client' ? 'wait-server-hello' : 'wait-client-hello';
    this.flightTimeoutMs = options.retransmitMs ?? 1000;
    this.recvSeq = options.firstMessageSeq ?? 0;
    this.records = new RecordLayer(options.firstRecordSeq ?? 0);
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

  // ---- client side ----

  /** Client: sends the first ClientHello. */
  start(): void {
    this.clientRandom = random(32);
    this.sendClientHello();
  }

  private sendClientHello(): void {
    // the suites our credentials can speak: a PSK for the PSK ones, a key for ECDHE_ECDSA
    const suites = this.options.suites.filter((s) => (SUITES[s]?.keyExchange === 'ecdhe_ecdsa' ? this.options.certificate : this.options.psk));
    const extensions: Extension[] = [{ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) }];
    if (suites.some((s) => SUITES[s]?.keyExchange !== 'psk')) {
      extensions.push({ type: ExtensionType.SupportedGroups, data: vector(2, u16(SECP256R1)) });
      extensions.push({ type: ExtensionType.EcPointFormats, data: Buffer.from([1, 0]) });
    }
    if (suites.some((s) => SUITES[s]?.keyExchange === 'ecdhe_ecdsa')) {
      extensions.push({ type: ExtensionType.SignatureAlgorithms, data: vector(2, u16(ECDSA_SHA256)) });
      if (this.options.certificate?.rawPublicKey) {
        extensions.push({ type: ExtensionType.ClientCertificateType, data: vector(1, Buffer.from([CertificateType.RawPublicKey])) });
        extensions.push({ type: ExtensionType.ServerCertificateType, data: vector(1, Buffer.from([CertificateType.RawPublicKey])) });
      }
    }
    if (this.options.offerConnectionId) extensions.push({ type: ExtensionType.ConnectionId, data: encodeConnectionId(Buffer.alloc(0)) });
    const hello: ClientHello = {
      version: DTLS_1_2, random: this.clientRandom, sessionId: this.options.resume?.sessionId ?? Buffer.alloc(0), cookie: this.cookie,
      cipherSuites: [...suites, EMPTY_RENEGOTIATION_INFO_SCSV], compressionMethods: Buffer.from([0]), extensions,
    };
    const message = handshakeMessage(HandshakeType.ClientHello, this.sendSeq++, encodeClientHello(hello));
    this.transcript = [message]; // the first ClientHello and the HelloVerifyRequest are not hashed (§4.2.6)
    this.sendFlight([{ type: ContentType.Handshake, epoch: 0, payload: message }], true);
  }

  // ---- receiving ----

  /**
   * Takes one datagram from the peer; never throws. Returns true when a protected record in it
   * authenticated and was the newest yet (RFC 9146 §6: only then may the peer's address move).
   */
  receive(datagram: Buffer): boolean {
    if (this.closed) return false;
    let advanced = false;
    try {
      this.records.decode(datagram, () => {
        // §4.1.2.7: bad records are dropped, except the peer's first protected record of a
        // handshake: then the keys differ, which for PSK means a wrong key
        if (!this.connected) throw new DtlsAlert(AlertDescription.DecryptError, 'the peer\'s Finished did not authenticate (wrong pre-shared key?)');
      }, (r) => {
        if (r.epoch > 0 && r.newest) advanced = true;
        this.dispatch(r.type, r.epoch, r.plaintext);
        return !this.closed;
      });
    } catch (err) {
      if (err instanceof DtlsAlert) this.fail(err.description, err.message);
      else this.fail(AlertDescription.DecodeError, `malformed handshake: ${(err as Error).message}`);
    }
    return advanced && !this.closed;
  }

  private dispatch(type: number, epoch: number, plaintext: Buffer): void {
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

  private receiveAlert(plaintext: Buffer, epoch: number): void {
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

  private receiveChangeCipherSpec(plaintext: Buffer): void {
    if (plaintext.length !== 1 || plaintext[0] !== 1 || !this.records.readPending) return;
    const expected = this.role === 'server' ? 'wait-client-finished' : 'wait-server-finished';
    if (this.state === expected) this.records.activateRead();
  }

  private receiveHandshake(plaintext: Buffer, epoch: number): void {
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

  private handleMessage(type: number, body: Buffer, whole: Buffer, epoch: number): void {
    const unexpected = () => new DtlsAlert(AlertDescription.UnexpectedMessage, `unexpected handshake message ${type} in state ${this.state}`);
    switch (this.state) {
      case 'wait-client-hello':
        if (type !== HandshakeType.ClientHello) throw unexpected();
        return this.onClientHello(body, whole);
      case 'wait-client-certificate':
        if (type !== HandshakeType.Certificate) throw unexpected();
        this.peerKey = this.acceptPeerCertificate(this.clientCertType, body);
        this.transcript.push(whole);
        this.state = 'wait-client-key-exchange';
        return;
      case 'wait-client-key-exchange':
        if (type !== HandshakeType.ClientKeyExchange) throw unexpected();
        return this.onClientKeyExchange(body, whole);
      case 'wait-certificate-verify': {
        if (type !== HandshakeType.CertificateVerify) throw unexpected();
        const { scheme, signature } = parseDigitallySigned(body);
        if (scheme !== ECDSA_SHA256 || !verifySha256(this.peerKey!, Buffer.concat(this.transcript), signature)) {
          throw new DtlsAlert(AlertDescription.DecryptError, 'the client\'s CertificateVerify does not verify');
        }
        this.transcript.push(whole);
        this.state = 'wait-client-finished';
        return;
      }
      case 'wait-client-finished':
        if (type !== HandshakeType.Finished || epoch === 0) throw unexpected();
        return this.onClientFinished(body, whole);
      case 'wait-server-hello':
        if (type === HandshakeType.HelloVerifyRequest) return this.onHelloVerifyRequest(body);
        if (type !== HandshakeType.ServerHello) throw unexpected();
        return this.onServerHello(body, whole);
      case 'wait-server-certificate':
        if (type !== HandshakeType.Certificate) throw unexpected();
        this.peerKey = this.acceptPeerCertificate(this.serverCertType, body);
        this.transcript.push(whole);
        this.state = 'wait-server-hello-done';
        return;
      case 'wait-server-hello-done':
        if (type === HandshakeType.ServerKeyExchange) {
          this.transcript.push(whole);
          // PSK: an identity hint LwM2M does not use; ECDHE_PSK: also the server's ephemeral key;
          // ECDHE_ECDSA: that key signed with the certificate's
          if (this.suite!.keyExchange === 'ecdhe_psk') this.peerEcdhPublic = Buffer.from(parseEcdhePskServerKeyExchange(body));
          if (this.suite!.keyExchange === 'ecdhe_ecdsa') {
            const ske = parseSignedServerKeyExchange(body);
            const signed = Buffer.concat([this.clientRandom, this.serverRandom, ske.params]);
            if (ske.scheme !== ECDSA_SHA256 || !verifySha256(this.peerKey!, signed, ske.signature)) {
              throw new DtlsAlert(AlertDescription.DecryptError, 'the server\'s key exchange signature does not verify');
            }
            this.peerEcdhPublic = Buffer.from(ske.publicKey);
          }
          return;
        }
        if (type === HandshakeType.CertificateRequest) {
          this.transcript.push(whole);
          this.certificateRequested = true;
          return;
        }
        if (type !== HandshakeType.ServerHelloDone) throw unexpected();
        this.transcript.push(whole);
        return this.sendClientKeyExchange();
      case 'wait-server-finished':
        if (type !== HandshakeType.Finished || epoch === 0) throw unexpected();
        return this.onServerFinished(body, whole);
      default:
        // a renegotiation attempt (HelloRequest, ClientHello on an established connection): refused
        return;
    }
  }

  // ---- server side ----

  private onClientHello(body: Buffer, whole: Buffer): void {
    const hello = parseClientHello(body);
    if (hello.version > DTLS_1_2) throw new DtlsAlert(AlertDescription.ProtocolVersion, 'the client does not offer DTLS 1.2');
    if (!hello.compressionMethods.includes(0)) throw new DtlsAlert(AlertDescription.HandshakeFailure, 'no null compression offered');
    this.clientRandom = Buffer.from(hello.random);
    this.serverRandom = random(32);
    this.transcript = [whole];
    // the server's messages continue the client's message_seq (the cookie exchange was stateless)
    this.sendSeq = this.recvSeq - 1;
    const offersEms = hasExtension(hello.extensions, ExtensionType.ExtendedMasterSecret);
    const cached = hello.sessionId.length > 0 ? this.options.sessionFor?.(hello.sessionId) : undefined;
    // RFC 7627 §5.3: a session made with the extended master secret resumes only with it, and one made without only without
    const resumable = cached && hello.cipherSuites.includes(cached.suite) && cached.extendedMasterSecret === offersEms;
    const suiteId = resumable ? cached.suite : this.options.suites.find((s) => hello.cipherSuites.includes(s) && this.suiteUsable(s, hello));
    if (suiteId === undefined) throw new DtlsAlert(AlertDescription.HandshakeFailure, 'no cipher suite in common');
    this.suite = SUITES[suiteId];
    this.extendedMasterSecret = offersEms;
    const extensions: Extension[] = [];
    if (offersEms) extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) });
    if (hello.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV) || hasExtension(hello.extensions, ExtensionType.RenegotiationInfo)) {
      extensions.push({ type: ExtensionType.RenegotiationInfo, data: Buffer.from([0]) });
    }
    if (this.suite.keyExchange !== 'psk') extensions.push({ type: ExtensionType.EcPointFormats, data: Buffer.from([1, 0]) });
    if (this.suite.keyExchange === 'ecdhe_ecdsa') {
      // RFC 7250: raw public keys when the client offers them and we have them, X.509 otherwise
      const rpk = Boolean(this.options.certificate?.rawPublicKey);
      for (const [ext, field] of [[ExtensionType.ServerCertificateType, 'serverCertType'], [ExtensionType.ClientCertificateType, 'clientCertType']] as const) {
        const offered = extensionData(hello.extensions, ext);
        if (!offered) continue;
        const type = rpk && certificateTypesOffered(offered).includes(CertificateType.RawPublicKey) ? CertificateType.RawPublicKey : CertificateType.X509;
        this[field] = type;
        extensions.push({ type: ext, data: Buffer.from([type]) });
      }
    }
    const offeredCid = extensionData(hello.extensions, ExtensionType.ConnectionId);
    if (offeredCid && this.options.newConnectionId) {
      this.records.peerCid = own(parseConnectionId(offeredCid));
      this.records.ownCid = this.options.newConnectionId();
      extensions.push({ type: ExtensionType.ConnectionId, data: encodeConnectionId(this.records.ownCid) });
    }
    this.sessionId = resumable ? Buffer.from(cached.sessionId) : this.options.sessionFor ? random(32) : Buffer.alloc(0);
    const serverHello = handshakeMessage(HandshakeType.ServerHello, this.sendSeq++, encodeServerHello({
      version: DTLS_1_2, random: this.serverRandom, sessionId: this.sessionId, cipherSuite: suiteId, compressionMethod: 0, extensions,
    }));
    this.transcript.push(serverHello);
    if (resumable) {
      // abbreviated handshake (RFC 5246 §7.3): the cached master secret, new randoms; our Finished first
      this.resumed = true;
      this.identity = own(cached.identity);
      this.master = cached.master;
      this.installKeys();
      const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master, 'server finished', sha256(...this.transcript)));
      this.transcript.push(finished);
      this.state = 'wait-client-finished';
      this.sendFlight([
        { type: ContentType.Handshake, epoch: 0, payload: serverHello },
        { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
        { type: ContentType.Handshake, epoch: 1, payload: finished },
      ], true);
      return;
    }
    const flight: FlightRecord[] = [{ type: ContentType.Handshake, epoch: 0, payload: serverHello }];
    if (this.suite.keyExchange === 'ecdhe_ecdsa') {
      // Certificate, ServerKeyExchange signed over both randoms, CertificateRequest (LwM2M authenticates both ends)
      const local = this.options.certificate!;
      const certificate = handshakeMessage(HandshakeType.Certificate, this.sendSeq++, encodeCertificate(this.serverCertType, local));
      this.ecdh = createECDH('prime256v1');
      this.ecdh.generateKeys();
      const params = ecdheParams(this.ecdh.getPublicKey());
      const signature = signSha256(local.privateKey, Buffer.concat([this.clientRandom, this.serverRandom, params]));
      const ske = handshakeMessage(HandshakeType.ServerKeyExchange, this.sendSeq++, encodeSignedServerKeyExchange(params, signature));
      const request = handshakeMessage(HandshakeType.CertificateRequest, this.sendSeq++, encodeCertificateRequest());
      this.transcript.push(certificate, ske, request);
      flight.push(...[certificate, ske, request].map((payload) => ({ type: ContentType.Handshake, epoch: 0, payload })));
    } else if (this.suite.keyExchange === 'ecdhe_psk') {
      this.ecdh = createECDH('prime256v1');
      this.ecdh.generateKeys();
      const ske = handshakeMessage(HandshakeType.ServerKeyExchange, this.sendSeq++, encodeEcdhePskServerKeyExchange(this.ecdh.getPublicKey()));
      this.transcript.push(ske);
      flight.push({ type: ContentType.Handshake, epoch: 0, payload: ske });
    }
    const done = handshakeMessage(HandshakeType.ServerHelloDone, this.sendSeq++, Buffer.alloc(0));
    this.transcript.push(done);
    flight.push({ type: ContentType.Handshake, epoch: 0, payload: done });
    this.state = this.suite.keyExchange === 'ecdhe_ecdsa' ? 'wait-client-certificate' : 'wait-client-key-exchange';
    this.sendFlight(flight, true);
  }

  /** ECDHE suites need the client to speak secp256r1 (RFC 8422 §5.1); ECDSA ones a certificate of ours. */
  private suiteUsable(suiteId: number, hello: ClientHello): boolean {
    const kx = SUITES[suiteId]?.keyExchange;
    if (kx === 'psk') return Boolean(this.options.pskFor);
    if (kx === 'ecdhe_ecdsa') {
      const local = this.options.certificate;
      if (!local || !this.options.verifyPeer) return false;
      const offered = certificateTypesOffered(extensionData(hello.extensions, ExtensionType.ServerCertificateType));
      const rpkOnly = offered.length > 0 && !offered.includes(CertificateType.X509);
      if (rpkOnly ? !local.rawPublicKey : !local.chain?.length && !(local.rawPublicKey && offered.includes(CertificateType.RawPublicKey))) return false;
    } else if (!this.options.pskFor) {
      return false;
    }
    const groups = extensionData(hello.extensions, ExtensionType.SupportedGroups);
    if (!groups) return true; // no extension: the client accepts any curve (RFC 8422 §4)
    for (let i = 2; i + 1 < groups.length; i += 2) if (groups.readUInt16BE(i) === SECP256R1) return true;
    return false;
  }

  private onClientKeyExchange(body: Buffer, whole: Buffer): void {
    if (this.suite!.keyExchange === 'ecdhe_ecdsa') {
      let shared: Buffer;
      try {
        shared = this.ecdh!.computeSecret(parseEcdhPoint(body));
      } catch {
        throw new DtlsAlert(AlertDescription.IllegalParameter, 'the client\'s ECDH public key is not a P-256 point');
      }
      this.transcript.push(whole);
      this.master = masterSecret(shared, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? sha256(...this.transcript) : undefined);
      this.installKeys();
      this.state = 'wait-certificate-verify';
      this.stopFlightTimer();
      return;
    }
    let identity: Buffer;
    let shared: Buffer | undefined;
    if (this.suite!.keyExchange === 'ecdhe_psk') {
      const cke = parseEcdhePskClientKeyExchange(body);
      identity = cke.identity;
      try {
        shared = this.ecdh!.computeSecret(cke.publicKey);
      } catch {
        throw new DtlsAlert(AlertDescription.IllegalParameter, 'the client\'s ECDH public key is not a P-256 point');
      }
    } else {
      identity = parsePskIdentity(body);
    }
    const psk = this.options.pskFor?.(identity);
    if (!psk) throw new DtlsAlert(AlertDescription.UnknownPskIdentity, 'unknown PSK identity');
    this.identity = own(identity);
    this.transcript.push(whole);
    this.computeMaster(psk, shared);
    this.installKeys();
    this.state = 'wait-client-finished';
    this.stopFlightTimer();
  }

  private onClientFinished(body: Buffer, whole: Buffer): void {
    const expected = verifyData(this.master!, 'client finished', sha256(...this.transcript));
    if (body.length !== 12 || !timingSafeEqual(body, expected)) throw new DtlsAlert(AlertDescription.DecryptError, 'the client\'s Finished does not verify');
    if (this.resumed) {
      // the client's Finished ends an abbreviated handshake: nothing more to send
      this.flight = [];
      this.established();
      return;
    }
    this.transcript.push(whole);
    const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master!, 'server finished', sha256(...this.transcript)));
    this.sendFlight([
      { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
      { type: ContentType.Handshake, epoch: 1, payload: finished },
    ], false);
    this.established();
  }

  // ---- client side, continued ----

  private onHelloVerifyRequest(body: Buffer): void {
    const { cookie } = parseHelloVerifyRequest(body);
    if (cookie.length === 0 || this.cookie.length > 0) throw new DtlsAlert(AlertDescription.IllegalParameter, 'unexpected HelloVerifyRequest');
    this.cookie = Buffer.from(cookie);
    this.sendClientHello();
  }

  private onServerHello(body: Buffer, whole: Buffer): void {
    const hello = parseServerHello(body);
    if (hello.version !== DTLS_1_2) throw new DtlsAlert(AlertDescription.ProtocolVersion, 'the server did not choose DTLS 1.2');
    if (!this.options.suites.includes(hello.cipherSuite) || !SUITES[hello.cipherSuite]) {
      throw new DtlsAlert(AlertDescription.IllegalParameter, 'the server chose a cipher suite that was not offered');
    }
    if (hello.compressionMethod !== 0) throw new DtlsAlert(AlertDescription.IllegalParameter, 'the server chose compression');
    this.suite = SUITES[hello.cipherSuite];
    this.serverRandom = Buffer.from(hello.random);
    this.sessionId = Buffer.from(hello.sessionId);
    this.extendedMasterSecret = hasExtension(hello.extensions, ExtensionType.ExtendedMasterSecret);
    const cid = extensionData(hello.extensions, ExtensionType.ConnectionId);
    if (cid) {
      if (!this.options.offerConnectionId) throw new DtlsAlert(AlertDescription.UnexpectedMessage, 'connection_id was not offered');
      this.records.peerCid = own(parseConnectionId(cid));
    }
    this.transcript.push(whole);
    if (this.suite.keyExchange === 'ecdhe_ecdsa') {
      const serverType = extensionData(hello.extensions, ExtensionType.ServerCertificateType);
      const clientType = extensionData(hello.extensions, ExtensionType.ClientCertificateType);
      if (serverType) this.serverCertType = serverType[0] as CertificateType;
      if (clientType) this.clientCertType = clientType[0] as CertificateType;
    }
    const resume = this.options.resume;
    if (resume && this.sessionId.length > 0 && this.sessionId.equals(resume.sessionId)) {
      if (hello.cipherSuite !== resume.suite || this.extendedMasterSecret !== resume.extendedMasterSecret) {
        throw new DtlsAlert(AlertDescription.IllegalParameter, 'the server resumed with other session parameters');
      }
      this.resumed = true;
      this.identity = own(resume.identity);
      this.master = resume.master;
      this.installKeys();
      this.state = 'wait-server-finished';
      return;
    }
    this.state = this.suite.keyExchange === 'ecdhe_ecdsa' ? 'wait-server-certificate' : 'wait-server-hello-done';
  }

  /** The peer's Certificate: accepted by `verifyPeer` (which names its identity), or a bad_certificate alert. */
  private acceptPeerCertificate(type: CertificateType, body: Buffer): KeyObject {
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

  private sendClientKeyExchange(): void {
    if (this.suite!.keyExchange === 'ecdhe_ecdsa') return this.sendCertificateFlight();
    const identity = this.options.identity ?? Buffer.alloc(0);
    let body: Buffer;
    let shared: Buffer | undefined;
    if (this.suite!.keyExchange === 'ecdhe_psk') {
      if (!this.peerEcdhPublic) throw new DtlsAlert(AlertDescription.UnexpectedMessage, 'ECDHE_PSK without a ServerKeyExchange');
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      try {
        shared = ecdh.computeSecret(this.peerEcdhPublic);
      } catch {
        throw new DtlsAlert(AlertDescription.IllegalParameter, 'the server\'s ECDH public key is not a P-256 point');
      }
      body = encodeEcdhePskClientKeyExchange(identity, ecdh.getPublicKey());
    } else {
      body = encodePskIdentity(identity);
    }
    const cke = handshakeMessage(HandshakeType.ClientKeyExchange, this.sendSeq++, body);
    this.transcript.push(cke);
    this.identity = this.options.identity;
    this.computeMaster(this.options.psk ?? Buffer.alloc(0), shared);
    this.installKeys();
    const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master!, 'client finished', sha256(...this.transcript)));
    this.transcript.push(finished);
    this.state = 'wait-server-finished';
    this.sendFlight([
      { type: ContentType.Handshake, epoch: 0, payload: cke },
      { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
      { type: ContentType.Handshake, epoch: 1, payload: finished },
    ], true);
  }

  /** ECDHE_ECDSA client flight: Certificate (when asked), ClientKeyExchange, CertificateVerify, ChangeCipherSpec, Finished. */
  private sendCertificateFlight(): void {
    const local = this.options.certificate;
    if (!this.peerEcdhPublic) throw new DtlsAlert(AlertDescription.UnexpectedMessage, 'ECDHE_ECDSA without a ServerKeyExchange');
    const flight: FlightRecord[] = [];
    const push = (type: HandshakeType, body: Buffer) => {
      const message = handshakeMessage(type, this.sendSeq++, body);
      this.transcript.push(message);
      flight.push({ type: ContentType.Handshake, epoch: 0, payload: message });
      return message;
    };
    if (this.certificateRequested) {
      push(HandshakeType.Certificate, local ? encodeCertificate(this.clientCertType, local) : Buffer.from([0, 0, 0]));
    }
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    let shared: Buffer;
    try {
      shared = ecdh.computeSecret(this.peerEcdhPublic);
    } catch {
      throw new DtlsAlert(AlertDescription.IllegalParameter, 'the server\'s ECDH public key is not a P-256 point');
    }
    push(HandshakeType.ClientKeyExchange, vector(1, ecdh.getPublicKey()));
    this.master = masterSecret(shared, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? sha256(...this.transcript) : undefined);
    this.installKeys();
    if (this.certificateRequested && local) {
      push(HandshakeType.CertificateVerify, encodeDigitallySigned(signSha256(local.privateKey, Buffer.concat(this.transcript))));
    }
    const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master, 'client finished', sha256(...this.transcript)));
    this.transcript.push(finished);
    flight.push({ type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) }, { type: ContentType.Handshake, epoch: 1, payload: finished });
    this.state = 'wait-server-finished';
    this.sendFlight(flight, true);
  }

  private onServerFinished(body: Buffer, whole: Buffer): void {
    const expected = verifyData(this.master!, 'server finished', sha256(...this.transcript));
    if (body.length !== 12 || !timingSafeEqual(body, expected)) throw new DtlsAlert(AlertDescription.DecryptError, 'the server\'s Finished does not verify');
    if (this.resumed) {
      // abbreviated: our CCS and Finished end it; resent if the server repeats its flight
      this.transcript.push(whole);
      const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master!, 'client finished', sha256(...this.transcript)));
      this.sendFlight([
        { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
        { type: ContentType.Handshake, epoch: 1, payload: finished },
      ], false);
    } else {
      this.flight = [];
    }
    this.established();
  }

  // ---- both ----

  private computeMaster(psk: Buffer, ecdhShared?: Buffer): void {
    const premaster = pskPremasterSecret(psk, ecdhShared);
    this.master = masterSecret(premaster, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? sha256(...this.transcript) : undefined);
  }

  private installKeys(): void {
    const keys = deriveKeys(this.suite!, this.master!, this.clientRandom, this.serverRandom);
    this.records.setPending(this.role === 'client' ? keys.serverWrite : keys.clientWrite, this.role === 'client' ? keys.clientWrite : keys.serverWrite);
  }

  private established(): void {
    this.state = 'connected';
    this.stopFlightTimer();
    if (this.sessionId.length > 0 && this.master && this.identity) {
      this.session = {
        sessionId: own(this.sessionId), master: own(this.master), suite: this.suite!.id, extendedMasterSecret: this.extendedMasterSecret, identity: this.identity,
      };
    }
    // what only the handshake needed goes: an idle session keeps its keys, windows and identity
    this.transcript = [];
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

  private sendFlight(records: FlightRecord[], expectReply: boolean): void {
    this.flight = records;
    this.expectFlightReply = expectReply;
    this.flightTransmissions = 0;
    this.flightTimeoutMs = this.options.retransmitMs ?? 1000;
    this.transmitFlight();
  }

  private transmitFlight(): void {
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

  private onFlightTimeout(): void {
    this.flightTimer = null;
    if (this.closed || this.connected) return;
    if (this.flightTransmissions >= (this.options.maxFlightTransmissions ?? 7)) {
      this.end('handshake timed out');
      return;
    }
    this.flightTimeoutMs = Math.min(this.flightTimeoutMs * 2, this.options.maxRetransmitMs ?? 60_000);
    this.transmitFlight();
  }

  private stopFlightTimer(): void {
    if (this.flightTimer) clearTimeout(this.flightTimer);
    this.flightTimer = null;
  }

  private sendAlert(level: 1 | 2, description: AlertDescription): void {
    this.events.send(this.records.encode(ContentType.Alert, this.records.writeEpoch, Buffer.from([level, description])));
  }

  /** A fatal error of ours: tell the peer, then end. */
  private fail(description: AlertDescription, reason: string): void {
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

  private end(reason: string, alert?: AlertDescription): void {
    if (this.closed) return;
    this.state = 'closed';
    this.stopFlightTimer();
    this.flight = [];
    this.transcript = [];
    this.reassembly = undefined;
    this.events.closed(reason, alert);
  }
}
