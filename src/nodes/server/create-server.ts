/**
 * An lwm2m-server node's settings as the LwM2M core takes them: sockets, certificates from PEM
 * files, PSK credentials, the registration store (memory, file or Redis) and the bootstrap server.
 */
import { createPrivateKey, X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FormatName, toFormatName } from '../../lwm2m/content';
import { ObjectRegistry } from '../../lwm2m/model';
import { Lwm2mServer, pskEntry, RedisStore, SecureSocketOptions } from '../../lwm2m/server';
import { BootstrapServer } from '../../lwm2m/server/bootstrap-server';
import { acceptBootstrapCredentials, serverStopped } from '../shared/security';
import { t } from '../shared/i18n';
import { Node, NodeDef } from '../shared/types';

export interface ServerNodeDef extends NodeDef {
  address?: string;
  port?: string | number;
  ipv6?: boolean;
  timeout?: string | number;
  format?: string;
  modelDir?: string;
  bootstrap?: boolean;
  queueAwake?: string | number;
  /** Bootstrap sessions running at once (default 100). */
  bootstrapSessions?: string | number;
  maxRegistrations?: string | number;
  maxObservationsPerDevice?: string | number;
  maxObservations?: string | number;
  maxPendingRequests?: string | number;
  maxPendingPerDevice?: string | number;
  persist?: boolean | string;
  /** Where registrations live: this process's memory, a file in the user directory, or Redis shared by several instances. */
  store?: '' | 'memory' | 'file' | 'redis';
  redisUrl?: string;
  redisPrefix?: string;
  /** This instance's name in the fleet (default host:port). */
  instanceId?: string;
  /** NoSec: Update/De-register from another address moves the registration (default true). */
  allowAddressChange?: boolean;
  /** The DTLS (coaps) port; absent or empty: no DTLS socket (flows made before DTLS existed). */
  securePort?: string | number;
  /** The NoSec socket: on, off, or bootstrap interface only. */
  nosec?: 'on' | 'off' | 'bootstrap';
  /** ECDHE_ECDSA: PEM files of the server's certificate chain, its private key, and the devices' trust anchors. */
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /** Offer raw public keys (RFC 7250) too. */
  rawPublicKey?: boolean;
}

export interface ServerCredentials {
  /** JSON: [{"endpoint": "...", "identity": "...", "key": "<hex>"}] */
  psk?: string;
  redisPassword?: string;
}

/** The store the node says (nodes saved before the choice: the old checkbox). */
export function storeOf(def: ServerNodeDef): 'memory' | 'file' | 'redis' {
  if (def.store === 'memory' || def.store === 'file' || def.store === 'redis') return def.store;
  return def.persist === true || def.persist === 'true' ? 'file' : 'memory';
}

export function numberOr(value: unknown, fallback: number): number {
  const n = Number(value);
  return value === '' || value === undefined || value === null || !Number.isFinite(n) ? fallback : n;
}

/**
 * The server's certificate, key and the devices' trust anchors from PEM files (the key stays in its
 * file, out of the flow); a file that cannot be read is reported and DTLS goes on with PSK alone.
 */
function loadCertificates(node: Node, def: ServerNodeDef): Pick<SecureSocketOptions, 'certificate' | 'trustAnchors'> {
  if (!def.keyFile) return {};
  try {
    const privateKey = createPrivateKey(fs.readFileSync(def.keyFile));
    const chain = def.certFile ? pemCertificates(fs.readFileSync(def.certFile, 'utf8')).map((c) => c.raw) : [];
    const trustAnchors = def.caFile ? pemCertificates(fs.readFileSync(def.caFile, 'utf8')) : [];
    if (chain.length === 0 && !def.rawPublicKey) throw new Error('give a certificate file, or tick raw public keys');
    return { certificate: { privateKey, chain, rawPublicKey: def.rawPublicKey === true }, trustAnchors };
  } catch (err) {
    node.error(t('runtime.certificates', { error: (err as Error).message }));
    return {};
  }
}

