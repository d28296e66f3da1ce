/**
 * The lwm2m-server nodes running now, by node id, for the editor's device browser; and what each
 * server's bootstrap sessions and refusals were lately (a bounded log: the editor shows the recent
 * past, flows get every event from lwm2m-register).
 */
import type { Lwm2mServer, SecurityRefusal } from '../../lwm2m/server';
import type { BootstrapServer, BootstrapSessionEvent } from '../../lwm2m/server/bootstrap-server';

/** Events kept per server for the browser. */
export const MAX_EVENTS = 200;

export interface BrowserEvent {
  at: string;
  kind: 'bootstrap' | 'refused';
  endpoint?: string;
  event?: string;
  step?: string;
  code?: string;
  reason?: string;
  address?: string;
  port?: number;
  operation?: string;
}

export interface ServerEntry {
  id: string;
  name: string;
  server: Lwm2mServer;
  bootstrap: BootstrapServer | null;
  events: BrowserEvent[];
}

const DEVICE_EVENTS = ['register', 'update', 'deregister', 'expire', 'moved'];

const servers = new Map<string, ServerEntry>();
/** By server, not node: a server taken over at a deploy keeps its log. */
const eventLogs = new WeakMap<Lwm2mServer, BrowserEvent[]>();
const listeners = new Set<(entry: ServerEntry, event: BrowserEvent) => void>();
const deviceListeners = new Set<(entry: ServerEntry) => void>();

/** Adds a server node; the function returned takes it out again (and stops its listeners). */
export function addServer(id: string, name: string, server: Lwm2mServer, bootstrap: BootstrapServer | null): () => void {
  let events = eventLogs.get(server);
  if (!events) eventLogs.set(server, events = []);
  const entry: ServerEntry = { id, name, server, bootstrap, events };
  const log = (event: BrowserEvent) => {
    entry.events.push(event);
    if (entry.events.length > MAX_EVENTS) entry.events.splice(0, entry.events.length - MAX_EVENTS);
    for (const listener of listeners) listener(entry, event);
  };
  const onSession = (e: BootstrapSessionEvent) => log({
    at: new Date().toISOString(), kind: 'bootstrap', endpoint: e.endpoint, event: e.event, step: e.step, code: e.code, reason: e.error, address: e.address, port: e.port,
  });
  const onRefused = (r: SecurityRefusal) => log({
    at: new Date().toISOString(), kind: 'refused', endpoint: r.endpoint, operation: r.operation, reason: r.reason, address: r.address, port: r.port,
  });
  const onDevices = () => {
    for (const listener of deviceListeners) listener(entry);
  };
  bootstrap?.on('session', onSession);
  server.on('securityRefused', onRefused);
  for (const event of DEVICE_EVENTS) server.on(event, onDevices);
  servers.set(id, entry);
  return () => {
    bootstrap?.removeListener('session', onSession);
    server.removeListener('securityRefused', onRefused);
    for (const event of DEVICE_EVENTS) server.removeListener(event, onDevices);
    if (servers.get(id) === entry) servers.delete(id);
  };
}

export function getServer(id: string): ServerEntry | undefined {
  return servers.get(id);
}

export function listServers(): ServerEntry[] {
  return [...servers.values()];
}

/** A device registered, updated, moved, left or expired. */
export function onDevicesChanged(listener: (entry: ServerEntry) => void): void {
  deviceListeners.add(listener);
}

export function onBrowserEvent(listener: (entry: ServerEntry, event: BrowserEvent) => void): void {
  listeners.add(listener);
}
