/**
 * The shared store on Redis (ioredis: Lua scripts with EVALSHA, automatic pipelining, pub/sub and
 * reconnection in one well-kept client). Every change of a registration is one Lua script — read,
 * write, index, expiry, event — so it is atomic against every other instance, and an expiry is
 * taken by exactly one of them. Events and forwarded calls travel by pub/sub.
 *
 * Keys, under the prefix (default `lwm2m:`): `reg:<endpoint>` the registration (JSON),
 * `id:<registration id>` its endpoint, `expiry` a sorted set of endpoints by expiry, `obs` a hash of
 * observations by token, `sec` a hash of security entries by identity, `inst:<instance>` an
 * instance's liveness mark; channels `events`, `observations`, `security`, `call:<instance>`,
 * `answer:<instance>`, `notify:<instance>`.
 *
 * One Redis server (or a Sentinel-managed primary): the scripts touch keys they derive, which
 * Redis Cluster does not allow.
 */
import { EventEmitter } from 'events';
import Redis, { RedisOptions } from 'ioredis';
import { Lwm2mError } from '../../types';
import type { Registration } from '../registration';
import type { ObservationRecord } from '../observations';
import type { PskEntry } from '../security';
import type { ForwardedAnswer, ForwardedCall, ForwardedNotification, RegistrationEvent, SharedStore } from './shared-store';
import { fromWire, registrationFromObject, registrationFromWire, registrationToWire, toWire } from './wire';

export class SharedStoreError extends Lwm2mError {}

export interface RedisStoreOptions {
  /** redis://host:port/db (a password in the URL or below). */
  url: string;
  password?: string;
  /** Key and channel prefix, so several fleets can share one Redis. */
  prefix?: string;
  instanceId: string;
  /** An instance counts as down this long after its last mark. */
  livenessMs?: number;
}

const LIVENESS_MS = 10_000;

const REGISTER = `
local P = KEYS[1]
local regKey = P .. 'reg:' .. ARGV[1]
local old = redis.call('GET', regKey)
if old then
  local o = cjson.decode(old)
  redis.call('DEL', P .. 'id:' .. o.id)
end
redis.call('SET', regKey, ARGV[3])
redis.call('SET', P .. 'id:' .. ARGV[2], ARGV[1])
redis.call('ZADD', P .. 'expiry', ARGV[4], ARGV[1])
redis.call('PUBLISH', P .. 'events', '{"type":"register","origin":' .. cjson.encode(ARGV[5]) .. ',"registration":' .. ARGV[3] .. ',"previous":' .. (old or 'null') .. '}')
return old`;

const UPDATE = `
local P = KEYS[1]
local regKey = P .. 'reg:' .. ARGV[1]
local old = redis.call('GET', regKey)
if not old then return 0 end
if cjson.decode(old).id ~= ARGV[2] then return 0 end
redis.call('SET', regKey, ARGV[3])
redis.call('ZADD', P .. 'expiry', ARGV[4], ARGV[1])
redis.call('PUBLISH', P .. 'events', '{"type":"update","origin":' .. cjson.encode(ARGV[5]) .. ',"registration":' .. ARGV[3] .. ',"previous":' .. old .. '}')
return 1`;

// ARGV[3]: 'deregister', or 'expire' with ARGV[5] the time: removed only if due by then
const REMOVE = `
local P = KEYS[1]
local regKey = P .. 'reg:' .. ARGV[1]
local old = redis.call('GET', regKey)
if not old then return 0 end
if cjson.decode(old).id ~= ARGV[2] then return 0 end
if ARGV[3] == 'expire' then
  local due = redis.call('ZSCORE', P .. 'expiry', ARGV[1])
  if due and tonumber(due) > tonumber(ARGV[5]) then return 0 end
end
redis.call('DEL', regKey, P .. 'id:' .. ARGV[2])
redis.call('ZREM', P .. 'expiry', ARGV[1])
redis.call('PUBLISH', P .. 'events', '{"type":"' .. ARGV[3] .. '","origin":' .. cjson.encode(ARGV[4]) .. ',"registration":' .. old .. '}')
return 1`;

