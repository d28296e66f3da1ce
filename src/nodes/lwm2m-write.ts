/**
 * `lwm2m-write`: writes msg.payload to endpoint + path (replace or partial update). msg.path as an
 * object {"/3/0/14": v, …} is a Write-Composite; msg.attributes (or topic "write-attributes") sets
 * notification attributes; topic "create" creates an instance under an object path; topic
 * "delete" deletes an instance.
 */
import type { NodeAPI } from 'node-red';
import { ValueTree } from '../lwm2m/types';
import { endpointOf, FlowNodeConfig, formatOf, MessageError, pathOf, runRequest } from './shared/flow-node';
import { DeviceRoleConfig } from './device';
import { registerFlowNode } from './shared/define';
import { DoneFunction, Lwm2mMessage, NodeDef, SendFunction } from './shared/types';

interface WriteNodeDef extends NodeDef, FlowNodeConfig, DeviceRoleConfig {
  mode?: 'replace' | 'update';
  /** What to write: a typed input (msg.payload unless the node says otherwise). */
  value?: string;
  valueType?: string;
}

export = function register(RED: NodeAPI): void {
  registerFlowNode<WriteNodeDef>(RED, 'lwm2m-write', 'write', (node, def, configNode) => {
    // the node's Value (msg.payload by default; nodes saved before it existed have none)
    const valueOf = (msg: Lwm2mMessage): Promise<unknown> => new Promise((resolve, reject) => {
      const type = def.valueType || 'msg';
      const property = def.value || (type === 'msg' ? 'payload' : '');
      RED.util.evaluateNodeProperty(property, type, node, msg, (err: Error | null, value: unknown) => (err ? reject(new MessageError(err.message)) : resolve(value)));
    });
    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      const topic = typeof msg.topic === 'string' && msg.topic ? msg.topic : 'write';
      runRequest(node, msg, send, done, topic, async () => {
        const server = configNode.server;
        const endpoint = endpointOf(msg, def);
        const format = formatOf(msg, def);
        msg.endpoint = endpoint;
        if (msg.path && typeof msg.path === 'object' && !Array.isArray(msg.path)) {
          const result = await server.writeComposite(endpoint, msg.path as Record<string, ValueTree>, { format });
          return Object.assign(msg, { topic: 'write', code: result.code });
        }
        const path = pathOf(msg, def);
        msg.path = path;
        if (topic === 'write-attributes' || (msg.attributes && typeof msg.attributes === 'object')) {
          const attrs = (msg.attributes ?? msg.payload) as Record<string, number>;
          if (!attrs || typeof attrs !== 'object') throw new MessageError('write-attributes needs msg.attributes like {"pmin": 10, "pmax": 60}');
          const result = await server.writeAttributes(endpoint, path, attrs);
          return Object.assign(msg, { topic: 'write-attributes', code: result.code });
        }
        if (topic === 'create') {
          const result = await server.create(endpoint, path, msg.payload as ValueTree, { format, instanceId: msg.instanceId });
          return Object.assign(msg, { code: result.code, lwm2m: { ...(msg.lwm2m ?? {}), location: result.location } });
        }
        if (topic === 'delete') {
          const result = await server.delete(endpoint, path);
          return Object.assign(msg, { code: result.code });
        }
        const value = await valueOf(msg);
        if (value === undefined || value === null) throw new MessageError(`nothing to write: ${def.valueType === 'msg' || !def.valueType ? `msg.${def.value || 'payload'}` : 'the node\'s Value'} is empty`);
        const result = await server.write(endpoint, path, value as ValueTree, { format, mode: def.mode || undefined });
        return Object.assign(msg, { topic: 'write', code: result.code });
      });
    });
  });
};
