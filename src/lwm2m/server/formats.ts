/**
 * Content formats towards one device (LwM2M 1.1 Core §7.2 negotiation), decoding its answers, and
 * the notification attributes a Write-Attributes may carry (Core §5.1.2).
 */
import type { CoapResponse } from '../coap/transport';
import { decodeRecords, DecodeError, FORMAT_CODES, FormatName, formatName, toFormatName } from '../content';
import type { ObjectRegistry } from '../model';
import { formatPath } from '../path';
import { Lwm2mError, Lwm2mPath, ResourceRecord } from '../types';
import type { Registration } from './registration';

function requestedFormat(requested: FormatName | number | string | undefined): FormatName | undefined {
  return requested !== undefined && requested !== '' && requested !== 'auto' ? toFormatName(requested) : undefined;
}

/** The format for values to and from this device. */
export function negotiateFormat(registration: Registration, requested: FormatName | number | string | undefined, defaultFormat?: FormatName): FormatName {
  const asked = requestedFormat(requested);
  if (asked) return asked;
  if (defaultFormat) return defaultFormat;
  const advertised = registration.supportedFormats;
  if (registration.lwm2mVersion === '1.0') {
    const json = advertised.includes(FORMAT_CODES['oma-json']) || advertised.includes(1543);
    const tlv = advertised.includes(FORMAT_CODES.tlv) || advertised.includes(1542);
    return json && !tlv ? 'oma-json' : 'tlv';
  }
  // LwM2M 1.1+: the first of these the device advertised in `</>;ct=` (1.0's JSON last, and also its
  // pre-registration code 1543)
  for (const name of ['senml-cbor', 'senml-json', 'lwm2m-cbor', 'tlv', 'oma-json'] as FormatName[]) {
    if (advertised.includes(FORMAT_CODES[name])) return name;
  }
  if (advertised.includes(1542)) return 'tlv';
  if (advertised.includes(1543)) return 'oma-json';
  return 'senml-cbor';
}

/** Composite operations take SenML or LwM2M CBOR only. */
export function compositeFormat(registration: Registration, requested?: FormatName | number | string): 'senml-json' | 'senml-cbor' | 'lwm2m-cbor' {
  const name = requestedFormat(requested);
  if (name === 'senml-json' || name === 'senml-cbor' || name === 'lwm2m-cbor') return name;
  if (name) throw new Lwm2mError(`composite operations need senml-json, senml-cbor or lwm2m-cbor, not ${name}`);
  for (const candidate of ['senml-cbor', 'senml-json', 'lwm2m-cbor'] as const) {
    if (registration.supportedFormats.includes(FORMAT_CODES[candidate])) return candidate;
  }
  return 'senml-cbor';
}

export function decodeAnswer(response: CoapResponse, basePath: Lwm2mPath, registry: ObjectRegistry, endpoint: string, path: string):
  { records: ResourceRecord[]; format?: FormatName } {
  if (response.payload.length === 0) return { records: [] };
  const format = response.contentFormat === undefined ? undefined : formatName(response.contentFormat);
  if (!format) throw new DecodeError(`${endpoint} ${path}: unsupported content format ${response.contentFormat ?? '(none)'} in the answer`);
  try {
    return { records: decodeRecords(format, response.payload, { basePath, types: registry }), format };
  } catch (err) {
    if (err instanceof DecodeError) throw new DecodeError(`${endpoint} ${path}: ${err.message}`);
    throw err;
  }
}

/** Notification attributes; `null` removes one (sent as the bare key, e.g. `?pmin`). */
export interface WriteAttributes {
  pmin?: number | null; pmax?: number | null; gt?: number | null; lt?: number | null; st?: number | null;
  epmin?: number | null; epmax?: number | null;
}

const ATTRIBUTE_KEYS = ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax'] as const;
const NUMERIC_TYPES = new Set(['integer', 'unsigned', 'float']);

/**
 * Checks notification attributes before they are sent: pmin ≤ pmax, epmin ≤ epmax, lt < gt,
 * lt + 2·st < gt (among the values given in this request), periods and st not negative, periods
 * whole seconds; gt/lt/st only on a resource of a numeric type (when the object model knows it).
 * gt and lt may be negative: they are thresholds on the value.
 */
export function attributeQuery(path: Lwm2mPath, attrs: WriteAttributes, registry: ObjectRegistry): string[] {
  if (!attrs || typeof attrs !== 'object') throw new Lwm2mError('write-attributes needs an object like {"pmin": 10, "pmax": 60}');
  const where = formatPath(path);
  const query: string[] = [];
  const v: Partial<Record<(typeof ATTRIBUTE_KEYS)[number], number>> = {};
  for (const key of ATTRIBUTE_KEYS) {
    const value = attrs[key];
    if (value === undefined) continue;
    if (value === null) {
      query.push(key); // no value: remove the attribute
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new Lwm2mError(`${where}: attribute ${key} must be a number or null (to remove it), not ${JSON.stringify(value)}`);
    if (key !== 'gt' && key !== 'lt' && value < 0) throw new Lwm2mError(`${where}: attribute ${key} must not be negative (${value})`);
    if (key !== 'gt' && key !== 'lt' && key !== 'st' && !Number.isInteger(value)) throw new Lwm2mError(`${where}: attribute ${key} is a whole number of seconds, not ${value}`);
    v[key] = value;
    query.push(`${key}=${value}`);
  }
  if (query.length === 0) throw new Lwm2mError('write-attributes needs at least one of pmin, pmax, gt, lt, st, epmin, epmax');
  if (v.pmin !== undefined && v.pmax !== undefined && v.pmin > v.pmax) throw new Lwm2mError(`${where}: pmin (${v.pmin}) must not be greater than pmax (${v.pmax})`);
  if (v.epmin !== undefined && v.epmax !== undefined && v.epmin > v.epmax) throw new Lwm2mError(`${where}: epmin (${v.epmin}) must not be greater than epmax (${v.epmax})`);
  if (v.lt !== undefined && v.gt !== undefined) {
    if (!(v.lt < v.gt)) throw new Lwm2mError(`${where}: lt (${v.lt}) must be less than gt (${v.gt})`);
    if (v.st !== undefined && !(v.lt + 2 * v.st < v.gt)) throw new Lwm2mError(`${where}: lt + 2·st (${v.lt} + 2·${v.st}) must be less than gt (${v.gt})`);
  }
  const thresholds = (['gt', 'lt', 'st'] as const).filter((k) => attrs[k] !== undefined && attrs[k] !== null);
  if (thresholds.length) {
    if (path.resourceId === undefined) throw new Lwm2mError(`${where}: ${thresholds.join(', ')} apply to a numeric resource, not to an object or instance`);
    const type = registry.resourceType(path.objectId, path.resourceId);
    if (type !== undefined && !NUMERIC_TYPES.has(type)) {
      throw new Lwm2mError(`${where}: ${thresholds.join(', ')} apply to numeric resources only, and this one is ${type}`);
    }
  }
  return query;
}
