/**
 * The cryptography of DTLS 1.2 on Node's crypto: the TLS 1.2 PRF (RFC 5246 §5, SHA-256), and
 * record protection for the two cipher families LwM2M uses — AEAD AES-128-CCM-8 (RFC 6655) and
 * AES-128-CBC with HMAC-SHA256, MAC-then-encrypt (RFC 5246 §6.2.3.2).
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, KeyObject, randomBytes, randomFillSync, timingSafeEqual } from 'crypto';
import * as cryptoModule from 'crypto';
import { CcmCipher } from './ccm';

/**
 * A copy of `buf` in memory of its own. Small buffers made with Buffer.from/concat are slices of
 * Node's shared 8 KB pool, and a long-lived slice (a session's key, identity or CID) keeps the
 * whole slab alive: idle sessions would each hold kilobytes of garbage.
 */
export function own(buf: Buffer): Buffer {
  const out = Buffer.alloc(buf.length);
  buf.copy(out);
  return out;
}

const POOL = 4096;
let pool = Buffer.allocUnsafe(POOL);
let poolAt = POOL;

/** CSPRNG bytes (randoms, session ids, CIDs, IVs) drawn from a pool: one system call per 4 KB, not per value. */
export function random(n: number): Buffer<ArrayBuffer> {
  if (n > POOL) return randomBytes(n);
  if (poolAt + n > POOL) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL));
    poolAt = 0;
  }
  const out = own(pool.subarray(poolAt, poolAt + n)) as Buffer<ArrayBuffer>;
  poolAt += n;
  return out;
}

export function hmacSha256(key: Buffer | KeyObject, ...data: Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  for (const d of data) h.update(d);
  return h.digest();
}

export function sha256(...data: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const d of data) h.update(d);
  return h.digest();
}

/** PRF(secret, label, seed) = P_SHA256(secret, label + seed), `length` bytes. */
const labels = new Map<string, Buffer>();

/** The HMAC-SHA256 key blocks K ⊕ ipad and K ⊕ opad (RFC 2104), for a key of at most 64 bytes. */
function hmacPads(key: Buffer): [Buffer, Buffer] {
  const inner = Buffer.alloc(64, 0x36);
  const outer = Buffer.alloc(64, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i] ^= key[i];
    outer[i] ^= key[i];
  }
  return [inner, outer];
}

/**
 * HMAC-SHA256 from its key blocks, with one-shot hashes: the PRF runs four to eight HMACs under
 * one key, and createHmac sets the key up again for each (a third of a full handshake's CPU).
 */
function hmacWithPads([inner, outer]: [Buffer, Buffer], ...data: Buffer[]): Buffer {
  return oneShotSha256(Buffer.concat([outer, oneShotSha256(Buffer.concat([inner, ...data]))]));
}

/** crypto.hash where Node has it (20.12+), createHash otherwise. */
const oneShotSha256: (data: Buffer) => Buffer = typeof (cryptoModule as { hash?: unknown }).hash === 'function'
  ? (data) => (cryptoModule as unknown as { hash(algorithm: string, data: Buffer, encoding: 'buffer'): Buffer }).hash('sha256', data, 'buffer')
  : (data) => createHash('sha256').update(data).digest();

export function prf(secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  let labelBytes = labels.get(label);
  if (!labelBytes) labels.set(label, (labelBytes = Buffer.from(label, 'ascii'))); // a handful of labels, each made once
  const labelSeed = Buffer.concat([labelBytes, seed]);
  const pads = secret.length <= 64 ? hmacPads(secret) : hmacPads(oneShotSha256(secret));
  const out: Buffer[] = [];
  let total = 0;
  let a: Buffer = labelSeed;
  while (total < length) {
    a = hmacWithPads(pads, a);
    const block = hmacWithPads(pads, a, labelSeed);
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out, total).subarray(0, length);
}

/**
 * What protects (and checks) the records of one direction of one epoch. `sequence` is the 8-byte
 * epoch‖sequence number (the CCM explicit nonce); `aad` is what the MAC or AEAD covers before the
 * plaintext length: sequence‖type‖version for a plain record (RFC 5246 §6.2.3), the longer
 * RFC 9146 §5 form for a record with a connection ID.
 */
export interface RecordProtection {
  /** Bytes a protected record adds to the plaintext at most. */
  readonly overhead: number;
  seal(sequence: Buffer, aad: Buffer, plaintext: Buffer): Buffer;
  /** Undefined when the record does not authenticate. */
  open(sequence: Buffer, aad: Buffer, fragment: Buffer): Buffer | undefined;
  /** The keys are no longer used (the connection ended): what holds them can go. */
  dispose?(): void;
}

function additionalData(prefix: Buffer, length: number): Buffer {
  const aad = Buffer.allocUnsafe(prefix.length + 2);
  prefix.copy(aad, 0);
  aad.writeUInt16BE(length, prefix.length);
  return aad;
}

const CCM_TAG = 8;

/**
 * AES contexts for the CCM keys of busy sessions (see ccm.ts), least recently used first. A key
 * gets one from its HOT_USES-th record on: handshakes and idle sessions never hold one (a context
 * is ~1 KB, mostly outside the heap), a session carrying traffic keeps its own. Bounded.
 */
