/**
 * Content formats of LwM2M: names and codes, encode/decode dispatch, and the conversions between
 * the flat records codecs speak and the nested values messages carry (DESIGN §3).
 */
import { formatPath, pathContains, pathDepth } from '../path';
import { Lwm2mError, Lwm2mPath, ResourceRecord, ResourceTypeLookup, ResourceValue, ValueTree } from '../types';
import { CborValue, decodeCbor, encodeCbor } from './cbor';
import { DecodeError, EncodeError } from './errors';
import { decodeLwm2mCbor, encodeLwm2mCbor } from './lwm2m-cbor';
import { decodeOmaJson, encodeOmaJson } from './oma-json';
import {
  decodeSenmlCbor, decodeSenmlJson, decodeSenmlPathList, encodeSenmlCbor, encodeSenmlJson, encodeSenmlPathList,
} from './senml';
import { decodeTlv, encodeTlv } from './tlv';
import { coerceValue, isResourceValue, valueFromText, valueToText } from './values';

export { DecodeError, EncodeError } from './errors';
export { Link, parseLinkFormat, formatLinkFormat } from './link-format';
export { coerceValue, isObjectLink, valueToText, valueFromText } from './values';
export { decodeCbor, encodeCbor, CborValue } from './cbor';

export type FormatName = 'text' | 'opaque' | 'tlv' | 'senml-json' | 'senml-cbor' | 'lwm2m-cbor' | 'oma-json' | 'link-format';

export const FORMAT_CODES: Record<FormatName, number> = {
  text: 0,
  'link-format': 40,
  opaque: 42,
  'senml-json': 110,
  'senml-cbor': 112,
  tlv: 11542,
  'oma-json': 11543,
  'lwm2m-cbor': 11544,
};

const NAMES_BY_CODE = new Map<number, FormatName>(
  (Object.entries(FORMAT_CODES) as [FormatName, number][]).map(([name, code]) => [code, name]),
);
/** LwM2M 1.0 clients used the pre-registration codes 1541–1543 for TLV/JSON. */
NAMES_BY_CODE.set(1542, 'tlv');
NAMES_BY_CODE.set(1543, 'oma-json');

export function formatName(code: number): FormatName | undefined {
  return NAMES_BY_CODE.get(code);
}

export class UnknownFormatError extends Lwm2mError {}

/** Accepts a format name ("senml-cbor"), a numeric code or a numeric string. */
export function toFormatCode(format: FormatName | number | string): number {
  if (typeof format === 'number' && Number.isInteger(format) && format >= 0 && format <= 65535) return format;
  if (typeof format === 'string') {
    const key = format.trim().toLowerCase();
    if (key in FORMAT_CODES) return FORMAT_CODES[key as FormatName];
    if (/^\d+$/.test(key)) return Number(key);
  }
  throw new UnknownFormatError(`unknown content format ${JSON.stringify(format)} (use one of ${Object.keys(FORMAT_CODES).join(', ')} or a number)`);
}

export function toFormatName(format: FormatName | number | string): FormatName {
  const name = formatName(toFormatCode(format));
  if (!name) throw new UnknownFormatError(`content format ${format} is not supported`);
  return name;
}

export interface CodecOptions {
  basePath: Lwm2mPath;
  types?: ResourceTypeLookup;
  /**
   * The records are the resources of a new instance whose id the client picks
   * (Create on an object path without an instance id). TLV sends resource TLVs without an instance
   * wrapper, SenML names relative to the object, LwM2M CBOR resource ids at the top level; OMA JSON,
   * text and opaque cannot say it. Decoding takes such names below instance 0 of the base object.
   */
  newInstance?: boolean;
}

/** The formats that can carry a Create without an instance id (see CodecOptions.newInstance). */
export const NEW_INSTANCE_FORMATS: readonly FormatName[] = ['tlv', 'senml-json', 'senml-cbor', 'lwm2m-cbor'];

function single(records: ResourceRecord[], format: string): ResourceRecord {
  if (records.length !== 1) throw new EncodeError(`${format} carries exactly one resource value, not ${records.length}`);
  return records[0];
}

function resourcePath(basePath: Lwm2mPath, format: string): Lwm2mPath {
  if (basePath.resourceId === undefined || basePath.instanceId === undefined) {
    throw new DecodeError(`${format} carries a single resource: the path must name one (got ${formatPath(basePath)})`);
  }
  return basePath;
}