function pemCertificates(text: string): X509Certificate[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/** The PSK credentials typed in the node (kept as Node-RED credentials); a bad row is reported without its key. */
export function loadCredentials(node: Node & { credentials?: ServerCredentials }, server: Lwm2mServer): void {
  const text = node.credentials?.psk?.trim();
  if (!text) return;
  let rows: unknown;
  try {
    rows = JSON.parse(text);
  } catch {
    node.warn(t('runtime.pskNotJson'));
    return;
  }
  if (!Array.isArray(rows)) {
    node.warn(t('runtime.pskNotArray'));
    return;
  }
  for (const [i, row] of rows.entries()) {
    try {
      server.security.set(pskEntry(row as Record<string, unknown>));
    } catch (err) {
      node.warn(t('runtime.pskRow', { row: i + 1, error: (err as Error).message }));
    }
  }
}

export interface Listening {
  port: number;
  securePort: number | undefined;
  nosec: 'on' | 'off' | 'bootstrap';
  ipv6: boolean;
}

/** The node's LwM2M server (and bootstrap server) from its settings; nothing is bound until start(). */
export function createServer(node: Node & { server: Lwm2mServer; bootstrap: BootstrapServer | null; credentials?: ServerCredentials }, def: ServerNodeDef, where: Listening, userDir: string | undefined): void {
  let defaultFormat: FormatName | undefined;
  try {
    defaultFormat = def.format && def.format !== 'auto' ? toFormatName(def.format) : undefined;
  } catch (err) {
    node.warn((err as Error).message);
  }
  const registry = ObjectRegistry.withBuiltins();
  // kept in Node-RED's user directory, one file per server node
  const store = storeOf(def);
  const persistenceFile = store === 'file' && userDir ? path.join(userDir, `lwm2m-registrations-${def.id}.json`) : undefined;
  const shared = store === 'redis' ? new RedisStore({
    url: def.redisUrl || 'redis://127.0.0.1:6379',
    password: node.credentials?.redisPassword,
    prefix: def.redisPrefix || 'lwm2m:',
    // unique in the fleet and the same after a restart: instances behind one balancer differ by host or port
    instanceId: def.instanceId || `${os.hostname()}:${where.port}`,
  }) : undefined;
  const certificates = where.securePort === undefined ? {} : loadCertificates(node, def);
  node.server = new Lwm2mServer({
    port: where.port,
    nosec: where.nosec,
    secure: where.securePort === undefined ? undefined : { port: where.securePort, ...certificates },
    address: def.address || (where.ipv6 ? '::' : '0.0.0.0'),
    type: where.ipv6 ? 'udp6' : 'udp4',
    requestTimeoutMs: numberOr(def.timeout, 93) * 1000,
    queueAwakeMs: numberOr(def.queueAwake, 93) * 1000,
    defaultFormat,
    registry,
    persistenceFile,
    shared,
    allowAddressChange: def.allowAddressChange !== false,
    // limits sized for a Raspberry Pi (the help says what happens beyond each)
    maxRegistrations: Math.max(1, numberOr(def.maxRegistrations, 100_000)),
    maxObservationsPerDevice: Math.max(1, numberOr(def.maxObservationsPerDevice, 64)),
    maxObservations: Math.max(1, numberOr(def.maxObservations, 100_000)),
    maxPendingRequests: Math.max(1, numberOr(def.maxPendingRequests, 10_000)),
    queueMaxPerDevice: Math.max(1, numberOr(def.maxPendingPerDevice, 100)),
  });
  loadCredentials(node, node.server);
  node.bootstrap = def.bootstrap ? new BootstrapServer({
    transport: node.server,
    registry,
    maxSessions: Math.max(1, numberOr(def.bootstrapSessions, 100)),
    onCredentials: (endpoint, account) => {
      if (!acceptBootstrapCredentials(endpoint, account)) node.debug(`bootstrap: no lwm2m-server here listens on ${account.uri} (DTLS); its credentials go to the device only`);
    },
  }) : null;
  if (node.bootstrap) node.server.setBootstrapHandler((exchange) => node.bootstrap!.handle(exchange));
}

export async function stopServer(node: { server: Lwm2mServer; bootstrap: BootstrapServer | null }): Promise<void> {
  node.bootstrap?.stop();
  serverStopped(node.server);
  await node.server.stop();
}
