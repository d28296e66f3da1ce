/**
 * `lwm2m-read`: endpoint + path in, the decoded value out. msg.path as an array reads several
 * paths at once (Read-Composite); msg.topic "discover" asks for the object/instance links instead.
 */
import type { NodeAPI } from 'node-red';
import { namedComposite, namedValues } from '../lwm2m/model';
import { formatPath, parsePath } from '../lwm2m/path';
import { endpointOf, FlowNodeConfig, formatOf, pathOf, runRequest } from './shared/flow-node';
import { DeviceRoleConfig } from './device';
import { registerFlowNode } from './shared/define';
import { DoneFunction, Lwm2mMessage, NodeDef, SendFunction } from './shared/types';

interface ReadNodeDef extends NodeDef, FlowNodeConfig, DeviceRoleConfig {
  /** Also output msg.named: the values keyed by resource names. */
  named?: boolean;
}

export = function register(RED: NodeAPI): void {
  registerFlowNode<ReadNodeDef>(RED, 'lwm2m-read', 'read', (node, def, configNode) => {
    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      runRequest(node, msg, send, done, 'read', async () => {
        const server = configNode.server;
        const endpoint = endpointOf(msg, def);
        const format = formatOf(msg, def);
        msg.endpoint = endpoint;
        if (Array.isArray(msg.path)) {
          const paths = msg.path.map((p) => formatPath(parsePath(String(p))));
          const result = await server.readComposite(endpoint, paths, { format });
          if (def.named) msg.named = namedComposite(server.registry, result.value);
          return Object.assign(msg, { topic: 'read', path: paths, payload: result.value, code: result.code, format: result.format });
        }
        const path = pathOf(msg, def);
        msg.path = path;
        if (msg.topic === 'discover') {
          const result = await server.discover(endpoint, path);
          return Object.assign(msg, { payload: result.links, code: result.code });
        }
        const result = await server.read(endpoint, path, { format });
        if (def.named) msg.named = namedValues(server.registry, parsePath(path), result.value);
        return Object.assign(msg, { topic: 'read', payload: result.value, code: result.code, format: result.format });
      });
    });
  });
};
