/**
 * `lwm2m-register`: outputs every registration event of the server (register, update, deregister,
 * expire, wakeup) with the registration record, the data devices push with Send (topic "send")
 * and security events (topic "security": refusals, DTLS sessions); input topic "list" outputs the
 * registered devices, topic "security" sets or removes an endpoint's PSK credentials.
 */
import type { EventEmitter } from 'events';
import type { NodeAPI } from 'node-red';
import { pskEntry, Registration, ReplacedEvent, SendEvent } from '../lwm2m/server';
import { formatPath } from '../lwm2m/path';
import { FlowNodeConfig, isRemoteEvent, registrationPayload } from './shared/flow-node';
import { DeviceRoleConfig } from './device';
import { registerFlowNode } from './shared/define';
import { DoneFunction, Lwm2mMessage, NodeDef, SendFunction } from './shared/types';

interface RegisterNodeDef extends NodeDef, FlowNodeConfig, DeviceRoleConfig {
  /**
   * In a fleet of instances (Redis store): 'local' outputs the events of the devices that talk to
   * this instance, so the fleet outputs each event once; 'all' outputs every device's, on every
   * instance.
   */
  fleet?: 'local' | 'all';
}

/** `moved`: a DTLS session with a connection ID followed its device to a new address (NAT rebinding). */
const EVENTS = ['register', 'update', 'deregister', 'expire', 'wakeup', 'moved'] as const;

export = function register(RED: NodeAPI): void {
  registerFlowNode<RegisterNodeDef>(RED, 'lwm2m-register', 'register', (node, def, configNode) => {
    const server = configNode.server;
    const listeners = EVENTS.map((topic) => {
      const listener = (reg: Registration, ...rest: unknown[]) => {
        if (def.endpoint && reg.endpoint !== def.endpoint) return;
        if (def.fleet !== 'all' && isRemoteEvent(rest)) return;
        const msg: Lwm2mMessage = { topic, endpoint: reg.endpoint, payload: registrationPayload(reg), lwm2m: { registrationId: reg.id, ...(reg.owner ? { instance: reg.owner } : {}) } };
        node.send(msg);
      };
      server.on(topic, listener);
      return [topic, listener] as const;
    });
    // Send (/dp): the data a device pushed on its own
    const onSend = (event: SendEvent) => {
      if (def.endpoint && event.endpoint !== def.endpoint) return;
      const records = event.records.map((r) => {
        const out: Record<string, unknown> = { path: formatPath(r.path), value: r.value };
        if (r.time !== undefined) out.time = r.time;
        return out;
      });
      const msg: Lwm2mMessage = { topic: 'send', endpoint: event.endpoint, payload: event.value, lwm2m: { records, format: event.format } };
      node.send(msg);
    };
    server.on('send', onSend);
    // a Register of the same endpoint from another address replaced its registration
    const onReplaced = (event: ReplacedEvent) => {
      if (def.endpoint && event.endpoint !== def.endpoint) return;
      node.send({ topic: 'replaced', endpoint: event.endpoint, payload: event } as Lwm2mMessage);
    };
    server.on('replaced', onReplaced);
    const onSecurity = (event: { endpoint?: string; identity?: string }) => {
      if (def.endpoint && event.endpoint !== undefined && event.endpoint !== def.endpoint) return;
      node.send({ topic: 'security', endpoint: event.endpoint, payload: event } as Lwm2mMessage);
    };
    const events = configNode as unknown as EventEmitter;
    events.on('lwm2m-security', onSecurity);
    node.on('close', () => {
      for (const [topic, listener] of listeners) server.removeListener(topic, listener);
      server.removeListener('send', onSend);
      server.removeListener('replaced', onReplaced);
      events.removeListener('lwm2m-security', onSecurity);
    });
    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      if (msg.topic === 'security') {
        // {identity, key} sets an endpoint's PSK, null removes its credentials; the key is not echoed
        try {
          const endpoint = msg.endpoint || def.endpoint;
          if (!endpoint) throw new Error('give msg.endpoint');
          const p = msg.payload as { identity?: unknown; key?: unknown; scope?: unknown } | null;
          if (p === null || p === undefined) server.security.delete({ endpoint });
          else server.security.set(pskEntry({ endpoint, identity: p.identity, key: p.key, scope: p.scope }));
          done();
        } catch (err) {
          done(err as Error);
        }
        return;
      }
      if (msg.topic !== 'list') {
        done(new Error(`lwm2m-register: unknown input topic "${String(msg.topic)}" (use "list" or "security")`));
        return;
      }
      const devices = server.listRegistrations().filter((r) => !def.endpoint || r.endpoint === def.endpoint);
      msg.payload = devices.map(registrationPayload);
      send(msg);
      done();
    });
  });
};
