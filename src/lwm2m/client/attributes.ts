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

/** gt/lt/st: only for numeric resources (and their instances). */
const THRESHOLDS: readonly (keyof NotificationAttributes)[] = ['gt', 'lt', 'st'];
/** A decimal number as text ("10", "-2.5", "1e3"); Number() alone would also take "0x10" and " ". */
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Core §5.1.2: pmin ≤ pmax, epmin ≤ epmax, lt < gt and lt + 2·st < gt when they are all set. */
function consistent(a: NotificationAttributes): boolean {
  if (a.pmin !== undefined && a.pmax !== undefined && a.pmin > a.pmax) return false;
  if (a.epmin !== undefined && a.epmax !== undefined && a.epmin > a.epmax) return false;
  if (a.lt !== undefined && a.gt !== undefined) {
    if (a.lt >= a.gt) return false;
    if (a.st !== undefined && a.lt + 2 * a.st >= a.gt) return false;
  }
  return true;
}

export class AttributeStore {
  private readonly byPath = new Map<string, NotificationAttributes>();

  /**
   * Applies a Write-Attributes query ("pmin=10", "st=0.5"; a name without a value, "gt", removes
   * it). `numeric` says whether the target is a numeric resource: gt/lt/st apply only there
   * (Core §5.1.2). Returns false, changing nothing, when the result would break §5.1.2's rules.
   */
  write(path: Lwm2mPath, query: string[], numeric: boolean): boolean {
    const key = formatPath(path);
    const attrs = { ...(this.byPath.get(key) ?? {}) };
    for (const entry of query) {
      const eq = entry.indexOf('=');
      const name = eq < 0 ? entry : entry.slice(0, eq);
      const raw = eq < 0 ? undefined : entry.slice(eq + 1);
      if (!(NAMES as readonly string[]).includes(name)) return false;
      const attr = name as keyof NotificationAttributes;
      if (THRESHOLDS.includes(attr) && !numeric) return false;
      if (raw === undefined || raw === '') {
        delete attrs[attr];
        continue;
      }
      if (!DECIMAL.test(raw)) return false;
      const n = Number(raw);
      // periods are seconds and a step is a distance: none of them can be negative
      if (attr !== 'gt' && attr !== 'lt' && n < 0) return false;
      attrs[attr] = n;
    }
    if (!consistent(attrs)) return false;
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
    ].filter((_, i) => i === 0 || (i === 1 ? path.instanceId !== undefined : path.resourceId !== undefined));
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
