/**
 * One DTLS 1.2 connection with one peer, either role (RFC 6347 over RFC 5246, PSK key exchange
 * of RFC 4279, extended master secret of RFC 7627): record protection per epoch with the
 * anti-replay window, handshake messages reassembled from fragments in message_seq order,
 * flights retransmitted on a doubling timer (§4.2.4), alerts and close_notify.
 *
 * The server side starts at the ClientHello that carried a valid cookie (the channel answers
 * cookieless ones statelessly), so a connection exists only for peers that proved their address.
 */
import { randomBytes, timingSafeEqual } from 'crypto';
import { sha256, RecordProtection } from './crypto';
import {
  ClientHello, EMPTY_RENEGOTIATION_INFO_SCSV, encodeClientHello, encodePskIdentity, encodeServerHello, ExtensionType,
  fragmentMessage, handshakeMessage, HandshakeType, hasExtension, parseClientHello,
  parseHandshakeFragments, parseHelloVerifyRequest, parsePskIdentity, parseServerHello,
} from './messages';
import { ContentType, DTLS_1_2, parseRecords, recordHeader, ReplayWindow, sequenceBytes } from './records';
import { deriveKeys, masterSecret, pskPremasterSecret, SUITES, verifyData, CipherSuite } from './suites';

export const enum AlertDescription {
  CloseNotify = 0, UnexpectedMessage = 10, BadRecordMac = 20, HandshakeFailure = 40, IllegalParameter = 47,
  DecodeError = 50, DecryptError = 51, ProtocolVersion = 70, InternalError = 80, UnknownPskIdentity = 115,
}

export class DtlsAlert extends Error {
  constructor(readonly description: AlertDescription, message: string) {
    super(message);
  }
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
  /** Server: the key of an identity, or undefined for an unknown one. */
  pskFor?: (identity: Buffer) => Buffer | undefined;
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

interface WriteState { protection: RecordProtection | null; sequence: number }
interface ReadState { protection: RecordProtection | null; window: ReplayWindow }
interface FlightRecord { type: ContentType; epoch: number; payload: Buffer }
interface Reassembly { type: number; body: Buffer; filled: Uint8Array; missing: number }

type State = 'wait-server-hello' | 'wait-server-hello-done' | 'wait-server-finished'
  | 'wait-client-hello' | 'wait-client-key-exchange' | 'wait-client-finished' | 'connected' | 'closed';

export class DtlsConnection {
  private state: State;
  private readonly writes: WriteState[] = [{ protection: null, sequence: 0 }];
  private readonly reads: ReadState[] = [{ protection: null, window: new ReplayWindow() }];
  private writeEpoch = 0;
  private readEpoch = 0;
  private pendingRead: RecordProtection | null = null;
  private pendingWrite: RecordProtection | null = null;
  private sendSeq = 0;
  private recvSeq = 0;
  private transcript: Buffer[] = [];
  private readonly reassembly = new Map<number, Reassembly>();
  private flight: FlightRecord[] = [];
  private flightTimer: NodeJS.Timeout | null = null;
  private flightTimeoutMs: number;
  private flightTransmissions = 0;
  private expectFlightReply = false;
  private cookie = Buffer.alloc(0);
  private clientRandom = Buffer.alloc(0);
  private serverRandom = Buffer.alloc(0);
  private suite?: CipherSuite;
  private extendedMasterSecret = false;
  private master?: Buffer;
  /** The PSK identity: the client's own, or the one a client authenticated with. */
  identity?: Buffer;
  readonly role: 'client' | 'server';

  constructor(private readonly options: ConnectionOptions, private readonly events: ConnectionEvents) {
    this.role = options.role;
    this.state = options.role === 'client' ? 'wait-server-hello' : 'wait-client-hello';
    this.flightTimeoutMs = options.retransmitMs ?? 1000;
    this.recvSeq = options.firstMessageSeq ?? 0;
    this.writes[0].sequence = options.firstRecordSeq ?? 0;
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

  /** The client random of the handshake under way (a retransmitted ClientHello carries the same one). */
  get helloRandom(): Buffer {
    return this.clientRandom;
  }

  // ---- client side ----

  /** Client: sends the first ClientHello. */
  start(): void {
    this.clientRandom = randomBytes(32);
    this.sendClientHello();
  }

  private sendClientHello(): void {
    const hello: ClientHello = {
      version: DTLS_1_2, random: this.clientRandom, sessionId: Buffer.alloc(0), cookie: this.cookie,
      cipherSuites: [...this.options.suites, EMPTY_RENEGOTIATION_INFO_SCSV], compressionMethods: Buffer.from([0]),
      extensions: [{ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) }],
    };
    const message = handshakeMessage(HandshakeType.ClientHello, this.sendSeq++, encodeClientHello(hello));
    this.transcript = [message]; // the first ClientHello and the HelloVerifyRequest are not hashed (§4.2.6)
    this.sendFlight([{ type: ContentType.Handshake, epoch: 0, payload: message }], true);
  }

