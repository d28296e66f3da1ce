/**
 * `lwm2m-observe`: input starts an observation of endpoint + path (after writing pmin/pmax/gt/lt/st
 * when given), topic "cancel" stops it; every notification comes out as a message. Optionally
 * observes configured paths on every device that registers (re-established after re-registration).
 */
import type { NodeAPI } from 'node-red';
import type { Notification, Registration, WriteAttributes } from '../lwm2m/server';
import { namedComposite, namedValues } from '../lwm2m/model';
import type { ValueTree } from '../lwm2m/types';
import { formatPath, parsePath } from '../lwm2m/path';
import { endpointOf, FlowNodeConfig, formatOf, pathOf, runRequest, showFailure, clearFailure, coapCodeOf, isRemoteEvent } from './shared/flow-node';
import { AutoObserveRetries, keepObservations, takeObservations } from './shared/observations';
import { DeviceRoleConfig } from './device';
import { registerFlowNode } from './shared/define';
import { DoneFunction, Lwm2mMessage, NodeDef, SendFunction } from './shared/types';
import { t } from './shared/i18n';

interface ObserveNodeDef extends NodeDef, FlowNodeConfig, DeviceRoleConfig {
  pmin?: string; pmax?: string; gt?: string; lt?: string; st?: string;
  autoObserve?: boolean;
  autoPaths?: string;
  /** Also output msg.named: the values keyed by resource names. */
  named?: boolean;
}

const ATTRIBUTES = ['pmin', 'pmax', 'gt', 'lt', 'st'] as const;

function observationKey(endpoint: string, path: string | string[]): string {
  return `${endpoint}\n${Array.isArray(path) ? path.join(',') : path}`;
}

