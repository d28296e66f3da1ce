/**
 * RFC 7252 §3 message format: a strict decoder and a one-allocation encoder.
 *
 * Strict because a datagram from a hostile or broken peer must be classified, never trusted:
 * a format error is reported with what could be read of the header (so a CON can be rejected
 * with RST, §4.2) instead of surfacing as an exception or as half-parsed options. coap-packet,
 * the `coap` project's codec, accepts token lengths 9–15, truncated option values and a payload
 * marker with no payload; the tests cross-check this codec against it on well-formed messages.
 */

export const enum MessageType { CON = 0, NON = 1, ACK = 2, RST = 3 }

/** Option numbers this layer reads or writes (RFC 7252 §5.10, 7641, 7959, 8613, 7967). */
export const enum OptionNumber {
  IfMatch = 1, UriHost = 3, ETag = 4, IfNoneMatch = 5, Observe = 6, UriPort = 7, LocationPath = 8,
  Oscore = 9, UriPath = 11, ContentFormat = 12, MaxAge = 14, UriQuery = 15, HopLimit = 16, Accept = 17,
  LocationQuery = 20, Block2 = 23, Block1 = 27, Size2 = 28, ProxyUri = 35, ProxyScheme = 39, Size1 = 60,
  NoResponse = 258,
}

/** Critical options (odd numbers) this layer understands; any other critical option is rejected (§5.4.1). */
const KNOWN_CRITICAL = new Set<number>([1, 3, 5, 7, 11, 15, 17, 23, 27, 35, 39]);

export interface CoapOption {
  number: number;
  value: Buffer;
}

export interface CoapMessage {
  type: MessageType;
  /** class << 5 | detail: 0x01 GET, 0x45 2.05 … */
  code: number;
  messageId: number;
  token: Buffer;
  /** In ascending option number order, repeated options in their order on the wire. */
  options: CoapOption[];
  payload: Buffer;
}

/** A datagram that is not a valid CoAP message; `messageId`/`type` are set when the header could be read. */
export class MalformedMessage {
  constructor(readonly malformed: string, readonly type?: MessageType, readonly messageId?: number) {}
}

const EMPTY = Buffer.alloc(0);

/** A class test, not a property probe: every decoded message keeps one hidden class on the hot path. */
export function isMalformed(m: CoapMessage | MalformedMessage): m is MalformedMessage {
  return m instanceof MalformedMessage;
}

/** Decodes one datagram; never throws. */
export function decodeMessage(buf: Buffer): CoapMessage | MalformedMessage {
  if (buf.length < 4) return new MalformedMessage('shorter than the 4-byte header');
  const first = buf[0];
  if (first >> 6 !== 1) return new MalformedMessage(`version ${first >> 6}`);
  const type = ((first >> 4) & 3) as MessageType;
  const messageId = (buf[2] << 8) | buf[3];
  const tokenLength = first & 0x0f;
  const code = buf[1];
  const fail = (malformed: string): MalformedMessage => new MalformedMessage(malformed, type, messageId);
  if (tokenLength > 8) return fail(`token length ${tokenLength}`);
  if (code === 0) {
    return buf.length === 4 && tokenLength === 0
      ? { type, code, messageId, token: EMPTY, options: [], payload: EMPTY }
      : fail('empty message with a token, options or payload');
  }
  const codeClass = code >> 5;
  if (codeClass === 1 || codeClass >= 6) return fail(`reserved code class ${codeClass}`);
  if (buf.length < 4 + tokenLength) return fail('truncated token');
  const token = buf.subarray(4, 4 + tokenLength);
  const options: CoapOption[] = [];
  let i = 4 + tokenLength;
  let number = 0;
  while (i < buf.length) {
    const byte = buf[i++];
    if (byte === 0xff) {
      if (i === buf.length) return fail('payload marker with no payload');
      return { type, code, messageId, token, options, payload: buf.subarray(i) };
    }
    let delta = byte >> 4;
    let length = byte & 0x0f;
    if (delta === 15 || length === 15) return fail('reserved option nibble 15');
    if (delta === 13) {
      if (i >= buf.length) return fail('truncated option');
      delta = buf[i++] + 13;
    } else if (delta === 14) {
      if (i + 1 >= buf.length) return fail('truncated option');
      delta = ((buf[i] << 8) | buf[i + 1]) + 269;
      i += 2;
    }
    if (length === 13) {
      if (i >= buf.length) return fail('truncated option');
      length = buf[i++] + 13;
    } else if (length === 14) {
      if (i + 1 >= buf.length) return fail('truncated option');
      length = ((buf[i] << 8) | buf[i + 1]) + 269;
      i += 2;
    }
    if (i + length > buf.length) return fail('truncated option value');
    number += delta;
    options.push({ number, value: buf.subarray(i, i + length) });
    i += length;
  }
  return { type, code, messageId, token, options, payload: EMPTY };
}

function extended(n: number): number {
  return n < 13 ? 0 : n < 269 ? 1 : 2;
}