/** Formats whose numbers are text: NaN and ±Infinity have no form there (JSON would even write null). */
const TEXT_NUMBER_FORMATS: FormatName[] = ['text', 'senml-json', 'oma-json'];

export function encodeRecords(format: FormatName, records: ResourceRecord[], opts: CodecOptions): Buffer {
  for (const r of records) {
    if (typeof r.value !== 'number') continue;
    const type = r.path.resourceId !== undefined ? opts.types?.resourceType(r.path.objectId, r.path.resourceId) : undefined;
    if (!Number.isFinite(r.value) && (type !== 'float' || TEXT_NUMBER_FORMATS.includes(format))) {
      throw new EncodeError(`${formatPath(r.path)}: ${r.value} cannot be written as ${format}`);
    }
    if ((type === 'integer' || type === 'unsigned') && !Number.isSafeInteger(r.value)) {
      throw new EncodeError(`${formatPath(r.path)}: ${r.value} is not an exact integer (beyond ±2^53)`);
    }
  }
  if (opts.newInstance) {
    if (!NEW_INSTANCE_FORMATS.includes(format)) throw new EncodeError(`${format} cannot carry a Create without an instance id`);
    if (records.some((r) => r.path.resourceId === undefined)) throw new EncodeError('a new instance takes resource values');
    const base: Lwm2mPath = { objectId: opts.basePath.objectId, instanceId: records[0]?.path.instanceId ?? 0 };
    switch (format) {
      case 'tlv': return encodeTlv(records, base, opts.types);
      case 'senml-json': return encodeSenmlJson(records, base, { newInstance: true });
      case 'senml-cbor': return encodeSenmlCbor(records, base, { newInstance: true });
      default: return encodeLwm2mCbor(records, { newInstance: true });
    }
  }
  switch (format) {
    case 'text': return Buffer.from(valueToText(single(records, 'text/plain').value), 'utf8');
    case 'opaque': {
      const v = single(records, 'opaque').value;
      if (!Buffer.isBuffer(v)) throw new EncodeError('opaque format needs a Buffer value');
      return v;
    }
    case 'tlv': return encodeTlv(records, opts.basePath, opts.types);
    case 'senml-json': return encodeSenmlJson(records, opts.basePath);
    case 'senml-cbor': return encodeSenmlCbor(records, opts.basePath);
    case 'lwm2m-cbor': return encodeLwm2mCbor(records);
    case 'oma-json': return encodeOmaJson(records, opts.basePath);
    default: throw new EncodeError(`cannot encode resource values as ${format}`);
  }
}

export function decodeRecords(format: FormatName, payload: Buffer, opts: CodecOptions): ResourceRecord[] {
  switch (format) {
    case 'text': {
      const path = resourcePath(opts.basePath, 'text/plain');
      const text = payload.toString('utf8');
      return [{ path, value: valueFromText(text, opts.types?.resourceType(path.objectId, path.resourceId!)) }];
    }
    case 'opaque': return [{ path: resourcePath(opts.basePath, 'opaque'), value: Buffer.from(payload) }];
    case 'tlv': return decodeTlv(payload, opts.basePath, opts.types);
    case 'senml-json': return decodeSenmlJson(payload, opts.types, opts.newInstance ? `/${opts.basePath.objectId}/0/` : undefined);
    case 'senml-cbor': return decodeSenmlCbor(payload, opts.types, opts.newInstance ? `/${opts.basePath.objectId}/0/` : undefined);
    case 'lwm2m-cbor': return decodeLwm2mCbor(payload, opts.types, opts.newInstance ? [opts.basePath.objectId, 0] : []);
    case 'oma-json': return decodeOmaJson(payload, opts.types);
    default: throw new DecodeError(`${format} does not carry resource values`);
  }
}

/** The nested value below `basePath` (a primitive when the base path names one resource value). */
export function recordsToTree(basePath: Lwm2mPath, records: ResourceRecord[]): ValueTree {
  const depth = pathDepth(basePath);
  if (depth === 4 || (depth === 3 && records.length === 1 && records[0].path.resourceInstanceId === undefined)) {
    return records.length ? records[0].value : {};
  }
  const root: { [id: string]: ValueTree } = {};
  for (const r of records) {
    if (!pathContains(basePath, r.path)) continue;
    const ids = [r.path.objectId, r.path.instanceId, r.path.resourceId, r.path.resourceInstanceId]
      .filter((id): id is number => id !== undefined)
      .slice(depth);
    let node = root;
    for (let i = 0; i < ids.length - 1; i++) {
      const key = String(ids[i]);
      const next = node[key];
      if (typeof next !== 'object' || next === null || isResourceValue(next)) node[key] = {};
      node = node[key] as { [id: string]: ValueTree };
    }
    node[String(ids[ids.length - 1])] = r.value;
  }
  return root;
}

