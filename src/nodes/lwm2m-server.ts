/**
 * `lwm2m-server` config node: one LwM2M server (and optional bootstrap server) shared by every flow
 * node that selects it, like the core mqtt-broker node: the socket opens with the first user and
 * closes a moment after the last. A deploy hands the running server to the node that replaces
 * this one (shared/server-keeper.ts); the editor's device browser lists it (admin/).
 */
import type { EventEmitter } from 'events';
import type { NodeAPI } from 'node-red';
import { Lwm2mServer, SecurityRefusal } from '../lwm2m/server';
import { BootstrapServer } from '../lwm2m/server/bootstrap-server';
import { addServer } from './admin/directory';
import { registerRoutes } from './admin/routes';
import { adoptServer, closingForDeploy, keepServer, settingsKey, takeRegistrations, watchDeploys } from './shared/server-keeper';
import { serverStarted } from './shared/security';
import { Lwm2mServerConfigNode, Node, NodeStatus } from './shared/types';
import { statusKey, t, useTranslator } from './shared/i18n';
import { createServer, numberOr, ServerCredentials, ServerNodeDef, stopServer } from './server/create-server';

/** Adds listeners to an emitter; the function returned removes exactly those. */
function listen(emitter: EventEmitter, listeners: Record<string, (...args: never[]) => void>): () => void {
  for (const [event, listener] of Object.entries(listeners)) emitter.on(event, listener as (...args: unknown[]) => void);
  return () => {
    for (const [event, listener] of Object.entries(listeners)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
  };
}

/** The device count in the node's status changes at most this often (a storm is thousands a second). */
const STATUS_INTERVAL_MS = 500;
/** The socket closes this long after the last flow node left, unless one comes back (a deploy of flow nodes only). */
const IDLE_STOP_MS = 2_000;

type ServerNode = Lwm2mServerConfigNode & { server: Lwm2mServer; bootstrap: BootstrapServer | null; currentStatus: NodeStatus; credentials?: ServerCredentials };

export = function register(RED: NodeAPI): void {
  useTranslator(RED);
  watchDeploys(RED);
  registerRoutes(RED);
  function Lwm2mServerNode(this: ServerNode, def: ServerNodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    // every flow node that uses this connection listens to its status: more than 10 is normal
    node.setMaxListeners(0);
    const ipv6 = def.ipv6 === true;
    const port = numberOr(def.port, 5683);
    const securePort = def.securePort === undefined || def.securePort === '' ? undefined : numberOr(def.securePort, 5684);
    const nosec = def.nosec === 'off' || def.nosec === 'bootstrap' ? def.nosec : 'on';
    const settings = settingsKey(def as unknown as Record<string, unknown>, node.credentials as Record<string, unknown> | undefined);
    // the server a deploy left running, when nothing changed: taken over with its socket and state
    const adopted = adoptServer(def.id, settings);
    // …or, when settings changed, its registrations (once it has stopped and freed its ports)
    const handed = adopted ? Promise.resolve([]) : takeRegistrations(def.id);
    if (adopted) {
      node.server = adopted.server;
      node.bootstrap = adopted.bootstrap;
    } else {
      createServer(node, def, { port, securePort, nosec, ipv6 }, (RED.settings as unknown as { userDir?: string }).userDir);
    }
    node.currentStatus = { fill: 'grey', shape: 'ring', text: statusKey('notStarted') };
    // the editor's device browser lists this server while the node exists
    const leaveDirectory = addServer(def.id, def.name ?? '', node.server, node.bootstrap);

    const users = new Set<Node>();
    let starting: Promise<void> | null = null;
    let stopping: Promise<void> = Promise.resolve();
    let idleTimer: NodeJS.Timeout | null = null;

    const publish = (status: NodeStatus) => {
      node.currentStatus = status;
      node.emit('lwm2m-status', status);
    };
    const listening = () => {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      if (!node.server.running) return;
      if (node.server.cluster && !node.server.cluster.shared.available) {
        publish({ fill: 'red', shape: 'ring', text: statusKey('redisDown') });
        return;
      }
      const n = node.server.registrationCount;
      const ports = [nosec !== 'off' ? `:${node.server.address().port}${nosec === 'bootstrap' ? ' bs' : ''}` : '', node.server.secureTransport ? `:${node.server.secureAddress().port} dtls` : ''];
      publish({ fill: 'green', shape: 'dot', text: t(n === 1 ? 'status.listeningOne' : 'status.listening', { ports: ports.filter(Boolean).join(' '), count: n }) });
    };
    // a registration storm must not become a status storm (each status is a message to every
    // editor): the count is shown at most every STATUS_INTERVAL_MS, the last one always
    let statusTimer: NodeJS.Timeout | null = null;
    const countChanged = () => {
      statusTimer ??= setTimeout(listening, STATUS_INTERVAL_MS);
    };
    // this node's listeners on the server, removed when a successor takes the server over
    const detach = listen(node.server, {
      // refusals and DTLS session events reach the flows (lwm2m-register outputs them); never a key
      securityRefused: (r: SecurityRefusal) => node.emit('lwm2m-security', { event: 'refused', ...r }),
      secureSession: (e: { event: string; peer: { address: string; port: number }; identity?: string; cipherSuite?: string; reason?: string; alert?: number }) => {
        node.emit('lwm2m-security', { event: `dtls-${e.event}`, address: e.peer.address, port: e.peer.port, identity: e.identity, cipherSuite: e.cipherSuite, reason: e.reason, alert: e.alert });
      },
      register: countChanged,
      deregister: countChanged,
      expire: countChanged,
      warning: (err: Error) => {
        if (err.name === 'PersistenceError') node.warn(err.message);
        else node.debug(`LwM2M: ${err.message}`);
      },
    });

    // a fleet's Redis going away and coming back: on the status, once each in the log
    const shared = node.server.cluster?.shared as (EventEmitter & { available: boolean }) | undefined;
    const redisWhere = (def.redisUrl || 'redis://127.0.0.1:6379').replace(/\/\/[^@/]*@/, '//');
    let redisError = '';
    const detachShared = shared ? listen(shared, {
      error: (err: Error) => { redisError = err.message; },
      down: () => {
        if (!node.server.running) return;
        publish({ fill: 'red', shape: 'ring', text: statusKey('redisDown') });
        node.warn(t('runtime.redisDown', { url: redisWhere, error: redisError || 'connection closed' }));
      },
      up: () => {
        if (!node.server.running) return;
        node.log(t('runtime.redisUp', { url: redisWhere }));
        listening();
      },
    }) : () => {};
    let closed = false;

    const start = async () => {
      await stopping;
      if (node.server.running) {
        // taken over from the node a deploy stopped: already listening, with its devices
        listening();
        return;
      }
      publish({ fill: 'yellow', shape: 'ring', text: t('status.starting', { port }) });
      if (def.modelDir) {
        try {
          const report = await node.server.registry.loadFolder(def.modelDir);
          for (const err of report.errors) node.warn(t('runtime.modelError', { error: err.message }));
          node.log(t('runtime.modelLoaded', { count: report.loaded.length, folder: def.modelDir }));
        } catch (err) {
          node.warn(t('runtime.modelFolder', { folder: def.modelDir, error: (err as Error).message }));
        }
      }
      try {
        const registrations = await handed;
        // Redis not there yet (a fleet restarting together): the node says so and tries again
        while (!(await startOrWait())) if (closed) return;
        const n = node.server.restore(registrations);
        if (n > 0) node.log(t('runtime.kept', { count: n }));
        serverStarted(node.server);
        const host = def.address || (ipv6 ? '[::]' : '0.0.0.0');
        const where = [nosec !== 'off' ? `${host}:${node.server.address().port}/udp${nosec === 'bootstrap' ? ' (bootstrap only)' : ''}` : '',
          node.server.secureTransport ? `${host}:${node.server.secureAddress().port}/udp (DTLS)` : ''].filter(Boolean).join(' and ');
        node.log(t(node.bootstrap ? 'runtime.listeningBootstrap' : 'runtime.listening', { where }));
        listening();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        publish({ fill: 'red', shape: 'ring', text: t('status.error', { code }) });
        node.error(t('runtime.cannotListen', { ports: `${port}${securePort !== undefined ? ` / ${securePort}` : ''}`, error: (err as Error).message }));
      }
    };

    /** Starts the server; false (after 5 s) when the shared store cannot be reached yet. */
    const startOrWait = async (): Promise<boolean> => {
      try {
        await node.server.start();
        return true;
      } catch (err) {
        if ((err as Error).name !== 'SharedStoreError') throw err;
        publish({ fill: 'red', shape: 'ring', text: statusKey('redisDown') });
        node.warn(t('runtime.redisStart', { url: redisWhere, error: (err as Error).message }));
        await new Promise((resolve) => setTimeout(resolve, 5_000).unref());
        return false;
      }
    };

    const stop = async () => {
      starting = null;
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      await stopServer(node);
      publish({ fill: 'grey', shape: 'ring', text: statusKey('stopped') });
    };

    const cancelIdleStop = () => {
      if (idleTimer) clearTimeout(idleTimer);
      idleTimer = null;
    };
    const stopWhenIdle = () => {
      cancelIdleStop();
      idleTimer = setTimeout(() => {
        idleTimer = null;
        if (users.size === 0 && starting) {
          const wasStarting = starting;
          stopping = wasStarting.then(stop);
        }
      }, IDLE_STOP_MS);
    };

    node.use = (user: Node) => {
      users.add(user);
      cancelIdleStop();
      if (!starting) starting = start();
    };

    // the last flow node to leave closes the socket a moment later, unless a deploy brings one back
    node.release = async (user: Node) => {
      users.delete(user);
      if (users.size === 0) stopWhenIdle();
    };
    // a server taken over with no flow node to use it is not kept open
    if (adopted) stopWhenIdle();

    node.on('close', (removed: boolean, done: () => void) => {
      cancelIdleStop();
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      detach();
      detachShared();
      closed = true;
      leaveDirectory();
      const running = starting ?? Promise.resolve();
      starting = null;
      // a deploy: the server stays up for the node that replaces this one
      if (!removed && closingForDeploy()) {
        running.then(() => {
          if (node.server.running) keepServer(def.id, settings, { server: node.server, bootstrap: node.bootstrap }, () => stopServer(node));
          done();
        }, () => done());
        return;
      }
      // removed, or flows stopping otherwise (shutdown, restart): the server stops, saving its
      // registrations to its file when the node says so
      stopping = running.then(() => stopServer(node));
      stopping.then(() => done(), (err: Error) => {
        node.error(err.message);
        done();
      });
    });
  }

  RED.nodes.registerType('lwm2m-server', Lwm2mServerNode as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { psk: { type: 'password' } },
  });
};
