/**
 * The values of a client's object instances: /o/i/r → value, and /o/i/r/ri for multi-instance
 * resources. Reads come out as codec records; writes go in as records.
 */
import { pathContains } from '../path';
import { Lwm2mPath, ResourceRecord, ResourceValue } from '../types';

export type ResourceSlot = ResourceValue | Map<number, ResourceValue>;
export type InstanceValues = Map<number, ResourceSlot>;

export class ObjectStore {
  private readonly objects = new Map<number, Map<number, InstanceValues>>();

  objectIds(): number[] {
    return [...this.objects.keys()].sort((a, b) => a - b);
  }

  instanceIds(objectId: number): number[] {
    return [...(this.objects.get(objectId)?.keys() ?? [])].sort((a, b) => a - b);
  }

  hasObject(objectId: number): boolean {
    return this.objects.has(objectId);
  }

  instance(objectId: number, instanceId: number): InstanceValues | undefined {
    return this.objects.get(objectId)?.get(instanceId);
  }

  setInstance(objectId: number, instanceId: number, resources: Record<number, ResourceValue | Record<number, ResourceValue>>): void {
    const values: InstanceValues = new Map();
    for (const [rid, value] of Object.entries(resources)) {
      if (isMultiValue(value)) {
        values.set(Number(rid), new Map(Object.entries(value).map(([ri, v]) => [Number(ri), v])));
      } else {
        values.set(Number(rid), value);
      }
    }
    let obj = this.objects.get(objectId);
    if (!obj) this.objects.set(objectId, (obj = new Map()));
    obj.set(instanceId, values);
  }

  ensureInstance(objectId: number, instanceId: number): InstanceValues {
    let obj = this.objects.get(objectId);
    if (!obj) this.objects.set(objectId, (obj = new Map()));
    let inst = obj.get(instanceId);
    if (!inst) obj.set(instanceId, (inst = new Map()));
    return inst;
  }

  deleteObject(objectId: number): void {
    this.objects.delete(objectId);
  }

  deleteInstance(objectId: number, instanceId: number): boolean {
    return this.objects.get(objectId)?.delete(instanceId) ?? false;
  }

  /** Does the path name something that exists? */
  exists(path: Lwm2mPath): boolean {
    const obj = this.objects.get(path.objectId);
    if (!obj) return false;
    if (path.instanceId === undefined) return true;
    const inst = obj.get(path.instanceId);
    if (!inst) return false;
    if (path.resourceId === undefined) return true;
    const slot = inst.get(path.resourceId);
    if (slot === undefined) return false;
    if (path.resourceInstanceId === undefined) return true;
    return slot instanceof Map && slot.has(path.resourceInstanceId);
  }

  /** Every value at or below `path`, as records. */
  read(path: Lwm2mPath, readable: (objectId: number, resourceId: number) => boolean = () => true): ResourceRecord[] {
    const out: ResourceRecord[] = [];
    const obj = this.objects.get(path.objectId);
    if (!obj) return out;
    for (const [instanceId, inst] of obj) {
      if (path.instanceId !== undefined && instanceId !== path.instanceId) continue;
      for (const [resourceId, slot] of inst) {
        if (path.resourceId !== undefined && resourceId !== path.resourceId) continue;
        if (!readable(path.objectId, resourceId)) continue;
        if (slot instanceof Map) {
          for (const [ri, value] of slot) {
            const p = { objectId: path.objectId, instanceId, resourceId, resourceInstanceId: ri };
            if (pathContains(path, p)) out.push({ path: p, value });
          }
        } else {
          out.push({ path: { objectId: path.objectId, instanceId, resourceId }, value: slot });
        }
      }
    }
    return out;
  }

  /** Stores records; `replaceResources` clears multi-instance resources that the records rewrite. */
  write(records: ResourceRecord[], replaceResources = true): void {
    const cleared = new Set<string>();
    for (const { path, value } of records) {
      const inst = this.ensureInstance(path.objectId, path.instanceId!);
      if (path.resourceInstanceId === undefined) {
        inst.set(path.resourceId!, value);
        continue;
      }
      const key = `${path.instanceId}/${path.resourceId}`;
      let slot = inst.get(path.resourceId!);
      if (!(slot instanceof Map) || (replaceResources && !cleared.has(key))) {
        slot = new Map();
        inst.set(path.resourceId!, slot);
        cleared.add(key);
      }
      slot.set(path.resourceInstanceId, value);
    }
  }
}

function isMultiValue(value: unknown): value is Record<number, ResourceValue> {
  return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) && !(value instanceof Date)
    && !('objectId' in value && 'instanceId' in value);
}