  // ---- receiving ----

  /** Takes one datagram from the peer; never throws. */
  receive(datagram: Buffer): void {
    if (this.state === 'closed') return;
    try {
      for (const record of parseRecords(datagram)) {
        if (this.closed) return;
        this.receiveRecord(record.type, record.epoch, record.sequence, record.fragment);
      }
    } catch (err) {
      if (err instanceof DtlsAlert) this.fail(err.description, err.message);
      else this.fail(AlertDescription.DecodeError, `malformed handshake: ${(err as Error).message}`);
    }
  }

  private receiveRecord(type: number, epoch: number, sequence: number, fragment: Buffer): void {
    const read = this.reads[epoch];
    // the current epoch, or epoch 0 handshake retransmissions from a peer that missed our last flight
    if (!read || (epoch !== this.readEpoch && !(epoch === 0 && type === ContentType.Handshake))) return;
    if (!read.window.fresh(sequence)) return;
    let plaintext = fragment;
    if (read.protection) {
      const opened = read.protection.open(sequenceBytes(epoch, sequence), Buffer.from([type, 0xfe, 0xfd]), fragment);
      if (!opened) {
        // §4.1.2.7: bad records are dropped, except the peer's first protected record of a
        // handshake: then the keys differ, which for PSK means a wrong key
        if (!this.connected) throw new DtlsAlert(AlertDescription.DecryptError, 'the peer\'s Finished did not authenticate (wrong pre-shared key?)');
        return;
      }
      plaintext = opened;
    }
    read.window.mark(sequence);
    switch (type) {
      case ContentType.Handshake: return this.receiveHandshake(plaintext, epoch);
      case ContentType.ChangeCipherSpec: return this.receiveChangeCipherSpec(plaintext);
      case ContentType.Alert: return this.receiveAlert(plaintext, epoch);
      case ContentType.ApplicationData:
        if (this.connected && epoch > 0) {
          if (this.role === 'server') this.flight = []; // the client has our Finished: no more retransmissions
          this.events.data(plaintext);
        }
        return;
      default: return;
    }
  }

  private receiveAlert(plaintext: Buffer, epoch: number): void {
    if (plaintext.length < 2) return;
    // unauthenticated alerts could be forged by anyone on the path: ignored once keys are in use
    if (epoch === 0 && this.readEpoch > 0) return;
    const [level, description] = plaintext;
    if (description === AlertDescription.CloseNotify) {
      if (this.connected) this.sendAlert(1, AlertDescription.CloseNotify);
      this.end('closed by the peer', description);
    } else if (level === 2) {
      this.end(`fatal alert ${description} from the peer`, description);
    }
  }

  private receiveChangeCipherSpec(plaintext: Buffer): void {
    if (plaintext.length !== 1 || plaintext[0] !== 1 || !this.pendingRead) return;
    const expected = this.role === 'server' ? 'wait-client-finished' : 'wait-server-finished';
    if (this.state !== expected) return;
    this.readEpoch++;
    this.reads[this.readEpoch] = { protection: this.pendingRead, window: new ReplayWindow() };
    this.pendingRead = null;
  }

