/**
 * The requests a server sends to its registered devices (LwM2M Core §6.3 device management and
 * §6.4 information reporting): Read, Discover, Write, Write-Attributes, Execute, Create, Delete,
 * Observe and their composite forms, each from the socket — and in a fleet, the instance — the
 * device talks to. The server (index.ts) holds the registrations, sockets and observations these
 * work on.
 */
import { EventEmitter } from 'events';
import {
  CoapRequestSpec, CoapResponse, CoapTimeoutError, CoapTransport, Observation, Peer,
} from '../coap/transport';
import {
  encodePathList, encodeRecords, FORMAT_CODES, FormatName, Link, NEW_INSTANCE_FORMATS,
  parseLinkFormat, recordsToComposite, recordsToTree, treeToRecords, DecodeError,
} from '../content';
import type { ObjectRegistry } from '../model';
import { formatPath, parsePath, pathDepth } from '../path';
import { Lwm2mError, ResourceRecord, ValueTree } from '../types';
import type { ClusterLink } from './cluster/cluster-link';
import { DeviceNotFoundError, DeviceTimeoutError, RequestFailedError, RequestLimitError, ServerStoppedError } from './errors';
import { attributeQuery, compositeFormat, decodeAnswer, negotiateFormat, WriteAttributes } from './formats';
import type { ObservationInfo, ObservationService } from './observations';
import type { QueueMode } from './queue-mode';
import type { Registration } from './registration';
import type { RequestOptions, ResolvedServerOptions } from './options';
import type { RegistrationStore } from './store';

export abstract class DeviceManagement extends EventEmitter {
  abstract readonly registry: ObjectRegistry;
  abstract readonly transport: CoapTransport;
  abstract readonly secureTransport: CoapTransport | null;
  abstract readonly cluster: ClusterLink | null;
  abstract get running(): boolean;
  protected abstract readonly store: RegistrationStore;
  protected abstract readonly options: ResolvedServerOptions;
  protected abstract readonly queue: QueueMode;
  protected abstract readonly observations: ObservationService;
  private pendingRequests = 0;
  private lastLimitWarning = 0;

  protected peerOf(registration: Registration): Peer {
    return { address: registration.address, port: registration.port, identity: registration.identity };
  }
  protected transportFor(peer: Peer): CoapTransport {
    if (peer.identity === undefined) return this.transport;
    if (!this.secureTransport) throw new Lwm2mError('this server has no DTLS socket');
    return this.secureTransport;
  }
  /**
   * In a fleet: a request for a device whose datagrams reach another instance, sent through that
   * instance (null: send it from here).
   */
  protected forwarded(endpoint: string, method: string, args: unknown[], o: RequestOptions): Promise<unknown> | null {
    if (!this.cluster || o.viaCluster) return null;
    const registration = this.store.byEndpointName(endpoint);
    const owner = registration && this.cluster.ownerOf(registration);
    return owner ? this.cluster.forward(owner, endpoint, method, args) : null;
  }

  protected registration(endpoint: string): Registration {
    if (!this.running) throw new ServerStoppedError('LwM2M server is not running');
    const registration = this.store.byEndpointName(endpoint);
    if (!registration) throw new DeviceNotFoundError(endpoint);
    return registration;
  }

  protected uriPath(registration: Registration, path: string): string {
    const root = registration.rootPath === '/' ? '' : registration.rootPath.replace(/\/$/, '');
    return `${root}${path === '/' ? '' : path}` || '/';
  }

  /** Sends one request to a device (when it is awake) and maps the outcome to typed errors. */
  protected send<T>(registration: Registration, label: string | undefined, timeoutMs: number, send: (t: CoapTransport, peer: Peer) => Promise<T>): Promise<T> {
    const timedOut = (err: unknown): never => {
      if (err instanceof CoapTimeoutError) throw new DeviceTimeoutError(registration.endpoint, label, err.message);
      throw err;
    };
    if (this.pendingRequests >= this.options.maxPendingRequests) {
      const err = new RequestLimitError(`${this.pendingRequests} requests to devices are pending: ${registration.endpoint} ${label ?? ''} is not sent`);
      this.warnSometimes(err);
      return Promise.reject(err);
    }
    this.pendingRequests++;
    return this.queue.whenAwake(registration, label, timeoutMs, () => {
      const peer = this.peerOf(registration);
      return send(this.transportFor(peer), peer).catch(timedOut);
    }).finally(() => {
      this.pendingRequests--;
    });
  }

