/**
 * What the layers above see of the CoAP message layer: requests they send, requests they
 * answer, observations in both directions. No message ids, no retransmissions, no blocks.
 */
import type { EventEmitter } from 'events';
import type { Peer } from './channel';

export type CoapMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

export interface CoapRequestSpec {
  method: CoapMethod;
  /** Uri-Path as a "/a/b/c" string ("/" or "" for none). */
  path: string;
  /** Uri-Query entries, each "key=value" or "key". */
  query?: string[];
  accept?: number;
  contentFormat?: number;
  payload?: Buffer;
  /** 0 registers an observation, 1 cancels one (active cancel). */
  observe?: 0 | 1;
  confirmable?: boolean;
  /** Token to use (an active observe cancel repeats the observation's token); random when absent. */
  token?: Buffer;
  /** Overall time to wait for the response, retransmissions, NSTART queueing and blocks included. */
  timeoutMs?: number;
}

export interface CoapResponse {
  code: string;
  /** The whole body: a Block2 transfer is reassembled before it is returned. */
  payload: Buffer;
  contentFormat?: number;
  observe?: number;
  locationPath: string[];
  peer: Peer;
}

export interface IncomingRequest {
  method: string;
  pathSegments: string[];
  /** Raw Uri-Query entries ("ep=foo"). */
  query: string[];
  contentFormat?: number;
  accept?: number;
  observe?: number;
  /** The whole body: a Block1 transfer is reassembled before the handler sees it. */
  payload: Buffer;
  peer: Peer;
  token: Buffer;
}

export interface ResponseSpec {
  code: string;
  payload?: Buffer;
  contentFormat?: number;
  locationPath?: string[];
  /** Max-Age in seconds: with 4.29 or 5.03, when the client may try again (RFC 8516, RFC 7252 §5.9.3.4). */
  maxAge?: number;
}

/** What a request handler gets to answer with; observe registrations may keep notifying. */
export interface Exchange {
  readonly request: IncomingRequest;
  /** Answers once (later calls are ignored); a large payload goes out block-wise. */
  respond(spec: ResponseSpec): void;
  /**
   * Only for GET/FETCH with Observe 0, after a 2.xx respond(): sends one notification. Resolves
   * true once delivered (NON: when sent; CON: when ACKed), false when the observer reset it, it
   * was not observing any more, a newer notification replaced it, or no ACK came in time.
   */
  notify(spec: ResponseSpec, confirmable?: boolean, ackTimeoutMs?: number): Promise<boolean>;
  /** True until the observer cancelled (RST / Observe 1 / transport closed). */
  readonly observing: boolean;
  onCancel(listener: () => void): void;
}

export type RequestHandler = (exchange: Exchange) => void;

/** A running observation started by this side: notifications arrive as 'notification' events. */
export interface Observation extends EventEmitter {
  readonly first: CoapResponse;
  readonly token: Buffer;
  /** Stops listening; the next notification is answered with RST (passive cancel). */
  close(): void;
  on(event: 'notification', listener: (response: CoapResponse) => void): this;
  on(event: 'end', listener: () => void): this;
}
