/**
 * `lwm2m-bootstrap-config`: one bootstrap configuration (endpoint name or pattern, servers,
 * security, lifetime, extra writes) on an lwm2m-server's bootstrap interface. Input replaces or
 * adds configurations at run time (msg.endpoint + msg.payload); output reports bootstrap sessions.
 */
import type { NodeAPI } from 'node-red';
import type { BootstrapConfig, BootstrapServerAccount, BootstrapSessionEvent } from '../lwm2m/server/bootstrap-server';
import { ValueTree } from '../lwm2m/types';
import { attachServer, MessageError } from './shared/flow-node';
import { DoneFunction, Lwm2mMessage, Node, NodeDef, SendFunction } from './shared/types';
import { statusKey, t, useTranslator } from './shared/i18n';

interface ServerRow {
  uri: string;
  ssid: string | number;
  lifetime?: string | number;
  binding?: string;
  security?: 'nosec' | 'psk';
}

interface BootstrapNodeDef extends NodeDef {
  server?: string;
  endpoint?: string;
  servers?: ServerRow[];
  deletePaths?: string;
  extraWrites?: string;
  /** Hand PSK keys to devices that bootstrap over NoSec. */
  keysOverNoSec?: boolean;
}

interface Credentials {
  /**
   * JSON by short server id: PSK {"identity": "...", "key": "<hex>"}; raw public key
   * {"privateKey": "<PEM>" or "generate", "serverKey": "<PEM>"}; X.509 {"privateKey", "certificate", "serverKey"} in PEM.
   */
  psk?: string;
}

export = function register(RED: NodeAPI): void {
  useTranslator(RED);
  function Lwm2mBootstrapConfigNode(this: Node<Credentials>, def: BootstrapNodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const configNode = attachServer(RED, node, { server: def.server });
    if (!configNode) return;
    const bootstrap = configNode.bootstrap;
    if (!bootstrap) {
      node.status({ fill: 'red', shape: 'ring', text: statusKey('bootstrapOff') });
      node.error(t('runtime.bootstrapOff'));
      return;
    }
    const added = new Set<string>();

    const fromEditor = (): BootstrapConfig => {
      if (!def.endpoint) throw new MessageError('give the endpoint name or pattern this configuration is for ("*" for every device)');
      let secrets: Record<string, { identity?: string; key?: string; privateKey?: string; certificate?: string; serverKey?: string }> = {};
      if (node.credentials?.psk) {
        try {
          secrets = JSON.parse(node.credentials.psk) as typeof secrets;
        } catch {
          throw new MessageError('the credentials are not valid JSON');
        }
      }
      const servers: BootstrapServerAccount[] = (def.servers ?? []).map((row) => {
        // nothing typed: with PSK each device gets its endpoint name as identity and a key of its
        // own; with a raw public key, a key pair of its own
        const securityMode = (['psk', 'rpk', 'x509'] as const).find((m) => m === row.security) ?? 'nosec';
        const typed = secrets[String(row.ssid)];
        const secret = securityMode === 'psk' ? typed ?? { identity: '{ep}', key: 'random' }
          : securityMode === 'rpk' ? { privateKey: 'generate', ...typed } : typed ?? {};
        return {
          uri: row.uri,
          shortServerId: Number(row.ssid),
          lifetime: row.lifetime === undefined || row.lifetime === '' ? undefined : Number(row.lifetime),
          binding: row.binding || undefined,
          securityMode,
          pskIdentity: secret.identity,
          pskKey: secret.key,
          privateKey: secret.privateKey,
          certificate: secret.certificate,
          serverKey: secret.serverKey,
        };
      });
      let extraWrites: Record<string, ValueTree> | undefined;
      if (def.extraWrites && def.extraWrites.trim()) {
        try {
          extraWrites = JSON.parse(def.extraWrites) as Record<string, ValueTree>;
        } catch {
          throw new MessageError('extra writes must be JSON like {"/3/0/14": "+01:00"}');
        }
      }
      const deletePaths = def.deletePaths ? def.deletePaths.split(/[\s,]+/).filter(Boolean) : undefined;
      return { endpoint: def.endpoint, servers, deletePaths, extraWrites, keysOverNoSec: def.keysOverNoSec === true };
    };

    try {
      const config = fromEditor();
      bootstrap.setConfig(config);
      added.add(config.endpoint);
      node.status({ fill: 'green', shape: 'dot', text: t('status.bootstrapServers', { endpoint: config.endpoint, count: config.servers.length }) });
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: statusKey('invalidConfig') });
      node.error(t('runtime.bootstrapInvalid', { error: (err as Error).message }));
    }

    const onSession = (event: BootstrapSessionEvent) => {
      const mine = [...added].some((pattern) => bootstrap.configFor(event.endpoint)?.endpoint === pattern);
      // a Bootstrap-Request nobody has a configuration for is every node's business
      if (!mine && !(event.event === 'failed' && event.step === 'request')) return;
      node.send({ topic: 'bootstrap', endpoint: event.endpoint, payload: event, code: event.code } as Lwm2mMessage);
      if (event.event === 'finished') node.status({ fill: 'green', shape: 'dot', text: t('status.bootstrapped', { endpoint: event.endpoint }) });
      if (event.event === 'failed') node.status({ fill: 'red', shape: 'ring', text: t('status.bootstrapFailed', { endpoint: event.endpoint, step: event.step ?? '?' }) });
    };
    bootstrap.on('session', onSession);

    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      try {
        const payload = msg.payload as Partial<BootstrapConfig> | null;
        if (!payload || typeof payload !== 'object') throw new MessageError('msg.payload must be a bootstrap configuration {servers: [...]}');
        const endpoint = typeof msg.endpoint === 'string' && msg.endpoint ? msg.endpoint : payload.endpoint;
        if (!endpoint) throw new MessageError('give msg.endpoint (name, pattern or "*")');
        if (payload.servers === undefined && msg.topic === 'delete') {
          bootstrap.removeConfig(endpoint);
          added.delete(endpoint);
        } else {
          bootstrap.setConfig({ ...payload, endpoint } as BootstrapConfig);
          added.add(endpoint);
        }
        node.status({ fill: 'green', shape: 'dot', text: t('status.configurations', { count: added.size }) });
        done();
      } catch (err) {
        done(err as Error);
      }
    });

    node.on('close', () => {
      bootstrap.removeListener('session', onSession);
      for (const endpoint of added) bootstrap.removeConfig(endpoint);
    });
  }
  RED.nodes.registerType('lwm2m-bootstrap-config', Lwm2mBootstrapConfigNode as unknown as Parameters<NodeAPI['nodes']['registerType']>[1], {
    credentials: { psk: { type: 'password' } },
  });
};
