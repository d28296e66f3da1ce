/**
 * Typed resource values: coercion of what flows hand us to a resource's type, and the text and
 * binary (TLV) representations of one value (LwM2M Core §C, Data Types).
 */
import { ObjectLink, ResourceType, ResourceValue } from '../types';
import { DecodeError, EncodeError } from './errors';

export function isObjectLink(value: unknown): value is ObjectLink {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof Date)
    && typeof (value as ObjectLink).objectId === 'number' && typeof (value as ObjectLink).instanceId === 'number';
}

export function isResourceValue(value: unknown): value is ResourceValue {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
    || Buffer.isBuffer(value) || value instanceof Date || isObjectLink(value);
}

/** The type a value has when the model does not know the resource. */
export function inferType(value: ResourceValue): ResourceType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'float';
  if (Buffer.isBuffer(value)) return 'opaque';
  if (value instanceof Date) return 'time';
  return 'objlnk';
}

function parseObjectLink(text: string): ObjectLink | undefined {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  return { objectId: Number(m[1]), instanceId: Number(m[2]) };
}

/** Converts a flow-supplied value to the resource's type; throws EncodeError when it cannot. */
export function coerceValue(value: unknown, type: ResourceType | undefined, where: string): ResourceValue {
  const fail = (): never => {
    throw new EncodeError(`${where}: ${JSON.stringify(value)} is not a valid ${type} value`);
  };
  if (type === undefined || type === 'none') {
    if (isResourceValue(value)) return value;
    return fail();
  }
  switch (type) {
    case 'string':
    case 'corelnk':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      return fail();
    case 'integer':
    case 'unsigned': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : typeof value === 'boolean' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) return fail();
      if (type === 'unsigned' && (n as number) < 0) return fail();
      return n as number;
    }
    case 'float': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) return fail(); // JSON, text and SenML JSON cannot carry NaN or ±Infinity
      return n as number;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 1 || value === '1' || value === 'true') return true;
      if (value === 0 || value === '0' || value === 'false') return false;
      return fail();
    case 'opaque':
      if (Buffer.isBuffer(value)) return value;
      if (value instanceof Uint8Array) return Buffer.from(value);
      if (typeof value === 'string') return Buffer.from(value, 'utf8');
      if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return Buffer.from(value);
      return fail();
    case 'time': {
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
      if (typeof value === 'number' && Number.isFinite(value)) return new Date(value * 1000);
      if (typeof value === 'string') {
        const d = /^-?\d+$/.test(value.trim()) ? new Date(Number(value) * 1000) : new Date(value);
        if (!Number.isNaN(d.getTime())) return d;
      }
      return fail();
    }
    case 'objlnk': {
      if (isObjectLink(value)) return { objectId: value.objectId, instanceId: value.instanceId };
      if (typeof value === 'string') {
        const link = parseObjectLink(value);
        if (link) return link;
      }
      return fail();
    }
    default:
      return fail();
  }
}

function timeSeconds(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

/** text/plain representation (LwM2M Core 7.4.1). Opaque is base64 in text. */
export function valueToText(value: ResourceValue): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (value instanceof Date) return String(timeSeconds(value));
  return `${value.objectId}:${value.instanceId}`;
}

export function valueFromText(text: string, type: ResourceType | undefined): ResourceValue {
  switch (type) {
    case 'integer':
    case 'unsigned':
    case 'float': {
      if (text.trim() === '' || Number.isNaN(Number(text))) throw new DecodeError(`text: "${text}" is not a number`);
      return numberValue(Number(text), type, 'text', false);
    }
    case 'boolean':
      if (text === '1' || text === 'true') return true;
      if (text === '0' || text === 'false') return false;
      throw new DecodeError(`text: "${text}" is not a boolean (0/1)`);
    case 'time':
      if (!/^-?\d+$/.test(text.trim())) throw new DecodeError(`text: "${text}" is not a time in seconds`);
      return new Date(Number(text) * 1000);
    case 'objlnk': {
      const link = parseObjectLink(text);
      if (!link) throw new DecodeError(`text: "${text}" is not an object link`);
      return link;
    }
    case 'opaque':
      return Buffer.from(text, 'base64');
    default:
      return text;
  }
}