function isBranch(tree: ValueTree): tree is { [id: string]: ValueTree } {
  return typeof tree === 'object' && tree !== null && !isResourceValue(tree);
}

/** Flattens a message value below `basePath` into typed records, coercing by the model's types. */
export function treeToRecords(basePath: Lwm2mPath, tree: ValueTree, types?: ResourceTypeLookup): ResourceRecord[] {
  const out: ResourceRecord[] = [];
  const walk = (ids: number[], node: ValueTree) => {
    const path: Lwm2mPath = { objectId: ids[0], instanceId: ids[1], resourceId: ids[2], resourceInstanceId: ids[3] };
    const where = formatPath(path);
    if (!isBranch(node)) {
      if (ids.length < 3) throw new EncodeError(`${where}: a single value needs a resource path, or give {id: value}`);
      out.push({ path, value: coerceValue(node, types?.resourceType(path.objectId, path.resourceId!), where) });
      return;
    }
    if (ids.length === 4) throw new EncodeError(`${where}: a resource instance takes a single value`);
    for (const [key, child] of Object.entries(node)) {
      if (!/^\d{1,5}$/.test(key) || Number(key) > 65535) throw new EncodeError(`${where}: "${key}" is not a numeric id`);
      walk([...ids, Number(key)], child);
    }
  };
  const ids = [basePath.objectId, basePath.instanceId, basePath.resourceId, basePath.resourceInstanceId]
    .filter((id): id is number => id !== undefined);
  if (tree === undefined || tree === null) throw new EncodeError(`${formatPath(basePath)}: no value given`);
  walk(ids, tree);
  return out;
}

/**
 * Composite results keyed by full path: {"/3/0/0": "Acme", "/3303/0/5700": 21.5}. A path with
 * several time-stamped values (SenML) gets the newest; the records keep them all.
 */
export function recordsToComposite(records: ResourceRecord[]): Record<string, ResourceValue> {
  const out: Record<string, ResourceValue> = {};
  const times = new Map<string, number | undefined>();
  for (const r of records) {
    const key = formatPath(r.path);
    const before = times.get(key);
    if (times.has(key) && before !== undefined && r.time !== undefined && r.time < before) continue;
    out[key] = r.value;
    times.set(key, r.time);
  }
  return out;
}

export function encodePathList(format: 'senml-json' | 'senml-cbor' | 'lwm2m-cbor', paths: Lwm2mPath[]): Buffer {
  if (format === 'lwm2m-cbor') {
    // LwM2M 1.2 §7.4.6: a composite request body is the nested map with null leaves
    const root = new Map<CborValue, CborValue>();
    for (const p of paths) {
      const ids = [p.objectId, p.instanceId, p.resourceId, p.resourceInstanceId].filter((x): x is number => x !== undefined);
      root.set(ids, null);
    }
    return encodeCbor(root);
  }
  return encodeSenmlPathList(paths, format === 'senml-cbor');
}

export function decodePathList(format: FormatName, payload: Buffer): Lwm2mPath[] {
  if (format === 'senml-json' || format === 'senml-cbor') return decodeSenmlPathList(payload, format === 'senml-cbor');
  if (format === 'lwm2m-cbor') {
    const root = decodeCbor(payload);
    if (!(root instanceof Map)) throw new DecodeError('LwM2M CBOR: expected a map');
    const out: Lwm2mPath[] = [];
    const walk = (node: Map<CborValue, CborValue>, prefix: number[]) => {
      for (const [key, value] of node) {
        const ids = [...prefix, ...(Array.isArray(key) ? key : [key])] as number[];
        if (!ids.every((id) => Number.isInteger(id) && id >= 0 && id <= 65535) || ids.length > 4) throw new DecodeError('LwM2M CBOR: bad path key');
        if (value instanceof Map) walk(value, ids);
        else out.push({ objectId: ids[0], instanceId: ids[1], resourceId: ids[2], resourceInstanceId: ids[3] });
      }
    };
    walk(root, []);
    return out;
  }
  throw new DecodeError(`${format} cannot carry a path list`);
}
