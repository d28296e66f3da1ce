import { Lwm2mError, Lwm2mPath } from './types';

export class PathError extends Lwm2mError {}

const MAX_ID = 65535;

/**
 * Parses "/o", "/o/i", "/o/i/r" or "/o/i/r/ri" (leading slash optional, no trailing slash).
 * Hand-rolled rather than split/regex: codecs call it for every value they decode.
 */
export function parsePath(text: string): Lwm2mPath {
  if (typeof text !== 'string' || text.length === 0) {
    throw new PathError(`LwM2M path must be a non-empty string like "/3/0/0", got ${JSON.stringify(text)}`);
  }
  const ids: number[] = [];
  let i = text.charCodeAt(0) === 47 /* / */ ? 1 : 0;
  for (;;) {
    let value = 0;
    let digits = 0;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 47) break;
      if (c < 48 || c > 57 || digits === 5) {
        const end = text.indexOf('/', i);
        const start = text.lastIndexOf('/', i) + 1;
        throw new PathError(`LwM2M path "${text}": "${text.slice(start, end < 0 ? undefined : end)}" is not a number`);
      }
      value = value * 10 + (c - 48);
      digits++;
      i++;
    }
    if (digits === 0) throw new PathError(`LwM2M path "${text}": "" is not a number`);
    if (value > MAX_ID) throw new PathError(`LwM2M path "${text}": ${value} exceeds ${MAX_ID}`);
    ids.push(value);
    if (i >= text.length) break;
    if (ids.length === 4) throw new PathError(`LwM2M path "${text}" has more than 4 levels`);
    i++; // past the slash
  }
  const [objectId, instanceId, resourceId, resourceInstanceId] = ids;
  if (instanceId === MAX_ID) throw new PathError(`LwM2M path "${text}": instance id 65535 is reserved`);
  return { objectId, instanceId, resourceId, resourceInstanceId };
}

export function formatPath(path: Lwm2mPath): string {
  let text = `/${path.objectId}`;
  if (path.instanceId === undefined) return text;
  text += `/${path.instanceId}`;
  if (path.resourceId === undefined) return text;
  text += `/${path.resourceId}`;
  if (path.resourceInstanceId === undefined) return text;
  return `${text}/${path.resourceInstanceId}`;
}

/** Number of levels: 1 object, 2 instance, 3 resource, 4 resource instance. */
export function pathDepth(path: Lwm2mPath): 1 | 2 | 3 | 4 {
  if (path.instanceId === undefined) return 1;
  if (path.resourceId === undefined) return 2;
  if (path.resourceInstanceId === undefined) return 3;
  return 4;
}

/** True when `inner` equals `outer` or lies below it. */
export function pathContains(outer: Lwm2mPath, inner: Lwm2mPath): boolean {
  if (outer.objectId !== inner.objectId) return false;
  if (outer.instanceId === undefined) return true;
  if (outer.instanceId !== inner.instanceId) return false;
  if (outer.resourceId === undefined) return true;
  if (outer.resourceId !== inner.resourceId) return false;
  if (outer.resourceInstanceId === undefined) return true;
  return outer.resourceInstanceId === inner.resourceInstanceId;
}

/** Accepts a path string or an already parsed path. */
export function toPath(path: string | Lwm2mPath): Lwm2mPath {
  return typeof path === 'string' ? parsePath(path) : path;
}