/** Binary (TLV) value bytes (LwM2M Core 7.4.3 / Appendix C). */
export function valueToBytes(value: ResourceValue, type: ResourceType | undefined): Buffer {
  const t = type && type !== 'none' ? type : inferType(value);
  switch (t) {
    case 'string':
    case 'corelnk':
      return Buffer.from(valueToText(value), 'utf8');
    case 'integer':
    case 'unsigned': {
      const n = value instanceof Date ? timeSeconds(value) : Number(value);
      return integerBytes(n);
    }
    case 'time':
      return integerBytes(value instanceof Date ? timeSeconds(value) : Number(value));
    case 'float': {
      const n = Number(value);
      const single = Buffer.alloc(4);
      single.writeFloatBE(n);
      if (single.readFloatBE(0) === n || Number.isNaN(n)) return single;
      const double = Buffer.alloc(8);
      double.writeDoubleBE(n);
      return double;
    }
    case 'boolean':
      return Buffer.from([value ? 1 : 0]);
    case 'opaque':
      return Buffer.isBuffer(value) ? value : Buffer.from(valueToText(value), 'utf8');
    case 'objlnk': {
      if (!isObjectLink(value)) throw new EncodeError('objlnk value must be {objectId, instanceId}');
      const b = Buffer.alloc(4);
      b.writeUInt16BE(value.objectId, 0);
      b.writeUInt16BE(value.instanceId, 2);
      return b;
    }
    default:
      throw new EncodeError(`cannot encode a value of type ${t}`);
  }
}

function integerBytes(n: number): Buffer {
  if (!Number.isInteger(n)) throw new EncodeError(`${n} is not an integer`);
  if (n >= -0x80 && n < 0x80) return Buffer.from([n & 0xff]);
  if (n >= -0x8000 && n < 0x8000) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  }
  if (n >= -0x80000000 && n < 0x80000000) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}

/**
 * A decoded number as a resource value of `type`: Integer and Unsigned Integer only within
 * JavaScript's safe range (beyond ±2^53 a value would arrive silently rounded: refused instead —
 * a flow that needs such values reads the resource as opaque); NaN and ±Infinity only for Float
 * resources in formats that carry IEEE floats (TLV, CBOR, SenML CBOR), never from JSON or text.
 */
export function numberValue(n: number | bigint, type: ResourceType | undefined, format: string, ieee: boolean): number {
  if (typeof n === 'bigint' || ((type === 'integer' || type === 'unsigned') && !Number.isSafeInteger(n))) {
    throw new DecodeError(`${format}: ${String(n)} is not an integer JavaScript holds exactly (beyond ±2^53 it would be rounded)`);
  }
  if (!Number.isFinite(n) && !(type === 'float' && ieee)) throw new DecodeError(`${format}: ${n} is not a finite number`);
  return n;
}

function readInteger(bytes: Buffer): number {
  switch (bytes.length) {
    case 1: return bytes.readInt8(0);
    case 2: return bytes.readInt16BE(0);
    case 4: return bytes.readInt32BE(0);
    case 8: {
      const n = bytes.readBigInt64BE(0);
      return numberValue(n >= -BigInt(Number.MAX_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, 'integer', 'TLV', false);
    }
    default: throw new DecodeError(`TLV: integer of ${bytes.length} bytes (1, 2, 4 or 8 expected)`);
  }
}

export function valueFromBytes(bytes: Buffer, type: ResourceType | undefined): ResourceValue {
  switch (type) {
    case 'string':
    case 'corelnk':
      return bytes.toString('utf8');
    case 'integer':
      return readInteger(bytes);
    case 'unsigned':
      if (bytes.length === 8) {
        const n = bytes.readBigUInt64BE(0);
        return numberValue(n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, 'unsigned', 'TLV', false);
      }
      return readUnsigned(bytes);
    case 'time':
      return new Date(readInteger(bytes) * 1000);
    case 'float':
      if (bytes.length === 4) return bytes.readFloatBE(0);
      if (bytes.length === 8) return bytes.readDoubleBE(0);
      throw new DecodeError(`TLV: float of ${bytes.length} bytes (4 or 8 expected)`);
    case 'boolean':
      if (bytes.length !== 1 || bytes[0] > 1) throw new DecodeError('TLV: boolean must be one byte 0 or 1');
      return bytes[0] === 1;
    case 'objlnk':
      if (bytes.length !== 4) throw new DecodeError('TLV: object link must be 4 bytes');
      return { objectId: bytes.readUInt16BE(0), instanceId: bytes.readUInt16BE(2) };
    default:
      // unknown resource: keep the bytes, the flow knows what they mean
      return Buffer.from(bytes);
  }
}

function readUnsigned(bytes: Buffer): number {
  if (bytes.length !== 1 && bytes.length !== 2 && bytes.length !== 4) {
    throw new DecodeError(`TLV: unsigned integer of ${bytes.length} bytes`);
  }
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n;
}
