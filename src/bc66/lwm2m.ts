/**
 * LwM2M on a BC66 through its AT+QLW… commands: start-up, configuration, objects, registration,
 * answering the server's read/write/execute/observe URCs, notifications with ack tracking, and
 * recovery after a modem reboot or a lost port (re-configure and re-register). Start-up asks the
 * modem its state first and adopts a registration made with the same configuration (after a
 * deploy or a restart of the host) instead of configuring and registering again.
 */
import { EventEmitter } from 'events';
import { ObjectRegistry } from '../lwm2m/model';
import { formatPath, parsePath } from '../lwm2m/path';
import { Lwm2mError, Lwm2mPath, ResourceValue } from '../lwm2m/types';
import { atArg, COAP_TO_RESULT, splitResult } from './at-line';
import { Bc66CommandError, Bc66Driver, Urc } from './driver';
import { fromAtValue, toAtValue } from './values';

export interface Bc66ObjectInstance {
  objectId: number;
  instanceId: number;
  resources: number[];
}

export interface Bc66Lwm2mConfig {
  /** Blank: urn:imei:<IMEI>. */
  endpoint?: string;
  serverHost: string;
  serverPort: number;
  mode: 'direct' | 'bootstrap';
  lifetime: number;
  security: 'nosec' | 'psk';
  pskIdentity?: string;
  /** Hex. */
  pskKey?: string;
  objects: Bc66ObjectInstance[];
  autoRegister: boolean;
  /** Answer server reads from the values flows set (default), or emit them and let the flow answer. */
  answerReads?: 'values' | 'flow';
  /** How long a flow has to answer a read. */
  flowAnswerTimeoutMs?: number;
  registerTimeoutMs?: number;
  /** How often to poll AT+CEREG? while waiting for the network, and how many times. */
  networkPollMs?: number;
  networkPolls?: number;
  /** How long to wait for `+QLWDEREG` after AT+QLWDEREG (default 10 s). */
  deregisterTimeoutMs?: number;
  /** How often to ask AT+QLWSTATUS? while the modem is registering or recovering at start-up. */
  statusPollMs?: number;
}

/** What a node hands to the one that replaces it (a deploy): values flows set, paths observed. */
export interface Bc66Snapshot {
  values: Array<[string, ResourceValue]>;
  observed: string[];
}

export type Bc66State = 'closed' | 'starting' | 'idle' | 'registering' | 'registered' | 'error';

export interface Bc66Request {
  mid: number;
  path: string;
  value?: ResourceValue;
  args?: string;
  start?: boolean;
}

export class Bc66Error extends Lwm2mError {}

/** "3303/0: 5700, 5701" one instance per line → declared object instances. */
export function parseObjectList(text: string): Bc66ObjectInstance[] {
  return text.split(/\n|;/).map((l) => l.trim()).filter(Boolean).map((line) => {
    const m = /^\/?(\d{1,5})\/(\d{1,5})\s*:\s*([\d,\s]+)$/.exec(line);
    if (!m) throw new Bc66Error(`object list: "${line}" is not like "3303/0: 5700, 5701"`);
    return { objectId: Number(m[1]), instanceId: Number(m[2]), resources: m[3].split(/[\s,]+/).filter(Boolean).map(Number) };
  });
}

const MAX_RESOURCES_PER_ADDOBJ = 14;

/** `+QLWCONFIG: <bs>,<server>,<port>,"<ep>",<lifetime>,<sec>[,<psk_id>,<psk>]` → its fields. */
export function parseConfigLine(line: string): string[] | undefined {
  const parsed = splitResult(line);
  if (!parsed || parsed.name !== '+QLWCONFIG' || parsed.fields.length < 6) return undefined;
  return parsed.fields;
}

/**
 * `+QLWADDOBJ: <obj>,<inst>,<n>,<res1>...` lines → object instances; undefined when a line is not
 * understood (the listing's form beyond the first field is uncertain: the reference's [U]).
 */
