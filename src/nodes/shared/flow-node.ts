/**
 * What every server-role flow node does alike: find its lwm2m-server config node, mirror its
 * status, run each input as one request with a status dot, and report errors to Catch nodes.
 */
import type { EventEmitter } from 'events';
import type { NodeAPI } from 'node-red';
import { formatPath, parsePath } from '../../lwm2m/path';
import type { Registration } from '../../lwm2m/server';
import { Lwm2mError } from '../../lwm2m/types';
import { DoneFunction, Lwm2mMessage, Lwm2mServerConfigNode, Node, SendFunction } from './types';
import { operationLabel, statusKey, t } from './i18n';

export class MessageError extends Lwm2mError {}

/** A node's status changes at most this often: each one is a message to every open editor. */
const STATUS_INTERVAL_MS = 250;
const statusSetters = new WeakMap<Node, (status: object) => void>();

/**
 * node.status, coalesced: the first change shows at once, later ones within STATUS_INTERVAL_MS
 * are folded into the last, which is always shown (thousands of requests a second must not be
 * thousands of status messages).
 */
export function showStatus(node: Node, status: object): void {
  let set = statusSetters.get(node);
  if (!set) {
    let timer: NodeJS.Timeout | null = null;
    let pending: object | null = null;
    const flush = () => {
      timer = null;
      if (!pending) return;
      node.status(pending);
      pending = null;
      timer = setTimeout(flush, STATUS_INTERVAL_MS);
    };
    set = (next: object) => {
      if (timer) {
        pending = next;
        return;
      }
      node.status(next);
      timer = setTimeout(flush, STATUS_INTERVAL_MS);
    };
    node.on('close', () => {
      if (timer) clearTimeout(timer);
      timer = null;
      pending = null;
    });
    statusSetters.set(node, set);
  }
  set(status);
}

export interface FlowNodeConfig {
  server?: string;
  endpoint?: string;
  path?: string;
  format?: string;
}

/** Connects a flow node to its server; returns null (with a red status) when none is configured. */
export function attachServer(RED: NodeAPI, node: Node, config: FlowNodeConfig): Lwm2mServerConfigNode | null {
  const configNode = config.server ? (RED.nodes.getNode(config.server) as unknown as Lwm2mServerConfigNode | null) : null;
  if (!configNode) {
    node.status({ fill: 'red', shape: 'ring', text: statusKey('noServer') });
    node.error(t('runtime.noServer'));
    return null;
  }
  // the server's status (listening, device count) is mirrored, except over a request's error
  const mirror = (status: object) => {
    if (!failedNodes.has(node)) showStatus(node, status);
  };
  const events = configNode as unknown as EventEmitter;
  events.on('lwm2m-status', mirror);
  configNode.use(node);
  node.status(configNode.currentStatus);
  node.on('close', (_removed: boolean, done: () => void) => {
    events.removeListener('lwm2m-status', mirror);
    configNode.release(node).then(done, done);
  });
  return configNode;
}

export function endpointOf(msg: Lwm2mMessage, config: FlowNodeConfig): string {
  const endpoint = typeof msg.endpoint === 'string' && msg.endpoint ? msg.endpoint : config.endpoint;
  if (!endpoint) throw new MessageError('no endpoint: set msg.endpoint or the node\'s Endpoint');
  return endpoint;
}

/** The path from msg.path (string) or the node's Path, validated and normalised. */
export function pathOf(msg: Lwm2mMessage, config: FlowNodeConfig): string {
  const raw = typeof msg.path === 'string' && msg.path ? msg.path : config.path;
  if (!raw) throw new MessageError('no path: set msg.path (e.g. "/3/0/0") or the node\'s Path');
  return formatPath(parsePath(raw));
}

export function formatOf(msg: Lwm2mMessage, config: FlowNodeConfig): string | undefined {
  const format = typeof msg.format === 'string' && msg.format ? msg.format : config.format;
  return format && format !== 'auto' ? format : undefined;
}

