/** LwM2M values as the BC66 AT commands carry them: `<type>,<len>,<value>` (reference: Codes). */
import { ResourceValue } from '../lwm2m/types';
import { isObjectLink } from '../lwm2m/content';
import { atArg, VALUE_TYPE } from './at-line';

export interface AtValue {
  type: number;
  len: number;
  /** The value field as sent: strings and hex quoted, numbers bare. */
  text: string;
}

export function toAtValue(value: ResourceValue): AtValue {
  if (typeof value === 'boolean') return { type: VALUE_TYPE.boolean, len: 1, text: value ? '1' : '0' };
  if (typeof value === 'number') {
    const text = atArg(value); // a finite number, or an AtArgumentError
    return { type: Number.isInteger(value) ? VALUE_TYPE.integer : VALUE_TYPE.float, len: text.length, text };
  }
  if (Buffer.isBuffer(value)) return { type: VALUE_TYPE.opaque, len: value.length, text: atArg(value.toString('hex').toUpperCase()) };
  if (value instanceof Date) {
    const text = String(Math.floor(value.getTime() / 1000));
    return { type: VALUE_TYPE.integer, len: text.length, text };
  }
  const str = isObjectLink(value) ? `${value.objectId}:${value.instanceId}` : String(value);
  // `<len>` 0 is rejected by the module: an empty string goes out as one space
  const safe = str.length ? str : ' ';
  return { type: VALUE_TYPE.string, len: safe.length, text: atArg(safe) };
}

/** Reads a `<type>,<len>,<value>` triple; a numeric resource may arrive as opaque big-endian bytes. */
export function fromAtValue(type: number, text: string, numeric = false): ResourceValue {
  switch (type) {
    case VALUE_TYPE.opaque: {
      const bytes = /^([0-9a-fA-F]{2})*$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'latin1');
      if (numeric && bytes.length > 0 && bytes.length <= 6) return bytes.readUIntBE(0, bytes.length);
      return bytes;
    }
    case VALUE_TYPE.integer:
    case VALUE_TYPE.float: {
      const n = Number(text);
      return Number.isFinite(n) ? n : text;
    }
    case VALUE_TYPE.boolean:
      return text === '1' || text.toLowerCase() === 'true';
    default:
      return text;
  }
}
