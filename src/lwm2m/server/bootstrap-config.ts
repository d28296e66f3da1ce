/**
 * Bootstrap configurations: which servers, security and lifetime an endpoint is given, validated
 * before use, and matched by exact name, /regex/, glob (`sensor-*`) or the default `*`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomBytes, X509Certificate } from 'crypto';
import { rpkIdentity } from '../../dtls/certificates';
import { Lwm2mError, ValueTree } from '../types';
import type { PskEntry } from './security';

export type SecurityMode = 'psk' | 'rpk' | 'x509' | 'nosec';

export const SECURITY_MODE_CODES: Record<SecurityMode, number> = { psk: 0, rpk: 1, x509: 2, nosec: 3 };

export interface BootstrapServerAccount {
  uri: string;
  shortServerId: number;
  lifetime?: number;
  binding?: string;
  securityMode: SecurityMode;
  /** The PSK identity; `{ep}` in it stands for the endpoint name (one identity per device). */
  pskIdentity?: string;
  /** The PSK: a Buffer, a hex string, or "random" for a new 16-byte key per device and session. */
  pskKey?: Buffer | string;
  /**
   * Raw public key and X.509: the device's private key (PKCS#8 or SEC1, DER or PEM); for a raw
   * public key also "generate": a new P-256 key pair per device and session.
   */
  privateKey?: Buffer | string;
  /** X.509: the device's certificate (DER or PEM). */
  certificate?: Buffer | string;
  /** The server the device is to trust: its public key (raw public key: SubjectPublicKeyInfo, DER or PEM) or, for X.509, its certificate or its authority's. */
  serverKey?: Buffer | string;
  defaultMinPeriod?: number;
  defaultMaxPeriod?: number;
  notificationStoring?: boolean;
}

export interface BootstrapConfig {
  /** Exact endpoint name, `*` (default for all), a glob with `*`, or a /regular expression/. */
  endpoint: string;
  servers: BootstrapServerAccount[];
  /** Bootstrap-Delete targets before the writes (default /0 and /1; the client keeps its bootstrap account). */
  deletePaths?: string[];
  /** Further Bootstrap-Writes: path → value, e.g. {"/3/0/14": "+01:00"}. */
  extraWrites?: Record<string, ValueTree>;
  /**
   * Hand PSK keys and private keys to devices that bootstrap over NoSec, where anyone on the path
   * reads them. Off by default: such a device then gets 4.01, and bootstraps over DTLS instead.
   */
  keysOverNoSec?: boolean;
}

export class BootstrapConfigError extends Lwm2mError {}

export function validateConfig(config: BootstrapConfig): BootstrapConfig {
  if (!config || typeof config !== 'object') throw new BootstrapConfigError('a bootstrap configuration must be an object');
  if (typeof config.endpoint !== 'string' || !config.endpoint) throw new BootstrapConfigError('bootstrap configuration needs an endpoint (name, pattern or "*")');
  if (config.endpoint.startsWith('/') && config.endpoint.endsWith('/') && config.endpoint.length > 2) {
    try {
      new RegExp(config.endpoint.slice(1, -1));
    } catch {
      throw new BootstrapConfigError(`endpoint pattern ${config.endpoint} is not a valid regular expression`);
    }
  }
  if (!Array.isArray(config.servers) || config.servers.length === 0) throw new BootstrapConfigError(`${config.endpoint}: at least one server is needed`);
  const ids = new Set<number>();
  const servers = config.servers.map((s, i) => {
    const where = `${config.endpoint}: server ${i + 1}`;
    if (typeof s.uri !== 'string' || !/^coaps?:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+)(:\d{1,5})?\/?$/.test(s.uri)) {
      throw new BootstrapConfigError(`${where}: URI "${s.uri}" is not coap://host:port or coaps://host:port`);
    }
    const ssid = Number(s.shortServerId);
    if (!Number.isInteger(ssid) || ssid < 1 || ssid > 65534) throw new BootstrapConfigError(`${where}: short server id must be 1..65534`);
    if (ids.has(ssid)) throw new BootstrapConfigError(`${where}: short server id ${ssid} is used twice`);
    ids.add(ssid);
    const mode = (s.securityMode ?? 'nosec') as SecurityMode;
    if (!(mode in SECURITY_MODE_CODES)) throw new BootstrapConfigError(`${where}: security mode must be nosec, psk, rpk or x509`);
    let pskKey = s.pskKey;
    if (mode === 'psk') {
      if (!s.pskIdentity) throw new BootstrapConfigError(`${where}: PSK needs an identity`);
      if (typeof pskKey === 'string' && pskKey !== 'random') {
        if (!/^([0-9a-fA-F]{2})+$/.test(pskKey)) throw new BootstrapConfigError(`${where}: PSK key must be hex`);
        pskKey = Buffer.from(pskKey, 'hex');
      }
      if (pskKey !== 'random' && (!Buffer.isBuffer(pskKey) || pskKey.length === 0)) throw new BootstrapConfigError(`${where}: PSK needs a key (hex, or "random")`);
      if (!s.uri.startsWith('coaps://')) throw new BootstrapConfigError(`${where}: PSK security needs a coaps:// URI`);
    }
    const keys = mode === 'rpk' || mode === 'x509' ? certificateAccount(s, mode, where) : {};
    const lifetime = s.lifetime ?? 86400;
    if (!Number.isInteger(lifetime) || lifetime < 1) throw new BootstrapConfigError(`${where}: lifetime must be a positive integer`);
    const binding = s.binding ?? 'U';
    if (!/^[UTSNQ]{1,5}$/.test(binding)) throw new BootstrapConfigError(`${where}: binding "${binding}" is not valid`);
    return { ...s, ...keys, shortServerId: ssid, securityMode: mode, pskKey, lifetime, binding };
  });
  return { ...config, servers };
}