/** RFC 7252 §12.1.2 and RFC 8516: what a response code means, for status texts. */
const CODE_MEANINGS: Record<string, string> = {
  '4.00': 'Bad Request', '4.01': 'Unauthorized', '4.02': 'Bad Option', '4.03': 'Forbidden', '4.04': 'Not Found',
  '4.05': 'Method Not Allowed', '4.06': 'Not Acceptable', '4.08': 'Request Entity Incomplete', '4.12': 'Precondition Failed',
  '4.13': 'Request Entity Too Large', '4.15': 'Unsupported Content-Format', '4.29': 'Too Many Requests', '5.00': 'Internal Server Error',
  '5.01': 'Not Implemented', '5.02': 'Bad Gateway', '5.03': 'Service Unavailable', '5.04': 'Gateway Timeout', '5.05': 'Proxying Not Supported',
};

/** A status text for a failed request: the CoAP code and its meaning when the device answered one, else the error, shortened. */
export function shortError(err: Error & { code?: unknown }): string {
  if (typeof err.code === 'string' && CODE_MEANINGS[err.code]) return `${err.code} ${CODE_MEANINGS[err.code]}`;
  const text = err.message || String(err);
  return text.length > 40 ? `${text.slice(0, 37)}…` : text;
}

/** The CoAP code (`4.04`) an error carries when a device answered one; undefined otherwise. */
export function coapCodeOf(err: { code?: unknown }): string | undefined {
  return typeof err.code === 'string' && /^\d\.\d\d$/.test(err.code) ? err.code : undefined;
}

/**
 * Whether a server event came from another instance of a fleet: its last argument is then
 * `{ remote: true }` (the server's EventOrigin; one server alone adds none).
 */
export function isRemoteEvent(args: unknown[]): boolean {
  const last = args[args.length - 1] as { remote?: unknown } | undefined;
  return Boolean(last && typeof last === 'object' && last.remote === true);
}

/** Flow nodes whose last request failed: their red status stays until their next request. */
const failedNodes = new WeakSet<Node>();

/** A red status for a failed request, kept over the server's status until the node's next request. */
export function showFailure(node: Node, err: Error & { code?: unknown }, prefix = ''): void {
  failedNodes.add(node);
  showStatus(node, { fill: 'red', shape: 'ring', text: prefix + shortError(err) });
}

/** A request that ends a node's failure: the server's status shows again. */
export function clearFailure(node: Node, status: object): void {
  if (failedNodes.delete(node)) showStatus(node, status);
}

/**
 * Runs one request for an input message: blue dot while it runs, the outcome's code after,
 * `msg.code` set on failure so a Catch node sees it. Never throws.
 */
export function runRequest(
  node: Node, msg: Lwm2mMessage, send: SendFunction, done: DoneFunction, label: string,
  request: () => Promise<Lwm2mMessage | null>,
): void {
  failedNodes.delete(node);
  const operation = operationLabel(label);
  showStatus(node, { fill: 'blue', shape: 'dot', text: operation });
  let promise: Promise<Lwm2mMessage | null>;
  try {
    promise = request();
  } catch (err) {
    promise = Promise.reject(err);
  }
  promise.then((out) => {
    showStatus(node, { fill: 'green', shape: 'dot', text: `${out?.code ?? 'ok'} ${operation}` });
    if (out) send(out);
    done();
  }, (err: Error & { code?: string }) => {
    const code = coapCodeOf(err);
    if (code) msg.code = code;
    showFailure(node, err);
    done(err);
  });
}

/**
 * A registration as a message payload: a copy the flow may change (dates as ISO strings, as JSON
 * would give them), made field by field — a JSON round trip per event cost more than the
 * registration itself during a storm.
 */
export function registrationPayload(reg: Registration): Record<string, unknown> {
  const out: Record<string, unknown> = { ...reg };
  out.objects = reg.objects.map((o) => ({ ...o }));
  out.supportedFormats = [...reg.supportedFormats];
  out.registeredAt = reg.registeredAt.toISOString();
  out.updatedAt = reg.updatedAt.toISOString();
  out.expiresAt = reg.expiresAt.toISOString();
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}
