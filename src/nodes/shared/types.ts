/** The Node-RED facing types shared by the node wrappers (no protocol logic here). */
import type { Node, NodeDef, NodeMessage, NodeStatus } from 'node-red';
import type { Lwm2mServer } from '../../lwm2m/server';
import type { BootstrapServer } from '../../lwm2m/server/bootstrap-server';

export type { Node, NodeDef, NodeMessage, NodeStatus };

/** The `lwm2m-server` config node as its users see it. */
export interface Lwm2mServerConfigNode extends Node {
  readonly server: Lwm2mServer;
  readonly bootstrap: BootstrapServer | null;
  /** A flow node starts using the server: the socket opens on first use. */
  use(user: Node): void;
  /** The last user to leave closes the socket. */
  release(user: Node): Promise<void>;
  readonly currentStatus: NodeStatus;
}

/** What flow nodes put on messages (DESIGN §3). */
export interface Lwm2mMessage extends NodeMessage {
  endpoint?: string;
  path?: string | string[] | Record<string, unknown>;
  format?: string;
  code?: string;
  attributes?: Record<string, number | null>;
  instanceId?: number;
  lwm2m?: Record<string, unknown>;
}

export type SendFunction = (msg: NodeMessage | Array<NodeMessage | null>) => void;
export type DoneFunction = (err?: Error) => void;

/** The `lwm2m-bc66` config node as its users see it. */
export interface Lwm2mBc66ConfigNode extends Node {
  readonly device: import('../../bc66').Bc66Lwm2m;
  use(user: Node): void;
  release(user: Node): Promise<void>;
  readonly currentStatus: NodeStatus;
}
