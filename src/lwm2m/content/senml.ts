/**
 * SenML JSON (110) and SenML CBOR (112) as LwM2M 1.1 Core §7.4.4–7.4.5 profiles them: names are
 * LwM2M paths (bn + n), values in v / vs / vb / vd / vlo. Also the path lists of Read-Composite
 * and Observe-Composite requests (records with a name only).
 */
import { formatPath, parsePath, pathDepth, PathError } from '../path';
import { Lwm2mPath, ResourceRecord, ResourceTypeLookup, ResourceValue } from '../types';
import { CborValue, decodeCbor, encodeCbor } from './cbor';
import { DecodeError, EncodeError } from './errors';
import { isObjectLink, numberValue, valueFromText } from './values';

/** One SenML record in neutral form, before it is JSON or CBOR. */
interface SenmlRecord {
  bn?: string;
  bt?: number;
  n?: string;
  t?: number;
  v?: number | bigint;
  /** Decoded from SenML CBOR (whose floats can carry NaN and ±Infinity). */
  fromCbor?: boolean;
  vs?: string;
  vb?: boolean;
  vd?: Buffer;
  vlo?: string;
}

const CBOR_LABELS: Record<string, keyof SenmlRecord | 'bt' | 't'> = { '-2': 'bn', '-3': 'bt', '0': 'n', '2': 'v', '3': 'vs', '4': 'vb', '6': 't', '8': 'vd', vlo: 'vlo' };
const CBOR_KEYS: Record<Exclude<keyof SenmlRecord, 'fromCbor'>, number | string> = { bn: -2, bt: -3, n: 0, t: 6, v: 2, vs: 3, vb: 4, vd: 8, vlo: 'vlo' };

/** RFC 8428 §4.5.3: times below 2^28 are relative to now, others are seconds since the epoch. */
const RELATIVE_TIME_LIMIT = 2 ** 28;

function absoluteTime(time: number, nowSeconds: number): number {
  return time < RELATIVE_TIME_LIMIT ? nowSeconds + time : time;
}

function toSenml(records: ResourceRecord[], basePath: Lwm2mPath | undefined): SenmlRecord[] {
  const composite = !basePath || records.some((r) => r.path.objectId !== basePath.objectId);
  const base = composite || !basePath ? '' : pathDepth(basePath) >= 3 ? formatPath(basePath) : `${formatPath(basePath)}/`;
  return records.map((r, i) => {
    const full = formatPath(r.path);
    const out: SenmlRecord = {};
    if (i === 0 && base) out.bn = base;
    if (base && full.startsWith(base)) {
      const rest = full.slice(base.length);
      if (rest) out.n = rest;
    } else {
      out.n = full;
    }
    if (r.time !== undefined) out.t = r.time;
    putValue(out, r.value);
    return out;
  });
}

function putValue(out: SenmlRecord, value: ResourceValue): void {
  if (typeof value === 'number') out.v = value;
  else if (typeof value === 'string') out.vs = value;
  else if (typeof value === 'boolean') out.vb = value;
  else if (Buffer.isBuffer(value)) out.vd = value;
  else if (value instanceof Date) out.v = Math.floor(value.getTime() / 1000);
  else if (isObjectLink(value)) out.vlo = `${value.objectId}:${value.instanceId}`;
  else throw new EncodeError('SenML: unsupported value');
}

/** `relativeTo`: names without a leading "/" are taken below it (a Create's new instance, "/3303/0/"). */
function fromSenml(records: SenmlRecord[], types: ResourceTypeLookup | undefined, requireValue: boolean, relativeTo = ''): ResourceRecord[] {
  let bn = '';
  let bt: number | undefined;
  const now = Date.now() / 1000;
  const out: ResourceRecord[] = [];
  for (const rec of records) {
    if (rec.bn !== undefined) bn = rec.bn;
    if (rec.bt !== undefined) bt = rec.bt; // a base time holds for the records after it, until the next
    const time = bt === undefined && rec.t === undefined ? undefined : absoluteTime((bt ?? 0) + (rec.t ?? 0), now);
    const joined = bn + (rec.n ?? '');
    const name = relativeTo && !joined.startsWith('/') ? relativeTo + joined : joined;
    let path: Lwm2mPath;
    try {
      path = parsePath(name);
    } catch (err) {
      throw new DecodeError(`SenML: bad name "${name}": ${(err as PathError).message}`);
    }
    const value = readValue(rec, path, types);
    if (value === undefined) {
      if (requireValue) throw new DecodeError(`SenML: record "${name}" has no value`);
      out.push({ path, value: '' });
      continue;
    }
    if (path.resourceId === undefined) throw new DecodeError(`SenML: value record "${name}" is not a resource path`);
    out.push(time === undefined ? { path, value } : { path, value, time });
  }
  return out;
}

