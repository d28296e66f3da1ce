/**
 * What an Lwm2mServer is made with, and the defaults: sized so that no device and no flow can
 * exhaust a small machine (each limit says what happens beyond it).
 */
import type { X509Certificate } from 'crypto';
import type { LocalCertificate } from '../../dtls/certificates';
import { DEFAULT_PARAMETERS, maxTransmitWaitMs } from '../coap/params';
import type { FormatName } from '../content';
import type { ObjectRegistry } from '../model';
import type { SecurityStore } from './security';
import type { SharedStore } from './cluster/shared-store';

export interface SecureSocketOptions {
  /** UDP port of the DTLS socket (coaps). Default 5684. */
  port?: number;
  /**
   * The server's key, with its X.509 chain and/or as a raw public key: TLS_ECDHE_ECDSA for devices
   * with certificates (checked against `trustAnchors`, endpoint = the CN) or raw public keys (bound
   * to endpoints in the security store as `rpk:<fingerprint>` identities).
   */
  certificate?: LocalCertificate;
  trustAnchors?: X509Certificate[];
  address?: string;
  /** A handshake not finished in this time is dropped. Default 120 s. */
  handshakeTimeoutMs?: number;
  /** DTLS sessions kept at most. Default 100,000. */
  maxSessions?: number;
}

export interface ServerOptions {
  /**
   * A store shared by several instances (RedisStore): registrations, credentials and events of the
   * whole fleet, requests forwarded to the instance a device talks to. None: this instance alone.
   */
  shared?: SharedStore;
  /** UDP port of the NoSec socket (coap). Default 5683. */
  port?: number;
  address?: string;
  type?: 'udp4' | 'udp6';
  /** The NoSec socket: on (default), off, or for the bootstrap interface only. */
  nosec?: 'on' | 'off' | 'bootstrap';
  /** A DTLS socket beside it (PSK), with the credentials of `security`. */
  secure?: SecureSocketOptions;
  /** Who may register as which endpoint over DTLS (default: an in-memory store). */
  security?: SecurityStore;
  requestTimeoutMs?: number;
  defaultFormat?: FormatName;
  registry?: ObjectRegistry;
  /**
   * Requests pending for one device (default 100): queued for a sleeping (queue-mode) device, or
   * waiting their turn for an awake one (CoAP NSTART 1). Beyond, a request fails at once.
   */
  queueMaxPerDevice?: number;
  /** How long a queue-mode device counts as awake after its last message (LwM2M: MAX_TRANSMIT_WAIT, 93 s). */
  queueAwakeMs?: number;
  minLifetime?: number;
  maxRegistrations?: number;
  /** Extra time after the lifetime before a registration expires. */
  expiryGraceMs?: number;
  /** A JSON file that keeps the registrations across restarts (none: memory only). */
  persistenceFile?: string;
  /**
   * NoSec: take Update and De-register of a registration from another address than its own, and
   * move it there (NAT rebinding). Anyone who knows the registration id can then do so. Default on.
   */
  allowAddressChange?: boolean;
  /** Register/Update payload bytes (default 16,384: 4.13 beyond) and object links (default 1,000: 4.00 beyond). */
  maxRegistrationPayload?: number;
  maxRegistrationLinks?: number;
  /** Observations per device (default 64) and in all (default 100,000): observe() beyond throws. */
  maxObservationsPerDevice?: number;
  maxObservations?: number;
  /** Requests to devices waiting for an answer or queued for a sleeping device, in all (default 10,000): beyond, a request fails at once. */
  maxPendingRequests?: number;
}

export interface RequestOptions {
  /** Observe: given back on each notification (Notification.tag); in a fleet, whichever instance takes the observation over. */
  tag?: string;
  /** Internal: a request another instance forwarded here; sent from this socket, never forwarded again. */
  viaCluster?: boolean;
  format?: FormatName | number | string;
  timeoutMs?: number;
}

type Defaults = 'port' | 'type' | 'requestTimeoutMs' | 'queueMaxPerDevice' | 'queueAwakeMs' | 'minLifetime' | 'maxRegistrations' | 'expiryGraceMs' | 'nosec'
  | 'allowAddressChange' | 'maxRegistrationPayload' | 'maxRegistrationLinks' | 'maxObservationsPerDevice' | 'maxObservations' | 'maxPendingRequests';

export type ResolvedServerOptions = Required<Pick<ServerOptions, Defaults>> & ServerOptions;

export function withDefaults(options: ServerOptions): ResolvedServerOptions {
  return {
    port: 5683,
    type: 'udp4',
    nosec: 'on',
    // MAX_TRANSMIT_WAIT: room for all of CoAP's retransmissions (NB-IoT needs them)
    requestTimeoutMs: maxTransmitWaitMs(DEFAULT_PARAMETERS),
    queueMaxPerDevice: 100,
    queueAwakeMs: 93000,
    minLifetime: 1,
    maxRegistrations: 1_000_000,
    expiryGraceMs: 2000,
    allowAddressChange: true,
    maxRegistrationPayload: 16_384,
    maxRegistrationLinks: 1000,
    maxObservationsPerDevice: 64,
    maxObservations: 100_000,
    maxPendingRequests: 10_000,
    ...options,
  };
}