  private receiveHandshake(plaintext: Buffer, epoch: number): void {
    for (const f of parseHandshakeFragments(plaintext)) {
      if (f.messageSeq < this.recvSeq) {
        // the peer retransmits a flight we answered: our answer was lost (§4.2.4)
        if (f.fragmentOffset === 0 && this.flight.length > 0 && !this.expectFlightReply) this.resendFlight();
        continue;
      }
      if (f.messageSeq > this.recvSeq + MAX_SEQ_AHEAD) continue;
      if (f.length > MAX_HANDSHAKE_MESSAGE) throw new DtlsAlert(AlertDescription.IllegalParameter, 'handshake message too large');
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
    for (let entry = this.reassembly.get(this.recvSeq); entry && entry.missing === 0; entry = this.reassembly.get(this.recvSeq)) {
      this.reassembly.delete(this.recvSeq);
      const seq = this.recvSeq++;
      this.handleMessage(entry.type, entry.body, handshakeMessage(entry.type, seq, entry.body), epoch);
      if (this.state === 'closed') return;
    }
  }

  private handleMessage(type: number, body: Buffer, whole: Buffer, epoch: number): void {
    const unexpected = () => new DtlsAlert(AlertDescription.UnexpectedMessage, `unexpected handshake message ${type} in state ${this.state}`);
    switch (this.state) {
      case 'wait-client-hello':
        if (type !== HandshakeType.ClientHello) throw unexpected();
        return this.onClientHello(body, whole);
      case 'wait-client-key-exchange':
        if (type !== HandshakeType.ClientKeyExchange) throw unexpected();
        return this.onClientKeyExchange(body, whole);
      case 'wait-client-finished':
        if (type !== HandshakeType.Finished || epoch === 0) throw unexpected();
        return this.onClientFinished(body, whole);
      case 'wait-server-hello':
        if (type === HandshakeType.HelloVerifyRequest) return this.onHelloVerifyRequest(body);
        if (type !== HandshakeType.ServerHello) throw unexpected();
        return this.onServerHello(body, whole);
      case 'wait-server-hello-done':
        if (type === HandshakeType.ServerKeyExchange) {
          this.transcript.push(whole); // a PSK identity hint: LwM2M does not use it
          return;
        }
        if (type !== HandshakeType.ServerHelloDone) throw unexpected();
        this.transcript.push(whole);
        return this.sendClientKeyExchange();
      case 'wait-server-finished':
        if (type !== HandshakeType.Finished || epoch === 0) throw unexpected();
        return this.onServerFinished(body);
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
    const suiteId = this.options.suites.find((s) => hello.cipherSuites.includes(s));
    if (suiteId === undefined) throw new DtlsAlert(AlertDescription.HandshakeFailure, 'no cipher suite in common');
    this.suite = SUITES[suiteId];
    this.clientRandom = Buffer.from(hello.random);
    this.serverRandom = randomBytes(32);
    this.extendedMasterSecret = hasExtension(hello.extensions, ExtensionType.ExtendedMasterSecret);
    const extensions = [];
    if (this.extendedMasterSecret) extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: Buffer.alloc(0) });
    if (hello.cipherSuites.includes(EMPTY_RENEGOTIATION_INFO_SCSV) || hasExtension(hello.extensions, ExtensionType.RenegotiationInfo)) {
      extensions.push({ type: ExtensionType.RenegotiationInfo, data: Buffer.from([0]) });
    }
    this.transcript = [whole];
    // the server's messages continue the client's message_seq (the cookie exchange was stateless)
    this.sendSeq = this.recvSeq - 1;
    const serverHello = handshakeMessage(HandshakeType.ServerHello, this.sendSeq++, encodeServerHello({
      version: DTLS_1_2, random: this.serverRandom, sessionId: Buffer.alloc(0), cipherSuite: suiteId, compressionMethod: 0, extensions,
    }));
    const done = handshakeMessage(HandshakeType.ServerHelloDone, this.sendSeq++, Buffer.alloc(0));
    this.transcript.push(serverHello, done);
    this.state = 'wait-client-key-exchange';
    this.sendFlight([
      { type: ContentType.Handshake, epoch: 0, payload: serverHello },
      { type: ContentType.Handshake, epoch: 0, payload: done },
    ], true);
  }

  private onClientKeyExchange(body: Buffer, whole: Buffer): void {
    const identity = parsePskIdentity(body);
    const psk = this.options.pskFor?.(identity);
    if (!psk) throw new DtlsAlert(AlertDescription.UnknownPskIdentity, 'unknown PSK identity');
    this.identity = Buffer.from(identity);
    this.transcript.push(whole);
    this.computeKeys(psk);
    this.state = 'wait-client-finished';
    this.stopFlightTimer();
  }

  private onClientFinished(body: Buffer, whole: Buffer): void {
    const expected = verifyData(this.master!, 'client finished', sha256(...this.transcript));
    if (body.length !== 12 || !timingSafeEqual(body, expected)) throw new DtlsAlert(AlertDescription.DecryptError, 'the client\'s Finished does not verify');
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
    this.extendedMasterSecret = hasExtension(hello.extensions, ExtensionType.ExtendedMasterSecret);
    this.transcript.push(whole);
    this.state = 'wait-server-hello-done';
  }

