/**
 * Certificate-based DTLS authentication for TLS_ECDHE_ECDSA suites: the Certificate message with an
 * X.509 chain or a raw public key (RFC 7250), ECDSA P-256 signatures (SHA-256), and checking a
 * peer's chain against trust anchors. The identity a peer proves is `x509:<CN>` or
 * `rpk:<sha-256 of its SubjectPublicKeyInfo, hex>`.
 */
import { createHash, createPublicKey, KeyObject, sign, verify, X509Certificate } from 'crypto';
import { Reader, u24 } from './wire';

/** RFC 7250 certificate types. */
export const enum CertificateType { X509 = 0, RawPublicKey = 2 }

export interface LocalCertificate {
  /** The P-256 private key that signs. */
  privateKey: KeyObject;
  /** X.509: the chain, leaf first (DER). */
  chain?: Buffer[];
  /** Offer and accept raw public keys (RFC 7250); the key is privateKey's public half. */
  rawPublicKey?: boolean;
}

export type PeerCredential = { type: 'x509'; chain: Buffer[] } | { type: 'rpk'; spki: Buffer };

/** Decides whether a peer's certificate or key is accepted: its identity, or undefined to refuse it. */
export type PeerVerifier = (credential: PeerCredential) => string | undefined;

export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

export function rpkIdentity(spki: Buffer): string {
  return `rpk:${createHash('sha256').update(spki).digest('hex')}`;
}

/** The body of a Certificate message of our own. */
export function encodeCertificate(type: CertificateType, local: LocalCertificate): Buffer {
  if (type === CertificateType.RawPublicKey) {
    const spki = spkiOf(local.privateKey);
    return Buffer.concat([u24(spki.length), spki]);
  }
  const entries = (local.chain ?? []).map((der) => Buffer.concat([u24(der.length), der]));
  const list = Buffer.concat(entries);
  return Buffer.concat([u24(list.length), list]);
}

export function parseCertificate(type: CertificateType, body: Buffer): PeerCredential {
  const r = new Reader(body);
  if (type === CertificateType.RawPublicKey) return { type: 'rpk', spki: Buffer.from(r.vector(3)) };
  const list = new Reader(r.vector(3));
  const chain: Buffer[] = [];
  while (list.left > 0) chain.push(Buffer.from(list.vector(3)));
  return { type: 'x509', chain };
}

/** The peer's public key; throws on a credential that is not one. */
export function publicKeyOf(credential: PeerCredential): KeyObject {
  if (credential.type === 'rpk') return createPublicKey({ key: credential.spki, format: 'der', type: 'spki' });
  if (credential.chain.length === 0) throw new Error('an empty certificate chain');
  return new X509Certificate(credential.chain[0]).publicKey;
}

export function signSha256(privateKey: KeyObject, data: Buffer): Buffer {
  return sign('sha256', data, { key: privateKey, dsaEncoding: 'der' });
}

export function verifySha256(publicKey: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/** The common name of a certificate's subject. */
export function commonName(cert: X509Certificate): string | undefined {
  for (const line of cert.subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/**
 * Checks an X.509 chain (leaf first) against trust anchors: each certificate issued and signed by
 * the next, the last by an anchor (or an anchor itself), every one within its validity dates.
 * Returns the leaf's `x509:<CN>` identity, or undefined.
 */
export function verifyChain(chain: Buffer[], anchors: X509Certificate[], now = new Date()): string | undefined {
  if (chain.length === 0 || chain.length > 8 || anchors.length === 0) return undefined;
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch {
    return undefined;
  }
  const inDate = (c: X509Certificate) => new Date(c.validFrom) <= now && now <= new Date(c.validTo);
  if (!certs.every(inDate)) return undefined;
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!certs[i].checkIssued(certs[i + 1]) || !certs[i].verify(certs[i + 1].publicKey)) return undefined;
  }
  const last = certs[certs.length - 1];
  const anchored = anchors.some((a) => inDate(a) && (a.raw.equals(last.raw) || (last.checkIssued(a) && last.verify(a.publicKey))));
  if (!anchored) return undefined;
  const cn = commonName(certs[0]);
  return cn ? `x509:${cn}` : undefined;
}
