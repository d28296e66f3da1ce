/**
 * The legacy OMA LwM2M JSON format (11543) of LwM2M 1.0 (§6.4.4): {"bn": "/3/0/", "e": [{"n": "0",
 * "sv": "…"}, {"n": "9", "v": 100}, {"n": "x", "bv": true}, {"n": "y", "ov": "3:0"}]}.
 */
import { formatPath, parsePath, pathDepth } from '../path';
import { Lwm2mPath, ResourceRecord, ResourceTypeLookup } from '../types';
import { DecodeError } from './errors';
import { isObjectLink, valueFromText } from './values';

export function encodeOmaJson(records: ResourceRecord[], basePath: Lwm2mPath): Buffer {
  // bn is the object instance (or the object) with a trailing slash and n the rest, also for one
  // resource: {"bn":"/31024/11/","e":[{"n":"5","sv":"x"}]} — Wakaama's parser expects this shape
  const container: Lwm2mPath = pathDepth(basePath) >= 2 ? { objectId: basePath.objectId, instanceId: basePath.instanceId } : basePath;
  const bn = `${formatPath(container)}/`;
  const e = records.map((r) => {
    const full = formatPath(r.path);
    const entry: Record<string, unknown> = {};
    const n = full.startsWith(bn) ? full.slice(bn.length) : full;
    if (n) entry.n = n;
    const v = r.value;
    if (typeof v === 'number') entry.v = v;
    else if (typeof v === 'boolean') entry.bv = v;
    else if (typeof v === 'string') entry.sv = v;
    else if (Buffer.isBuffer(v)) entry.sv = v.toString('base64');
    else if (v instanceof Date) entry.v = Math.floor(v.getTime() / 1000);
    else if (isObjectLink(v)) entry.ov = `${v.objectId}:${v.instanceId}`;
    return entry;
  });
  return Buffer.from(JSON.stringify({ bn, e }), 'utf8');
}

export function decodeOmaJson(payload: Buffer, types?: ResourceTypeLookup): ResourceRecord[] {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new DecodeError('OMA JSON: not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { e?: unknown }).e)) {
    throw new DecodeError('OMA JSON: expected an object with an "e" array');
  }
  const { bn = '', e } = doc as { bn?: unknown; e: unknown[] };
  if (typeof bn !== 'string') throw new DecodeError('OMA JSON: bn must be a string');
  return e.map((raw) => {
    if (typeof raw !== 'object' || raw === null) throw new DecodeError('OMA JSON: entries must be objects');
    const entry = raw as Record<string, unknown>;
    const n = typeof entry.n === 'string' ? entry.n : '';
    // "bn":"/3/0" with "n":"1" is /3/0/1 too (LwM2M 1.0 clients send both shapes)
    const name = bn && n && !bn.endsWith('/') && !n.startsWith('/') ? `${bn}/${n}` : bn + n;
    let path: Lwm2mPath;
    try {
      path = parsePath(name);
    } catch {
      throw new DecodeError(`OMA JSON: bad name "${name}"`);
    }
    if (path.resourceId === undefined) throw new DecodeError(`OMA JSON: "${name}" is not a resource path`);
    const type = types?.resourceType(path.objectId, path.resourceId);
    if (typeof entry.v === 'number') return { path, value: type === 'time' ? new Date(entry.v * 1000) : entry.v };
    if (typeof entry.bv === 'boolean') return { path, value: entry.bv };
    if (typeof entry.ov === 'string') return { path, value: valueFromText(entry.ov, 'objlnk') };
    if (typeof entry.sv === 'string') {
      return { path, value: type && type !== 'string' && type !== 'corelnk' ? valueFromText(entry.sv, type) : entry.sv };
    }
    throw new DecodeError(`OMA JSON: "${name}" has no value`);
  });
}