  private sendClientKeyExchange(): void {
    const cke = handshakeMessage(HandshakeType.ClientKeyExchange, this.sendSeq++, encodePskIdentity(this.options.identity ?? Buffer.alloc(0)));
    this.transcript.push(cke);
    this.identity = this.options.identity;
    this.computeKeys(this.options.psk ?? Buffer.alloc(0));
    const finished = handshakeMessage(HandshakeType.Finished, this.sendSeq++, verifyData(this.master!, 'client finished', sha256(...this.transcript)));
    this.transcript.push(finished);
    this.state = 'wait-server-finished';
    this.sendFlight([
      { type: ContentType.Handshake, epoch: 0, payload: cke },
      { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
      { type: ContentType.Handshake, epoch: 1, payload: finished },
    ], true);
  }

  private onServerFinished(body: Buffer): void {
    const expected = verifyData(this.master!, 'server finished', sha256(...this.transcript));
    if (body.length !== 12 || !timingSafeEqual(body, expected)) throw new DtlsAlert(AlertDescription.DecryptError, 'the server\'s Finished does not verify');
    this.flight = [];
    this.established();
  }

  // ---- both ----

  private computeKeys(psk: Buffer): void {
    const premaster = pskPremasterSecret(psk);
    this.master = masterSecret(premaster, this.clientRandom, this.serverRandom, this.extendedMasterSecret ? sha256(...this.transcript) : undefined);
    const keys = deriveKeys(this.suite!, this.master, this.clientRandom, this.serverRandom);
    this.pendingWrite = this.role === 'client' ? keys.clientWrite : keys.serverWrite;
    this.pendingRead = this.role === 'client' ? keys.serverWrite : keys.clientWrite;
    this.writes[1] = { protection: this.pendingWrite, sequence: 0 };
  }

  private established(): void {
    this.state = 'connected';
    this.stopFlightTimer();
    this.transcript = [];
    this.reassembly.clear();
    this.master = undefined; // no resumption yet: the master secret is not kept
    this.events.connected();
  }

  /** Sends application data; false when the connection is not established. */
  send(plaintext: Buffer): boolean {
    if (!this.connected) return false;
    this.events.send(this.encodeRecord(ContentType.ApplicationData, this.writeEpoch, plaintext));
    return true;
  }

  private encodeRecord(type: ContentType, epoch: number, plaintext: Buffer): Buffer {
    const state = this.writes[epoch];
    const sequence = state.sequence++;
    const fragment = state.protection ? state.protection.seal(sequenceBytes(epoch, sequence), Buffer.from([type, 0xfe, 0xfd]), plaintext) : plaintext;
    return Buffer.concat([recordHeader(type, DTLS_1_2, epoch, sequence, fragment.length), fragment]);
  }

  private sendFlight(records: FlightRecord[], expectReply: boolean): void {
    this.flight = records;
    this.expectFlightReply = expectReply;
    this.flightTransmissions = 0;
    this.flightTimeoutMs = this.options.retransmitMs ?? 1000;
    this.transmitFlight();
  }

  private transmitFlight(): void {
    this.flightTransmissions++;
    const datagrams: Buffer[] = [];
    let current: Buffer[] = [];
    let size = 0;
    for (const r of this.flight) {
      if (r.type === ContentType.ChangeCipherSpec) this.writeEpoch = Math.max(this.writeEpoch, 1);
      const pieces = r.type === ContentType.Handshake ? fragmentMessage(r.payload, MAX_FRAGMENT) : [r.payload];
      for (const piece of pieces) {
        const record = this.encodeRecord(r.type, r.epoch, piece);
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

  private resendFlight(): void {
    if (this.state === 'closed') return;
    this.transmitFlight();
  }

  private onFlightTimeout(): void {
    this.flightTimer = null;
    if (this.state === 'closed' || this.connected) return;
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
    this.events.send(this.encodeRecord(ContentType.Alert, this.writeEpoch, Buffer.from([level, description])));
  }

  /** A fatal error of ours: tell the peer, then end. */
  private fail(description: AlertDescription, reason: string): void {
    if (this.state === 'closed') return;
    this.sendAlert(2, description);
    this.end(reason, description);
  }

  /** Ends the connection without a word to the peer (it started a new handshake, or is gone). */
  discard(reason: string): void {
    this.end(reason);
  }

  /** Sends close_notify (when established) and ends the connection. */
  close(): void {
    if (this.state === 'closed') return;
    if (this.connected) this.sendAlert(1, AlertDescription.CloseNotify);
    this.end('closed');
  }

  private end(reason: string, alert?: AlertDescription): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopFlightTimer();
    this.flight = [];
    this.transcript = [];
    this.reassembly.clear();
    this.events.closed(reason, alert);
  }
}

