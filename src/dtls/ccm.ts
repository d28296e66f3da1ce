/**
 * AES-128-CCM with an 8-byte tag and a 12-byte nonce (RFC 3610 with M = 8, L = 3; RFC 6655 for
 * DTLS), computed on two AES contexts that live as long as the key is busy: CTR keystream from an
 * ECB context, the CBC-MAC from a CBC context whose chaining value is carried from one message to
 * the next. Node's 'aes-128-ccm' needs a new cipher (and key schedule) per record, which costs
 * more than the record's encryption; this does the same arithmetic with one call into OpenSSL
 * for each half.
 */
import { Cipher, createCipheriv, timingSafeEqual } from 'crypto';

const TAG = 8;
/** Flags of B0: (M-2)/2 = 3, L-1 = 2, and 0x40 when there is additional data (RFC 3610 §2.2). */
const B0_FLAGS = (((TAG - 2) / 2) << 3) | 2;
const ADATA = 0x40;
/** Flags of the counter blocks A_i: L-1 = 2. */
const A_FLAGS = 2;

function padded(n: number): number {
  return (n + 15) & ~15;
}

function zeroed(n: number): Buffer {
  return Buffer.allocUnsafe(n).fill(0); // pooled when small, unlike Buffer.alloc
}

export class CcmCipher {
  private readonly ecb: Cipher;
  private readonly cbc: Cipher;
  /** The CBC context's last output block: xored into the next message's B0, it restarts the chain at zero. */
  private readonly chain = Buffer.alloc(16);

  constructor(key: Buffer) {
    this.ecb = createCipheriv('aes-128-ecb', key, null);
    this.ecb.setAutoPadding(false);
    this.cbc = createCipheriv('aes-128-cbc', key, this.chain);
    this.cbc.setAutoPadding(false);
  }

  /** Ciphertext ‖ 8-byte tag. */
  seal(nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    const stream = this.keystream(nonce, plaintext.length);
    const tag = this.mac(nonce, aad, plaintext);
    const out = Buffer.allocUnsafe(plaintext.length + TAG);
    for (let i = 0; i < plaintext.length; i++) out[i] = plaintext[i] ^ stream[16 + i];
    for (let i = 0; i < TAG; i++) out[plaintext.length + i] = tag[i] ^ stream[i];
    return out;
  }

  /** The plaintext, or undefined when ciphertext ‖ tag does not authenticate. */
  open(nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
    if (sealed.length < TAG) return undefined;
    const length = sealed.length - TAG;
    const stream = this.keystream(nonce, length);
    const plaintext = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) plaintext[i] = sealed[i] ^ stream[16 + i];
    const tag = this.mac(nonce, aad, plaintext);
    for (let i = 0; i < TAG; i++) tag[i] ^= stream[i];
    return timingSafeEqual(tag, sealed.subarray(length)) ? plaintext : undefined;
  }

  /** S_0 ‖ S_1 ‖ …: AES of the counter blocks A_0 … A_n (RFC 3610 §2.3). */
  private keystream(nonce: Buffer, length: number): Buffer {
    const blocks = 1 + padded(length) / 16;
    const counters = zeroed(16 * blocks);
    for (let b = 0; b < blocks; b++) {
      const at = 16 * b;
      counters[at] = A_FLAGS;
      nonce.copy(counters, at + 1, 0, 12);
      counters[at + 14] = b >> 8; // byte 13 stays 0: a record has far fewer than 65,536 blocks
      counters[at + 15] = b & 0xff;
    }
    return this.ecb.update(counters);
  }

  /** The first 8 bytes of the CBC-MAC of B0 ‖ l(a) ‖ a ‖ message, each part zero-padded (RFC 3610 §2.2). */
  private mac(nonce: Buffer, aad: Buffer, message: Buffer): Buffer {
    const aadBlocks = aad.length > 0 ? padded(2 + aad.length) : 0;
    const input = zeroed(16 + aadBlocks + padded(message.length));
    input[0] = aad.length > 0 ? B0_FLAGS | ADATA : B0_FLAGS;
    nonce.copy(input, 1, 0, 12);
    input.writeUIntBE(message.length, 13, 3);
    if (aad.length > 0) {
      input.writeUInt16BE(aad.length, 16);
      aad.copy(input, 18);
    }
    message.copy(input, 16 + aadBlocks);
    for (let i = 0; i < 16; i++) input[i] ^= this.chain[i];
    const out = this.cbc.update(input);
    out.copy(this.chain, 0, out.length - 16);
    return out.subarray(out.length - 16, out.length - 16 + TAG);
  }
}