const MAX_CCM_CONTEXTS = 1024;
const HOT_USES = 4;
const ccmContexts = new Map<Ccm8Protection, CcmCipher>();

/** AES-128-CCM-8: nonce = 4-byte implicit IV ‖ 8-byte explicit nonce (the record's epoch‖sequence). */
export class Ccm8Protection implements RecordProtection {
  readonly overhead = 8 + CCM_TAG;

  private readonly key: Buffer;
  /** The implicit IV as a number: an idle session holds two of these, and a Buffer costs ~200 bytes. */
  private readonly salt: number;
  private uses = 0;

  constructor(key: Buffer, salt: Buffer) {
    this.key = own(key); // a copy: the key block it comes from is a slice of a shared pool
    this.salt = salt.readUInt32BE(0);
  }

  private nonce(explicit: Buffer): Buffer {
    const nonce = Buffer.allocUnsafe(12);
    nonce.writeUInt32BE(this.salt, 0);
    explicit.copy(nonce, 4, 0, 8);
    return nonce;
  }

  /** This key's AES contexts once it is busy, else undefined (one-shot ciphers then). */
  private context(): CcmCipher | undefined {
    if (++this.uses < HOT_USES) return undefined;
    let cipher = ccmContexts.get(this);
    if (cipher) {
      ccmContexts.delete(this);
    } else {
      cipher = new CcmCipher(this.key);
      if (ccmContexts.size >= MAX_CCM_CONTEXTS) ccmContexts.delete(ccmContexts.keys().next().value as Ccm8Protection);
    }
    ccmContexts.set(this, cipher);
    return cipher;
  }

  seal(sequence: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    const nonce = this.nonce(sequence);
    const fullAad = additionalData(aad, plaintext.length);
    const context = this.context();
    if (context) return Buffer.concat([sequence, context.seal(nonce, fullAad, plaintext)]);
    const cipher = createCipheriv('aes-128-ccm', this.key, nonce, { authTagLength: CCM_TAG });
    cipher.setAAD(fullAad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    return Buffer.concat([sequence, body, cipher.getAuthTag()]);
  }

  open(_sequence: Buffer, aad: Buffer, fragment: Buffer): Buffer | undefined {
    if (fragment.length < this.overhead) return undefined;
    const nonce = this.nonce(fragment.subarray(0, 8));
    const body = fragment.subarray(8, fragment.length - CCM_TAG);
    const fullAad = additionalData(aad, body.length);
    const context = this.context();
    if (context) return context.open(nonce, fullAad, fragment.subarray(8));
    try {
      const decipher = createDecipheriv('aes-128-ccm', this.key, nonce, { authTagLength: CCM_TAG });
      decipher.setAuthTag(fragment.subarray(fragment.length - CCM_TAG));
      decipher.setAAD(fullAad, { plaintextLength: body.length });
      const plain = decipher.update(body);
      decipher.final();
      return plain;
    } catch {
      return undefined;
    }
  }

  dispose(): void {
    ccmContexts.delete(this);
  }
}

const BLOCK = 16;
const MAC = 32;

/** AES-128-CBC + HMAC-SHA256, MAC-then-encrypt, explicit IV per record. */
export class CbcSha256Protection implements RecordProtection {
  readonly overhead = BLOCK + MAC + BLOCK;

  private readonly key: Buffer;
  private readonly macKey: Buffer;

  constructor(key: Buffer, macKey: Buffer) {
    this.key = own(key);
    this.macKey = own(macKey);
  }

  seal(_sequence: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    const mac = hmacSha256(this.macKey, additionalData(aad, plaintext.length), plaintext);
    const unpadded = plaintext.length + MAC + 1;
    const pad = (BLOCK - (unpadded % BLOCK)) % BLOCK;
    const padding = Buffer.alloc(pad + 1, pad);
    const iv = random(BLOCK);
    const cipher = createCipheriv('aes-128-cbc', this.key, iv);
    cipher.setAutoPadding(false);
    return Buffer.concat([iv, cipher.update(Buffer.concat([plaintext, mac, padding])), cipher.final()]);
  }

  open(_sequence: Buffer, aad: Buffer, fragment: Buffer): Buffer | undefined {
    if (fragment.length < BLOCK + MAC + BLOCK || fragment.length % BLOCK !== 0) return undefined;
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-128-cbc', this.key, fragment.subarray(0, BLOCK));
      decipher.setAutoPadding(false);
      plain = Buffer.concat([decipher.update(fragment.subarray(BLOCK)), decipher.final()]);
    } catch {
      return undefined;
    }
    // check padding and MAC without an early exit on the padding (Lucky 13: same work either way)
    const pad = plain[plain.length - 1];
    let good = pad + 1 + MAC <= plain.length ? 1 : 0;
    const padLength = good ? pad : 0;
    for (let i = plain.length - 1 - padLength; i < plain.length; i++) good &= plain[i] === pad ? 1 : 0;
    const contentLength = plain.length - 1 - padLength - MAC;
    const content = plain.subarray(0, contentLength);
    const expected = hmacSha256(this.macKey, additionalData(aad, contentLength), content);
    const macOk = timingSafeEqual(expected, plain.subarray(contentLength, contentLength + MAC));
    return good && macOk ? content : undefined;
  }
}
