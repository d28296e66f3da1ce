/**
 * A stand-in BC66 for tests, the demo and people without hardware: it serves the modem end of a
 * serial line with the reference's AT+QLW… command set, and behind it runs this package's software
 * LwM2M client over real CoAP, so any LwM2M server sees a real device. Server requests for the
 * host's objects become +QLWURC lines, and the host's AT answers complete them.
 */
import { EventEmitter } from 'events';
import { SerialPort } from 'serialport';
import { DeviceHandlers, ErrorCode, Lwm2mClient } from '../lwm2m/client';
import { formatPath } from '../lwm2m/path';
import { Lwm2mPath, ResourceRecord } from '../lwm2m/types';
import { atArg, LineSplitter, parseFields, RESULT_TO_COAP } from './at-line';
import { fromAtValue, toAtValue } from './values';

export interface EmulatorOptions {
  /** The serial device of the modem end (e.g. one link of a pty pair). */
  path: string;
  imei?: string;
  baudRate?: number;
  /** Local address for the client's UDP socket. */
  localAddress?: string;
  /** How long the host has to answer a server request before the emulator answers for it. */
  hostAnswerTimeoutMs?: number;
  /** Print `RDY` when the port opens, like a module that just powered on. */
  bootBanner?: boolean;
  /**
   * How long the Deregister exchange takes over the network (default 800 ms; seconds on NB-IoT):
   * AT+QLWDEREG answers OK at once, the server hears the Deregister and `+QLWDEREG: 0` comes this
   * much later, by then maybe to a host that opened the port afresh.
   */
  deregisterDelayMs?: number;
}

interface LwConfig {
  bootstrap: boolean;
  host: string;
  port: number;
  endpoint: string;
  lifetime: number;
  security: number;
  /** Security 0 (PSK): identity and key (hex), for the DTLS the modem does itself. */
  psk?: { identity: string; key: string };
}

interface PendingAnswer {
  resolve: (records: ResourceRecord[] | ErrorCode | '2.04') => void;
  parts: ResourceRecord[];
  timer: NodeJS.Timeout;
}

export class Bc66Emulator extends EventEmitter {
  private port: SerialPort | null = null;
  private readonly splitter = new LineSplitter((line) => this.onCommand(line));
  private echo = true;
  private config?: LwConfig;
  private readonly declared = new Map<number, Map<number, number[]>>(); // object → instance → resources
  private client: Lwm2mClient | null = null;
  private nextMid = 1000;
  private readonly pending = new Map<number, PendingAnswer>();
  private registered = false;
  /** Deregisters still on their way to the server (see deregisterDelayMs). */
  private readonly leaving = new Map<NodeJS.Timeout, Lwm2mClient>();
  readonly imei: string;

  constructor(readonly options: EmulatorOptions) {
    super();
    this.imei = options.imei ?? '866425030000001';
  }