export function parseDeclaredObjects(lines: string[]): Bc66ObjectInstance[] | undefined {
  const byKey = new Map<string, Bc66ObjectInstance>();
  for (const line of lines) {
    const parsed = splitResult(line);
    if (!parsed || parsed.name !== '+QLWADDOBJ') return undefined;
    const f = parsed.fields.map((x) => x.trim());
    if (f.length < 3 || !f.every((x) => /^\d{1,10}$/.test(x))) return undefined;
    const [obj, inst, count, ...resources] = f.map(Number);
    if (resources.length !== count) return undefined;
    const key = `${obj}/${inst}`;
    const known = byKey.get(key);
    byKey.set(key, { objectId: obj, instanceId: inst, resources: [...new Set([...(known?.resources ?? []), ...resources])] });
  }
  return [...byKey.values()];
}

function sameObjects(a: Bc66ObjectInstance[], b: Bc66ObjectInstance[]): boolean {
  const key = (list: Bc66ObjectInstance[]) => list.map((o) => `${o.objectId}/${o.instanceId}:${[...new Set(o.resources)].sort((x, y) => x - y).join(',')}`).sort().join(';');
  return key(a) === key(b);
}

export class Bc66Lwm2m extends EventEmitter {
  private readonly values = new Map<string, ResourceValue>();
  private readonly observed = new Set<string>();
  private readonly recentMids: number[] = [];
  private readonly pendingReads = new Map<number, { timer: NodeJS.Timeout; path: Lwm2mPath }>();
  private currentState: Bc66State = 'closed';
  private wantRegistered = false;
  private recovering = false;
  private registerWaiter?: (ok: boolean) => void;
  /** Set while this object waits for the `+QLWDEREG` of its own AT+QLWDEREG. */
  private deregisterWaiter?: (ok: boolean) => void;
  private inherited?: Bc66Snapshot;
  private readonly registry = ObjectRegistry.withBuiltins();
  imei?: string;

  constructor(readonly driver: Bc66Driver, readonly config: Bc66Lwm2mConfig) {
    super();
    driver.on('urc', (urc: Urc) => this.onUrc(urc));
    driver.on('reboot', () => this.recover('modem restarted'));
    driver.on('close', () => this.setState('closed'));
    driver.on('open', () => {
      // a port that came back: the modem may have lost everything with it
      if (this.currentState === 'closed' && this.wantRegistered) this.recover('serial port reopened');
    });
  }

  get state(): Bc66State {
    return this.currentState;
  }

  get endpoint(): string {
    return this.config.endpoint || (this.imei ? `urn:imei:${this.imei}` : '');
  }

