/**
 * The client side of a DTLS 1.2 handshake (connection.ts has what both roles share): the
 * ClientHello (again with the cookie), the server's hello, certificate and key exchange, our key
 * exchange flight — PSK, ECDHE_PSK or ECDHE_ECDSA with our certificate — and resumption.
 */
import { createECDH } from 'crypto';
import { CertificateType, encodeCertificate, signSha256, verifySha256 } from './certificates';
import { own, random } from './crypto';
import { AlertDescription, DtlsAlert, DtlsConnection, FlightRecord } from './connection';
import {
  ClientHello, ECDSA_SHA256, EMPTY_RENEGOTIATION_INFO_SCSV, encodeClientHello, encodeConnectionId, encodeDigitallySigned,
  encodeEcdhePskClientKeyExchange, encodePskIdentity, Extension, extensionData, ExtensionType, handshakeMessage, HandshakeType,
  hasExtension, parseConnectionId, parseEcdhePskServerKeyExchange, parseHelloVerifyRequest, parseServerHello,
  parseSignedServerKeyExchange, SECP256R1,
} from './messages';
import { ContentType, DTLS_1_2 } from './records';
import { pskPremasterSecret, SUITES } from './suites';
import { u16, vector } from './wire';

export class ClientConnection extends DtlsConnection {


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


  protected override handleMessage(type: number, body: Buffer, whole: Buffer, epoch: number): void {
    const unexpected = () => new DtlsAlert(AlertDescription.UnexpectedMessage, `unexpected handshake message ${type} in state ${this.state}`);
    switch (this.state) {
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

  private sendClientKeyExchange(): void {
    if (this.suite!.keyExchange === 'ecdhe_ecdsa') return this.sendCertificateFlight();
    const identity = this.options.identity ?? Buffer.alloc(0);
    let body: Buffer;
    let shared: Buffer | undefined;
    if (this.suite!.keyExchange === 'ecdhe_psk') {
      if (!this.peerEcdhPublic) throw new DtlsAlert(AlertDescription.UnexpectedMessage, 'ECDHE_PSK without a ServerKeyExchange');
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      shared = this.ecdhSecret(ecdh, this.peerEcdhPublic);
      body = encodeEcdhePskClientKeyExchange(identity, ecdh.getPublicKey());
    } else {
      body = encodePskIdentity(identity);
    }
    const cke = handshakeMessage(HandshakeType.ClientKeyExchange, this.sendSeq++, body);
    this.transcript.push(cke);
    this.identity = this.options.identity;
    this.computeMaster(pskPremasterSecret(this.options.psk ?? Buffer.alloc(0), shared));
    this.installKeys();
    const finished = this.finishedMessage();
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
    const shared = this.ecdhSecret(ecdh, this.peerEcdhPublic);
    push(HandshakeType.ClientKeyExchange, vector(1, ecdh.getPublicKey()));
    this.computeMaster(shared); // ECDHE_ECDSA: the premaster secret is the ECDH secret itself
    this.installKeys();
    if (this.certificateRequested && local) {
      push(HandshakeType.CertificateVerify, encodeDigitallySigned(signSha256(local.privateKey, Buffer.concat(this.transcript))));
    }
    const finished = this.finishedMessage();
    flight.push({ type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) }, { type: ContentType.Handshake, epoch: 1, payload: finished });
    this.state = 'wait-server-finished';
    this.sendFlight(flight, true);
  }

  private onServerFinished(body: Buffer, whole: Buffer): void {
    this.checkFinished(body);
    if (this.resumed) {
      // abbreviated: our CCS and Finished end it; resent if the server repeats its flight
      this.transcript.push(whole);
      const finished = this.finishedMessage();
      this.sendFlight([
        { type: ContentType.ChangeCipherSpec, epoch: 0, payload: Buffer.from([1]) },
        { type: ContentType.Handshake, epoch: 1, payload: finished },
      ], false);
    } else {
      this.flight = [];
    }
    this.established();
  }

}
