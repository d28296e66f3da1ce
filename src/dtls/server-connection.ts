/**
 * The server side of a DTLS 1.2 handshake (connection.ts has what both roles share): the
 * ClientHello that carried a valid cookie, the suite and certificate types chosen, full and
 * abbreviated (resumed) flights, the client's key exchange, certificate and Finished.
 */
import { createECDH } from 'crypto';
import { CertificateType, encodeCertificate, signSha256, verifySha256 } from './certificates';
import { own, random } from './crypto';
import type { Peer } from '../lwm2m/coap/channel';
import { AlertDescription, ConnectionEvents, ConnectionOptions, DtlsAlert, DtlsConnection, FlightRecord } from './connection';
import {
  ClientHello, ClientHelloDatagram, certificateTypesOffered, ECDSA_SHA256, ecdheParams, EMPTY_RENEGOTIATION_INFO_SCSV, encodeCertificateRequest,
  encodeConnectionId, encodeEcdhePskServerKeyExchange, encodeServerHello, encodeSignedServerKeyExchange, Extension, extensionData,
  ExtensionType, handshakeMessage, HandshakeType, hasExtension, parseClientHello, parseConnectionId, parseDigitallySigned,
  parseEcdhePskClientKeyExchange, parsePskIdentity, SECP256R1,
} from './messages';
import { ContentType, DTLS_1_2 } from './records';
import { pskPremasterSecret, SUITES } from './suites';
import { Reader } from './wire';

/** An ECDHE ClientKeyExchange (RFC 8422 §5.7): the client's point. */
function parseEcdhPoint(body: Buffer): Buffer {
  return new Reader(body).vector(1);
}

export class ServerConnection extends DtlsConnection {
  /** `hello`: the ClientHello that came back with a valid cookie (the channel checked it). */
  constructor(options: ConnectionOptions, events: ConnectionEvents, private readonly peer: Peer, hello: ClientHelloDatagram) {
    super(options, events, hello.messageSeq + 1, hello.recordSequence);
  }

  /** Answers that ClientHello; never throws (a bad one ends the connection with an alert). */
  start(hello: ClientHelloDatagram): void {
    try {
      this.onClientHello(parseClientHello(hello.body), hello.message);
    } catch (err) {
      this.failWith(err);
    }
  }

  protected override handleMessage(type: number, body: Buffer, whole: Buffer, epoch: number): void {
    const unexpected = () => new DtlsAlert(AlertDescription.UnexpectedMessage, `unexpected handshake message ${type} in state ${this.state}`);
    switch (this.state) {
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
      default:
        // a renegotiation attempt (HelloRequest, ClientHello on an established connection): refused
        return;
    }
  }

  private onClientHello(hello: ClientHello, whole: Buffer): void {
    if (hello.version > DTLS_1_2) throw new DtlsAlert(AlertDescription.ProtocolVersion, 'the client does not offer DTLS 1.2');
    if (!hello.compressionMethods.includes(0)) throw new DtlsAlert(AlertDescription.HandshakeFailure, 'no null compression offered');
    this.clientRandom = Buffer.from(hello.random);
    this.serverRandom = random(32);
    this.transcript = [whole];
    // the server's messages continue the client's message_seq (the cookie exchange was stateless)
    this.sendSeq = this.recvSeq - 1;
    const offersEms = hasExtension(hello.extensions, ExtensionType.ExtendedMasterSecret);
    const cached = hello.sessionId.length > 0 ? this.options.sessionFor?.(hello.sessionId, this.peer) : undefined;
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
      const peerCid = parseConnectionId(offeredCid);
      this.records.peerCid = peerCid.length > 0 ? own(peerCid) : undefined; // none asked for: records to it carry none
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
      const finished = this.finishedMessage();
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
      const shared = this.ecdhSecret(this.ecdh!, parseEcdhPoint(body));
      this.transcript.push(whole);
      this.computeMaster(shared); // ECDHE_ECDSA: the premaster secret is the ECDH secret itself
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
      shared = this.ecdhSecret(this.ecdh!, cke.publicKey);
    } else {
      identity = parsePskIdentity(body);
    }
    const psk = this.options.pskFor?.(identity, this.peer);
    if (!psk) throw new DtlsAlert(AlertDescription.UnknownPskIdentity, 'unknown PSK identity');
    this.identity = own(identity);
    this.transcript.push(whole);
    this.computeMaster(pskPremasterSecret(psk, shared));
    this.installKeys();
    this.state = 'wait-client-finished';
    this.stopFlightTimer();
  }

  private onClientFinished(body: Buffer, whole: Buffer): void {
    this.checkFinished(body);
    if (this.resumed) {
      // the client's Finished ends an abbreviated handshake: nothing more to send
      this.flight = [];
      this.established();
      return;
    }
    this.transcript.push(whole);
    const finished = this.finishedMessage();
    this.sendFlight([
      { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
      { type: ContentType.Handshake, epoch: 1, payload: finished },
    ], false);
    this.established();
  }

}
