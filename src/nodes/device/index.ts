/**
 * The device role of the flow nodes, when they select an `lwm2m-bc66` modem instead of a server
 * (DESIGN §4, right column): register drives registration, read/write/execute output what the
 * server asks, observe sets values and notifies.
 */
import type { EventEmitter } from 'events';
import type { NodeAPI } from 'node-red';
import type { Bc66Request, Bc66State } from '../../bc66';
import { ResourceValue } from '../../lwm2m/types';
import { MessageError, pathOf, runRequest } from '../shared/flow-node';
import { DoneFunction, Lwm2mBc66ConfigNode, Lwm2mMessage, Node, SendFunction } from '../shared/types';
import { statusKey } from '../shared/i18n';

export type DeviceRoleKind = 'register' | 'read' | 'write' | 'execute' | 'observe';

export interface DeviceRoleConfig {
  modem?: string;
  path?: string;
  answer?: 'values' | 'flow';
  confirmable?: boolean;
}

/** Attaches the device role when the node selects a modem; returns false when it selects none. */
export function attachDeviceRole(RED: NodeAPI, kind: DeviceRoleKind, node: Node, config: DeviceRoleConfig): boolean {
  if (!config.modem) return false;
  const modem = RED.nodes.getNode(config.modem) as unknown as Lwm2mBc66ConfigNode | null;
  if (!modem) {
    node.status({ fill: 'red', shape: 'ring', text: statusKey('modemNotFound') });
    return true;
  }
  const device = modem.device;
  const events = modem as unknown as EventEmitter;
  const mirror = (status: object) => node.status(status);
  events.on('lwm2m-status', mirror);
  const listeners: Array<[string, (arg: never) => void]> = [];
  const listen = <T>(event: string, fn: (arg: T) => void) => {
    device.on(event, fn);
    listeners.push([event, fn as (arg: never) => void]);
  };
  const emitRequest = (topic: string) => (req: Bc66Request) => {
    node.send({
      topic, endpoint: device.endpoint, path: req.path,
      payload: topic === 'execute' ? req.args ?? '' : req.value,
      lwm2m: { requestId: req.mid },
    } as Lwm2mMessage);
  };

  if (kind === 'read' && config.answer === 'flow') device.config.answerReads = 'flow';
  switch (kind) {
    case 'register':
      listen<Bc66State>('state', (state) => node.send({ topic: 'state', endpoint: device.endpoint, payload: state } as Lwm2mMessage));
      break;
    case 'read':
      listen('read', emitRequest('read'));
      break;
    case 'write':
      listen('write', emitRequest('write'));
      break;
    case 'execute':
      listen('execute', emitRequest('execute'));
      break;
    case 'observe':
      listen<Bc66Request>('observe', (req) => node.send({ topic: req.start ? 'observe' : 'cancel', endpoint: device.endpoint, path: req.path } as Lwm2mMessage));
      listen<{ path: string; mid: number; acked: boolean }>('notify-ack', (ack) => node.send({ topic: 'notify-ack', endpoint: device.endpoint, path: ack.path, payload: ack.acked } as Lwm2mMessage));
      break;
  }

  node.on('input', (msg: Lwm2mMessage, send: SendFunction, done: DoneFunction) => {
    const label = kind === 'register' ? String(msg.topic || 'register')
      : kind === 'read' && typeof msg.lwm2m?.requestId === 'number' ? 'answer read' : 'set value';
    runRequest(node, msg, send, done, label, async () => {
      if (kind === 'register') {
        const topic = msg.topic || 'register';
        if (topic === 'register') await device.register();
        else if (topic === 'update') await device.update(typeof msg.payload === 'number' ? msg.payload : undefined);
        else if (topic === 'deregister') await device.deregister();
        else throw new MessageError(`unknown topic "${topic}": use register, update or deregister`);
        return null; // state changes come out as 'state' messages
      }
      const requestId = msg.lwm2m?.requestId;
      if (kind === 'read' && typeof requestId === 'number') {
        device.answerRead(requestId, msg.payload as ResourceValue);
        return null;
      }
      if (msg.payload === undefined || msg.payload === null) throw new MessageError('msg.payload must hold the resource value');
      const result = await device.setValue(pathOf(msg, { path: config.path }), msg.payload as ResourceValue, config.confirmable === true);
      if (kind !== 'observe') return null;
      return Object.assign(msg, { topic: 'notify', payload: result, code: result.notified ? '2.05' : undefined });
    });
  });

  modem.use(node);
  node.status(modem.currentStatus);
  node.on('close', (_removed: boolean, done: () => void) => {
    events.removeListener('lwm2m-status', mirror);
    for (const [event, fn] of listeners) device.removeListener(event, fn as (arg: unknown) => void);
    modem.release(node).then(done, done);
  });
  return true;
}
