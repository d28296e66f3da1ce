/**
 * LwM2M CBOR (11544), LwM2M 1.2 Core §7.4.6: nested maps keyed by path elements, the leaves are
 * values. A key may also be an array of path elements (a collapsed branch).
 */
import { Lwm2mPath, ResourceRecord, ResourceType, ResourceTypeLookup, ResourceValue } from '../types';
import { CborValue, decodeCbor, encodeCbor } from './cbor';
import { DecodeError, EncodeError } from './errors';
import { isObjectLink, numberValue, valueFromText } from './values';

function leaf(value: ResourceValue): CborValue {
  if (value instanceof Date) return Math.floor(value.getTime() / 1000);
  if (isObjectLink(value)) return `${value.objectId}:${value.instanceId}`;
  return value as CborValue;
}

/**
 * `newInstance` (Create without an instance id): the top-level keys are resource ids, relative to
 * the object the request targets (LwM2M 1.2 §7.4.6 lets Write and Create payloads start below the
 * object).
 */
export function encodeLwm2mCbor(records: ResourceRecord[], o: { newInstance?: boolean } = {}): Buffer {
  const root = new Map<CborValue, CborValue>();
  for (const r of records) {
    const ids = o.newInstance ? pathIds(r.path).slice(2) : pathIds(r.path);
    let node = root;
    for (let i = 0; i < ids.length - 1; i++) {
      let next = node.get(ids[i]);
      if (!(next instanceof Map)) {
        next = new Map<CborValue, CborValue>();
        node.set(ids[i], next);
      }
      node = next;
    }
    node.set(ids[ids.length - 1], leaf(r.value));
  }
  return encodeCbor(root);
}

function pathIds(p: Lwm2mPath): number[] {
  const ids = [p.objectId];
  if (p.instanceId !== undefined) ids.push(p.instanceId);
  if (p.resourceId !== undefined) ids.push(p.resourceId);
  if (p.resourceInstanceId !== undefined) ids.push(p.resourceInstanceId);
  if (ids.length < 3) throw new EncodeError('LwM2M CBOR: values need resource paths');
  return ids;
}

function idsOf(key: CborValue): number[] {
  const list = Array.isArray(key) ? key : [key];
  if (list.length === 0) throw new DecodeError('LwM2M CBOR: empty path key');
  return list.map((k) => {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 65535) throw new DecodeError('LwM2M CBOR: path keys must be integers 0..65535');
    return k;
  });
}

/** `prefix`: ids above the top-level keys (a Create's new instance: [objectId, 0]). */
export function decodeLwm2mCbor(payload: Buffer, types?: ResourceTypeLookup, prefix: number[] = []): ResourceRecord[] {
  const root = decodeCbor(payload);
  if (!(root instanceof Map)) throw new DecodeError('LwM2M CBOR: expected a map');
  const out: ResourceRecord[] = [];
  const walk = (node: Map<CborValue, CborValue>, prefix: number[]) => {
    for (const [key, value] of node) {
      const ids = [...prefix, ...idsOf(key)];
      if (ids.length > 4) throw new DecodeError('LwM2M CBOR: path deeper than 4 levels');
      if (value instanceof Map) {
        walk(value, ids);
        continue;
      }
      if (ids.length < 3) throw new DecodeError(`LwM2M CBOR: value at /${ids.join('/')} is not a resource`);
      const path: Lwm2mPath = { objectId: ids[0], instanceId: ids[1], resourceId: ids[2], resourceInstanceId: ids[3] };
      out.push({ path, value: toValue(value, types?.resourceType(ids[0], ids[2])) });
    }
  };
  walk(root, prefix);
  return out;
}

function toValue(value: CborValue, type: string | undefined): ResourceValue {
  if (typeof value === 'bigint' || typeof value === 'number') {
    const n = numberValue(value, type as ResourceType | undefined, 'LwM2M CBOR', true);
    return type === 'time' ? new Date(n * 1000) : n;
  }
  if (typeof value === 'string') return type === 'objlnk' ? valueFromText(value, 'objlnk') : value;
  if (typeof value === 'boolean' || Buffer.isBuffer(value)) return value;
  throw new DecodeError('LwM2M CBOR: unsupported leaf value');
}
