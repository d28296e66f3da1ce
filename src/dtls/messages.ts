/**
 * DTLS 1.2 handshake messages (RFC 6347 §4.2, RFC 5246 §7.4, RFC 4279 for PSK): the 12-byte
 * handshake header with fragment fields, and the bodies this implementation sends and reads.
 */
import { Reader, u16, u24, u8, vector } from './wire';

export const enum HandshakeType {
  HelloRequest = 0, ClientHello = 1, ServerHello = 2, HelloVerifyRequest = 3, Certificate = 11, ServerKeyExchange = 12,
  CertificateRequest = 13, ServerHelloDone = 14, CertificateVerify = 15, ClientKeyExchange = 16, Finished = 20,
}

export const enum ExtensionType {
  SupportedGroups = 10, EcPointFormats = 11, SignatureAlgorithms = 13, ClientCertificateType = 19, ServerCertificateType = 20,
  EncryptThenMac = 22, ExtendedMasterSecret = 23, ConnectionId = 54, RenegotiationInfo = 0xff01,
}

/** ecdsa_secp256r1_sha256 (hash sha256 = 4, signature ecdsa = 3): the one signature scheme spoken here. */
export const ECDSA_SHA256 = 0x0403;

/** secp256r1, the one curve spoken here (RFC 8422 named_curve 23). */
export const SECP256R1 = 23;

/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV: a client's way of saying it renegotiates securely (RFC 5746). */
export const EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;

export const HANDSHAKE_HEADER = 12;

export interface HandshakeFragment {
  type: number;
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  body: Buffer;
}

export function parseHandshakeFragments(fragment: Buffer): HandshakeFragment[] {
  const out: HandshakeFragment[] = [];
  const r = new Reader(fragment);
  while (r.left > 0) {
    const type = r.u8();
    const length = r.u24();
    const messageSeq = r.u16();
    const fragmentOffset = r.u24();
    const body = r.vector(3);
    out.push({ type, length, messageSeq, fragmentOffset, body });
  }
  return out;
}

/** A whole handshake message as one fragment (also its form in the Finished hash, §4.2.6). */
export function handshakeMessage(type: number, messageSeq: number, body: Buffer): Buffer {
  const message = Buffer.allocUnsafe(HANDSHAKE_HEADER + body.length);
  message[0] = type;
  message.writeUIntBE(body.length, 1, 3);
  message.writeUInt16BE(messageSeq, 4);
  message.writeUIntBE(0, 6, 3);
  message.writeUIntBE(body.length, 9, 3);
  body.copy(message, HANDSHAKE_HEADER);
  return message;
}

/** Splits a whole handshake message into fragments that fit `maxBody` bytes each. */
export function fragmentMessage(message: Buffer, maxBody: number): Buffer[] {
  const body = message.subarray(HANDSHAKE_HEADER);
  if (body.length <= maxBody) return [message];
  const out: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += maxBody) {
    const part = body.subarray(offset, offset + maxBody);
    out.push(Buffer.concat([message.subarray(0, 6), u24(offset), u24(part.length), part]));
  }
  return out;
}

export interface Extension {
  type: number;
  data: Buffer;
}

function parseExtensions(r: Reader): Extension[] {
  if (r.left === 0) return [];
  const block = new Reader(r.vector(2));
  const out: Extension[] = [];
  while (block.left > 0) out.push({ type: block.u16(), data: block.vector(2) });
  return out;
}

function extensionsLength(extensions: Extension[]): number {
  let n = extensions.length > 0 ? 2 : 0;
  for (const e of extensions) n += 4 + e.data.length;
  return n;
}

/** Writes the extensions block (nothing when there are none) at `at`; returns where it ends. */
function writeExtensions(out: Buffer, at: number, extensions: Extension[]): number {
  if (extensions.length === 0) return at;
  at = out.writeUInt16BE(extensionsLength(extensions) - 2, at);
  for (const e of extensions) {
    at = out.writeUInt16BE(e.type, at);
    at = out.writeUInt16BE(e.data.length, at);
    at += e.data.copy(out, at);
  }
  return at;
}

