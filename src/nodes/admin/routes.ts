/**
 * The editor's device browser, runtime side: `RED.httpAdmin` routes under /lwm2m/, guarded by
 * Node-RED permissions — `lwm2m.read` to list, read and observe (a read-only editor user has it),
 * `lwm2m.write` to write and execute — so they follow adminAuth like the editor's own API.
 */
import type { NodeAPI } from 'node-red';
import { formatPath, parsePath } from '../../lwm2m/path';
import type { Lwm2mServer, Registration } from '../../lwm2m/server';
import type { ObjectDefinition, ValueTree } from '../../lwm2m/types';
import { ObjectRegistry } from '../../lwm2m/model';
import { getServer, listServers, ServerEntry } from './directory';
import { coapCodeOf } from '../shared/flow-node';
import { jsonValue } from './json-value';
import { LiveUpdates } from './live-updates';

interface Request {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body?: Record<string, unknown>;
}
interface Response {
  status(code: number): Response;
  json(body: unknown): void;
}
type Handler = (req: Request, res: Response) => unknown;
interface AdminApp {
  get(path: string, ...handlers: unknown[]): void;
  post(path: string, ...handlers: unknown[]): void;
}

/** A page of the device list holds at most this many devices. */
export const MAX_PAGE = 200;
/** Endpoint suggestions for a dialog's autocomplete. */
const MAX_SUGGESTIONS = 20;

const builtins = ObjectRegistry.withBuiltins();

function deviceSummary(server: Lwm2mServer, reg: Registration): Record<string, unknown> {
  const presence = server.presence(reg);
  return {
    endpoint: reg.endpoint, address: reg.address, port: reg.port, lwm2mVersion: reg.lwm2mVersion, binding: reg.binding,
    lifetime: reg.lifetime, queueMode: reg.queueMode, secure: reg.identity !== undefined,
    registeredAt: reg.registeredAt.toISOString(), lastSeen: (presence.lastHeard && presence.lastHeard > reg.updatedAt ? presence.lastHeard : reg.updatedAt).toISOString(),
    expiresAt: reg.expiresAt.toISOString(), awake: presence.awake, queued: presence.queued,
    ...(reg.owner ? { instance: reg.owner } : {}),
  };
}

function objectModel(def: ObjectDefinition): Record<string, unknown> {
  return {
    id: def.id, name: def.name, version: def.version, multiple: def.multiple, description: def.description,
    resources: [...def.resources.values()].map((r) => ({
      id: r.id, name: r.name, operations: r.operations, type: r.type, units: r.units, multiple: r.multiple, mandatory: r.mandatory, range: r.rangeEnumeration,
    })),
  };
}

/** A socket's port, or nothing when the server has no such socket. */
function portOr(port: () => number): number | undefined {
  try {
    return port();
  } catch {
    return undefined;
  }
}

function registryOf(req: Request): ObjectRegistry {
  const id = typeof req.query.server === 'string' ? req.query.server : '';
  return getServer(id)?.server.registry ?? builtins;
}