function readValue(rec: SenmlRecord, path: Lwm2mPath, types: ResourceTypeLookup | undefined): ResourceValue | undefined {
  const type = path.resourceId !== undefined ? types?.resourceType(path.objectId, path.resourceId) : undefined;
  if (rec.v !== undefined) {
    if (typeof rec.v !== 'number' && typeof rec.v !== 'bigint') throw new DecodeError('SenML: v must be a number');
    // JSON cannot carry NaN or ±Infinity (a 1e999 parses to Infinity): only SenML CBOR's floats can
    const n = numberValue(rec.v, type, 'SenML', rec.fromCbor === true);
    return type === 'time' ? new Date(n * 1000) : n;
  }
  if (rec.vs !== undefined) {
    if (typeof rec.vs !== 'string') throw new DecodeError('SenML: vs must be a string');
    return type && type !== 'string' && type !== 'corelnk' && type !== 'opaque' ? valueFromText(rec.vs, type) : rec.vs;
  }
  if (rec.vb !== undefined) {
    if (typeof rec.vb !== 'boolean') throw new DecodeError('SenML: vb must be a boolean');
    return rec.vb;
  }
  if (rec.vd !== undefined) return rec.vd;
  if (rec.vlo !== undefined) {
    if (typeof rec.vlo !== 'string') throw new DecodeError('SenML: vlo must be a string');
    return valueFromText(rec.vlo, 'objlnk');
  }
  return undefined;
}

// ---- JSON ----

function parseJsonArray(payload: Buffer): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new DecodeError('SenML JSON: not valid JSON');
  }
  if (!Array.isArray(parsed) || !parsed.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r))) {
    throw new DecodeError('SenML JSON: expected an array of records');
  }
  return parsed as Record<string, unknown>[];
}

function jsonToRecord(r: Record<string, unknown>): SenmlRecord {
  const out: SenmlRecord = {};
  if (r.bn !== undefined) {
    if (typeof r.bn !== 'string') throw new DecodeError('SenML JSON: bn must be a string');
    out.bn = r.bn;
  }
  if (r.n !== undefined) {
    if (typeof r.n !== 'string') throw new DecodeError('SenML JSON: n must be a string');
    out.n = r.n;
  }
  for (const key of ['bt', 't'] as const) {
    if (r[key] === undefined) continue;
    if (typeof r[key] !== 'number' || !Number.isFinite(r[key])) throw new DecodeError(`SenML JSON: ${key} must be a number`);
    out[key] = r[key] as number;
  }
  if (r.v !== undefined) out.v = r.v as number;
  if (r.vs !== undefined) out.vs = r.vs as string;
  if (r.vb !== undefined) out.vb = r.vb as boolean;
  if (r.vlo !== undefined) out.vlo = r.vlo as string;
  if (r.vd !== undefined) {
    if (typeof r.vd !== 'string' || !/^[A-Za-z0-9_\-+/]*=*$/.test(r.vd)) throw new DecodeError('SenML JSON: vd must be base64url');
    out.vd = Buffer.from(r.vd, 'base64url');
  }
  return out;
}

function recordToJson(r: SenmlRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.bn !== undefined) out.bn = r.bn;
  if (r.bt !== undefined) out.bt = r.bt;
  if (r.n !== undefined) out.n = r.n;
  if (r.t !== undefined) out.t = r.t;
  if (r.v !== undefined) out.v = r.v;
  if (r.vs !== undefined) out.vs = r.vs;
  if (r.vb !== undefined) out.vb = r.vb;
  if (r.vd !== undefined) out.vd = r.vd.toString('base64url');
  if (r.vlo !== undefined) out.vlo = r.vlo;
  return out;
}

/**
 * The resources of an instance the client is to number itself (Create on /o without an instance
 * id): no base name, each name is the resource id ("5700", "5700/0" for a resource instance)
 * relative to the object the request targets, so that bn + n never reads as an /o/i path.
 */
