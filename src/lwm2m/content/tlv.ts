/**
 * OMA-TLV (content format 11542), LwM2M Core 1.1 §7.4.3. Values carry no type on the wire, so
 * decoding asks the object model; unknown resources decode as opaque Buffers.
 */
import { Lwm2mPath, ResourceRecord, ResourceTypeLookup } from '../types';
import { DecodeError, EncodeError } from './errors';
import { valueFromBytes, valueToBytes } from './values';

const OBJECT_INSTANCE = 0;
const RESOURCE_INSTANCE = 1;
const MULTIPLE_RESOURCE = 2;
const RESOURCE = 3;

interface Tlv {
  kind: number;
  id: number;
  value: Buffer; // raw bytes: nested TLVs for instance / multiple resource
}

function parseTlvs(buf: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let i = 0;
  while (i < buf.length) {
    const type = buf[i++];
    const kind = type >> 6;
    const idBytes = type & 0x20 ? 2 : 1;
    const lengthType = (type >> 3) & 0x03;
    if (i + idBytes > buf.length) throw new DecodeError('TLV: truncated identifier');
    const id = idBytes === 2 ? buf.readUInt16BE(i) : buf[i];
    i += idBytes;
    let length = type & 0x07;
    if (lengthType > 0) {
      if (i + lengthType > buf.length) throw new DecodeError('TLV: truncated length');
      length = buf.readUIntBE(i, lengthType);
      i += lengthType;
    }
    if (i + length > buf.length) throw new DecodeError(`TLV: value of ${length} bytes exceeds the payload`);
    out.push({ kind, id, value: buf.subarray(i, i + length) });
    i += length;
  }
  return out;
}

function header(kind: number, id: number, length: number): Buffer {
  const idBytes = id > 0xff ? 2 : 1;
  const lengthType = length < 8 ? 0 : length < 0x100 ? 1 : length < 0x10000 ? 2 : 3;
  if (length >= 0x1000000) throw new EncodeError('TLV: value larger than 16 MB');
  const b = Buffer.alloc(1 + idBytes + lengthType);
  b[0] = (kind << 6) | (idBytes === 2 ? 0x20 : 0) | (lengthType << 3) | (lengthType === 0 ? length : 0);
  if (idBytes === 2) b.writeUInt16BE(id, 1);
  else b[1] = id;
  if (lengthType > 0) b.writeUIntBE(length, 1 + idBytes, lengthType);
  return b;
}

function tlv(kind: number, id: number, value: Buffer): Buffer {
  return Buffer.concat([header(kind, id, value.length), value]);
}

export function decodeTlv(payload: Buffer, basePath: Lwm2mPath, types?: ResourceTypeLookup): ResourceRecord[] {
  const records: ResourceRecord[] = [];
  const objectId = basePath.objectId;
  const typeOf = (resourceId: number) => types?.resourceType(objectId, resourceId);

  const resources = (instanceId: number, entries: Tlv[]) => {
    for (const e of entries) {
      if (e.kind === RESOURCE) {
        records.push({ path: { objectId, instanceId, resourceId: e.id }, value: valueFromBytes(e.value, typeOf(e.id)) });
      } else if (e.kind === MULTIPLE_RESOURCE) {
        for (const ri of parseTlvs(e.value)) {
          if (ri.kind !== RESOURCE_INSTANCE) throw new DecodeError('TLV: multiple resource holds a non-instance entry');
          records.push({ path: { objectId, instanceId, resourceId: e.id, resourceInstanceId: ri.id }, value: valueFromBytes(ri.value, typeOf(e.id)) });
        }
      } else if (e.kind === RESOURCE_INSTANCE && basePath.resourceId !== undefined) {
        records.push({ path: { objectId, instanceId, resourceId: basePath.resourceId, resourceInstanceId: e.id }, value: valueFromBytes(e.value, typeOf(basePath.resourceId)) });
      } else {
        throw new DecodeError(`TLV: unexpected ${e.kind === OBJECT_INSTANCE ? 'object instance' : 'resource instance'} entry inside an instance`);
      }
    }
  };

  const top = parseTlvs(payload);
  if (top.length > 0 && top.every((e) => e.kind === OBJECT_INSTANCE)) {
    for (const inst of top) {
      if (basePath.instanceId !== undefined && inst.id !== basePath.instanceId) {
        throw new DecodeError(`TLV: instance ${inst.id} outside the requested path`);
      }
      resources(inst.id, parseTlvs(inst.value));
    }
  } else {
    if (top.some((e) => e.kind === OBJECT_INSTANCE)) throw new DecodeError('TLV: object instances mixed with resources');
    // resources straight at the top: the request named an instance (or a single-instance object)
    resources(basePath.instanceId ?? 0, top);
  }
  return records;
}

export function encodeTlv(records: ResourceRecord[], basePath: Lwm2mPath, types?: ResourceTypeLookup): Buffer {
  // group: instance → resource → records
  const instances = new Map<number, Map<number, ResourceRecord[]>>();
  for (const r of records) {
    const { instanceId, resourceId } = r.path;
    if (instanceId === undefined || resourceId === undefined) throw new EncodeError('TLV: records need instance and resource ids');
    if (r.path.objectId !== basePath.objectId) throw new EncodeError('TLV: records of several objects need a composite format');
    let res = instances.get(instanceId);
    if (!res) instances.set(instanceId, (res = new Map()));
    const list = res.get(resourceId);
    if (list) list.push(r);
    else res.set(resourceId, [r]);
  }
  const encodeResources = (resources: Map<number, ResourceRecord[]>): Buffer[] => {
    const out: Buffer[] = [];
    for (const [resourceId, list] of resources) {
      const type = types?.resourceType(basePath.objectId, resourceId);
      const multiple = list.some((r) => r.path.resourceInstanceId !== undefined)
        || types?.isMultiple?.(basePath.objectId, resourceId) === true;
      if (!multiple) {
        out.push(tlv(RESOURCE, resourceId, valueToBytes(list[0].value, type)));
      } else if (basePath.resourceInstanceId !== undefined) {
        for (const r of list) out.push(tlv(RESOURCE_INSTANCE, r.path.resourceInstanceId ?? 0, valueToBytes(r.value, type)));
      } else {
        const inner = Buffer.concat(list.map((r) => tlv(RESOURCE_INSTANCE, r.path.resourceInstanceId ?? 0, valueToBytes(r.value, type))));
        out.push(tlv(MULTIPLE_RESOURCE, resourceId, inner));
      }
    }
    return out;
  };
  if (basePath.instanceId !== undefined) {
    const only = instances.get(basePath.instanceId) ?? new Map<number, ResourceRecord[]>();
    if (instances.size > 1 || (instances.size === 1 && !instances.has(basePath.instanceId))) {
      throw new EncodeError('TLV: records outside the requested instance');
    }
    return Buffer.concat(encodeResources(only));
  }
  return Buffer.concat([...instances].map(([id, res]) => tlv(OBJECT_INSTANCE, id, Buffer.concat(encodeResources(res)))));
}