/** Runs a handler; a thrown or rejected error is a JSON answer, never an exception out of the route. */
function safe(handler: Handler): Handler {
  return (req, res) => {
    Promise.resolve().then(() => handler(req, res)).catch((err: Error & { code?: unknown; status?: number }) => {
      const code = coapCodeOf(err);
      res.status(err.status ?? (code ? 502 : 400)).json({ error: err.message, code });
    });
  };
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function serverOf(req: Request): ServerEntry {
  const entry = getServer(req.params.id);
  if (!entry) throw new HttpError(404, `no lwm2m-server node ${req.params.id} is deployed`);
  if (!entry.server.running) throw new HttpError(409, 'this LwM2M server is not running');
  return entry;
}

function pathOf(body: Record<string, unknown> | undefined): string {
  const raw = body?.path;
  if (typeof raw !== 'string') throw new HttpError(400, 'no path');
  return formatPath(parsePath(raw));
}

export function registerRoutes(RED: NodeAPI): void {
  const app = RED.httpAdmin as unknown as AdminApp;
  const auth = (RED as unknown as { auth: { needsPermission(p: string): unknown } }).auth;
  const canRead = auth.needsPermission('lwm2m.read');
  const canWrite = auth.needsPermission('lwm2m.write');
  const live = new LiveUpdates(RED);

  app.get('/lwm2m/servers', canRead, safe((_req, res) => {
    res.json(listServers().map((e) => ({
      id: e.id, name: e.name, running: e.server.running, devices: e.server.running ? e.server.registrationCount : 0,
      port: e.server.running ? portOr(() => e.server.address().port) : undefined,
      securePort: e.server.running && e.server.secureTransport ? portOr(() => e.server.secureAddress().port) : undefined,
      bootstrap: e.bootstrap !== null,
    })));
  }));

  // filter and paging walk the registrations once, without copying or sorting them: fast at 100k
  app.get('/lwm2m/servers/:id/devices', canRead, safe((req, res) => {
    const { server } = serverOf(req);
    const filter = typeof req.query.filter === 'string' ? req.query.filter.toLowerCase() : '';
    const offset = Math.max(0, Number(req.query.offset) || 0);
    const limit = Math.min(MAX_PAGE, Math.max(1, Number(req.query.limit) || 50));
    const page: Record<string, unknown>[] = [];
    let matched = 0;
    for (const reg of server.eachRegistration()) {
      if (filter && !reg.endpoint.toLowerCase().includes(filter) && !reg.address.includes(filter)) continue;
      if (matched >= offset && page.length < limit) page.push(deviceSummary(server, reg));
      matched++;
    }
    res.json({ total: server.registrationCount, matched, offset, devices: page });
  }));

  app.get('/lwm2m/servers/:id/endpoints', canRead, safe((req, res) => {
    const { server } = serverOf(req);
    const q = typeof req.query.q === 'string' ? req.query.q.toLowerCase() : '';
    const out: string[] = [];
    for (const reg of server.eachRegistration()) {
      if (!q || reg.endpoint.toLowerCase().includes(q)) out.push(reg.endpoint);
      if (out.length >= MAX_SUGGESTIONS) break;
    }
    res.json(out);
  }));

  app.get('/lwm2m/servers/:id/devices/:endpoint', canRead, safe((req, res) => {
    const { server } = serverOf(req);
    const reg = server.getRegistration(req.params.endpoint);
    if (!reg) throw new HttpError(404, `${req.params.endpoint} is not registered`);
    const objects = new Map<number, { id: number; name?: string; instances: number[] }>();
    for (const o of reg.objects) {
      if (o.objectId === 0 && o.instanceId === undefined) continue;
      let entry = objects.get(o.objectId);
      if (!entry) objects.set(o.objectId, entry = { id: o.objectId, name: server.registry.get(o.objectId)?.name, instances: [] });
      if (o.instanceId !== undefined) entry.instances.push(o.instanceId);
    }
    res.json({
      ...deviceSummary(server, reg), objectLinks: reg.objectLinks, supportedFormats: reg.supportedFormats,
      objects: [...objects.values()], observations: server.listObservations(reg.endpoint).map((o) => o.path),
    });
  }));

  app.get('/lwm2m/servers/:id/events', canRead, safe((req, res) => {
    res.json(serverOf(req).events);
  }));

  app.get('/lwm2m/model', canRead, safe((req, res) => {
    const registry = registryOf(req);
    res.json(registry.ids().map((id) => ({ id, name: registry.get(id)!.name })));
  }));

  app.get('/lwm2m/model/:objectId', canRead, safe((req, res) => {
    const def = registryOf(req).get(Number(req.params.objectId));
    if (!def) throw new HttpError(404, `object ${req.params.objectId} is not in the object model`);
    res.json(objectModel(def));
  }));

  app.post('/lwm2m/servers/:id/devices/:endpoint/read', canRead, safe(async (req, res) => {
    const { server } = serverOf(req);
    const result = await server.read(req.params.endpoint, pathOf(req.body));
    res.json({ code: result.code, format: result.format, value: jsonValue(result.value) });
  }));

  app.post('/lwm2m/servers/:id/devices/:endpoint/write', canWrite, safe(async (req, res) => {
    const { server } = serverOf(req);
    if (req.body?.value === undefined) throw new HttpError(400, 'no value');
    const result = await server.write(req.params.endpoint, pathOf(req.body), req.body.value as ValueTree);
    res.json({ code: result.code });
  }));

  app.post('/lwm2m/servers/:id/devices/:endpoint/execute', canWrite, safe(async (req, res) => {
    const { server } = serverOf(req);
    const args = typeof req.body?.args === 'string' && req.body.args !== '' ? req.body.args : undefined;
    const result = await server.execute(req.params.endpoint, pathOf(req.body), args);
    res.json({ code: result.code });
  }));

  app.post('/lwm2m/servers/:id/devices/:endpoint/observe', canRead, safe(async (req, res) => {
    const entry = serverOf(req);
    const value = await live.observe(entry, req.params.endpoint, pathOf(req.body));
    res.json({ code: '2.05', value: jsonValue(value) });
  }));

  app.post('/lwm2m/servers/:id/devices/:endpoint/cancel', canRead, safe(async (req, res) => {
    const entry = serverOf(req);
    await live.cancel(entry, req.params.endpoint, pathOf(req.body));
    res.json({ code: '2.05' });
  }));
}