  /** A warning for a refusal that may come by the thousand: at most one a second. */
  protected warnSometimes(err: Error): void {
    const now = Date.now();
    if (now - this.lastLimitWarning < 1000) return;
    this.lastLimitWarning = now;
    this.emit('warning', err);
  }

  protected deviceRequest(endpoint: string, path: string | undefined, spec: CoapRequestSpec, o: RequestOptions = {}): Promise<CoapResponse> {
    const registration = this.registration(endpoint);
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    return this.send(registration, path, timeoutMs, (t, peer) => t.request(peer, {
      ...spec, path: this.uriPath(registration, spec.path), timeoutMs,
    })).then((response) => {
      this.expectSuccess(response, endpoint, path);
      return response;
    });
  }

  protected expectSuccess(response: CoapResponse, endpoint: string, path: string | undefined): void {
    if (!response.code.startsWith('2.')) {
      const detail = response.payload.length && response.payload.length < 256 ? response.payload.toString('utf8') : undefined;
      throw new RequestFailedError(response.code, endpoint, path, detail);
    }
  }

  /** The format for values to and from this device (LwM2M 1.1 Core §7.2 negotiation). */
  negotiateFormat(registration: Registration, requested?: FormatName | number | string): FormatName {
    return negotiateFormat(registration, requested, this.options.defaultFormat);
  }

