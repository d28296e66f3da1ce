/**
 * Notification attributes (LwM2M Core §5.1.2): pmin/pmax/gt/lt/st written with Write-Attributes,
 * inherited from object and instance levels, and the decision whether a new value is notified.
 */
import { formatPath } from '../path';
import { Lwm2mPath, ResourceValue } from '../types';

export interface NotificationAttributes {
  pmin?: number;
  pmax?: number;
  gt?: number;
  lt?: number;
  st?: number;
  epmin?: number;
  epmax?: number;
}

/** The notification attributes this client knows, in the order of Core §5.1.2. */
export const ATTRIBUTE_NAMES = ['pmin', 'pmax', 'gt', 'lt', 'st', 'epmin', 'epmax'] as const;
const NAMES = ATTRIBUTE_NAMES;

export class AttributeStore {
  private readonly byPath = new Map<string, NotificationAttributes>();

  /** Applies a Write-Attributes query ("pmin=10", "st=0.5", "gt" alone removes gt). */
  write(path: Lwm2mPath, query: string[]): boolean {
    const key = formatPath(path);
    const attrs = { ...(this.byPath.get(key) ?? {}) };
    for (const entry of query) {
      const [name, raw] = entry.split('=');
      if (!(NAMES as readonly string[]).includes(name)) return false;
      if (raw === undefined || raw === '') {
        delete attrs[name as keyof NotificationAttributes];
        continue;
      }
      const n = Number(raw);
      if (!Number.isFinite(n)) return false;
      attrs[name as keyof NotificationAttributes] = n;
    }
    if (attrs.pmin !== undefined && attrs.pmax !== undefined && attrs.pmax < attrs.pmin) return false;
    this.byPath.set(key, attrs);
    return true;
  }

  get(path: Lwm2mPath): NotificationAttributes {
    return this.byPath.get(formatPath(path)) ?? {};
  }

  /** Attributes in force for `path`: its own, else its instance's, else its object's. */
  effective(path: Lwm2mPath, defaults: NotificationAttributes): NotificationAttributes {
    const levels: Lwm2mPath[] = [
      { objectId: path.objectId },
      { objectId: path.objectId, instanceId: path.instanceId },
      { objectId: path.objectId, instanceId: path.instanceId, resourceId: path.resourceId },
    ].filter((p, i) => i === 0 || (i === 1 ? path.instanceId !== undefined : path.resourceId !== undefined));
    const result: NotificationAttributes = { ...defaults };
    for (const level of levels) Object.assign(result, this.byPath.get(formatPath(level)) ?? {});
    return result;
  }
}

/** Does a change from `previous` to `next` pass the gt/lt/st conditions? (Non-numeric: always.) */
export function passesThresholds(attrs: NotificationAttributes, previous: ResourceValue | undefined, next: ResourceValue): boolean {
  if (typeof next !== 'number' || typeof previous !== 'number') return true;
  const { gt, lt, st } = attrs;
  if (gt === undefined && lt === undefined && st === undefined) return true;
  if (st !== undefined && Math.abs(next - previous) >= st) return true;
  if (gt !== undefined && (previous <= gt) !== (next <= gt)) return true;
  if (lt !== undefined && (previous < lt) !== (next < lt)) return true;
  return false;
}