  private setState(state: Bc66State): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit('state', state);
  }

  /** What the node that replaces this one (a deploy) takes over: values and observed paths. */
  snapshot(): Bc66Snapshot {
    return { values: [...this.values], observed: [...this.observed] };
  }

  /**
   * Takes over what a predecessor on the same modem handed on, before start(): its values at once;
   * its observed paths only when start() adopts the modem's registration (a new registration
   * starts without observations).
   */
  inherit(snapshot: Bc66Snapshot): void {
    for (const [path, value] of snapshot.values) this.values.set(path, value);
    this.inherited = snapshot;
  }

  /**
   * Opens the port, brings the modem up and asks it its state: a registration made with this
   * configuration is adopted as it is; otherwise LwM2M is configured (after deregistering a
   * registration made with another configuration) and registered when autoRegister is on.
   */
  async start(): Promise<void> {
    this.setState('starting');
    try {
      if (!this.driver.isOpen) await this.driver.open();
      const adopted = await this.bringUp();
      if (adopted) {
        for (const path of this.inherited?.observed ?? []) this.observed.add(path);
        this.wantRegistered = true;
        this.setState('registered');
      } else if (this.config.autoRegister) await this.register();
      this.inherited = undefined;
    } catch (err) {
      this.setState(this.driver.isOpen ? 'error' : 'closed');
      if (this.config.autoRegister) this.wantRegistered = true;
      throw err;
    }
  }

  /** Start-up up to registration; resolves true when the modem's registration was adopted. */
  private async bringUp(): Promise<boolean> {
    await this.driver.sync();
    await this.driver.command('ATE0');
    await this.driver.command('AT+CMEE=1');
    const imei = (await this.driver.command('AT+CGSN=1', { expect: '+CGSN' })).lines[0];
    this.imei = imei ? imei.replace(/^\+CGSN:\s*/i, '').replace(/"/g, '').trim() : undefined;
    await this.waitForNetwork();
    if (await this.adoptOrConfigure()) return true;
    this.setState('idle');
    return false;
  }

  /**
   * Asks the modem what it already has (AT+QLWSTATUS?, AT+QLWCONFIG?, AT+QLWADDOBJ?) and does only
   * what is missing: a modem registered with this configuration is left as it is (true); one
   * registered with another is deregistered first (AT+QLWREG and AT+QLWCONFIG are refused, or
   * worse, while registered); objects are declared once (deleted first when they differ).
   */
  private async adoptOrConfigure(): Promise<boolean> {
    const status = await this.settledStatus();
    const current = await this.readConfig();
    const declared = await this.readObjects();
    const configSame = current !== undefined && this.configMatches(current);
    // an empty or unreadable listing proves nothing: the objects are then assumed to be ours
    const objectsSame = declared === undefined || declared.length === 0 || sameObjects(declared, this.config.objects);
    if (status === 2) {
      if (configSame && objectsSame) return true;
      this.emit('warning', new Bc66Error('the modem is registered with another configuration: deregistering to configure it again'));
      await this.leave();
    }
    if (!configSame) await this.configure();
    if (configSame && declared !== undefined && declared.length > 0 && sameObjects(declared, this.config.objects)) return false;
    // objects already declared are deleted first (AT+QLWDELOBJ takes a whole object), never added twice
    const ids = new Set([...(declared ?? []).map((o) => o.objectId), ...this.config.objects.map((o) => o.objectId)]);
    if (declared?.length !== 0 || configSame) {
      for (const id of ids) await this.driver.command(`AT+QLWDELOBJ=${id}`).catch(() => undefined);
    }
    for (const obj of this.config.objects) await this.addObject(obj);
    return false;
  }

  /** AT+QLWSTATUS?, waiting while the modem is registering (1) or recovering its context (6). */
  private async settledStatus(): Promise<number | undefined> {
    const deadline = Date.now() + (this.config.registerTimeoutMs ?? 30000);
    for (;;) {
      let status: number;
      try {
        status = await this.status();
      } catch (err) {
        if (!(err instanceof Bc66CommandError) && !(err instanceof Bc66Error)) throw err;
        this.emit('warning', new Bc66Error(`cannot read the modem's LwM2M state (${(err as Error).message}): configuring it`));
        return undefined;
      }
      if ((status !== 1 && status !== 6) || Date.now() >= deadline) return status;
      await new Promise((r) => setTimeout(r, this.config.statusPollMs ?? 500));
    }
  }

  private async readConfig(): Promise<string[] | undefined> {
    try {
      const lines = (await this.driver.command('AT+QLWCONFIG?', { expect: '+QLWCONFIG' })).lines;
      return lines.length > 0 ? parseConfigLine(lines[0]) : undefined;
    } catch (err) {
      if (err instanceof Bc66CommandError) return undefined;
      throw err;
    }
  }

  private async readObjects(): Promise<Bc66ObjectInstance[] | undefined> {
    try {
      return parseDeclaredObjects((await this.driver.command('AT+QLWADDOBJ?', { expect: '+QLWADDOBJ' })).lines);
    } catch (err) {
      if (err instanceof Bc66CommandError) return undefined;
      throw err;
    }
  }

  /** The modem's configuration (AT+QLWCONFIG? fields) is the one this node would send. */
  private configMatches(f: string[]): boolean {
    const c = this.config;
    const [bs, host, port, endpoint, lifetime, security, pskIdentity, pskKey] = f.map((x) => x.trim());
    const psk = c.security === 'psk';
    return Number(bs) === (c.mode === 'bootstrap' ? 1 : 0)
      && host.toLowerCase() === c.serverHost.toLowerCase()
      && Number(port) === c.serverPort
      && endpoint === this.endpoint
      && Number(lifetime) === c.lifetime
      && Number(security) === (psk ? 0 : 3)
      // the identity and key are compared when the modem shows them ([U] whether it does)
      && (!psk || pskIdentity === undefined || pskIdentity === c.pskIdentity)
      && (!psk || pskKey === undefined || pskKey.toLowerCase() === (c.pskKey ?? '').toLowerCase());
  }

  /** AT+QLWDEREG and its `+QLWDEREG` (the Deregister's result comes over the network, later). */
  private async leave(): Promise<void> {
    const result = new Promise<boolean | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), this.config.deregisterTimeoutMs ?? 10000);
      this.deregisterWaiter = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
    });
    try {
      try {
        await this.driver.command('AT+QLWDEREG');
      } catch (err) {
        if (err instanceof Bc66CommandError && err.code === 4) return; // not registered: nothing to leave
        throw err;
      }
      if ((await result) === undefined) this.emit('warning', new Bc66Error('no +QLWDEREG after AT+QLWDEREG'));
    } finally {
      this.deregisterWaiter = undefined;
      this.observed.clear();
    }
  }

  private async waitForNetwork(): Promise<void> {
    const polls = this.config.networkPolls ?? 60;
    for (let i = 0; i < polls; i++) {
      const reply = (await this.driver.command('AT+CEREG?', { expect: '+CEREG' })).lines[0] ?? '';
      const stat = Number(reply.split(':')[1]?.split(',')[1]);
      if (stat === 1 || stat === 5) {
        const attached = (await this.driver.command('AT+CGATT?', { expect: '+CGATT' })).lines[0] ?? '';
        if (/:\s*1/.test(attached)) return;
      }
      await new Promise((r) => setTimeout(r, this.config.networkPollMs ?? 1000));
    }
    throw new Bc66Error('the modem did not attach to the network');
  }

  private async configure(): Promise<void> {
    const c = this.config;
    const args = [c.mode === 'bootstrap' ? 1 : 0, atArg(c.serverHost), c.serverPort, atArg(this.endpoint), c.lifetime, c.security === 'psk' ? 0 : 3];
    const shown = `AT+QLWCONFIG=${args.join(',')}`;
    if (c.security === 'psk') {
      if (!c.pskIdentity || !c.pskKey || !/^([0-9a-fA-F]{2})+$/.test(c.pskKey)) throw new Bc66Error('PSK security needs an identity and a hex key');
      args.push(atArg(c.pskIdentity), atArg(c.pskKey));
    }
    // errors and logs show the command without the PSK identity and key
    await this.driver.command(`AT+QLWCONFIG=${args.join(',')}`, { shown: c.security === 'psk' ? `${shown},<identity>,<key>` : shown });
  }

  private async addObject(obj: Bc66ObjectInstance): Promise<void> {
    // the module takes at most 14 resources per command; further ones go in more commands
    for (let i = 0; i < Math.max(1, obj.resources.length); i += MAX_RESOURCES_PER_ADDOBJ) {
      const part = obj.resources.slice(i, i + MAX_RESOURCES_PER_ADDOBJ);
      await this.driver.command(`AT+QLWADDOBJ=${obj.objectId},${obj.instanceId},${part.length},${part.join(',')}`);
    }
  }

  async register(): Promise<void> {
    this.wantRegistered = true;
    this.setState('registering');
    const result = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.config.registerTimeoutMs ?? 30000);
      this.registerWaiter = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
    });
    await this.driver.command('AT+QLWREG');
    const ok = await result;
    this.registerWaiter = undefined;
    if (!ok) {
      this.setState('error');
      throw new Bc66Error('registration failed (+QLWREG: 1 or no answer)');
    }
    this.setState('registered');
  }

  async update(lifetime?: number): Promise<void> {
    const reply = await this.driver.command(`AT+QLWUPDATE=0,${lifetime ?? this.config.lifetime}`, { expect: '+QLWUPDATE' });
    this.emit('update-sent', reply.lines[0]);
  }

  async deregister(): Promise<void> {
    this.wantRegistered = false;
    await this.leave();
    this.setState('idle');
  }

  /** AT+QLWSTATUS?: 0 not registered, 1 registering, 2 registered, 6 recovering (others as the module says). */
  async status(): Promise<number> {
    const line = (await this.driver.command('AT+QLWSTATUS?', { expect: '+QLWSTATUS' })).lines[0] ?? '';
    const value = Number(line.split(':')[1]);
    if (!Number.isInteger(value)) throw new Bc66Error(`unexpected status line "${line}"`);
    return value;
  }

  /**
   * Closes the port. With `deregister` (the default) a registered modem deregisters first and the
   * port closes once `+QLWDEREG` came (or after deregisterTimeoutMs); without it the modem stays
   * registered for whoever opens the port next to adopt (a deploy).
   */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    this.wantRegistered = false;
    for (const p of this.pendingReads.values()) clearTimeout(p.timer);
    this.pendingReads.clear();
    if (options.deregister !== false && this.driver.isOpen && this.currentState !== 'closed') {
      // the modem is asked: its state is what counts, not what this object last saw
      const status = await this.status().catch(() => (this.currentState === 'registered' ? 2 : undefined));
      if (status === 2) await this.leave().catch((err: Error) => this.emit('warning', err));
    }
    await this.driver.close();
    this.setState('closed');
  }

  private async recover(reason: string): Promise<void> {
    if (this.recovering || !this.wantRegistered) return;
    this.recovering = true;
    this.emit('warning', new Bc66Error(`${reason}: configuring and registering again`));
    try {
      this.observed.clear();
      this.setState('starting');
      // a port that came back may have a modem that is still registered: adopted, not registered twice
      if (await this.bringUp()) {
        this.wantRegistered = true;
        this.setState('registered');
      } else await this.register();
    } catch (err) {
      this.emit('warning', err);
      this.setState(this.driver.isOpen ? 'error' : 'closed');
    } finally {
      this.recovering = false;
    }
  }

  // ---- values and notifications ----

  getValue(path: string): ResourceValue | undefined {
    return this.values.get(formatPath(parsePath(path)));
  }

  /** Stores a resource value (answers reads) and notifies the server when it observes it. */
  async setValue(path: string, value: ResourceValue, confirmable = false): Promise<{ notified: boolean; acked?: boolean }> {
    const p = parsePath(path);
    if (p.resourceId === undefined || p.instanceId === undefined) throw new Bc66Error(`setValue needs a resource path, not ${path}`);
    toAtValue(value); // refused here (a line break, NaN) rather than when the modem asks for it
    const key = formatPath(p);
    this.values.set(key, value);
    const instanceKey = formatPath({ objectId: p.objectId, instanceId: p.instanceId });
    if (this.currentState !== 'registered' || !(this.observed.has(key) || this.observed.has(instanceKey) || this.observed.has(`/${p.objectId}`))) {
      return { notified: false };
    }
    return this.notify(p, value, confirmable);
  }

  private async notify(p: Lwm2mPath, value: ResourceValue, confirmable: boolean): Promise<{ notified: boolean; acked?: boolean }> {
    const v = toAtValue(value);
    const waitFor = (match: (urc: Urc) => boolean, ms: number) => new Promise<Urc | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.driver.removeListener('urc', listener);
        resolve(undefined);
      }, ms);
      const listener = (urc: Urc) => {
        if (!match(urc)) return;
        clearTimeout(timer);
        this.driver.removeListener('urc', listener);
        resolve(urc);
      };
      this.driver.on('urc', listener);
    });
    // every waiter is in place before the command: the module may print all the lines at once
    const sent = waitFor((u) => u.name === '+QLWNOTIFY', 10000);
    const report = waitFor((u) => u.name === '+QLWURC' && u.fields[0] === 'report', 10000);
    const ack = confirmable ? waitFor((u) => u.name === '+QLWURC' && u.fields[0] === 'report_ack', 30000) : Promise.resolve(undefined);
    await this.driver.command(`AT+QLWNOTIFY=${p.objectId},${p.instanceId},${p.resourceId},${v.type},${v.len},${v.text},0,${confirmable ? 1 : 0}`);
    const mid = (await report)?.fields[1];
    const result = await sent;
    const notified = result !== undefined && result.fields[0] === '0';
    if (!confirmable || !notified) return { notified };
    const ackUrc = await ack;
    const acked = ackUrc !== undefined && ackUrc.fields[1] === '0' && (mid === undefined || ackUrc.fields[2] === mid);
    this.emit('notify-ack', { path: formatPath(p), mid: Number(mid), acked });
    return { notified, acked };
  }

  // ---- requests from the server ----

  private duplicate(mid: number): boolean {
    if (this.recentMids.includes(mid)) return true;
    this.recentMids.push(mid);
    if (this.recentMids.length > 32) this.recentMids.shift();
    return false;
  }

  private onUrc(urc: Urc): void {
    try {
      if (urc.name === '+QLWREG') this.registerWaiter?.(urc.fields[0] === '0');
      else if (urc.name === '+QLWDEREG') this.onDeregistered(urc);
      else if (urc.name === '+QLWSTATUS' && urc.fields[0] === '0' && this.currentState === 'registered') this.recover('modem reports it is not registered');
      else if (urc.name === '+QLWURC') this.onLwm2mUrc(urc);
    } catch (err) {
      this.emit('warning', new Bc66Error(`cannot handle "${urc.line}": ${(err as Error).message}`));
    }
  }

  /**
   * `+QLWDEREG`: the result of this object's AT+QLWDEREG, or of one sent before it opened the port
   * (the node a deploy replaced): then the modem is asked whether it is still registered.
   */
  private onDeregistered(urc: Urc): void {
    if (this.deregisterWaiter) {
      this.deregisterWaiter(urc.fields[0] === '0');
      return;
    }
    if (this.currentState !== 'registered') return;
    this.status().then((status) => {
      if (status === 2 || this.currentState !== 'registered') return;
      this.setState('idle');
      if (this.wantRegistered) this.recover('the modem deregistered');
    }, (err: Error) => this.emit('warning', err));
  }

  private onLwm2mUrc(urc: Urc): void {
    const [kind, ...f] = urc.fields;
    // a field that is not a number refuses the whole URC (logged by onUrc): no NaN reaches a command
    const num = (i: number) => {
      const text = (f[i] ?? '').trim();
      if (!/^-?\d{1,10}$/.test(text)) throw new Bc66Error(`field ${i + 2} ("${text.slice(0, 20)}") is not a number`);
      return Number(text);
    };
    switch (kind) {
      case 'read': {
        const mid = num(0);
        if (this.duplicate(mid)) return;
        const path: Lwm2mPath = { objectId: num(1), instanceId: num(2), resourceId: num(3) === -1 ? undefined : num(3) };
        this.onRead(mid, path).catch((err: Error) => this.emit('warning', err));
        return;
      }
      case 'write': {
        const mid = num(0);
        if (this.duplicate(mid)) return;
        const path: Lwm2mPath = { objectId: num(1), instanceId: num(2), resourceId: num(3) };
        const type = this.registry.resourceType(path.objectId, path.resourceId!);
        const value = fromAtValue(num(4), f[6] ?? '', type === 'integer' || type === 'unsigned' || type === 'float');
        this.values.set(formatPath(path), value);
        this.driver.command(`AT+QLWWRRSP=${mid},${COAP_TO_RESULT['2.04']}`).catch((err: Error) => this.emit('warning', err));
        this.emit('write', { mid, path: formatPath(path), value } satisfies Bc66Request);
        return;
      }
      case 'execute': {
        const mid = num(0);
        if (this.duplicate(mid)) return;
        const path = formatPath({ objectId: num(1), instanceId: num(2), resourceId: num(3) });
        this.driver.command(`AT+QLWEXERSP=${mid},${COAP_TO_RESULT['2.04']}`).catch((err: Error) => this.emit('warning', err));
        this.emit('execute', { mid, path, args: f.slice(4).join(',') } satisfies Bc66Request);
        return;
      }
      case 'observe': {
        const mid = num(0);
        if (this.duplicate(mid)) return;
        const start = num(1) === 0;
        const path: Lwm2mPath = { objectId: num(2), instanceId: num(3), resourceId: num(4) === -1 ? undefined : num(4) };
        const key = formatPath(path);
        if (start) this.observed.add(key);
        else this.observed.delete(key);
        this.answerWithValues('OBSRSP', mid, path);
        this.emit('observe', { mid, path: key, start } satisfies Bc66Request);
        return;
      }
      default:
        // report / report_ack / ping / lwstatus / recovered …: informational
        this.emit('info', urc);
    }
  }

  private async onRead(mid: number, path: Lwm2mPath): Promise<void> {
    const request: Bc66Request = { mid, path: formatPath(path) };
    if (this.config.answerReads === 'flow') {
      const timer = setTimeout(() => {
        this.pendingReads.delete(mid);
        this.answerCode('RDRSP', mid, path, '4.04');
      }, this.config.flowAnswerTimeoutMs ?? 4000);
      this.pendingReads.set(mid, { timer, path });
      this.emit('read', request);
      return;
    }
    this.emit('read', request);
    this.answerWithValues('RDRSP', mid, path);
  }

  /** The flow's answer to a read it was given (answerReads = 'flow'): a value or a CoAP error code. */
  answerRead(mid: number, answer: ResourceValue | Record<string, ResourceValue> | { code: string }): void {
    const pending = this.pendingReads.get(mid);
    if (!pending) throw new Bc66Error(`no read ${mid} is waiting for an answer (too late?)`);
    clearTimeout(pending.timer);
    this.pendingReads.delete(mid);
    if (typeof answer === 'object' && answer !== null && 'code' in answer && typeof answer.code === 'string') {
      this.answerCode('RDRSP', mid, pending.path, answer.code);
      return;
    }
    if (pending.path.resourceId !== undefined) {
      this.values.set(formatPath(pending.path), answer as ResourceValue);
    } else {
      for (const [rid, v] of Object.entries(answer as Record<string, ResourceValue>)) {
        this.values.set(formatPath({ ...pending.path, resourceId: Number(rid) }), v);
      }
    }
    this.answerWithValues('RDRSP', mid, pending.path);
  }

  private answerCode(kind: 'RDRSP' | 'OBSRSP', mid: number, path: Lwm2mPath, code: string): void {
    const result = COAP_TO_RESULT[code] ?? COAP_TO_RESULT['4.04'];
    this.driver.command(`AT+QLW${kind}=${mid},${result},${path.objectId},${path.instanceId},${path.resourceId ?? -1},1,1," ",0`)
      .catch((err: Error) => this.emit('warning', err));
  }

  /** One answer per resource, `<index>` counting down to 0 (0 = last part). */
  private answerWithValues(kind: 'RDRSP' | 'OBSRSP', mid: number, path: Lwm2mPath): void {
    const parts: Array<[number, ResourceValue]> = [];
    if (path.resourceId !== undefined) {
      const v = this.values.get(formatPath(path));
      if (v !== undefined) parts.push([path.resourceId, v]);
    } else {
      const declared = this.config.objects.find((o) => o.objectId === path.objectId && o.instanceId === path.instanceId);
      for (const rid of declared?.resources ?? []) {
        const v = this.values.get(formatPath({ ...path, resourceId: rid }));
        if (v !== undefined) parts.push([rid, v]);
      }
    }
    if (parts.length === 0) {
      this.answerCode(kind, mid, path, '4.04');
      return;
    }
    parts.forEach(([rid, value], i) => {
      const v = toAtValue(value);
      const index = parts.length - 1 - i;
      this.driver.command(`AT+QLW${kind}=${mid},${COAP_TO_RESULT['2.05']},${path.objectId},${path.instanceId},${rid},${v.type},${v.len},${v.text},${index}`)
        .catch((err: Error) => this.emit('warning', err));
    });
  }
}