/** Encodes a message; options need not be sorted (a stable sort keeps repeated options in order). */
export function encodeMessage(m: CoapMessage): Buffer {
  const options = m.options.length > 1 ? [...m.options].sort((a, b) => a.number - b.number) : m.options;
  let length = 4 + m.token.length + (m.payload.length > 0 ? 1 + m.payload.length : 0);
  let previous = 0;
  for (const o of options) {
    length += 1 + extended(o.number - previous) + extended(o.value.length) + o.value.length;
    previous = o.number;
  }
  const buf = Buffer.allocUnsafe(length);
  buf[0] = 0x40 | (m.type << 4) | m.token.length;
  buf[1] = m.code;
  buf[2] = m.messageId >> 8;
  buf[3] = m.messageId & 0xff;
  let i = 4 + m.token.copy(buf, 4);
  previous = 0;
  for (const o of options) {
    const delta = o.number - previous;
    const len = o.value.length;
    previous = o.number;
    const at = i++;
    let head = 0;
    if (delta < 13) head = delta << 4;
    else if (delta < 269) { head = 13 << 4; buf[i++] = delta - 13; }
    else { head = 14 << 4; buf.writeUInt16BE(delta - 269, i); i += 2; }
    if (len < 13) head |= len;
    else if (len < 269) { head |= 13; buf[i++] = len - 13; }
    else { head |= 14; buf.writeUInt16BE(len - 269, i); i += 2; }
    buf[at] = head;
    i += o.value.copy(buf, i);
  }
  if (m.payload.length > 0) {
    buf[i++] = 0xff;
    m.payload.copy(buf, i);
  }
  return buf;
}

export function emptyMessage(type: MessageType.ACK | MessageType.RST | MessageType.CON, messageId: number): Buffer {
  return Buffer.from([0x40 | (type << 4), 0, messageId >> 8, messageId & 0xff]);
}

// ---- codes ----

export function codeString(code: number): string {
  const detail = code & 0x1f;
  return `${code >> 5}.${detail < 10 ? '0' : ''}${detail}`;
}

export function parseCode(text: string): number {
  const m = /^([0-7])\.(\d\d)$/.exec(text);
  if (!m || Number(m[2]) > 31) throw new RangeError(`not a CoAP code: ${text}`);
  return (Number(m[1]) << 5) | Number(m[2]);
}

export const METHOD_CODES = { GET: 1, POST: 2, PUT: 3, DELETE: 4, FETCH: 5, PATCH: 6, iPATCH: 7 } as const;
export const METHOD_NAMES = ['', 'GET', 'POST', 'PUT', 'DELETE', 'FETCH', 'PATCH', 'iPATCH'];

export function isRequestCode(code: number): boolean {
  return code >= 1 && code < 32;
}

// ---- options ----

export function uintOption(value: number): Buffer {
  if (value === 0) return EMPTY;
  if (value < 0x100) return Buffer.from([value]);
  if (value < 0x10000) return Buffer.from([value >> 8, value & 0xff]);
  if (value < 0x1000000) return Buffer.from([value >> 16, (value >> 8) & 0xff, value & 0xff]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

export function readUint(buf: Buffer): number {
  let n = 0;
  for (let i = 0; i < buf.length; i++) n = n * 256 + buf[i];
  return n;
}

export function findOption(m: CoapMessage, number: number): Buffer | undefined {
  for (const o of m.options) if (o.number === number) return o.value;
  return undefined;
}

export function uintOptionOf(m: CoapMessage, number: number): number | undefined {
  const v = findOption(m, number);
  return v === undefined ? undefined : readUint(v);
}

export function stringOptions(m: CoapMessage, number: number): string[] {
  const out: string[] = [];
  for (const o of m.options) if (o.number === number) out.push(o.value.toString('utf8'));
  return out;
}

/** The first critical option this layer does not know (§5.4.1), if any. */
export function unknownCriticalOption(m: CoapMessage): number | undefined {
  for (const o of m.options) if (o.number & 1 && !KNOWN_CRITICAL.has(o.number)) return o.number;
  return undefined;
}

// ---- RFC 7959 block options ----

export interface BlockOption {
  num: number;
  more: boolean;
  /** Block size exponent: size = 2 ** (szx + 4); 7 (BERT) is not supported here. */
  szx: number;
}

export function blockSize(szx: number): number {
  return 1 << (szx + 4);
}

/** Undefined for an absent option; null for a malformed one (too long, or SZX 7). */
export function blockOptionOf(m: CoapMessage, number: OptionNumber.Block1 | OptionNumber.Block2): BlockOption | null | undefined {
  const v = findOption(m, number);
  if (v === undefined) return undefined;
  if (v.length > 3) return null;
  const n = readUint(v);
  const szx = n & 7;
  if (szx === 7) return null;
  return { num: Math.floor(n / 16), more: (n & 8) !== 0, szx };
}

export function blockOptionValue(b: BlockOption): Buffer {
  return uintOption(b.num * 16 + (b.more ? 8 : 0) + b.szx);
}

/** SZX for a block size in bytes (16…1024), rounded down. */
export function szxFor(size: number): number {
  let szx = 6;
  while (szx > 0 && blockSize(szx) > size) szx--;
  return szx;
}
