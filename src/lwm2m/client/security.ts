/**
 * The client's Security object (/0) as DTLS credentials: mode 0 PSK (identity /0/x/3, key /0/x/5),
 * mode 1 raw public key and mode 2 X.509 (own key /0/x/5 as PKCS#8 or SEC1 DER, own certificate
 * /0/x/3, the server's public key or certificate — or its authority's — /0/x/4), and the instance
 * a configured server address becomes.
 */
import { createPrivateKey, KeyObject, X509Certificate } from 'crypto';
import { rpkIdentity, spkiOf, verifyChain } from '../../dtls/certificates';
import type { CertificateCredentials, PskCredentials } from '../../dtls/channel';
import { Lwm2mError, ResourceValue } from '../types';
import type { InstanceValues } from './object-store';

export class SecurityObjectError extends Lwm2mError {}

/** Where the client talks to, and with which credentials (none: coap NoSec). */
export interface ServerAddress {
  host: string;
  port: number;
  /** PSK (mode 0): the key as a Buffer or hex string. */
  psk?: { identity: string; key: Buffer | string };
  /**
   * Raw public key (mode 1, with `serverPublicKey`: the server's SubjectPublicKeyInfo, DER) or X.509
   * (mode 2, with `certificate`: ours, DER, and `serverCertificate`: the server's or its authority's).
   */
  certificate?: { privateKey: KeyObject; certificate?: Buffer; serverPublicKey?: Buffer; serverCertificate?: Buffer };
}

export function hostForUri(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The Security object instance (/0/x) of a server address. */
export function securityInstance(address: ServerAddress, bootstrap: boolean): Record<number, ResourceValue> {
  const { psk, certificate } = address;
  const key = psk && (Buffer.isBuffer(psk.key) ? psk.key : Buffer.from(psk.key, 'hex'));
  if (psk && (!psk.identity || !key || key.length === 0)) throw new SecurityObjectError('PSK credentials need an identity and a non-empty key');
  const secure = Boolean(psk || certificate);
  const instance: Record<number, ResourceValue> = {
    0: `${secure ? 'coaps' : 'coap'}://${hostForUri(address.host)}:${address.port}`, 1: bootstrap, 2: 3,
    3: Buffer.alloc(0), 4: Buffer.alloc(0), 5: Buffer.alloc(0),
  };
  if (psk) Object.assign(instance, { 2: 0, 3: Buffer.from(psk.identity, 'utf8'), 5: key! });
  if (certificate) {
    const privateKey = certificate.privateKey.export({ type: 'pkcs8', format: 'der' });
    if (certificate.serverPublicKey) Object.assign(instance, { 2: 1, 3: spkiOf(certificate.privateKey), 4: certificate.serverPublicKey, 5: privateKey });
    else if (certificate.certificate && certificate.serverCertificate) Object.assign(instance, { 2: 2, 3: certificate.certificate, 4: certificate.serverCertificate, 5: privateKey });
    else throw new SecurityObjectError('certificate credentials need serverPublicKey (raw public key) or certificate and serverCertificate (X.509)');
  }
  if (!bootstrap) instance[10] = 1; // Short Server ID, matching /1/0
  return instance;
}

function privateKeyOf(der: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch {
    return createPrivateKey({ key: der, format: 'der', type: 'sec1' });
  }
}

/**
 * The DTLS credentials a Security instance gives (read when a session starts); undefined when it
 * gives none usable; throws a SecurityObjectError for a mode this client does not speak.
 */
export function credentialsOf(sec: InstanceValues): PskCredentials | CertificateCredentials | undefined {
  const mode = sec.get(2);
  const [mine, theirs, secret] = [sec.get(3), sec.get(4), sec.get(5)];
  if (mode === 0) {
    const id = Buffer.isBuffer(mine) ? mine : typeof mine === 'string' ? Buffer.from(mine) : undefined;
    if (!id || !Buffer.isBuffer(secret) || secret.length === 0) return undefined;
    return { identity: id, key: secret };
  }
  if (mode !== 1 && mode !== 2) throw new SecurityObjectError(`security mode ${String(mode)} is not supported (PSK, raw public key or X.509)`);
  if (!Buffer.isBuffer(secret) || !Buffer.isBuffer(theirs) || theirs.length === 0) return undefined;
  let privateKey: KeyObject;
  try {
    privateKey = privateKeyOf(secret);
  } catch {
    throw new SecurityObjectError('the Secret Key resource (/0/x/5) is not a DER private key');
  }
  if (mode === 1) {
    const expected = rpkIdentity(theirs);
    return {
      certificate: { privateKey, rawPublicKey: true },
      verifyPeer: (c) => (c.type === 'rpk' && rpkIdentity(c.spki) === expected ? expected : undefined),
    };
  }
  if (!Buffer.isBuffer(mine) || mine.length === 0) return undefined;
  let anchor: X509Certificate;
  try {
    anchor = new X509Certificate(theirs);
  } catch {
    throw new SecurityObjectError('the Server Public Key resource (/0/x/4) is not a DER certificate');
  }
  return {
    certificate: { privateKey, chain: [mine] },
    verifyPeer: (c) => (c.type === 'x509' ? verifyChain(c.chain, [anchor]) : undefined),
  };
}