function encodeExtensions(extensions: Extension[]): Buffer {
  const out = Buffer.allocUnsafe(extensionsLength(extensions));
  writeExtensions(out, 0, extensions);
  return out;
}

export interface ClientHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  compressionMethods: Buffer;
  extensions: Extension[];
}

export function parseClientHello(body: Buffer): ClientHello {
  const r = new Reader(body);
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vector(1, 32);
  const cookie = r.vector(1, 255);
  const suites = new Reader(r.vector(2));
  const cipherSuites: number[] = [];
  while (suites.left >= 2) cipherSuites.push(suites.u16());
  const compressionMethods = r.vector(1);
  return { version, random, sessionId, cookie, cipherSuites, compressionMethods, extensions: parseExtensions(r) };
}

/**
 * A datagram that is one whole ClientHello in one record, read only as far as the stateless
 * cookie exchange needs (§4.2.1): a server parses the rest once the cookie is good.
 */
export interface ClientHelloDatagram {
  recordSequence: number;
  messageSeq: number;
  /** The handshake message, header and body: its form in the transcript. */
  message: Buffer;
  body: Buffer;
  random: Buffer;
  cookie: Buffer;
  /** The body before and after its cookie: what the cookie is computed over. */
  withoutCookie: [Buffer, Buffer];
}

/** Undefined when the datagram is not one well-formed, unfragmented ClientHello record. */
export function scanClientHello(datagram: Buffer): ClientHelloDatagram | undefined {
  if (datagram.length < 13 + HANDSHAKE_HEADER + 36) return undefined;
  const fragmentLength = datagram.readUInt16BE(11);
  if (13 + fragmentLength > datagram.length || datagram[13] !== HandshakeType.ClientHello) return undefined;
  const length = datagram.readUIntBE(14, 3);
  if (datagram.readUIntBE(19, 3) !== 0 || datagram.readUIntBE(22, 3) !== length || HANDSHAKE_HEADER + length > fragmentLength) return undefined;
  const message = datagram.subarray(13, 13 + HANDSHAKE_HEADER + length);
  const body = message.subarray(HANDSHAKE_HEADER);
  const sessionIdLength = body[34];
  const cookieAt = 35 + sessionIdLength;
  if (sessionIdLength > 32 || cookieAt >= body.length) return undefined;
  const cookieEnd = cookieAt + 1 + body[cookieAt];
  if (cookieEnd > body.length) return undefined;
  return {
    recordSequence: datagram.readUIntBE(5, 6), messageSeq: datagram.readUInt16BE(17), message, body,
    random: body.subarray(2, 34), cookie: body.subarray(cookieAt + 1, cookieEnd), withoutCookie: [body.subarray(0, cookieAt), body.subarray(cookieEnd)],
  };
}

export function encodeClientHello(h: ClientHello): Buffer {
  return Buffer.concat([
    u16(h.version), h.random, vector(1, h.sessionId), vector(1, h.cookie),
    vector(2, Buffer.concat(h.cipherSuites.map(u16))), vector(1, h.compressionMethods), encodeExtensions(h.extensions),
  ]);
}

export interface ServerHello {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  cipherSuite: number;
  compressionMethod: number;
  extensions: Extension[];
}

export function parseServerHello(body: Buffer): ServerHello {
  const r = new Reader(body);
  const version = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vector(1, 32);
  const cipherSuite = r.u16();
  const compressionMethod = r.u8();
  return { version, random, sessionId, cipherSuite, compressionMethod, extensions: parseExtensions(r) };
}

export function encodeServerHello(h: ServerHello): Buffer {
  const out = Buffer.allocUnsafe(2 + 32 + 1 + h.sessionId.length + 2 + 1 + extensionsLength(h.extensions));
  let at = out.writeUInt16BE(h.version, 0);
  at += h.random.copy(out, at, 0, 32);
  out[at++] = h.sessionId.length;
  at += h.sessionId.copy(out, at);
  at = out.writeUInt16BE(h.cipherSuite, at);
  out[at++] = h.compressionMethod;
  writeExtensions(out, at, h.extensions);
  return out;
}

export function parseHelloVerifyRequest(body: Buffer): { version: number; cookie: Buffer } {
  const r = new Reader(body);
  return { version: r.u16(), cookie: r.vector(1, 255) };
}