  async read(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; records: ResourceRecord[]; format?: FormatName }> {
    const forwarded = this.forwarded(endpoint, 'read', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const format = this.negotiateFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES[format] }, o);
    const { records, format: got } = decodeAnswer(response, parsed, this.registry, endpoint, canonical);
    return { code: response.code, value: recordsToTree(parsed, records), records, format: got };
  }

  async readComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; records: ResourceRecord[]; format?: FormatName }> {
    const forwarded = this.forwarded(endpoint, 'readComposite', [endpoint, paths, o], o);
    if (forwarded) return forwarded as never;
    const parsed = paths.map(parsePath);
    const format = compositeFormat(this.registration(endpoint), o.format);
    const response = await this.deviceRequest(endpoint, paths.join(','), {
      method: 'FETCH', path: '/', accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format], payload: encodePathList(format, parsed),
    }, o);
    const { records, format: got } = decodeAnswer(response, { objectId: 0 }, this.registry, endpoint, 'composite');
    return { code: response.code, value: recordsToComposite(records), records, format: got };
  }

  async discover(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; links: Link[] }> {
    const forwarded = this.forwarded(endpoint, 'discover', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'GET', path: canonical, accept: FORMAT_CODES['link-format'] }, o);
    try {
      return { code: response.code, links: parseLinkFormat(response.payload.toString('utf8')) };
    } catch (err) {
      throw new DecodeError(`${endpoint} ${canonical}: ${(err as Error).message}`);
    }
  }

  async write(endpoint: string, path: string, value: ValueTree, o: RequestOptions & { mode?: 'replace' | 'update' } = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'write', [endpoint, path, value, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    if (pathDepth(parsed) < 2) throw new Lwm2mError(`write needs an instance or resource path, not ${canonical}`);
    const records = treeToRecords(parsed, value, this.registry);
    let format = this.negotiateFormat(this.registration(endpoint), o.format);
    if ((format === 'text' || format === 'opaque') && records.length !== 1) format = 'tlv';
    const payload = encodeRecords(format, records, { basePath: parsed, types: this.registry });
    const method = (o.mode ?? (pathDepth(parsed) === 2 ? 'update' : 'replace')) === 'replace' ? 'PUT' : 'POST';
    const response = await this.deviceRequest(endpoint, canonical, { method, path: canonical, contentFormat: FORMAT_CODES[format], payload }, o);
    return { code: response.code };
  }

  async writeComposite(endpoint: string, values: Record<string, ValueTree>, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'writeComposite', [endpoint, values, o], o);
    if (forwarded) return forwarded as never;
    const records = Object.entries(values).flatMap(([p, v]) => treeToRecords(parsePath(p), v, this.registry));
    const format = compositeFormat(this.registration(endpoint), o.format);
    const payload = encodeRecords(format, records, { basePath: { objectId: 0 }, types: this.registry });
    const response = await this.deviceRequest(endpoint, Object.keys(values).join(','), {
      method: 'iPATCH', path: '/', contentFormat: FORMAT_CODES[format], payload,
    }, o);
    return { code: response.code };
  }

  async writeAttributes(endpoint: string, path: string, attrs: WriteAttributes, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'writeAttributes', [endpoint, path, attrs, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const query = attributeQuery(parsed, attrs, this.registry);
    const response = await this.deviceRequest(endpoint, canonical, { method: 'PUT', path: canonical, query }, o);
    return { code: response.code };
  }

  async execute(endpoint: string, path: string, args?: string, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'execute', [endpoint, path, args, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    if (pathDepth(parsed) !== 3) throw new Lwm2mError(`execute needs a resource path /o/i/r, not ${path}`);
    const canonical = formatPath(parsed);
    const payload = args ? Buffer.from(args, 'utf8') : undefined;
    const response = await this.deviceRequest(endpoint, canonical, {
      method: 'POST', path: canonical, payload, contentFormat: payload ? FORMAT_CODES.text : undefined,
    }, o);
    return { code: response.code };
  }

  async create(endpoint: string, objectPath: string, value: ValueTree, o: RequestOptions & { instanceId?: number } = {}): Promise<{ code: string; location?: string }> {
    const forwarded = this.forwarded(endpoint, 'create', [endpoint, objectPath, value, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(objectPath);
    if (pathDepth(parsed) !== 1) throw new Lwm2mError(`create needs an object path /o, not ${objectPath}`);
    const canonical = formatPath(parsed);
    let format = this.negotiateFormat(this.registration(endpoint), o.format);
    let payload: Buffer;
    if (o.instanceId !== undefined) {
      const base = { objectId: parsed.objectId, instanceId: o.instanceId };
      payload = encodeRecords(format, treeToRecords(base, value, this.registry), { basePath: format === 'tlv' ? parsed : base, types: this.registry });
    } else {
      // Without an instance id the client picks one. TLV says it plainly (resource TLVs without an
      // instance wrapper, OMA-TS Core §6.3.6 / OMA_LwM2M_for_Developers#422), and Leshan sends only
      // TLV here: its CreateRequest refuses other formats when the instance id is unknown, SenML
      // waiting for OMA (leshan#917, wakaama#434). So: LwM2M 1.0 devices, and devices that
      // advertised TLV or no formats at all, get TLV; a device that advertised other formats only
      // gets its negotiated format — SenML names the records relative to the object, with no base
      // name ("5700", "5700/0"), so that no bn + n reads as an /object/instance path; LwM2M CBOR
      // puts the resource ids at the top level. OMA JSON, text and opaque cannot say it: TLV.
      const registration = this.registration(endpoint);
      const requested = o.format !== undefined && o.format !== '' && o.format !== 'auto';
      const advertised = registration.supportedFormats;
      const tlvOk = registration.lwm2mVersion === '1.0' || advertised.length === 0
        || advertised.includes(FORMAT_CODES.tlv) || advertised.includes(1542);
      if (requested && !NEW_INSTANCE_FORMATS.includes(format)) {
        throw new Lwm2mError(`create without an instance id cannot use ${format}: use tlv, senml-json, senml-cbor or lwm2m-cbor, or give an instance id`);
      }
      if (!requested && (tlvOk || !NEW_INSTANCE_FORMATS.includes(format))) format = 'tlv';
      const base = { objectId: parsed.objectId, instanceId: 0 };
      payload = encodeRecords(format, treeToRecords(base, value, this.registry), { basePath: base, types: this.registry, newInstance: true });
    }
    const response = await this.deviceRequest(endpoint, canonical, { method: 'POST', path: canonical, contentFormat: FORMAT_CODES[format], payload }, o);
    return { code: response.code, location: response.locationPath.length ? `/${response.locationPath.join('/')}` : undefined };
  }

  async delete(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string }> {
    const forwarded = this.forwarded(endpoint, 'delete', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = formatPath(parsePath(path));
    const response = await this.deviceRequest(endpoint, canonical, { method: 'DELETE', path: canonical }, o);
    return { code: response.code };
  }

  // ---- observe ----

  async observe(endpoint: string, path: string, o: RequestOptions = {}): Promise<{ code: string; value: ValueTree; observationId: string }> {
    const forwarded = this.forwarded(endpoint, 'observe', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const parsed = parsePath(path);
    const canonical = formatPath(parsed);
    const registration = this.registration(endpoint);
    const format = this.negotiateFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = { method: 'GET', path: this.uriPath(registration, canonical), accept: FORMAT_CODES[format] };
    const handle = await this.startObservation(registration, canonical, request, o);
    const { records } = decodeAnswer(handle.first, parsed, this.registry, endpoint, canonical);
    const observationId = this.observations.track(endpoint, canonical, handle, parsed, request, o.tag);
    return { code: handle.first.code, value: recordsToTree(parsed, records), observationId };
  }

  async observeComposite(endpoint: string, paths: string[], o: RequestOptions = {}): Promise<{ code: string; value: Record<string, ValueTree>; observationId: string }> {
    const forwarded = this.forwarded(endpoint, 'observeComposite', [endpoint, paths, o], o);
    if (forwarded) return forwarded as never;
    const parsed = paths.map(parsePath);
    const canonical = parsed.map(formatPath);
    const registration = this.registration(endpoint);
    const format = compositeFormat(registration, o.format);
    const request: Omit<CoapRequestSpec, 'observe'> = {
      method: 'FETCH', path: this.uriPath(registration, '/'), accept: FORMAT_CODES[format], contentFormat: FORMAT_CODES[format],
      payload: encodePathList(format, parsed),
    };
    const handle = await this.startObservation(registration, canonical.join(','), request, o);
    const { records } = decodeAnswer(handle.first, { objectId: 0 }, this.registry, endpoint, 'composite');
    const observationId = this.observations.track(endpoint, canonical, handle, undefined, request, o.tag);
    return { code: handle.first.code, value: recordsToComposite(records), observationId };
  }

  protected async startObservation(registration: Registration, label: string, spec: Omit<CoapRequestSpec, 'observe'>, o: RequestOptions): Promise<Observation> {
    try {
      this.observations.checkRoom(registration.endpoint, label.includes(',') ? label.split(',') : label);
    } catch (err) {
      this.warnSometimes(err as Error);
      throw err;
    }
    const timeoutMs = o.timeoutMs ?? this.options.requestTimeoutMs;
    const handle = await this.send(registration, label, timeoutMs, (t, peer) => t.observe(peer, { ...spec, timeoutMs }));
    this.observations.accepted(handle, registration.endpoint, label);
    return handle;
  }

  async cancelObservation(endpoint: string, path: string | string[], o: RequestOptions & { active?: boolean } = {}): Promise<void> {
    const forwarded = this.forwarded(endpoint, 'cancelObservation', [endpoint, path, o], o);
    if (forwarded) return forwarded as never;
    const canonical = Array.isArray(path) ? path.map((p) => formatPath(parsePath(p))) : formatPath(parsePath(path));
    const { request, token } = this.observations.cancel(endpoint, canonical);
    if (o.active) {
      // active cancel (RFC 7641 §3.6): the request that started it — GET, or for a composite
      // observation FETCH with the same path list and content format — with Observe 1, same token
      const registration = this.registration(endpoint);
      const peer = this.peerOf(registration);
      await this.transportFor(peer).request(peer, {
        ...request, path: this.uriPath(registration, Array.isArray(canonical) ? '/' : canonical),
        observe: 1, token, timeoutMs: o.timeoutMs,
      }).catch((err: Error) => this.emit('warning', err));
    }
  }

  /** Whether `path` (or a composite path list) of the device is observed now. */
  isObserving(endpoint: string, path: string | string[]): boolean {
    return this.observations.has(endpoint, Array.isArray(path) ? path.map((p) => formatPath(parsePath(p))) : formatPath(parsePath(path)));
  }

  listObservations(endpoint?: string): ObservationInfo[] {
    return this.observations.list(endpoint);
  }
}
