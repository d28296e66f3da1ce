/**
 * The registration interface's request parsing (LwM2M 1.1 Transport §6.4 / Core §6.2):
 * Register `POST /rd?ep=&lt=&lwm2m=&b=&sms=&Q` and Update `POST /rd/{id}?lt=&b=&sms=&Q`, with a
 * link-format payload of the object instances.
 */
import { random } from '../../dtls/crypto';
import { parseLinkFormat } from '../content';
import { Lwm2mError } from '../types';

/**
 * A registration id no one can guess (72 bits from a CSPRNG, 12 URI-safe characters, like
 * Leshan's random ids): over NoSec the id is what Update and Deregister are checked against.
 */
export function newRegistrationId(taken: (id: string) => boolean): string {
  for (;;) {
    const id = random(9).toString('base64url');
    if (!taken(id)) return id;
  }
}

export interface RegisteredObject {
  objectId: number;
  instanceId?: number;
  version?: string;
}

/** What the Register request's query says. */
export interface RegisterParams {
  endpoint: string;
  lifetime: number;
  lwm2mVersion: string;
  binding: string;
  queueMode: boolean;
  smsNumber?: string;
}

export interface Registration extends RegisterParams {
  id: string;
  rootPath: string;
  objectLinks: string;
  objects: RegisteredObject[];
  supportedFormats: number[];
  address: string;
  port: number;
  registeredAt: Date;
  updatedAt: Date;
  expiresAt: Date;
  /** The DTLS identity the device registered with; absent for NoSec. Requests to it go over DTLS. */
  identity?: string;
  /** In a fleet of instances: the one the device's datagrams reach (its requests leave from there). */
  owner?: string;
}

export class BadRegistrationError extends Lwm2mError {
  /** The CoAP code the registration interface answers with (4.00 unless said otherwise). */
  constructor(message: string, readonly code: string = '4.00') {
    super(message);
  }
}

export const DEFAULT_LIFETIME = 86400;
const SUPPORTED_VERSIONS = new Set(['1.0', '1.1', '1.2']);

export function parseQuery(query: string[]): Map<string, string> {
  const params = new Map<string, string>();
  for (const entry of query) {
    const eq = entry.indexOf('=');
    if (eq < 0) params.set(entry, '');
    else params.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return params;
}

export function parseLifetime(raw: string | undefined, minLifetime: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < minLifetime || Number(raw) > 0xffffffff) {
    throw new BadRegistrationError(`lifetime "lt=${raw}" must be an integer of at least ${minLifetime} seconds`);
  }
  return Number(raw);
}

export function parseBinding(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!/^[UTSNQ]{1,5}$/.test(raw)) throw new BadRegistrationError(`binding "b=${raw}" is not a valid LwM2M binding`);
  return raw;
}

export interface ParsedObjects {
  rootPath: string;
  objects: RegisteredObject[];
  supportedFormats: number[];
}

/** Parses `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303>;ver=1.1` (an alternate root path is allowed). */
export function parseObjectLinks(text: string): ParsedObjects {
  let links;
  try {
    links = parseLinkFormat(text);
  } catch (err) {
    throw new BadRegistrationError(`object links: ${(err as Error).message}`);
  }
  let rootPath = '/';
  let supportedFormats: number[] = [];
  const objects: RegisteredObject[] = [];
  const root = links.find((l) => l.params.rt === 'oma.lwm2m');
  if (root) rootPath = root.uri.endsWith('/') ? root.uri : `${root.uri}/`;
  // the formats may come on the root link without rt="oma.lwm2m" (`</>;ct=110`): rt only matters
  // for an alternate root path
  const formatLink = root ?? links.find((l) => l.uri === '/' && l.params.ct !== undefined);
  if (formatLink) supportedFormats = parseContentFormats(formatLink.params.ct);
  for (const link of links) {
    if (link === root || link === formatLink) continue;
    if (!link.uri.startsWith(rootPath)) continue; // links outside the LwM2M root are not objects
    const rest = link.uri.slice(rootPath.length);
    const m = /^(\d{1,5})(?:\/(\d{1,5}))?$/.exec(rest);
    if (!m) {
      if (rest === '') continue;
      throw new BadRegistrationError(`object link <${link.uri}> is not </object> or </object/instance>`);
    }
    const obj: RegisteredObject = { objectId: Number(m[1]) };
    if (m[2] !== undefined) obj.instanceId = Number(m[2]);
    if (typeof link.params.ver === 'string') obj.version = link.params.ver;
    objects.push(obj);
  }
  return { rootPath, objects, supportedFormats };
}

/** `ct=110`, `ct="60 110 112"` (a quoted space-separated list), or nothing. */
export function parseContentFormats(ct: string | true | undefined): number[] {
  if (typeof ct !== 'string') return [];
  const out: number[] = [];
  for (const part of ct.split(/[\s,]+/)) {
    if (!/^\d{1,5}$/.test(part)) continue;
    const code = Number(part);
    if (code <= 65535 && !out.includes(code)) out.push(code);
  }
  return out;
}

export function parseRegisterQuery(query: string[], minLifetime: number): RegisterParams {
  const q = parseQuery(query);
  const endpoint = q.get('ep');
  if (!endpoint) throw new BadRegistrationError('missing endpoint name (ep=)');
  if (endpoint.length > 256) throw new BadRegistrationError('endpoint name longer than 256 characters');
  const lwm2mVersion = q.get('lwm2m') ?? '1.0';
  // LwM2M 1.1 Transport §6.4.1: a version the server does not support is 4.12 Precondition Failed
  if (!SUPPORTED_VERSIONS.has(lwm2mVersion)) throw new BadRegistrationError(`unsupported LwM2M version "${lwm2mVersion}"`, '4.12');
  const binding = parseBinding(q.get('b')) ?? 'U';
  return {
    endpoint,
    lifetime: parseLifetime(q.get('lt'), minLifetime) ?? DEFAULT_LIFETIME,
    lwm2mVersion,
    binding,
    // LwM2M 1.0 signals queue mode in the binding (UQ), 1.1 with a separate Q parameter
    queueMode: binding.includes('Q') || q.has('Q'),
    smsNumber: q.get('sms') || undefined,
  };
}
