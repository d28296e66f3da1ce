/** `lwm2m-execute`: executes endpoint + path (e.g. /3/0/4 Reboot) with msg.payload as arguments. */
import type { NodeAPI } from 'node-red';
import { endpointOf, FlowNodeConfig, MessageError, pathOf, runRequest } from './shared/flow-node';
import { DeviceRoleConfig } from './device';
import { registerFlowNode } from './shared/define';
import { DoneFunction, Lwm2mMessage, NodeDef, SendFunction } from './shared/types';

interface ExecuteNodeDef extends NodeDef, FlowNodeConfig, DeviceRoleConfig {
  args?: string;
}

export = function register(RED: NodeAPI): void {
  registerFlowNode<ExecuteNodeDef>(RED, 'lwm2m-execute', 'execute', (node, def, configNode) => {
    node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
      runRequest(node, msg, send, done, 'execute', async () => {
        const endpoint = endpointOf(msg, def);
        const path = pathOf(msg, def);
        const raw = msg.payload === undefined || msg.payload === null || msg.payload === '' ? def.args : msg.payload;
        if (raw !== undefined && typeof raw !== 'string' && typeof raw !== 'number') {
          throw new MessageError('execute arguments (msg.payload) must be a string such as "0=\'on\',1"');
        }
        // a timestamp from a plain inject node is a trigger, not arguments
        const args = typeof raw === 'number' ? def.args : raw;
        const result = await configNode.server.execute(endpoint, path, args || undefined);
        return Object.assign(msg, { topic: 'execute', endpoint, path, code: result.code });
      });
    });
  });
};