export function encodeHelloVerifyRequest(version: number, cookie: Buffer): Buffer {
  return Buffer.concat([u16(version), vector(1, cookie)]);
}

/** PSK ServerKeyExchange (hint) and ClientKeyExchange (identity), RFC 4279 §2. */
export function parsePskIdentity(body: Buffer): Buffer {
  return new Reader(body).vector(2);
}

export function encodePskIdentity(identity: Buffer): Buffer {
  return vector(2, identity);
}

export function hasExtension(extensions: Extension[], type: number): boolean {
  return extensions.some((e) => e.type === type);
}

export function extensionData(extensions: Extension[], type: number): Buffer | undefined {
  return extensions.find((e) => e.type === type)?.data;
}

/** ECDHE_PSK ServerKeyExchange (RFC 5489 §2): hint, then named-curve ECDH parameters. */
export function encodeEcdhePskServerKeyExchange(publicKey: Buffer): Buffer {
  return Buffer.concat([vector(2, Buffer.alloc(0)), u8(3), u16(SECP256R1), vector(1, publicKey)]);
}

export function parseEcdhePskServerKeyExchange(body: Buffer): Buffer {
  const r = new Reader(body);
  r.vector(2); // identity hint
  if (r.u8() !== 3 || r.u16() !== SECP256R1) throw new Error('only named curve secp256r1 is supported');
  return r.vector(1);
}

/** ECDHE_PSK ClientKeyExchange: identity, then the client's ECDH public point. */
export function encodeEcdhePskClientKeyExchange(identity: Buffer, publicKey: Buffer): Buffer {
  return Buffer.concat([vector(2, identity), vector(1, publicKey)]);
}

export function parseEcdhePskClientKeyExchange(body: Buffer): { identity: Buffer; publicKey: Buffer } {
  const r = new Reader(body);
  return { identity: r.vector(2), publicKey: r.vector(1) };
}

/** ECDHE_ECDSA ServerKeyExchange (RFC 8422 §5.4): the parameters, and the signature over randoms ‖ parameters. */
export function ecdheParams(publicKey: Buffer): Buffer {
  return Buffer.concat([u8(3), u16(SECP256R1), vector(1, publicKey)]);
}

export function encodeSignedServerKeyExchange(params: Buffer, signature: Buffer): Buffer {
  return Buffer.concat([params, u16(ECDSA_SHA256), vector(2, signature)]);
}

export function parseSignedServerKeyExchange(body: Buffer): { params: Buffer; publicKey: Buffer; scheme: number; signature: Buffer } {
  const r = new Reader(body);
  if (r.u8() !== 3 || r.u16() !== SECP256R1) throw new Error('only named curve secp256r1 is supported');
  const publicKey = r.vector(1);
  const params = body.subarray(0, r.offset);
  return { params, publicKey, scheme: r.u16(), signature: r.vector(2) };
}

/** CertificateRequest: ecdsa_sign certificates, ecdsa_secp256r1_sha256 signatures, any authority. */
export function encodeCertificateRequest(): Buffer {
  return Buffer.concat([vector(1, u8(64)), vector(2, u16(ECDSA_SHA256)), vector(2, Buffer.alloc(0))]);
}

/** CertificateVerify (and the signature of any digitally-signed struct): scheme, then signature. */
export function encodeDigitallySigned(signature: Buffer): Buffer {
  return Buffer.concat([u16(ECDSA_SHA256), vector(2, signature)]);
}

export function parseDigitallySigned(body: Buffer): { scheme: number; signature: Buffer } {
  const r = new Reader(body);
  return { scheme: r.u16(), signature: r.vector(2) };
}

/** client/server_certificate_type (RFC 7250 §4): a list in the ClientHello, one type in the ServerHello. */
export function certificateTypesOffered(data: Buffer | undefined): number[] {
  if (!data) return [];
  return [...new Reader(data).vector(1)];
}

/** connection_id extension body (RFC 9146 §3): the CID the sender wants on records to it. */
export function encodeConnectionId(cid: Buffer): Buffer {
  return vector(1, cid);
}

export function parseConnectionId(data: Buffer): Buffer {
  return new Reader(data).vector(1);
}
