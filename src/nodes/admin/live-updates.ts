/**
 * The device browser's live updates through RED.comms, throttled so that a registration storm or a
 * chatty device cannot flood the editor: per server at most one "devices changed" and one "events"
 * message a second (the browser fetches the page it shows), and per observed path at most one value
 * every NOTIFY_INTERVAL_MS (the latest; values in between are folded away).
 */
import type { NodeAPI } from 'node-red';
import type { Lwm2mServer, Notification } from '../../lwm2m/server';
import type { ValueTree } from '../../lwm2m/types';
import { jsonValue } from './json-value';
import { onBrowserEvent, onDevicesChanged, ServerEntry } from './directory';

const LIST_INTERVAL_MS = 1_000;
const NOTIFY_INTERVAL_MS = 250;
/** Paths observed from the editor at once, per server (each costs the device a notification stream). */
export const MAX_BROWSER_OBSERVATIONS = 100;

interface Watch {
  endpoint: string;
  path: string;
  /** Started by the browser (cancelled with it), or a flow's observation that the browser shows too. */
  ours: boolean;
  pending: Notification | null;
  timer: NodeJS.Timeout | null;
}

interface Comms {
  publish(topic: string, data: unknown, retain?: boolean): void;
}

export class LiveUpdates {
  private readonly comms: Comms;
  private readonly listTimers = new Map<string, NodeJS.Timeout>();
  private readonly eventTimers = new Map<string, NodeJS.Timeout>();
  private readonly watches = new WeakMap<Lwm2mServer, Map<string, Watch>>();

  constructor(RED: NodeAPI) {
    this.comms = (RED as unknown as { comms: Comms }).comms;
    onDevicesChanged((entry) => this.later(this.listTimers, entry, 'devices', () => ({ count: entry.server.registrationCount })));
    onBrowserEvent((entry) => this.later(this.eventTimers, entry, 'events', () => ({ count: entry.events.length })));
  }

  private later(timers: Map<string, NodeJS.Timeout>, entry: ServerEntry, topic: string, data: () => unknown): void {
    if (timers.has(entry.id)) return;
    const timer = setTimeout(() => {
      timers.delete(entry.id);
      this.comms.publish(`lwm2m/${topic}/${entry.id}`, data());
    }, LIST_INTERVAL_MS);
    timer.unref();
    timers.set(entry.id, timer);
  }

  /** Observes a path for the browser (or joins a flow's observation of it); the current value back. */
  async observe(entry: ServerEntry, endpoint: string, path: string): Promise<ValueTree> {
    const watches = this.watchesOf(entry);
    const key = `${endpoint}\n${path}`;
    if (!watches.has(key) && watches.size >= MAX_BROWSER_OBSERVATIONS) {
      throw Object.assign(new Error(`${MAX_BROWSER_OBSERVATIONS} paths are observed from the editor already: cancel one first`), { status: 429 });
    }
    const { server } = entry;
    if (server.isObserving(endpoint, path)) {
      if (!watches.has(key)) watches.set(key, { endpoint, path, ours: false, pending: null, timer: null });
      return (await server.read(endpoint, path)).value;
    }
    const result = await server.observe(endpoint, path);
    watches.set(key, { endpoint, path, ours: true, pending: null, timer: null });
    return result.value;
  }

  async cancel(entry: ServerEntry, endpoint: string, path: string): Promise<void> {
    const watches = this.watchesOf(entry);
    const key = `${endpoint}\n${path}`;
    const watch = watches.get(key);
    if (!watch) return;
    watches.delete(key);
    if (watch.timer) clearTimeout(watch.timer);
    if (watch.ours && entry.server.isObserving(endpoint, path)) await entry.server.cancelObservation(endpoint, path);
  }

  private watchesOf(entry: ServerEntry): Map<string, Watch> {
    let watches = this.watches.get(entry.server);
    if (!watches) {
      const map = new Map<string, Watch>();
      watches = map;
      this.watches.set(entry.server, map);
      // one listener per server, for as long as the server lives (it survives deploys)
      entry.server.on('notify', (n: Notification) => {
        if (Array.isArray(n.path)) return;
        const watch = map.get(`${n.endpoint}\n${n.path}`);
        if (watch) this.notify(entry.id, watch, n);
      });
    }
    return watches;
  }

  private notify(serverId: string, watch: Watch, n: Notification): void {
    watch.pending = n;
    if (watch.timer) return;
    const flush = () => {
      watch.timer = null;
      const latest = watch.pending;
      if (!latest) return;
      watch.pending = null;
      this.comms.publish(`lwm2m/notify/${serverId}`, {
        endpoint: latest.endpoint, path: latest.path, at: latest.receivedAt.toISOString(), value: jsonValue(latest.value as ValueTree),
      });
      watch.timer = setTimeout(flush, NOTIFY_INTERVAL_MS);
      watch.timer.unref();
    };
    flush();
  }
}
