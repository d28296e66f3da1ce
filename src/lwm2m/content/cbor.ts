/**
 * A small strict CBOR (RFC 8949) codec: just what SenML-CBOR and LwM2M-CBOR need. Hand-written so
 * that every malformed input fails with a DecodeError and a declared length can never make us
 * allocate more than the payload holds.
 */
import { DecodeError, EncodeError } from './errors';

export type CborValue =
  | number | bigint | string | boolean | null | undefined | Buffer
  | CborValue[] | Map<CborValue, CborValue>;

const MAX_DEPTH = 32;

export function decodeCbor(input: Buffer): CborValue {
  const reader = new Reader(input);
  const value = reader.item(0);
  if (reader.offset !== input.length) throw new DecodeError(`CBOR: ${input.length - reader.offset} trailing bytes`);
  return value;
}

class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new DecodeError('CBOR: truncated input');
  }

  private argument(info: number): number | bigint {
    if (info < 24) return info;
    switch (info) {
      case 24: this.need(1); return this.buf[this.offset++];
      case 25: { this.need(2); const v = this.buf.readUInt16BE(this.offset); this.offset += 2; return v; }
      case 26: { this.need(4); const v = this.buf.readUInt32BE(this.offset); this.offset += 4; return v; }
      case 27: {
        this.need(8);
        const v = this.buf.readBigUInt64BE(this.offset);
        this.offset += 8;
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      default: throw new DecodeError(`CBOR: unsupported additional info ${info}`);
    }
  }

  private length(info: number): number {
    const n = this.argument(info);
    if (typeof n === 'bigint' || n > this.buf.length - this.offset) {
      // every element takes at least one byte, so a larger count cannot be honest
      throw new DecodeError('CBOR: declared length exceeds the payload');
    }
    return n;
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new DecodeError('CBOR: nesting too deep');
    this.need(1);
    const initial = this.buf[this.offset++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case 0: return this.argument(info);
      case 1: {
        const n = this.argument(info);
        return typeof n === 'bigint' ? -1n - n : -1 - n;
      }
      case 2: case 3: {
        if (info === 31) return this.indefiniteString(major, depth);
        const len = this.length(info);
        this.need(len);
        const bytes = this.buf.subarray(this.offset, this.offset + len);
        this.offset += len;
        return major === 2 ? Buffer.from(bytes) : decodeUtf8(bytes);
      }
      case 4: {
        const out: CborValue[] = [];
        if (info === 31) {
          while (!this.atBreak()) out.push(this.item(depth + 1));
          return out;
        }
        const len = this.length(info);
        for (let i = 0; i < len; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5: {
        const out = new Map<CborValue, CborValue>();
        if (info === 31) {
          while (!this.atBreak()) out.set(this.item(depth + 1), this.item(depth + 1));
          return out;
        }
        const len = this.length(info);
        for (let i = 0; i < len; i++) out.set(this.item(depth + 1), this.item(depth + 1));
        return out;
      }
      case 6: // tags: the tagged item stands for itself (LwM2M uses none we must interpret)
        this.argument(info);
        return this.item(depth + 1);
      default: return this.simple(info);
    }
  }

  private atBreak(): boolean {
    this.need(1);
    if (this.buf[this.offset] === 0xff) {
      this.offset++;
      return true;
    }
    return false;
  }

  private indefiniteString(major: number, depth: number): CborValue {
    const parts: Buffer[] = [];
    while (!this.atBreak()) {
      const chunk = this.item(depth + 1);
      const ok = major === 2 ? Buffer.isBuffer(chunk) : typeof chunk === 'string';
      if (!ok) throw new DecodeError('CBOR: bad chunk in indefinite-length string');
      parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, 'utf8'));
    }
    const all = Buffer.concat(parts);
    return major === 2 ? all : all.toString('utf8');
  }

  private simple(info: number): CborValue {
    switch (info) {
      case 20: return false;
      case 21: return true;
      case 22: return null;
      case 23: return undefined;
      case 25: { this.need(2); const v = halfToFloat(this.buf.readUInt16BE(this.offset)); this.offset += 2; return v; }
      case 26: { this.need(4); const v = this.buf.readFloatBE(this.offset); this.offset += 4; return v; }
      case 27: { this.need(8); const v = this.buf.readDoubleBE(this.offset); this.offset += 8; return v; }
      default: throw new DecodeError(`CBOR: unsupported simple value ${info}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeUtf8(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new DecodeError('CBOR: text string is not valid UTF-8');
  }
}

function halfToFloat(half: number): number {
  const exp = (half >> 10) & 0x1f;
  const mant = half & 0x3ff;
  const sign = half & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function encodeCbor(value: CborValue): Buffer {
  const parts: Buffer[] = [];
  writeItem(parts, value, 0);
  return Buffer.concat(parts);
}

function head(major: number, n: number | bigint): Buffer {
  const m = major << 5;
  if (typeof n === 'bigint') {
    const b = Buffer.alloc(9);
    b[0] = m | 27;
    b.writeBigUInt64BE(n, 1);
    return b;
  }
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(n, 1);
    return b;
  }
  if (n < 0x100000000) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(n, 1);
    return b;
  }
  return head(major, BigInt(n));
}

function writeItem(parts: Buffer[], value: CborValue, depth: number): void {
  if (depth > MAX_DEPTH) throw new EncodeError('CBOR: nesting too deep');
  if (value === null) parts.push(Buffer.from([0xf6]));
  else if (value === undefined) parts.push(Buffer.from([0xf7]));
  else if (typeof value === 'boolean') parts.push(Buffer.from([value ? 0xf5 : 0xf4]));
  else if (typeof value === 'bigint') {
    parts.push(value >= 0n ? head(0, value) : head(1, -1n - value));
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) parts.push(value >= 0 ? head(0, value) : head(1, -1 - value));
    else parts.push(encodeFloat(value));
  } else if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    parts.push(head(3, bytes.length), bytes);
  } else if (Buffer.isBuffer(value)) {
    parts.push(head(2, value.length), value);
  } else if (Array.isArray(value)) {
    parts.push(head(4, value.length));
    for (const v of value) writeItem(parts, v, depth + 1);
  } else if (value instanceof Map) {
    parts.push(head(5, value.size));
    for (const [k, v] of value) {
      writeItem(parts, k, depth + 1);
      writeItem(parts, v, depth + 1);
    }
  } else {
    throw new EncodeError(`CBOR: cannot encode ${typeof value}`);
  }
}

/** Shortest float that keeps the value exactly (single when lossless, else double). */
function encodeFloat(value: number): Buffer {
  const single = Buffer.alloc(5);
  single[0] = 0xfa;
  single.writeFloatBE(value, 1);
  if (single.readFloatBE(1) === value || Number.isNaN(value)) return single;
  const double = Buffer.alloc(9);
  double[0] = 0xfb;
  double.writeDoubleBE(value, 1);
  return double;
}