type Scripted = Redis & {
  lwm2mRegister(prefix: string, endpoint: string, id: string, json: string, expiresAt: number, origin: string): Promise<string | null>;
  lwm2mUpdate(prefix: string, endpoint: string, id: string, json: string, expiresAt: number, origin: string): Promise<number>;
  lwm2mRemove(prefix: string, endpoint: string, id: string, kind: string, origin: string, now: number): Promise<number>;
};

export class RedisStore extends EventEmitter implements SharedStore {
  readonly instanceId: string;
  readonly prefix: string;
  private readonly commands: Scripted;
  private readonly subscriber: Redis;
  private readonly livenessMs: number;
  /** How this instance's own events begin (after the type): `"origin":"<id>"`. */
  private readonly ownOrigin: string;
  private heartbeat: NodeJS.Timeout | null = null;
  private up = false;
  private readonly alive = new Map<string, { at: number; alive: boolean }>();
  /** Instances that did not answer, by when. */
  private readonly suspects = new Map<string, number>();

  constructor(private readonly options: RedisStoreOptions) {
    super();
    this.instanceId = options.instanceId;
    this.prefix = options.prefix ?? 'lwm2m:';
    this.livenessMs = options.livenessMs ?? LIVENESS_MS;
    this.ownOrigin = `"origin":${JSON.stringify(options.instanceId)},`;
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      password: options.password || undefined,
      enableAutoPipelining: true,
      // a Redis that went away makes requests fail at once with a clear error, not wait in a queue
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(200 * times, 2_000),
    };
    this.commands = new Redis(options.url, redisOptions) as Scripted;
    this.subscriber = new Redis(options.url, { ...redisOptions, enableAutoPipelining: false });
    this.commands.defineCommand('lwm2mRegister', { numberOfKeys: 1, lua: REGISTER });
    this.commands.defineCommand('lwm2mUpdate', { numberOfKeys: 1, lua: UPDATE });
    this.commands.defineCommand('lwm2mRemove', { numberOfKeys: 1, lua: REMOVE });
    for (const client of [this.commands, this.subscriber]) {
      // ioredis reports every failed reconnect: one 'down' for the outage, errors as events
      client.on('error', (err: Error) => this.emit('error', new SharedStoreError(`Redis ${this.where()}: ${err.message}`)));
    }
    this.commands.on('ready', () => {
      if (!this.up) {
        this.up = true;
        this.mark();
        this.emit('up');
      }
    });
    this.commands.on('close', () => {
      if (this.up) {
        this.up = false;
        this.emit('down');
      }
    });
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.received(channel.toString(), message.toString()));
  }

  /** The Redis address without a password, for messages. */
  private where(): string {
    return this.options.url.replace(/\/\/[^@/]*@/, '//');
  }

  get available(): boolean {
    return this.up;
  }

  async connect(): Promise<void> {
    try {
      await Promise.all([this.commands.connect(), this.subscriber.connect()]);
      const p = this.prefix;
      await this.subscriber.subscribe(`${p}events`, `${p}security`, `${p}observations`, `${p}call:${this.instanceId}`, `${p}answer:${this.instanceId}`, `${p}notify:${this.instanceId}`);
    } catch (err) {
      this.commands.disconnect();
      this.subscriber.disconnect();
      throw new SharedStoreError(`cannot reach Redis at ${this.where()}: ${(err as Error).message}`);
    }
    this.up = true;
    await this.mark();
    this.heartbeat = setInterval(() => void this.mark(), Math.max(1000, Math.floor(this.livenessMs / 3)));
    this.heartbeat.unref();
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.up) await this.commands.del(`${this.prefix}inst:${this.instanceId}`).catch(() => {});
    this.up = false;
    this.commands.disconnect();
    this.subscriber.disconnect();
  }

  private async mark(): Promise<void> {
    await this.commands.set(`${this.prefix}inst:${this.instanceId}`, String(Date.now()), 'PX', this.livenessMs).catch(() => {});
  }

  /** A command's failure as a clear error (Redis away, a script refused). */
  private async run<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (err) {
      throw new SharedStoreError(`${what}: Redis ${this.where()} ${this.up ? 'failed' : 'is unavailable'} (${(err as Error).message})`);
    }
  }

  async registrations(): Promise<Registration[]> {
    return this.run('loading the registrations', async () => {
      const endpoints = await this.commands.zrange(`${this.prefix}expiry`, 0, -1);
      const out: Registration[] = [];
      for (let i = 0; i < endpoints.length; i += 1000) {
        const values = await this.commands.mget(endpoints.slice(i, i + 1000).map((e) => `${this.prefix}reg:${e}`));
        for (const v of values) {
          const r = registrationFromWire(v);
          if (r) out.push(r);
        }
      }
      return out;
    });
  }

  async register(registration: Registration): Promise<Registration | undefined> {
    const old = await this.run(`registering ${registration.endpoint}`, () => this.commands.lwm2mRegister(
      this.prefix, registration.endpoint, registration.id, registrationToWire(registration), registration.expiresAt.getTime(), this.instanceId));
    return registrationFromWire(old);
  }

  async update(registration: Registration): Promise<boolean> {
    const done = await this.run(`updating ${registration.endpoint}`, () => this.commands.lwm2mUpdate(
      this.prefix, registration.endpoint, registration.id, registrationToWire(registration), registration.expiresAt.getTime(), this.instanceId));
    return done === 1;
  }

  async deregister(registration: Registration): Promise<boolean> {
    const done = await this.run(`de-registering ${registration.endpoint}`, () => this.commands.lwm2mRemove(
      this.prefix, registration.endpoint, registration.id, 'deregister', this.instanceId, 0));
    return done === 1;
  }

  async expire(registration: Registration, now: number): Promise<boolean> {
    const done = await this.run(`expiring ${registration.endpoint}`, () => this.commands.lwm2mRemove(
      this.prefix, registration.endpoint, registration.id, 'expire', this.instanceId, now));
    return done === 1;
  }

  /** Every entry of a shared hash (`obs`, `sec`). */
  private async hashValues<T>(what: string, hash: string): Promise<T[]> {
    const all = await this.run(`loading the ${what}`, () => this.commands.hvals(`${this.prefix}${hash}`));
    return all.map((v) => fromWire<T>(v));
  }

  /**
   * Sets (or, with `value` null, deletes) a field of a shared hash and tells every instance on
   * `channel`, in one transaction.
   */
  private async changeShared(what: string, hash: string, channel: string, field: string, value: unknown, event: Record<string, unknown>): Promise<void> {
    await this.run(what, () => {
      const multi = this.commands.multi();
      if (value === null) multi.hdel(`${this.prefix}${hash}`, field);
      else multi.hset(`${this.prefix}${hash}`, field, toWire(value));
      return multi.publish(`${this.prefix}${channel}`, toWire({ ...event, origin: this.instanceId })).exec();
    });
  }

  observations(): Promise<ObservationRecord[]> {
    return this.hashValues('observations', 'obs');
  }

  putObservation(record: ObservationRecord): Promise<void> {
    return this.changeShared(`storing an observation of ${record.endpoint}`, 'obs', 'observations', record.observationId, record, { type: 'put', record });
  }

  removeObservation(observationId: string): Promise<void> {
    return this.changeShared('removing an observation', 'obs', 'observations', observationId, null, { type: 'remove', observationId });
  }

  onObservationEvent(listener: (event: { type: 'put' | 'remove'; origin: string; record?: ObservationRecord; observationId?: string }) => void): void {
    this.on('observationEvent', listener);
  }

  securityEntries(): Promise<PskEntry[]> {
    return this.hashValues('security entries', 'sec');
  }

  putSecurity(entry: PskEntry): Promise<void> {
    return this.changeShared(`storing the credentials of ${entry.endpoint}`, 'sec', 'security', entry.identity, entry, { type: 'put', entry });
  }

  removeSecurity(identity: string): Promise<void> {
    return this.changeShared('removing credentials', 'sec', 'security', identity, null, { type: 'remove', identity });
  }

  /** An instance that did not answer a forwarded call counts as down until it renews its mark. */
  suspect(instanceId: string): void {
    if (this.suspects.size > 1000) this.suspects.clear();
    this.suspects.set(instanceId, Date.now());
    this.alive.delete(instanceId);
  }

  async isAlive(instanceId: string): Promise<boolean> {
    if (instanceId === this.instanceId) return true;
    // asked before each forwarded request: a second of caching spares Redis a round trip each
    const cached = this.alive.get(instanceId);
    if (cached && Date.now() - cached.at < 1000) return cached.alive;
    const mark = await this.run('checking an instance', () => this.commands.get(`${this.prefix}inst:${instanceId}`));
    const suspectedAt = this.suspects.get(instanceId);
    const alive = mark !== null && (suspectedAt === undefined || Number(mark) > suspectedAt);
    if (alive) this.suspects.delete(instanceId);
    if (this.alive.size > 1000) this.alive.clear();
    this.alive.set(instanceId, { at: Date.now(), alive });
    return alive;
  }

  /**
   * A registration event. This instance's own come back too: told apart by the head of the
   * message, before parsing (a storm is thousands a second, each instance hears all of them).
   */
  private receivedEvent(message: string): void {
    if (message.lastIndexOf(this.ownOrigin, 48) !== -1) return;
    let data: { type?: unknown; origin?: unknown; registration?: unknown; previous?: unknown };
    try {
      data = JSON.parse(message) as typeof data;
    } catch {
      return;
    }
    const registration = registrationFromObject(data?.registration);
    if (!registration || typeof data.origin !== 'string' || !['register', 'update', 'deregister', 'expire'].includes(data.type as string)) return;
    this.emit('registrationEvent', { type: data.type, origin: data.origin, registration, previous: registrationFromObject(data.previous) } as RegistrationEvent);
  }

  onRegistrationEvent(listener: (event: RegistrationEvent) => void): void {
    this.on('registrationEvent', listener);
  }

  onSecurityEvent(listener: (event: { type: 'put' | 'remove'; origin: string; entry?: PskEntry; identity?: string }) => void): void {
    this.on('securityEvent', listener);
  }

  onCall(listener: (call: ForwardedCall) => void): void {
    this.on('call', listener);
  }

  onAnswer(listener: (answer: ForwardedAnswer) => void): void {
    this.on('answer', listener);
  }

  onNotification(listener: (notification: ForwardedNotification) => void): void {
    this.on('notification', listener);
  }

  call(instanceId: string, call: ForwardedCall): void {
    this.publish(`call:${instanceId}`, call);
  }

  answer(to: string, answer: ForwardedAnswer): void {
    this.publish(`answer:${to}`, answer);
  }

  notify(to: string, notification: ForwardedNotification): void {
    this.publish(`notify:${to}`, notification);
  }

  private publish(channel: string, message: unknown): void {
    this.commands.publish(`${this.prefix}${channel}`, toWire(message)).catch((err: Error) => {
      this.emit('error', new SharedStoreError(`Redis ${this.where()}: publishing on ${channel}: ${err.message}`));
    });
  }

  /** A pub/sub message: whatever another instance (or a stranger on this Redis) sent, never thrown. */
  private received(channel: string, message: string): void {
    try {
      this.dispatch(channel.slice(this.prefix.length), message);
    } catch (err) {
      this.emit('error', new SharedStoreError(`a message on ${channel} was refused: ${(err as Error).message}`));
    }
  }

  private dispatch(name: string, message: string): void {
    if (name === 'events') {
      this.receivedEvent(message);
      return;
    }
    let data: Record<string, unknown>;
    try {
      data = fromWire<Record<string, unknown>>(message);
    } catch {
      return;
    }
    if (!data || typeof data !== 'object') return;
    if (name === 'security') this.emit('securityEvent', data);
    else if (name === 'observations') this.emit('observationEvent', data);
    else if (name.startsWith('call:')) this.emit('call', data);
    else if (name.startsWith('answer:')) this.emit('answer', data);
    else if (name.startsWith('notify:')) this.emit('notification', data);
  }

}
