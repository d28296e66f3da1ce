/**
 * Running LwM2M servers kept across a deploy: a Full deploy stops and re-creates every node, and
 * a server that went down with it would leave every device unknown until it registers again
 * (hours for NB-IoT devices with long lifetimes) and every observation gone. The stopped node
 * leaves its server running here; the node that replaces it (same id) takes it over whole —
 * socket, registrations, observations, DTLS sessions — when its settings are the same, or takes
 * its registrations onto a new socket when they changed. Whatever no node claims is stopped once
 * the new flows have started, or after KEEP_MS. Flows stopped other than by a deploy (Node-RED
 * shutting down, "restart flows") stop their servers, which save their registrations to their file
 * when the node says so.
 */
import { createHash } from 'crypto';
import type { NodeAPI } from 'node-red';
import type { Lwm2mServer, Registration } from '../../lwm2m/server';
import type { BootstrapServer } from '../../lwm2m/server/bootstrap-server';

const KEEP_MS = 60_000;

export interface KeptServer {
  server: Lwm2mServer;
  bootstrap: BootstrapServer | null;
}

interface Entry extends KeptServer {
  settings: string;
  stop: () => Promise<void>;
  timer: NodeJS.Timeout;
}

const kept = new Map<string, Entry>();
let watching = false;
/** Whether the flows stopping now stop for a deploy (set by the runtime's flows:stopping event). */
let deploying = false;

/** Whether a node closing now (not removed) should leave its server running for a successor. */
export function closingForDeploy(): boolean {
  return deploying;
}

/** What decides whether a server can be taken over as it is: every setting and credential, not the name. */
export function settingsKey(def: Record<string, unknown>, credentials: Record<string, unknown> | undefined): string {
  const hash = createHash('sha256');
  for (const key of Object.keys(def).sort()) {
    if (key === 'name' || key === 'x' || key === 'y' || key === 'z' || key === 'g' || key === '_users' || key === 'credentials') continue;
    hash.update(`${key}=${JSON.stringify(def[key])}\n`);
  }
  // credentials hashed, never kept as text
  hash.update(`credentials=${JSON.stringify(credentials ?? {})}`);
  return hash.digest('hex');
}

/** Leaves a running server for a successor node with the same id; `stop` ends it if none comes. */
export function keepServer(id: string, settings: string, server: KeptServer, stop: () => Promise<void>): void {
  void dropKept(id);
  const timer = setTimeout(() => void dropKept(id), KEEP_MS);
  timer.unref();
  kept.set(id, { ...server, settings, stop, timer });
}

/** The kept server when its settings match (it is the caller's now); null otherwise. */
export function adoptServer(id: string, settings: string): KeptServer | null {
  const entry = kept.get(id);
  if (!entry || entry.settings !== settings) return null;
  kept.delete(id);
  clearTimeout(entry.timer);
  return { server: entry.server, bootstrap: entry.bootstrap };
}

/**
 * A kept server whose settings changed: stopped (its ports are free once this resolves), and its
 * registrations handed over for the new one to restore.
 */
export async function takeRegistrations(id: string): Promise<Registration[]> {
  const entry = kept.get(id);
  if (!entry) return [];
  const registrations = entry.server.running ? entry.server.listRegistrations() : [];
  await dropKept(id);
  return registrations;
}

function dropKept(id: string): Promise<void> {
  const entry = kept.get(id);
  if (!entry) return Promise.resolve();
  kept.delete(id);
  clearTimeout(entry.timer);
  return entry.stop().catch(() => {});
}

/** Once the new flows run, a server nobody took over is not wanted (its node was removed or disabled). */
export function watchDeploys(RED: NodeAPI): void {
  if (watching) return;
  watching = true;
  const events = RED.events as unknown as { on(event: string, listener: (e?: FlowsEvent) => void): void };
  // a deploy's stop carries the diff the runtime computed (it has globalConfigChanged); a
  // shutdown's or a reload's does not
  events.on('flows:stopping', (e) => {
    deploying = !!e?.diff && 'globalConfigChanged' in e.diff;
  });
  events.on('flows:started', () => {
    deploying = false;
    for (const id of [...kept.keys()]) void dropKept(id);
  });
}

interface FlowsEvent {
  diff?: Record<string, unknown>;
}
