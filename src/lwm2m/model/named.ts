/**
 * Values keyed by resource names from the object model, for flows that would rather say
 * "Sensor Value" than 5700 (`msg.named`). Object and instance ids stay ids (they name nothing);
 * a resource the model does not know keeps its id.
 */
import { parsePath } from '../path';
import type { Lwm2mPath, ValueTree } from '../types';
import type { ObjectRegistry } from './registry';

function resourceName(registry: ObjectRegistry, objectId: number, resourceId: string): string {
  return registry.resource(objectId, Number(resourceId))?.name ?? resourceId;
}

function namedInstance(registry: ObjectRegistry, objectId: number, instance: ValueTree): ValueTree {
  if (!isTree(instance)) return instance;
  const out: Record<string, ValueTree> = {};
  for (const [id, value] of Object.entries(instance)) out[resourceName(registry, objectId, id)] = value;
  return out;
}

function isTree(value: ValueTree): value is Record<string, ValueTree> {
  return value !== null && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Date) && !('objectId' in value && 'instanceId' in value);
}

/** The values of a composite read or observation (`{path: value}`), each with resource names. */
export function namedComposite(registry: ObjectRegistry, values: Record<string, ValueTree>): Record<string, ValueTree> {
  const out: Record<string, ValueTree> = {};
  for (const [path, value] of Object.entries(values)) out[path] = namedValues(registry, parsePath(path), value);
  return out;
}

/** The value read at `path`, with resource names for resource ids. */
export function namedValues(registry: ObjectRegistry, path: Lwm2mPath, value: ValueTree): ValueTree {
  if (path.resourceId !== undefined) return { [resourceName(registry, path.objectId, String(path.resourceId))]: value };
  if (path.instanceId !== undefined) return namedInstance(registry, path.objectId, value);
  if (!isTree(value)) return value;
  const out: Record<string, ValueTree> = {};
  for (const [instanceId, instance] of Object.entries(value)) out[instanceId] = namedInstance(registry, path.objectId, instance);
  return out;
}
