/**
 * What lwm2m-observe nodes keep beyond one instance: the observations a node started, handed to
 * the node that replaces it at a deploy (the server, kept running, still has them), and the
 * retries of failed auto-observations.
 */
import { Handover } from './handover';

const handedOver = new Handover<Set<string>>();

export function keepObservations(nodeId: string, keys: Set<string>): void {
  if (keys.size > 0) handedOver.keep(nodeId, keys);
}

export function takeObservations(nodeId: string): Set<string> {
  return handedOver.take(nodeId) ?? new Set();
}

/** First retry after this long, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 300_000;
/** Retries waiting at once per node; beyond this a device's next Update is its retry. */
export const MAX_PENDING_RETRIES = 10_000;

interface Retry {
  timer: NodeJS.Timeout | null;
  delay: number;
}

/** Failed auto-observations tried again with backoff, one timer per endpoint and path. */
export class AutoObserveRetries {
  private readonly byEndpoint = new Map<string, Map<string, Retry>>();
  private size = 0;

  failed(endpoint: string, path: string, retry: () => void): void {
    let paths = this.byEndpoint.get(endpoint);
    const entry = paths?.get(path);
    if (!entry && this.size >= MAX_PENDING_RETRIES) return;
    const delay = entry ? Math.min(entry.delay * 2, RETRY_MAX_MS) : RETRY_FIRST_MS;
    if (entry?.timer) clearTimeout(entry.timer);
    const next: Retry = { timer: null, delay };
    next.timer = setTimeout(() => {
      next.timer = null;
      retry();
    }, delay);
    next.timer.unref();
    if (!paths) this.byEndpoint.set(endpoint, paths = new Map());
    if (!entry) this.size++;
    paths.set(path, next);
  }

  succeeded(endpoint: string, path: string): void {
    const paths = this.byEndpoint.get(endpoint);
    const entry = paths?.get(path);
    if (!paths || !entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    paths.delete(path);
    this.size--;
    if (paths.size === 0) this.byEndpoint.delete(endpoint);
  }

  /** The device is gone (or registered anew): its retries end. */
  forget(endpoint: string): void {
    const paths = this.byEndpoint.get(endpoint);
    if (!paths) return;
    for (const entry of paths.values()) if (entry.timer) clearTimeout(entry.timer);
    this.size -= paths.size;
    this.byEndpoint.delete(endpoint);
  }

  clear(): void {
    for (const endpoint of [...this.byEndpoint.keys()]) this.forget(endpoint);
  }
}
