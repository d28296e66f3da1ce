/**
 * The bootstrap interface (LwM2M Core §6.1, Transport §6.3): answers Bootstrap-Request (POST /bs)
 * and runs a session per endpoint — Discover, Delete, Write of Security /0 and Server /1 and any
 * extra objects, Finish — from the same socket as the LwM2M server. Sessions run concurrently and
 * never block each other or the registration interface.
 */
import { EventEmitter } from 'events';
import { CoapTimeoutError, CoapTransport, Exchange, Peer } from '../coap/transport';
import { DecodeError, encodeRecords, FORMAT_CODES, FormatName, formatName, Link, parseLinkFormat, treeToRecords } from '../content';
import { ObjectRegistry } from '../model';
import { formatPath, parsePath } from '../path';
import { Lwm2mError, ResourceRecord, ResourceValue } from '../types';
import {
  accountForDevice, BootstrapConfig, BootstrapConfigError, BootstrapServerAccount, DeviceAccount, handsOutSecrets, matchScore, SECURITY_MODE_CODES, validateConfig,
} from './bootstrap-config';
import { SourceRateLimiter } from './rate-limit';
import { parseQuery } from './registration';

export * from './bootstrap-config';

export interface BootstrapSessionEvent {
  endpoint: string;
  event: 'started' | 'step' | 'finished' | 'failed';
  step?: string;
  code?: string;
  error?: string;
  address?: string;
  port?: number;
}

export class BootstrapSessionError extends Lwm2mError {
  constructor(readonly step: string, readonly code: string | undefined, message: string) {
    super(message);
  }
}

export interface BootstrapServerOptions {
  transport: Pick<CoapTransport, 'request'>;
  registry?: ObjectRegistry;
  sessionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * Told the credentials of each secure server account (PSK, raw public key, X.509) just before
   * they are written to a device, so the server they are for accepts them without their being
   * typed twice (serverCredentialOf says what that server must know).
   */
  onCredentials?: (endpoint: string, account: DeviceAccount) => void;
  /** Sessions running at once; a Bootstrap-Request beyond gets 5.03 and nothing else. Default 100. */
  maxSessions?: number;
  /**
   * Bootstrap-Requests per source (address and port): `burst` at once, then `perSecond`; beyond,
   * 4.29 Too Many Requests and nothing else. Default 5 and 1. Per port, not per address: NB-IoT
   * devices share the few addresses of their operator's NAT.
   */
  requestsPerSource?: { burst: number; perSecond: number };
}

interface Session {
  endpoint: string;
  cancelled: boolean;
}

export class BootstrapServer extends EventEmitter {
  private readonly configs = new Map<string, BootstrapConfig>();
  private readonly sessions = new Map<string, Session>();
  private readonly registry: ObjectRegistry;
  private readonly sessionTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly limiter: SourceRateLimiter;
  private readonly lastRefusal = new Map<string, number>();

  constructor(private readonly options: BootstrapServerOptions) {
    super();
    const rate = options.requestsPerSource ?? { burst: 5, perSecond: 1 };
    this.limiter = new SourceRateLimiter(rate.burst, rate.perSecond);
    this.registry = options.registry ?? ObjectRegistry.withBuiltins();
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? 60000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10000;
  }

  /** Adds or replaces the configuration for `config.endpoint`; throws BootstrapConfigError when invalid. */
  setConfig(config: BootstrapConfig): void {
    const valid = validateConfig(config);
    this.configs.set(valid.endpoint, valid);
  }

  removeConfig(endpoint: string): boolean {
    return this.configs.delete(endpoint);
  }

  listConfigs(): BootstrapConfig[] {
    return [...this.configs.values()];
  }

  configFor(endpoint: string): BootstrapConfig | undefined {
    let best: BootstrapConfig | undefined;
    let bestScore = 0;
    for (const config of this.configs.values()) {
      const score = matchScore(config.endpoint, endpoint);
      if (score > bestScore) {
        best = config;
        bestScore = score;
      }
    }
    return best;
  }

  /** A refused Bootstrap-Request as a session event (at most one a second per kind: a flood must not flood flows). */
  private refused(peer: Peer, code: string, error: string, endpoint = ''): void {
    const now = Date.now();
    if (now - (this.lastRefusal.get(code) ?? 0) < 1000) return;
    this.lastRefusal.set(code, now);
    this.emitEvent({ endpoint, event: 'failed', step: 'request', code, error, address: peer.address, port: peer.port });
  }

