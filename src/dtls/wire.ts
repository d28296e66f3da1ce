/** Bounds-checked reading and plain writing of TLS presentation-language fields. */
export class WireError extends Error {}

export class Reader {
  constructor(private readonly buf: Buffer, public offset = 0, private readonly end = buf.length) {}

  get left(): number {
    return this.end - this.offset;
  }

  private need(n: number): void {
    if (this.offset + n > this.end) throw new WireError('truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.offset++];
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u24(): number {
    this.need(3);
    const v = this.buf.readUIntBE(this.offset, 3);
    this.offset += 3;
    return v;
  }

  u48(): number {
    this.need(6);
    const v = this.buf.readUIntBE(this.offset, 6);
    this.offset += 6;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** A vector with a 1-, 2- or 3-byte length prefix. */
  vector(lengthBytes: 1 | 2 | 3, max = Infinity): Buffer {
    const n = lengthBytes === 1 ? this.u8() : lengthBytes === 2 ? this.u16() : this.u24();
    if (n > max) throw new WireError('vector too long');
    return this.bytes(n);
  }

  rest(): Buffer {
    return this.bytes(this.left);
  }
}

export function u8(v: number): Buffer {
  return Buffer.from([v & 0xff]);
}

export function u16(v: number): Buffer {
  return Buffer.from([(v >> 8) & 0xff, v & 0xff]);
}

export function u24(v: number): Buffer {
  return Buffer.from([(v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]);
}

export function vector(lengthBytes: 1 | 2 | 3, data: Buffer): Buffer {
  const n = lengthBytes === 1 ? u8(data.length) : lengthBytes === 2 ? u16(data.length) : u24(data.length);
  return Buffer.concat([n, data]);
}
