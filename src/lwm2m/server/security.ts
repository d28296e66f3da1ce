/**
 * Who may speak for which endpoint over DTLS: PSK credentials bound to one endpoint name each
 * (LwM2M Core §7.1: the server checks that the identity a device authenticated with belongs to the
 * endpoint it registers as). A store behind an interface, so a shared one (Redis) can replace the
 * in-memory default. Keys never leave it except to the DTLS handshake.
 */
import { Lwm2mError } from '../types';

export interface PskEntry {
  endpoint: string;
  /** A PSK identity, or a raw public key's identity (`rpk:<sha-256 of its SubjectPublicKeyInfo>`). */
  identity: string;
  /** The pre-shared key; absent for a raw public key (the handshake proves the key itself). */
  key?: Buffer;
  /**
   * Where the credentials count: 'server' (registration and Send), 'bootstrap' (the bootstrap
   * interface), or both when absent. A device may hold one identity for each.
   */
  scope?: 'server' | 'bootstrap';
}

export interface SecurityStore {
  byIdentity(identity: string): PskEntry | undefined;
  /** Every identity bound to the endpoint. */
  byEndpoint(endpoint: string): PskEntry[];
  /** Adds or replaces credentials by identity (an identity belongs to one endpoint only). */
  set(entry: PskEntry): void;
  /** Removes one identity, or every identity of an endpoint. */
  delete(selector: { identity: string } | { endpoint: string }): number;
  /** Endpoints, identities and scopes, never keys. */
  list(): Array<{ endpoint: string; identity: string; scope?: string }>;
}

/** Whether credentials of this scope count for an operation on that interface. */
export function inScope(entry: PskEntry, bootstrap: boolean): boolean {
  return entry.scope === undefined || entry.scope === (bootstrap ? 'bootstrap' : 'server');
}

export class SecurityConfigError extends Lwm2mError {}

const MAX_IDENTITY_BYTES = 128;
const MAX_KEY_BYTES = 64;

/** Checks and normalizes credentials from a flow or a node (key as a Buffer or hex string). */
export function pskEntry(input: { endpoint?: unknown; identity?: unknown; key?: unknown; scope?: unknown }): PskEntry {
  const { endpoint, identity, scope } = input;
  if (typeof endpoint !== 'string' || !endpoint || endpoint.length > 256) throw new SecurityConfigError('PSK credentials need an endpoint name (1–256 characters)');
  if (typeof identity !== 'string' || !identity || Buffer.byteLength(identity) > MAX_IDENTITY_BYTES) {
    throw new SecurityConfigError(`${endpoint}: the PSK identity must be 1–${MAX_IDENTITY_BYTES} bytes of text`);
  }
  if (scope !== undefined && scope !== 'server' && scope !== 'bootstrap' && scope !== '' && scope !== 'both') {
    throw new SecurityConfigError(`${endpoint}: scope must be server, bootstrap or both`);
  }
  let key = input.key;
  if (typeof key === 'string') {
    if (!/^([0-9a-fA-F]{2})+$/.test(key)) throw new SecurityConfigError(`${endpoint}: the PSK key must be hex`);
    key = Buffer.from(key, 'hex');
  }
  const rawPublicKey = identity.startsWith('rpk:');
  if (rawPublicKey && key === undefined) {
    if (!/^rpk:[0-9a-f]{64}$/.test(identity)) throw new SecurityConfigError(`${endpoint}: a raw public key identity is rpk: and 64 hex digits`);
    const entry: PskEntry = { endpoint, identity };
    if (scope === 'server' || scope === 'bootstrap') entry.scope = scope;
    return entry;
  }
  if (!Buffer.isBuffer(key) || key.length === 0 || key.length > MAX_KEY_BYTES) throw new SecurityConfigError(`${endpoint}: the PSK key must be 1–${MAX_KEY_BYTES} bytes`);
  const entry: PskEntry = { endpoint, identity, key: Buffer.from(key) };
  if (scope === 'server' || scope === 'bootstrap') entry.scope = scope;
  return entry;
}

export class MemorySecurityStore implements SecurityStore {
  private readonly byId = new Map<string, PskEntry>();
  private readonly byEp = new Map<string, Set<string>>();

  constructor(private readonly maxEntries = 1_000_000) {}

  byIdentity(identity: string): PskEntry | undefined {
    return this.byId.get(identity);
  }

  byEndpoint(endpoint: string): PskEntry[] {
    return [...(this.byEp.get(endpoint) ?? [])].map((id) => this.byId.get(id)!);
  }

  set(entry: PskEntry): void {
    const holder = this.byId.get(entry.identity);
    if (holder && holder.endpoint !== entry.endpoint) {
      throw new SecurityConfigError(`PSK identity "${entry.identity}" already belongs to endpoint ${holder.endpoint}`);
    }
    if (!holder && this.byId.size >= this.maxEntries) throw new SecurityConfigError(`the security store is full (${this.maxEntries} identities)`);
    this.byId.set(entry.identity, entry);
    let ids = this.byEp.get(entry.endpoint);
    if (!ids) this.byEp.set(entry.endpoint, (ids = new Set()));
    ids.add(entry.identity);
  }

  delete(selector: { identity: string } | { endpoint: string }): number {
    const identities = 'identity' in selector ? [selector.identity] : [...(this.byEp.get(selector.endpoint) ?? [])];
    let removed = 0;
    for (const identity of identities) {
      const entry = this.byId.get(identity);
      if (!entry) continue;
      this.byId.delete(identity);
      const ids = this.byEp.get(entry.endpoint);
      ids?.delete(identity);
      if (ids?.size === 0) this.byEp.delete(entry.endpoint);
      removed++;
    }
    return removed;
  }

  list(): Array<{ endpoint: string; identity: string; scope?: string }> {
    return [...this.byId.values()].map(({ endpoint, identity, scope }) => ({ endpoint, identity, ...(scope ? { scope } : {}) }));
  }
}