  /** Ends every running session (e.g. when the server stops). */
  stop(): void {
    for (const s of this.sessions.values()) s.cancelled = true;
    this.sessions.clear();
  }

  /** The handler for requests whose first Uri-Path segment is `bs`. */
  handle(exchange: Exchange): void {
    const req = exchange.request;
    if (req.method !== 'POST' || req.pathSegments.length !== 1) {
      exchange.respond({ code: '4.05' });
      return;
    }
    // refusals first, each one answer and nothing more: a flood must not make this server send requests
    if (!this.limiter.allow(`${req.peer.address}:${req.peer.port}`)) {
      exchange.respond({ code: '4.29', maxAge: 2 }); // RFC 8516: Too Many Requests, retry after Max-Age
      this.refused(req.peer, '4.29', 'too many Bootstrap-Requests from this source');
      return;
    }
    const query = parseQuery(req.query);
    const endpoint = query.get('ep');
    if (!endpoint) {
      exchange.respond({ code: '4.00', payload: Buffer.from('Bootstrap-Request needs ep=') });
      return;
    }
    if (this.sessions.size >= (this.options.maxSessions ?? 100) && !this.sessions.has(endpoint)) {
      exchange.respond({ code: '5.03', maxAge: 10, payload: Buffer.from('bootstrap server busy') });
      this.refused(req.peer, '5.03', `${this.sessions.size} bootstrap sessions running already`, endpoint);
      return;
    }
    const config = this.configFor(endpoint);
    if (!config) {
      // LwM2M 1.1 Transport §6.3.1: Bootstrap-Request answers 4.00 Bad Request for an unknown endpoint
      // (4.01 is for an unauthorized one)
      exchange.respond({ code: '4.00', payload: Buffer.from(`no bootstrap configuration for ${endpoint}`) });
      this.emitEvent({ endpoint, event: 'failed', step: 'request', code: '4.00', error: 'no bootstrap configuration', address: req.peer.address, port: req.peer.port });
      return;
    }
    if (req.peer.identity === undefined && !config.keysOverNoSec && config.servers.some(handsOutSecrets)) {
      // DESIGN §5b: keys are not sent in the clear unless a configuration says so
      exchange.respond({ code: '4.01', payload: Buffer.from('this configuration hands out keys: bootstrap over DTLS') });
      this.emitEvent({ endpoint, event: 'failed', step: 'request', code: '4.01', error: 'keys are not sent over NoSec (tick "keys over NoSec" to allow it)', address: req.peer.address, port: req.peer.port });
      return;
    }
    const pct = Number(query.get('pct'));
    const preferred = Number.isInteger(pct) ? formatName(pct) : undefined;
    exchange.respond({ code: '2.04' });
    // a new Bootstrap-Request from the same endpoint replaces the session it had
    const previous = this.sessions.get(endpoint);
    if (previous) previous.cancelled = true;
    const session: Session = { endpoint, cancelled: false };
    this.sessions.set(endpoint, session);
    setImmediate(() => this.run(session, config, req.peer, preferred));
  }

  private emitEvent(event: BootstrapSessionEvent): void {
    this.emit('session', event);
  }

