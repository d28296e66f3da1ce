/**
 * `lwm2m-bc66` config node: one Quectel BC66 (or the emulator) on a serial port, driven as an
 * LwM2M client, shared by the flow nodes that select it. The port opens with the first user and
 * closes with the last; a lost port is reopened with backoff and the device registers again.
 * A deploy closes the port but leaves the modem registered: the node that replaces this one adopts
 * the registration (the modem is asked, not configured or registered again) and takes over the
 * values and observed paths. The modem deregisters when the node is deleted, or when its last flow
 * node went and none came back within RELEASE_GRACE_MS.
 */
import type { NodeAPI } from 'node-red';
import { SerialPort } from 'serialport';
import { Bc66Driver, Bc66Lwm2m, Bc66ObjectInstance, Bc66Snapshot, Bc66State, parseObjectList } from '../bc66';
import { Lwm2mBc66ConfigNode, Node, NodeDef, NodeStatus } from './shared/types';
import { Handover } from './shared/handover';
import { statusKey, t, useTranslator } from './shared/i18n';

interface Bc66NodeDef extends NodeDef {
  serialPort?: string;
  baudRate?: string | number;
  endpoint?: string;
  serverHost?: string;
  serverPort?: string | number;
  mode?: 'direct' | 'bootstrap';
  lifetime?: string | number;
  security?: 'nosec' | 'psk';
  objects?: string;
  autoRegister?: boolean;
}

interface Bc66Credentials {
  pskIdentity?: string;
  pskKey?: string;
}

const STATUS: Record<Bc66State, NodeStatus> = {
  closed: { fill: 'red', shape: 'ring', text: statusKey('bc66.closed') },
  starting: { fill: 'yellow', shape: 'ring', text: statusKey('bc66.starting') },
  idle: { fill: 'yellow', shape: 'dot', text: statusKey('bc66.idle') },
  registering: { fill: 'yellow', shape: 'dot', text: statusKey('bc66.registering') },
  registered: { fill: 'green', shape: 'dot', text: statusKey('bc66.registered') },
  error: { fill: 'red', shape: 'dot', text: statusKey('bc66.error') },
};

/** How long a modem node whose flow nodes all went (and that stays) waits for new ones (a deploy of
 * the flow alone restarts them) before it deregisters and closes the port. */
const RELEASE_GRACE_MS = 2000;

/** What a node closed by a deploy hands to the node that replaces it (same id), per node id. */
const handovers = new Handover<{ serialPort: string; snapshot: Bc66Snapshot }>();

export = function register(RED: NodeAPI): void {
  useTranslator(RED);
  function Lwm2mBc66Node(this: Lwm2mBc66ConfigNode & Node<Bc66Credentials> & { device: Bc66Lwm2m; currentStatus: NodeStatus }, def: Bc66NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    // every flow node that uses this connection listens to its status: more than 10 is normal
    node.setMaxListeners(0);
    let objects: Bc66ObjectInstance[] = [];
    try {
      objects = parseObjectList(def.objects ?? '');
    } catch (err) {
      node.error((err as Error).message);
    }
    const driver = new Bc66Driver({ path: def.serialPort ?? '', baudRate: Number(def.baudRate) || 115200 });
    node.device = new Bc66Lwm2m(driver, {
      endpoint: def.endpoint || undefined,
      serverHost: def.serverHost || '127.0.0.1',
      serverPort: Number(def.serverPort) || 5683,
      mode: def.mode === 'bootstrap' ? 'bootstrap' : 'direct',
      lifetime: Number(def.lifetime) || 86400,
      security: def.security === 'psk' ? 'psk' : 'nosec',
      pskIdentity: node.credentials?.pskIdentity,
      pskKey: node.credentials?.pskKey,
      objects,
      autoRegister: def.autoRegister !== false,
    });
    const handover = handovers.take(node.id);
    if (handover && handover.serialPort === (def.serialPort ?? '')) node.device.inherit(handover.snapshot);
    node.currentStatus = { fill: 'grey', shape: 'ring', text: statusKey('notStarted') };
    const publish = (status: NodeStatus) => {
      node.currentStatus = status;
      node.emit('lwm2m-status', status);
    };
    node.device.on('state', (state: Bc66State) => {
      publish(state === 'registered' ? { ...STATUS.registered, text: t('status.bc66.registeredAs', { endpoint: node.device.endpoint }) } : STATUS[state]);
    });
    node.device.on('warning', (err: Error) => node.warn(t('runtime.bc66', { port: def.serialPort, error: err.message })));
    driver.on('warning', (err: Error) => node.debug(`BC66 ${def.serialPort}: ${err.message}`));

    const users = new Set<Node>();
    let started = false;
    let closing = false;
    let graceTimer: NodeJS.Timeout | undefined;
    node.use = (user: Node) => {
      users.add(user);
      if (graceTimer) clearTimeout(graceTimer);
      graceTimer = undefined;
      if (started) return;
      started = true;
      if (!def.serialPort) {
        publish({ fill: 'red', shape: 'ring', text: statusKey('bc66.noSerialPort') });
        return;
      }
      node.device.start().catch((err: Error) => {
        node.error(t('runtime.bc66', { port: def.serialPort, error: err.message }));
      });
    };
    const stop = async (deregister: boolean) => {
      if (!started) return;
      started = false;
      await node.device.stop({ deregister }).catch((err: Error) => node.warn(err.message));
    };
    node.release = async (user: Node) => {
      users.delete(user);
      if (users.size > 0 || closing || !started || graceTimer) return;
      // in a deploy this node closes right after its flow nodes (the same tick) and decides there
      graceTimer = setTimeout(() => {
        graceTimer = undefined;
        if (users.size === 0 && !closing) stop(true).catch(() => undefined);
      }, RELEASE_GRACE_MS);
    };
    // two parameters: Node-RED says whether the node was deleted or only restarted (a deploy)
    node.on('close', (removed: boolean, done: () => void) => {
      closing = true;
      if (graceTimer) clearTimeout(graceTimer);
      graceTimer = undefined;
      if (!removed && started) handovers.keep(node.id, { serialPort: def.serialPort ?? '', snapshot: node.device.snapshot() });
      stop(removed).then(() => done(), () => done());
    });
  }

  RED.nodes.registerType('lwm2m-bc66', Lwm2mBc66Node as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { pskIdentity: { type: 'password' }, pskKey: { type: 'password' } },
  });

  // the editor's serial port list; SerialPort.list() fails on machines without udev: type the path then
  RED.httpAdmin.get('/lwm2m-bc66/ports', RED.auth.needsPermission('lwm2m-bc66.read'), (_req, res) => {
    SerialPort.list().then(
      (ports) => res.json(ports.map((p) => ({ path: p.path, manufacturer: p.manufacturer ?? '' }))),
      () => res.json([]),
    );
  });
};
