/**
 * Bootstrap configurations: which servers, security and lifetime an endpoint is given, validated
 * before use, and matched by exact name, /regex/, glob (`sensor-*`) or the default `*`.
 */
import { Lwm2mError, ValueTree } from '../types';

export type SecurityMode = 'psk' | 'rpk' | 'x509' | 'nosec';

export const SECURITY_MODE_CODES: Record<SecurityMode, number> = { psk: 0, rpk: 1, x509: 2, nosec: 3 };

export interface BootstrapServerAccount {
  uri: string;
  shortServerId: number;
  lifetime?: number;
  binding?: string;
  securityMode: SecurityMode;
  /** The PSK identity; `{ep}` in it stands for the endpoint name (one identity per device). */
  pskIdentity?: string;
  /** The PSK: a Buffer, a hex string, or "random" for a new 16-byte key per device and session. */
  pskKey?: Buffer | string;
  defaultMinPeriod?: number;
  defaultMaxPeriod?: number;
  notificationStoring?: boolean;
}

export interface BootstrapConfig {
  /** Exact endpoint name, `*` (default for all), a glob with `*`, or a /regular expression/. */
  endpoint: string;
  servers: BootstrapServerAccount[];
  /** Bootstrap-Delete targets before the writes (default /0 and /1; the client keeps its bootstrap account). */
  deletePaths?: string[];
  /** Further Bootstrap-Writes: path → value, e.g. {"/3/0/14": "+01:00"}. */
  extraWrites?: Record<string, ValueTree>;
  /**
   * Hand PSK keys to devices that bootstrap over NoSec, where anyone on the path reads them. Off by
   * default: such a device then gets 4.01, and bootstraps over DTLS instead.
   */
  keysOverNoSec?: boolean;
}

export class BootstrapConfigError extends Lwm2mError {}

export function validateConfig(config: BootstrapConfig): BootstrapConfig {
  if (!config || typeof config !== 'object') throw new BootstrapConfigError('a bootstrap configuration must be an object');
  if (typeof config.endpoint !== 'string' || !config.endpoint) throw new BootstrapConfigError('bootstrap configuration needs an endpoint (name, pattern or "*")');
  if (config.endpoint.startsWith('/') && config.endpoint.endsWith('/') && config.endpoint.length > 2) {
    try {
      new RegExp(config.endpoint.slice(1, -1));
    } catch {
      throw new BootstrapConfigError(`endpoint pattern ${config.endpoint} is not a valid regular expression`);
    }
  }
  if (!Array.isArray(config.servers) || config.servers.length === 0) throw new BootstrapConfigError(`${config.endpoint}: at least one server is needed`);
  const ids = new Set<number>();
  const servers = config.servers.map((s, i) => {
    const where = `${config.endpoint}: server ${i + 1}`;
    if (typeof s.uri !== 'string' || !/^coaps?:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s]+)(:\d{1,5})?\/?$/.test(s.uri)) {
      throw new BootstrapConfigError(`${where}: URI "${s.uri}" is not coap://host:port or coaps://host:port`);
    }
    const ssid = Number(s.shortServerId);
    if (!Number.isInteger(ssid) || ssid < 1 || ssid > 65534) throw new BootstrapConfigError(`${where}: short server id must be 1..65534`);
    if (ids.has(ssid)) throw new BootstrapConfigError(`${where}: short server id ${ssid} is used twice`);
    ids.add(ssid);
    const mode = (s.securityMode ?? 'nosec') as SecurityMode;
    if (!(mode in SECURITY_MODE_CODES)) throw new BootstrapConfigError(`${where}: security mode must be nosec, psk, rpk or x509`);
    let pskKey = s.pskKey;
    if (mode === 'psk') {
      if (!s.pskIdentity) throw new BootstrapConfigError(`${where}: PSK needs an identity`);
      if (typeof pskKey === 'string' && pskKey !== 'random') {
        if (!/^([0-9a-fA-F]{2})+$/.test(pskKey)) throw new BootstrapConfigError(`${where}: PSK key must be hex`);
        pskKey = Buffer.from(pskKey, 'hex');
      }
      if (pskKey !== 'random' && (!Buffer.isBuffer(pskKey) || pskKey.length === 0)) throw new BootstrapConfigError(`${where}: PSK needs a key (hex, or "random")`);
      if (!s.uri.startsWith('coaps://')) throw new BootstrapConfigError(`${where}: PSK security needs a coaps:// URI`);
    }
    const lifetime = s.lifetime ?? 86400;
    if (!Number.isInteger(lifetime) || lifetime < 1) throw new BootstrapConfigError(`${where}: lifetime must be a positive integer`);
    const binding = s.binding ?? 'U';
    if (!/^[UTSNQ]{1,5}$/.test(binding)) throw new BootstrapConfigError(`${where}: binding "${binding}" is not valid`);
    return { ...s, shortServerId: ssid, securityMode: mode, pskKey, lifetime, binding };
  });
  return { ...config, servers };
}

/** How specific a match is: exact beats regex/glob beats the default. */
export function matchScore(pattern: string, endpoint: string): number {
  if (pattern === endpoint) return 3;
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(pattern.slice(1, -1)).test(endpoint) ? 2 : 0;
  if (pattern === '*') return 1;
  if (pattern.includes('*')) {
    const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return re.test(endpoint) ? 2 : 0;
  }
  return 0;
}