  private async run(session: Session, config: BootstrapConfig, peer: Peer, preferred: FormatName | undefined): Promise<void> {
    const { endpoint } = session;
    this.emitEvent({ endpoint, event: 'started', address: peer.address, port: peer.port });
    const deadline = Date.now() + this.sessionTimeoutMs;
    const format: FormatName = preferred === 'tlv' || preferred === 'senml-json' || preferred === 'senml-cbor' || preferred === 'lwm2m-cbor' ? preferred : 'tlv';
    const step = async (label: string, spec: Parameters<BootstrapServerOptions['transport']['request']>[1]): Promise<string> => {
      if (session.cancelled) throw new BootstrapSessionError(label, undefined, 'session replaced or stopped');
      const left = deadline - Date.now();
      if (left <= 0) throw new BootstrapSessionError(label, undefined, `session timed out after ${this.sessionTimeoutMs} ms`);
      let code: string;
      let payload: Buffer;
      try {
        ({ code, payload } = await this.options.transport.request(peer, { ...spec, timeoutMs: Math.min(left, this.requestTimeoutMs) }));
      } catch (err) {
        const why = err instanceof CoapTimeoutError ? 'no answer' : (err as Error).message;
        throw new BootstrapSessionError(label, undefined, `${label}: ${why}`);
      }
      this.emitEvent({ endpoint, event: 'step', step: label, code });
      if (!code.startsWith('2.')) throw new BootstrapSessionError(label, code, `${label}: device answered ${code}`);
      return payload.toString('utf8');
    };
    try {
      // Bootstrap-Discover tells which /0 instance is the client's own bootstrap account. A device
      // that does not do it (LwM2M 1.0, or answers 4.05/4.04/4.00) still gets bootstrapped: without
      // discover data, /0 and /1 are deleted wholesale and written from instance 0, as before
      // Bootstrap-Discover was used.
      let links: Link[] = [];
      try {
        links = parseLinkFormat(await step('discover /', { method: 'GET', path: '/', accept: FORMAT_CODES['link-format'] }));
      } catch (err) {
        const answered = err instanceof BootstrapSessionError && err.code !== undefined;
        if (!answered && !(err instanceof DecodeError)) throw err;
      }
      const usedSecurity = new Set(links.map((l) => /^\/0\/(\d+)$/.exec(l.uri)?.[1]).filter(Boolean).map(Number));
      for (const path of config.deletePaths ?? ['/0', '/1']) {
        await step(`delete ${path}`, { method: 'DELETE', path: formatPath(parsePath(path)) });
      }
      let securityId = 0;
      for (const [i, account] of config.servers.entries()) {
        while (usedSecurity.has(securityId)) securityId++;
        usedSecurity.add(securityId);
        const given = accountForDevice(account, endpoint);
        if (given.securityMode !== 'nosec') this.options.onCredentials?.(endpoint, given);
        await this.write(step, `/0/${securityId}`, securityValues(given), format);
        await this.write(step, `/1/${i}`, serverValues(account), format);
      }
      for (const [path, value] of Object.entries(config.extraWrites ?? {})) {
        await this.write(step, path, value, format);
      }
      await step('finish', { method: 'POST', path: '/bs' });
      this.emitEvent({ endpoint, event: 'finished', address: peer.address, port: peer.port });
    } catch (err) {
      const e = err instanceof BootstrapSessionError ? err : new BootstrapSessionError('session', undefined, (err as Error).message);
      this.emitEvent({ endpoint, event: 'failed', step: e.step, code: e.code, error: e.message, address: peer.address, port: peer.port });
    } finally {
      if (this.sessions.get(endpoint) === session) this.sessions.delete(endpoint);
    }
  }

  private async write(
    step: (label: string, spec: Parameters<BootstrapServerOptions['transport']['request']>[1]) => Promise<string>,
    pathText: string, value: Parameters<typeof treeToRecords>[1], format: FormatName,
  ): Promise<void> {
    const path = parsePath(pathText);
    if (path.instanceId === undefined) throw new BootstrapConfigError(`bootstrap write to ${pathText}: name an instance or resource`);
    const records: ResourceRecord[] = treeToRecords(path, value, this.registry);
    const basePath = format === 'tlv' ? { objectId: path.objectId } : path;
    // TLV: whole instances are written with their instance wrapper
    const payload = encodeRecords(format, records, { basePath: path.resourceId === undefined ? basePath : path, types: this.registry });
    await step(`write ${formatPath(path)}`, { method: 'PUT', path: formatPath(path), contentFormat: FORMAT_CODES[format], payload });
  }
}

/**
 * /0/x as LwM2M Core §E.1 has it: /3 the device's PSK identity, public key or certificate; /4 the
 * server's public key or certificate; /5 the PSK or the device's private key (PKCS#8).
 */
function securityValues(account: DeviceAccount): Record<number, ResourceValue> {
  const bytes = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));
  const mode = account.securityMode;
  const own = mode === 'psk' ? Buffer.from(account.pskIdentity ?? '', 'utf8') : mode === 'rpk' ? bytes(account.publicKey) : bytes(account.certificate);
  return {
    0: account.uri,
    1: false,
    2: SECURITY_MODE_CODES[mode],
    3: own,
    4: bytes(account.serverKey),
    5: mode === 'psk' ? bytes(account.pskKey) : bytes(account.privateKey),
    10: account.shortServerId,
  };
}

function serverValues(account: BootstrapServerAccount): Record<number, ResourceValue> {
  const values: Record<number, ResourceValue> = {
    0: account.shortServerId,
    1: account.lifetime ?? 86400,
    6: account.notificationStoring ?? true,
    7: account.binding ?? 'U',
  };
  if (account.defaultMinPeriod !== undefined) values[2] = account.defaultMinPeriod;
  if (account.defaultMaxPeriod !== undefined) values[3] = account.defaultMaxPeriod;
  return values;
}

export { BootstrapConfigError };