function toSenmlNewInstance(records: ResourceRecord[]): SenmlRecord[] {
  return records.map((r) => {
    if (r.path.resourceId === undefined) throw new EncodeError('SenML: values need resource paths');
    const out: SenmlRecord = { n: r.path.resourceInstanceId === undefined ? `${r.path.resourceId}` : `${r.path.resourceId}/${r.path.resourceInstanceId}` };
    putValue(out, r.value);
    return out;
  });
}

export interface SenmlEncodeOptions {
  /** Create without an instance id: names relative to the object (see toSenmlNewInstance). */
  newInstance?: boolean;
}

function senmlRecords(records: ResourceRecord[], basePath: Lwm2mPath | undefined, o: SenmlEncodeOptions): SenmlRecord[] {
  return o.newInstance ? toSenmlNewInstance(records) : toSenml(records, basePath);
}

export function encodeSenmlJson(records: ResourceRecord[], basePath?: Lwm2mPath, o: SenmlEncodeOptions = {}): Buffer {
  return Buffer.from(JSON.stringify(senmlRecords(records, basePath, o).map(recordToJson)), 'utf8');
}

export function decodeSenmlJson(payload: Buffer, types?: ResourceTypeLookup, relativeTo?: string): ResourceRecord[] {
  return fromSenml(parseJsonArray(payload).map(jsonToRecord), types, true, relativeTo);
}

// ---- CBOR ----

function cborToRecords(payload: Buffer): SenmlRecord[] {
  const decoded = decodeCbor(payload);
  if (!Array.isArray(decoded)) throw new DecodeError('SenML CBOR: expected an array of records');
  return decoded.map((item) => {
    if (!(item instanceof Map)) throw new DecodeError('SenML CBOR: expected a map per record');
    const out: SenmlRecord = {};
    for (const [key, value] of item) {
      const label = CBOR_LABELS[String(key)];
      if (!label) continue; // unknown labels carry nothing we use
      if (label === 'bt' || label === 't') {
        if ((typeof value !== 'number' && typeof value !== 'bigint') || !Number.isFinite(Number(value))) throw new DecodeError(`SenML CBOR: ${label} must be a number`);
        out[label] = Number(value);
      } else if (label === 'vd') {
        if (!Buffer.isBuffer(value)) throw new DecodeError('SenML CBOR: vd must be a byte string');
        out.vd = value;
      } else if (label === 'v') {
        if (typeof value !== 'number' && typeof value !== 'bigint') throw new DecodeError('SenML CBOR: v must be a number');
        out.v = value;
        out.fromCbor = true;
      } else {
        (out as Record<string, CborValue>)[label] = value;
      }
    }
    if (out.bn !== undefined && typeof out.bn !== 'string') throw new DecodeError('SenML CBOR: bn must be a text string');
    if (out.n !== undefined && typeof out.n !== 'string') throw new DecodeError('SenML CBOR: n must be a text string');
    return out;
  });
}

function recordsToCbor(records: SenmlRecord[]): Buffer {
  return encodeCbor(records.map((r) => {
    const m = new Map<CborValue, CborValue>();
    for (const key of Object.keys(r) as (keyof SenmlRecord)[]) if (key !== 'fromCbor') m.set(CBOR_KEYS[key], r[key] as CborValue);
    return m;
  }));
}

export function encodeSenmlCbor(records: ResourceRecord[], basePath?: Lwm2mPath, o: SenmlEncodeOptions = {}): Buffer {
  return recordsToCbor(senmlRecords(records, basePath, o));
}

export function decodeSenmlCbor(payload: Buffer, types?: ResourceTypeLookup, relativeTo?: string): ResourceRecord[] {
  return fromSenml(cborToRecords(payload), types, true, relativeTo);
}

// ---- path lists (composite requests) ----

export function encodeSenmlPathList(paths: Lwm2mPath[], cbor: boolean): Buffer {
  const records: SenmlRecord[] = paths.map((p) => ({ n: formatPath(p) }));
  return cbor ? recordsToCbor(records) : Buffer.from(JSON.stringify(records.map(recordToJson)), 'utf8');
}

export function decodeSenmlPathList(payload: Buffer, cbor: boolean): Lwm2mPath[] {
  const records = cbor ? cborToRecords(payload) : parseJsonArray(payload).map(jsonToRecord);
  return fromSenml(records, undefined, false).map((r) => r.path);
}