export = function register(RED: NodeAPI): void {
  registerFlowNode<ObserveNodeDef>(RED, 'lwm2m-observe', 'observe', (node, def, configNode) => {
    const server = configNode.server;
    // observations this node started (endpoint\npath), with those of the node a deploy replaced
    const owned = takeObservations(node.id);

    const configuredAttributes: WriteAttributes = {};
    for (const name of ATTRIBUTES) {
      const raw = def[name];
      if (raw !== undefined && raw !== '' && Number.isFinite(Number(raw))) configuredAttributes[name] = Number(raw);
    }

    const startObservation = async (endpoint: string, path: string | string[], attrs: WriteAttributes, format?: string) => {
      if (!Array.isArray(path) && Object.keys(attrs).length > 0) await server.writeAttributes(endpoint, path, attrs);
      owned.add(observationKey(endpoint, path));
      try {
        // tagged with this node's id: in a fleet, whichever instance takes the observation over finds this node
        return Array.isArray(path)
          ? await server.observeComposite(endpoint, path, { format, tag: node.id })
          : await server.observe(endpoint, path, { format, tag: node.id });
      } catch (err) {
        owned.delete(observationKey(endpoint, path));
        throw err;
      }
    };

    /** msg.named for a value of a path (or of each path of a composite observation), when asked. */
    const named = (path: string | string[], value: unknown): Record<string, unknown> => {
      if (!def.named) return {};
      const tree = value as ValueTree;
      if (!Array.isArray(path)) return { named: namedValues(server.registry, parsePath(path), tree) };
      return { named: namedComposite(server.registry, tree as Record<string, ValueTree>) };
    };

    const onNotify = (n: Notification) => {
      const key = observationKey(n.endpoint, n.path);
      if (!owned.has(key)) {
        // one this node started on another instance of the fleet (same flow, same node id), taken over here
        if (n.tag !== node.id) return;
        owned.add(key);
      }
      const msg: Lwm2mMessage = {
        topic: 'notify', endpoint: n.endpoint, path: n.path, payload: n.value, code: n.code, format: n.format, ...named(n.path, n.value),
        lwm2m: { observationId: n.observationId, receivedAt: n.receivedAt.toISOString() },
      };
      node.send(msg);
    };
    server.on('notify', onNotify);

    const autoPaths = def.autoObserve && def.autoPaths
      ? def.autoPaths.split(/[\s,]+/).filter(Boolean).map((p) => formatPath(parsePath(p)))
      : [];
    const retries = new AutoObserveRetries();
    const autoObserve = (reg: Registration, paths: string[]) => {
      // never on the registration path: the device gets its 2.01 first, then our requests
      setImmediate(() => {
        for (const path of paths) {
          startObservation(reg.endpoint, path, configuredAttributes, def.format && def.format !== 'auto' ? def.format : undefined)
            .then((result) => {
              retries.succeeded(reg.endpoint, path);
              clearFailure(node, configNode.currentStatus);
              node.send({
                topic: 'observe', endpoint: reg.endpoint, path, payload: result.value, code: result.code, ...named(path, result.value),
                lwm2m: { observationId: result.observationId, auto: true },
              } as Lwm2mMessage);
            }, (err: Error & { code?: string }) => {
              // on the node's status and to Catch nodes, then again with backoff (and at the next Update)
              showFailure(node, err, t('runtime.autoPrefix', { path }));
              const msg: Lwm2mMessage = { topic: 'observe', endpoint: reg.endpoint, path, lwm2m: { auto: true } };
              const code = coapCodeOf(err);
              if (code) msg.code = code;
              node.error(t('runtime.autoObserve', { error: err.message }), msg);
              retries.failed(reg.endpoint, path, () => {
                const current = server.getRegistration(reg.endpoint);
                if (current && !server.isObserving(reg.endpoint, path)) autoObserve(current, [path]);
              });
            });
        }
      });
    };
    // in a fleet, the instance a device talks to observes it (the others would only forward)
    const onRegister = (reg: Registration, ...rest: unknown[]) => {
      if (def.endpoint && reg.endpoint !== def.endpoint) return;
      if (isRemoteEvent(rest)) return;
      for (const key of [...owned]) if (key.startsWith(`${reg.endpoint}\n`)) owned.delete(key);
      retries.forget(reg.endpoint);
      autoObserve(reg, autoPaths);
    };
    // an Update of a device whose auto-observation is missing (it failed, or the registration was
    // carried over to a new socket without its observations) starts it again
    const onUpdate = (reg: Registration, ...rest: unknown[]) => {
      if (def.endpoint && reg.endpoint !== def.endpoint) return;
      if (isRemoteEvent(rest)) return;
      const missing = autoPaths.filter((p) => !server.isObserving(reg.endpoint, p));
      if (missing.length) autoObserve(reg, missing);
    };
    const onGone = (reg: Registration) => retries.forget(reg.endpoint);
    if (autoPaths.length) {
      server.on('register', onRegister);
      server.on('update', onUpdate);
      server.on('deregister', onGone);
      server.on('expire', onGone);
    }

    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      const cancelling = msg.topic === 'cancel';
      runRequest(node, msg, send, done, cancelling ? 'cancel' : 'observe', async () => {
        const endpoint = endpointOf(msg, def);
        const path = Array.isArray(msg.path) ? msg.path.map((p) => formatPath(parsePath(String(p)))) : pathOf(msg, def);
        Object.assign(msg, { endpoint, path });
        if (cancelling) {
          owned.delete(observationKey(endpoint, path));
          await server.cancelObservation(endpoint, path, { active: (msg as { active?: boolean }).active === true });
          return Object.assign(msg, { code: '2.05' });
        }
        const attrs: WriteAttributes = { ...configuredAttributes, ...(msg.attributes ?? {}) };
        const result = await startObservation(endpoint, path, attrs, formatOf(msg, def));
        return Object.assign(msg, {
          topic: 'observe', payload: result.value, code: result.code, ...named(path, result.value),
          lwm2m: { ...(msg.lwm2m ?? {}), observationId: result.observationId },
        });
      });
    });

    // (two parameters: Node-RED passes `removed` only to a handler that also takes `done`)
    node.on('close', (removed: boolean, done: () => void) => {
      server.removeListener('notify', onNotify);
      server.removeListener('register', onRegister);
      server.removeListener('update', onUpdate);
      server.removeListener('deregister', onGone);
      server.removeListener('expire', onGone);
      retries.clear();
      // a deploy keeps the server running (lwm2m-server): the observations stay, for this node's successor
      if (!removed) {
        keepObservations(node.id, owned);
        done();
        return;
      }
      for (const key of owned) {
        const [endpoint, path] = key.split('\n');
        server.cancelObservation(endpoint, path.includes(',') ? path.split(',') : path).catch(() => {});
      }
      owned.clear();
      done();
    });
  });
};
