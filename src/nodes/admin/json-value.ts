import type { ValueTree } from '../../lwm2m/types';

/** A value as JSON can carry it: opaque bytes as hex, times as ISO strings, object links as "3:0". */
export function jsonValue(value: ValueTree): unknown {
  if (Buffer.isBuffer(value)) return { hex: value.toString('hex') };
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    if ('objectId' in value && 'instanceId' in value && Object.keys(value).length === 2) return `${value.objectId}:${value.instanceId}`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonValue(v as ValueTree);
    return out;
  }
  return value;
}