  get lwm2mClient(): Lwm2mClient | null {
    return this.client;
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path: this.options.path, baudRate: this.options.baudRate ?? 115200, autoOpen: false });
      port.open((err) => {
        if (err) return reject(err);
        this.port = port;
        port.on('data', (chunk: Buffer) => this.splitter.push(chunk));
        port.on('error', (e: Error) => this.emit('warning', e));
        port.on('close', () => {
          if (this.port === port) this.port = null;
        });
        if (this.options.bootBanner) this.write('RDY');
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    // the modem goes away (unplugged, powered off): no Deregister reaches the server
    await this.dropLeaving(false);
    const client = this.client;
    this.client = null;
    this.registered = false;
    if (client) await client.stop({ deregister: false }).catch(() => {});
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
  }

  /** Simulates a power cycle: LwM2M state is lost and the boot banner is printed. */
  async reboot(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.registered = false;
    this.config = undefined;
    this.declared.clear();
    this.echo = true;
    await this.dropLeaving(true);
    if (client) await client.stop().catch(() => {});
    this.write('RDY');
    this.write('+CPIN: READY');
  }

  private async dropLeaving(deregister: boolean): Promise<void> {
    const leaving = [...this.leaving];
    this.leaving.clear();
    for (const [timer, client] of leaving) {
      clearTimeout(timer);
      await client.stop({ deregister }).catch(() => {});
    }
  }

  /** Whether the module is registered (AT+QLWSTATUS? 2): for tests. */
  get isRegistered(): boolean {
    return this.registered;
  }

  /** The declared objects, as AT+QLWADDOBJ? lists them: for tests. */
  get declaredObjects(): Array<{ objectId: number; instanceId: number; resources: number[] }> {
    return [...this.declared].flatMap(([objectId, instances]) => [...instances].map(([instanceId, resources]) => ({ objectId, instanceId, resources: [...resources] })));
  }

  private write(line: string): void {
    this.port?.write(`\r\n${line}\r\n`);
  }

  private ok(lines: string[] = []): void {
    for (const l of lines) this.write(l);
    this.write('OK');
  }

  private error(code?: number): void {
    this.write(code === undefined ? 'ERROR' : `+CME ERROR: ${code}`);
  }

  private onCommand(raw: string): void {
    if (this.echo) this.port?.write(`${raw}\r\n`);
    const line = raw.trim();
    const upper = line.toUpperCase();
    try {
      if (upper === 'AT') return this.ok();
      if (upper === 'ATE0' || upper === 'ATE1') {
        this.echo = upper === 'ATE1';
        return this.ok();
      }
      if (upper === 'ATI') return this.ok(['Quectel_Ltd', 'Quectel_BC66', 'Revision: BC66NBR01A07 (emulated)']);
      if (upper.startsWith('AT+CMEE=')) return this.ok();
      if (upper === 'AT+CGSN=1') return this.ok([`+CGSN: ${this.imei}`]);
      if (upper === 'AT+CEREG?') return this.ok(['+CEREG: 0,1']);
      if (upper === 'AT+CGATT?') return this.ok(['+CGATT: 1']);
      if (upper.startsWith('AT+CGPADDR')) return this.ok(['+CGPADDR: 1,10.8.0.2']);
      if (upper.startsWith('AT+QLWCFG=')) return this.ok();
      if (upper === 'AT+QLWCONFIG?') return this.configQuery();
      if (upper.startsWith('AT+QLWCONFIG=')) return this.configure(parseFields(line.slice(13)));
      if (upper === 'AT+QLWADDOBJ?') return this.ok(this.declaredObjects.map((o) => `+QLWADDOBJ: ${o.objectId},${o.instanceId},${o.resources.length}${o.resources.map((r) => `,${r}`).join('')}`));
      if (upper.startsWith('AT+QLWADDOBJ=')) return this.addObject(parseFields(line.slice(13)));
      if (upper.startsWith('AT+QLWDELOBJ=')) return this.deleteObject(Number(line.slice(13)));
      if (upper === 'AT+QLWREG') return this.register();
      if (upper.startsWith('AT+QLWUPDATE=')) return this.update(parseFields(line.slice(13)));
      if (upper === 'AT+QLWDEREG') return this.deregister();
      if (upper === 'AT+QLWSTATUS?') return this.ok([`+QLWSTATUS: ${this.registered ? 2 : this.client ? 1 : 0}`]);
      if (upper.startsWith('AT+QLWRDRSP=')) return this.answerValue('RDRSP', parseFields(line.slice(12)));
      if (upper.startsWith('AT+QLWOBSRSP=')) return this.answerValue('OBSRSP', parseFields(line.slice(13)));
      if (upper.startsWith('AT+QLWWRRSP=')) return this.answerCode('WRRSP', parseFields(line.slice(12)));
      if (upper.startsWith('AT+QLWEXERSP=')) return this.answerCode('EXERSP', parseFields(line.slice(13)));
      if (upper.startsWith('AT+QLWNOTIFY=')) return this.notify(parseFields(line.slice(13)));
      this.error();
    } catch (err) {
      this.emit('warning', err);
      this.error(3);
    }
  }

  private configQuery(): void {
    const c = this.config;
    if (!c) return this.ok();
    const psk = c.psk ? `,"${c.psk.identity}","${c.psk.key}"` : '';
    this.ok([`+QLWCONFIG: ${c.bootstrap ? 1 : 0},"${c.host}",${c.port},"${c.endpoint}",${c.lifetime},${c.security}${psk}`]);
  }

  private configure(f: string[]): void {
    const [bs, host, port, endpoint, lifetime, security] = f;
    const lt = Number(lifetime);
    if (!host || !(Number(port) >= 1 && Number(port) <= 65535) || !endpoint || !(lt >= 20) || !['0', '3'].includes(security) || !['0', '1'].includes(bs)) {
      return this.error(3);
    }
    if (security === '0' && (!f[6] || !/^([0-9a-fA-F]{2})+$/.test(f[7] ?? ''))) return this.error(3);
    this.config = {
      bootstrap: bs === '1', host, port: Number(port), endpoint, lifetime: lt, security: Number(security),
      ...(security === '0' ? { psk: { identity: f[6], key: f[7] } } : {}),
    };
    this.ok();
  }

  private addObject(f: string[]): void {
    const [obj, inst, count, ...resources] = f.map(Number);
    if (![obj, inst, count].every(Number.isInteger) || resources.length !== count || count > 14) return this.error(3);
    let instances = this.declared.get(obj);
    if (!instances) this.declared.set(obj, (instances = new Map()));
    instances.set(inst, [...new Set([...(instances.get(inst) ?? []), ...resources])]);
    this.client?.setInstance(obj, inst, {});
    this.client?.declareResources(obj, inst, resources); // listed by Discover; values come from the host
    this.ok();
  }

  private deleteObject(obj: number): void {
    this.declared.delete(obj);
    this.client?.deleteObject(obj);
    this.ok();
  }

  private register(): void {
    const c = this.config;
    if (!c) return this.error(1);
    if (this.client) return this.error(1);
    this.ok();
    const client = new Lwm2mClient({
      endpoint: c.endpoint,
      lifetime: c.lifetime,
      // with PSK the modem speaks coaps to the server it is configured with (DTLS, as a BC66 does)
      ...(c.bootstrap ? { bootstrap: { host: c.host, port: c.port, psk: c.psk } } : { server: { host: c.host, port: c.port, psk: c.psk } }),
      localAddress: this.options.localAddress,
      handlers: this.handlers(),
      retryDelayMs: [1000, 30000],
    });
    client.on('warning', (err) => this.emit('warning', err));
    client.objects.setInstance(3, 0, { 0: 'Quectel', 1: 'BC66', 2: this.imei, 3: 'BC66NBR01A07', 11: { 0: 0 }, 16: 'UQ' });
    for (const [obj, instances] of this.declared) {
      for (const [inst, resources] of instances) {
        client.objects.setInstance(obj, inst, {});
        client.declareResources(obj, inst, resources);
      }
    }
    this.client = client;
    client.on('state', (state: string) => {
      if (state === 'registered' && !this.registered) {
        this.registered = true;
        this.write('+QLWREG: 0');
      }
    });
    client.start().catch(() => {
      if (this.client === client && !this.registered) this.write('+QLWREG: 1');
    });
  }

  private update(f: string[]): void {
    if (!this.client || !this.registered) return this.error(4);
    const [mode, value] = f.map(Number);
    const mid = this.nextMid++;
    this.ok([`+QLWUPDATE: ${mid}`]);
    const params = mode === 0 ? { lifetime: value } : { binding: value === 1 ? 'UQ' : 'U' };
    this.client.update(params).then(
      () => this.write(`+QLWUPDATE: 0,${mid}`),
      () => this.write(`+QLWUPDATE: 1,${mid}`),
    );
  }

  private deregister(): void {
    const client = this.client;
    if (!client || !this.registered) return this.error(4);
    this.ok();
    this.client = null;
    this.registered = false;
    // the module is free for a new AT+QLWREG at once; the Deregister reaches the server, and its
    // result the host, a network round trip later
    const timer = setTimeout(() => {
      this.leaving.delete(timer);
      client.stop().then(() => this.write('+QLWDEREG: 0'), () => this.write('+QLWDEREG: 1'));
    }, this.options.deregisterDelayMs ?? 800);
    this.leaving.set(timer, client);
  }

  // ---- server requests forwarded to the host ----

  private isDeclared(path: Lwm2mPath): boolean {
    return this.declared.get(path.objectId)?.has(path.instanceId ?? -1) === true;
  }

  private ask(urc: string, mid: number): Promise<ResourceRecord[] | ErrorCode | '2.04'> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(mid);
        resolve('5.00');
      }, this.options.hostAnswerTimeoutMs ?? 5000);
      this.pending.set(mid, { resolve, parts: [], timer });
      this.write(urc);
    });
  }

  private handlers(): DeviceHandlers {
    const local = (path: Lwm2mPath): ResourceRecord[] | ErrorCode => (this.client?.objects.exists(path) ? this.client.objects.read(path) : '4.04');
    return {
      read: async (path) => {
        if (!this.isDeclared(path)) return local(path);
        if (path.resourceInstanceId !== undefined) return '4.00';
        const mid = this.nextMid++;
        const answer = await this.ask(`+QLWURC: "read",${mid},${path.objectId},${path.instanceId},${path.resourceId ?? -1}`, mid);
        return answer === '2.04' ? '5.00' : answer;
      },
      write: async (path, records) => {
        if (!this.isDeclared(path)) return '4.04';
        for (const r of records) {
          const mid = this.nextMid++;
          const v = toAtValue(r.value);
          const code = await this.ask(`+QLWURC: "write",${mid},${r.path.objectId},${r.path.instanceId},${r.path.resourceId},${v.type},${v.len},${v.text},0`, mid);
          if (code !== '2.04') return typeof code === 'string' ? code as ErrorCode : '5.00';
        }
        return '2.04';
      },
      execute: async (path, args) => {
        if (!this.isDeclared(path)) return '4.04';
        const mid = this.nextMid++;
        const code = await this.ask(`+QLWURC: "execute",${mid},${path.objectId},${path.instanceId},${path.resourceId}${args ? `,${atArg(args)}` : ''}`, mid);
        return typeof code === 'string' ? code as '2.04' | ErrorCode : '5.00';
      },
      observe: async (path, start) => {
        if (!this.isDeclared(path)) return undefined;
        const mid = this.nextMid++;
        const answer = await this.ask(`+QLWURC: "observe",${mid},${start ? 0 : 1},${path.objectId},${path.instanceId},${path.resourceId ?? -1}`, mid);
        return answer === '2.04' ? undefined : answer;
      },
    };
  }

  /** AT+QLWRDRSP / AT+QLWOBSRSP: <mid>,<result>,<obj>,<inst>,<res>,<type>,<len>,<value>,<index> */
  private answerValue(kind: 'RDRSP' | 'OBSRSP', f: string[]): void {
    const [mid, result, obj, inst, res, type, len] = f.slice(0, 7).map(Number);
    const value = f[7] ?? '';
    const index = Number(f[8] ?? 0);
    if (!Number.isInteger(mid) || !(len > 0)) return this.error(3);
    const pending = this.pending.get(mid);
    this.ok();
    if (!pending) {
      this.write(`+QLW${kind}: 1`);
      return;
    }
    const code = RESULT_TO_COAP[result];
    if (code !== '2.05') {
      clearTimeout(pending.timer);
      this.pending.delete(mid);
      pending.resolve((code ?? '4.00') as ErrorCode);
    } else {
      pending.parts.push({ path: { objectId: obj, instanceId: inst, resourceId: res }, value: fromAtValue(type, value) });
      if (index === 0) {
        clearTimeout(pending.timer);
        this.pending.delete(mid);
        pending.resolve(pending.parts);
      }
    }
    if (index === 0) this.write(`+QLW${kind}: 0`);
  }

  private answerCode(kind: 'WRRSP' | 'EXERSP', f: string[]): void {
    const [mid, result] = f.map(Number);
    const pending = this.pending.get(mid);
    this.ok();
    if (!pending) {
      this.write(`+QLW${kind}: 1`);
      return;
    }
    clearTimeout(pending.timer);
    this.pending.delete(mid);
    const code = RESULT_TO_COAP[result];
    pending.resolve(code === '2.04' ? '2.04' : ((code ?? '4.00') as ErrorCode));
    this.write(`+QLW${kind}: 0`);
  }

  /** AT+QLWNOTIFY=<obj>,<inst>,<res>,<type>,<len>,<value>,<index>[,<ack>[,<rai>]] */
  private notify(f: string[]): void {
    const [obj, inst, res, type, len] = f.slice(0, 5).map(Number);
    if (!this.client || !this.registered) return this.error(4);
    if (![obj, inst, res, type].every(Number.isInteger) || !(len > 0)) return this.error(3);
    const confirmable = f[7] === '1';
    const mid = this.nextMid++;
    this.ok();
    this.write(`+QLWURC: "report",${mid}`);
    const record: ResourceRecord = { path: { objectId: obj, instanceId: inst, resourceId: res }, value: fromAtValue(type, f[5] ?? '') };
    this.client.notify(formatPath(record.path), [record], confirmable).then(({ observed, delivered }) => {
      this.write(`+QLWNOTIFY: ${observed ? 0 : 1}`);
      if (confirmable && observed) this.write(`+QLWURC: "report_ack",${delivered ? 0 : 1},${mid}`);
    }, () => this.write('+QLWNOTIFY: 1'));
  }
}
