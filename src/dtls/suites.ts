/**
 * The cipher suites spoken here and the keys of a connection (RFC 5246 §6.3, RFC 7627).
 */
import { CbcSha256Protection, Ccm8Protection, prf, RecordProtection } from './crypto';

export const TLS_PSK_WITH_AES_128_CCM_8 = 0xc0a8;
export const TLS_PSK_WITH_AES_128_CBC_SHA256 = 0x00ae;
export const TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256 = 0xc037;
export const TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xc0ae;

export interface CipherSuite {
  id: number;
  name: string;
  /** psk: the key alone (RFC 4279); ecdhe_psk: an ephemeral P-256 exchange too (RFC 5489, forward secrecy). */
  keyExchange: 'psk' | 'ecdhe_psk' | 'ecdhe_ecdsa';
  /** Bytes of key block: MAC keys, encryption keys, implicit IVs (client then server each). */
  macKeyLength: number;
  keyLength: number;
  fixedIvLength: number;
  protection(key: Buffer, macKey: Buffer, iv: Buffer): RecordProtection;
}

export const SUITES: Record<number, CipherSuite> = {
  [TLS_PSK_WITH_AES_128_CCM_8]: {
    id: TLS_PSK_WITH_AES_128_CCM_8, name: 'TLS_PSK_WITH_AES_128_CCM_8', keyExchange: 'psk',
    macKeyLength: 0, keyLength: 16, fixedIvLength: 4,
    protection: (key, _mac, iv) => new Ccm8Protection(key, iv),
  },
  [TLS_PSK_WITH_AES_128_CBC_SHA256]: {
    id: TLS_PSK_WITH_AES_128_CBC_SHA256, name: 'TLS_PSK_WITH_AES_128_CBC_SHA256', keyExchange: 'psk',
    macKeyLength: 32, keyLength: 16, fixedIvLength: 0,
    protection: (key, mac) => new CbcSha256Protection(key, mac),
  },
  [TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8]: {
    id: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, name: 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8', keyExchange: 'ecdhe_ecdsa',
    macKeyLength: 0, keyLength: 16, fixedIvLength: 4,
    protection: (key, _mac, iv) => new Ccm8Protection(key, iv),
  },
  [TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256]: {
    id: TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256, name: 'TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256', keyExchange: 'ecdhe_psk',
    macKeyLength: 32, keyLength: 16, fixedIvLength: 0,
    protection: (key, mac) => new CbcSha256Protection(key, mac),
  },
};

/** Our preference, most preferred first: CCM-8 is the suite LwM2M mandates. */
export const DEFAULT_SUITES = [TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, TLS_PSK_WITH_AES_128_CBC_SHA256, TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256];

/**
 * RFC 4279 §2 / RFC 5489 §2: other_secret and the PSK, each with a 2-byte length; other_secret is
 * N zero bytes for plain PSK, the ECDH shared secret for ECDHE_PSK.
 */
export function pskPremasterSecret(psk: Buffer, otherSecret: Buffer = Buffer.alloc(psk.length)): Buffer {
  const out = Buffer.alloc(4 + otherSecret.length + psk.length);
  out.writeUInt16BE(otherSecret.length, 0);
  otherSecret.copy(out, 2);
  out.writeUInt16BE(psk.length, 2 + otherSecret.length);
  psk.copy(out, 4 + otherSecret.length);
  return out;
}

export function masterSecret(premaster: Buffer, clientRandom: Buffer, serverRandom: Buffer, sessionHash: Buffer | undefined): Buffer {
  return sessionHash
    ? prf(premaster, 'extended master secret', sessionHash, 48)
    : prf(premaster, 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
}

export interface KeyMaterial {
  clientWrite: RecordProtection;
  serverWrite: RecordProtection;
}

export function deriveKeys(suite: CipherSuite, master: Buffer, clientRandom: Buffer, serverRandom: Buffer): KeyMaterial {
  const m = suite.macKeyLength;
  const k = suite.keyLength;
  const iv = suite.fixedIvLength;
  const block = prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * (m + k + iv));
  let at = 0;
  const take = (n: number) => block.subarray(at, (at += n));
  const clientMac = take(m);
  const serverMac = take(m);
  const clientKey = take(k);
  const serverKey = take(k);
  const clientIv = take(iv);
  const serverIv = take(iv);
  return {
    clientWrite: suite.protection(clientKey, clientMac, clientIv),
    serverWrite: suite.protection(serverKey, serverMac, serverIv),
  };
}

export function verifyData(master: Buffer, label: 'client finished' | 'server finished', handshakeHash: Buffer): Buffer {
  return prf(master, label, handshakeHash, 12);
}
