/**
 * Registers a flow node that works with either an lwm2m-server (the server role, given here) or an
 * lwm2m-bc66 modem (the device role, src/nodes/device).
 */
import type { NodeAPI } from 'node-red';
import { attachDeviceRole, DeviceRoleConfig, DeviceRoleKind } from '../device';
import { attachServer, FlowNodeConfig } from './flow-node';
import { useTranslator } from './i18n';
import { Lwm2mServerConfigNode, Node, NodeDef } from './types';

export function registerFlowNode<D extends NodeDef & FlowNodeConfig & DeviceRoleConfig>(
  RED: NodeAPI,
  type: string,
  kind: DeviceRoleKind,
  serverRole: (node: Node, def: D, configNode: Lwm2mServerConfigNode) => void,
): void {
  useTranslator(RED);
  function FlowNode(this: Node, def: D) {
    RED.nodes.createNode(this, def);
    // the dialog's role choice; nodes saved before it existed act as the selector they use says
    if ((def as { role?: string }).role !== 'server' && attachDeviceRole(RED, kind, this, def)) return;
    const configNode = attachServer(RED, this, def);
    if (configNode) serverRole(this, def, configNode);
  }
  RED.nodes.registerType(type, FlowNode as unknown as Parameters<NodeAPI['nodes']['registerType']>[1]);
}