/** An account as one device is given it (raw public key: with the device's public key, SPKI DER). */
export type DeviceAccount = BootstrapServerAccount & { publicKey?: Buffer };

/** An RPK or X.509 account's keys and certificates, checked and as DER. */
function certificateAccount(s: BootstrapServerAccount, mode: 'rpk' | 'x509', where: string): Pick<BootstrapServerAccount, 'privateKey' | 'certificate' | 'serverKey'> {
  if (!s.uri.startsWith('coaps://')) throw new BootstrapConfigError(`${where}: ${mode === 'rpk' ? 'raw public key' : 'X.509'} security needs a coaps:// URI`);
  const parse = <T>(what: string, value: Buffer | string | undefined, read: (v: Buffer | string) => T): T => {
    if (value === undefined || value === '' || (Buffer.isBuffer(value) && value.length === 0)) throw new BootstrapConfigError(`${where}: ${what} is missing`);
    try {
      return read(value);
    } catch (err) {
      if (err instanceof BootstrapConfigError) throw err;
      throw new BootstrapConfigError(`${where}: ${what} is not valid (DER or PEM)`);
    }
  };
  const der = (v: Buffer | string) => (typeof v === 'string' && !v.includes('-----BEGIN') ? Buffer.from(v, 'base64') : v);
  const ecKey = (key: KeyObject): KeyObject => {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new BootstrapConfigError(`${where}: keys must be P-256 (secp256r1)`);
    return key;
  };
  const privateKey = s.privateKey === 'generate' && mode === 'rpk' ? 'generate'
    : parse('the device\'s private key', s.privateKey, (v) => ecKey(privateKeyOf(der(v))).export({ type: 'pkcs8', format: 'der' }));
  if (mode === 'rpk') {
    const serverKey = parse('the server\'s public key', s.serverKey, (v) => ecKey(createPublicKey(typeof der(v) === 'string' ? (v as string) : { key: der(v) as Buffer, format: 'der', type: 'spki' })).export({ type: 'spki', format: 'der' }));
    return { privateKey, serverKey };
  }
  const certificate = parse('the device\'s certificate', s.certificate, (v) => new X509Certificate(der(v)).raw);
  const serverKey = parse('the server\'s certificate', s.serverKey, (v) => new X509Certificate(der(v)).raw);
  return { privateKey, certificate, serverKey };
}

function privateKeyOf(v: Buffer | string): KeyObject {
  if (typeof v === 'string') return createPrivateKey(v);
  try {
    return createPrivateKey({ key: v, format: 'der', type: 'pkcs8' });
  } catch {
    return createPrivateKey({ key: v, format: 'der', type: 'sec1' });
  }
}

/**
 * The account as one device gets it: `{ep}` in a PSK identity filled in, a "random" key or a
 * "generate"d key pair drawn, and for a raw public key the device's public key beside its private one.
 */
export function accountForDevice(account: BootstrapServerAccount, endpoint: string): DeviceAccount {
  if (account.securityMode === 'psk') {
    return {
      ...account,
      pskIdentity: (account.pskIdentity ?? '').split('{ep}').join(endpoint),
      pskKey: account.pskKey === 'random' ? randomBytes(16) : account.pskKey,
    };
  }
  if (account.securityMode !== 'rpk') return account;
  const privateKey = account.privateKey === 'generate'
    ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
    : createPrivateKey({ key: account.privateKey as Buffer, format: 'der', type: 'pkcs8' });
  return {
    ...account,
    privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }),
    publicKey: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
  };
}

/**
 * What a server must know to accept the device with the credentials it was handed: a PSK identity
 * and key, or a raw public key's identity. None for X.509: the server trusts the certificate's
 * authority and matches its CN to the endpoint.
 */
export function serverCredentialOf(endpoint: string, account: DeviceAccount): PskEntry | undefined {
  if (account.securityMode === 'psk' && account.pskIdentity && Buffer.isBuffer(account.pskKey)) {
    return { endpoint, identity: account.pskIdentity, key: account.pskKey, scope: 'server' };
  }
  if (account.securityMode === 'rpk' && account.publicKey) return { endpoint, identity: rpkIdentity(account.publicKey), scope: 'server' };
  return undefined;
}

/** Whether handing the account out puts a secret (a PSK or a private key) on the wire. */
export function handsOutSecrets(account: BootstrapServerAccount): boolean {
  return account.securityMode === 'psk' || account.securityMode === 'rpk' || account.securityMode === 'x509';
}

/** How specific a match is: exact beats regex/glob beats the default. */
export function matchScore(pattern: string, endpoint: string): number {
  if (pattern === endpoint) return 3;
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(pattern.slice(1, -1)).test(endpoint) ? 2 : 0;
  if (pattern === '*') return 1;
  if (pattern.includes('*')) {
    const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return re.test(endpoint) ? 2 : 0;
  }
  return 0;
}
