/**
 * The BC66 serial driver: owns the port, sends one AT command at a time, matches its final result
 * (OK / ERROR / +CME ERROR / +CMEE ERROR) and result lines, dispatches URCs whenever they come
 * (also between a command and its OK), times commands out, and reopens a lost port with backoff.
 */
import { EventEmitter } from 'events';
import { existsSync } from 'fs';
import { SerialPort } from 'serialport';
import { Lwm2mError } from '../lwm2m/types';
import { finalResult, LineSplitter, splitResult } from './at-line';

export interface Bc66Options {
  path: string;
  baudRate?: number;
  commandTimeoutMs?: number;
  /** Reopen delays after the port was lost: [first, max] in ms, doubling in between. */
  reopenDelayMs?: [number, number];
}

export class Bc66CommandError extends Lwm2mError {
  constructor(readonly command: string, readonly code: number | undefined, text: string) {
    super(`${command}: ${text}`);
  }
}
export class Bc66TimeoutError extends Lwm2mError {}
export class Bc66PortError extends Lwm2mError {}

export interface Urc {
  /** `+QLWURC`, `+QLWREG`, `+CEREG`, … or the whole line for bare ones (`RDY`). */
  name: string;
  fields: string[];
  line: string;
}

interface PendingCommand {
  line: string;
  /** The line as errors and 'tx' events show it: secrets (PSK identity and key) hidden. */
  shown: string;
  expect?: string;
  timeoutMs: number;
  lines: string[];
  resolve: (result: { lines: string[] }) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

/** Lines a modem prints when it (re)starts. */
const BOOT_LINES = /^(RDY|\+CPIN: READY|F1: ?\d|Boot|REBOOT|\+QNBIOTEVENT: "?POWER ON"?)/i;

export class Bc66Driver extends EventEmitter {
  private port: SerialPort | null = null;
  private readonly splitter = new LineSplitter((line) => this.onLine(line));
  private readonly queue: PendingCommand[] = [];
  private current: PendingCommand | null = null;
  private closing = false;
  private reopenTimer?: NodeJS.Timeout;
  /** Watches the device path while the port is open: an unplugged USB modem (or a pty pair that is
   * gone) does not always deliver a hang-up to the open port, but its path disappears. */
  private presenceTimer?: NodeJS.Timeout;
  private reopenDelay: number;
  readonly options: Required<Bc66Options>;

  constructor(options: Bc66Options) {
    super();
    this.options = { baudRate: 115200, commandTimeoutMs: 5000, reopenDelayMs: [500, 30000], ...options };
    this.reopenDelay = this.options.reopenDelayMs[0];
  }

  get isOpen(): boolean {
    return this.port?.isOpen === true;
  }

  /** Opens the port; when it cannot be opened, rejects and keeps retrying with backoff. */
  open(): Promise<void> {
    this.closing = false;
    if (this.isOpen) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path: this.options.path, baudRate: this.options.baudRate, dataBits: 8, stopBits: 1, parity: 'none', autoOpen: false });
      port.open((err) => {
        if (err) {
          this.scheduleReopen();
          reject(new Bc66PortError(`cannot open ${this.options.path}: ${err.message}`));
          return;
        }
        this.port = port;
        this.splitter.reset();
        this.reopenDelay = this.options.reopenDelayMs[0];
        port.on('data', (chunk: Buffer) => this.splitter.push(chunk));
        port.on('error', (e: Error) => this.emit('warning', new Bc66PortError(`${this.options.path}: ${e.message}`)));
        port.on('close', () => this.onPortClosed(port));
        this.watchPresence(port);
        this.emit('open');
        resolve();
      });
    });
  }

  private watchPresence(port: SerialPort): void {
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    this.presenceTimer = setInterval(() => {
      if (this.port !== port) return;
      if (!existsSync(this.options.path)) {
        this.onPortClosed(port);
        port.close(() => undefined);
      }
    }, 1000);
    this.presenceTimer.unref?.();
  }

  private onPortClosed(port: SerialPort): void {
    if (this.port !== port) return;
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    this.presenceTimer = undefined;
    this.port = null;
    this.failAll(new Bc66PortError(`${this.options.path} closed`));
    this.emit('close');
    if (!this.closing) this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.closing || this.reopenTimer) return;
    const delay = this.reopenDelay;
    this.reopenDelay = Math.min(delay * 2, this.options.reopenDelayMs[1]);
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      this.open().catch((err: Error) => this.emit('warning', err));
    }, delay);
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    this.presenceTimer = undefined;
    this.failAll(new Bc66PortError('driver closed'));
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private failAll(err: Error): void {
    const all = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = null;
    for (const c of all) {
      if (c.timer) clearTimeout(c.timer);
      c.reject(err);
    }
  }

  /**
   * Sends one command and resolves with its result lines once OK arrives. `expect` is the prefix
   * of the result lines that belong to this command (e.g. '+CGSN'); everything else is a URC.
   */
  command(line: string, opts: { timeoutMs?: number; expect?: string; shown?: string } = {}): Promise<{ lines: string[] }> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        line, shown: opts.shown ?? line, expect: opts.expect?.toUpperCase(), timeoutMs: opts.timeoutMs ?? this.options.commandTimeoutMs, lines: [], resolve, reject,
      });
      this.next();
    });
  }

  private next(): void {
    if (this.current || this.queue.length === 0) return;
    const port = this.port;
    if (!port?.isOpen) {
      this.failAll(new Bc66PortError(`${this.options.path} is not open`));
      return;
    }
    const cmd = this.queue.shift()!;
    this.current = cmd;
    cmd.timer = setTimeout(() => {
      if (this.current !== cmd) return;
      this.current = null;
      cmd.reject(new Bc66TimeoutError(`${cmd.shown}: no final result within ${cmd.timeoutMs} ms`));
      this.next();
    }, cmd.timeoutMs);
    this.emit('tx', cmd.shown);
    port.write(`${cmd.line}\r\n`);
  }

  private finish(cmd: PendingCommand, err: Error | null): void {
    if (cmd.timer) clearTimeout(cmd.timer);
    this.current = null;
    if (err) cmd.reject(err);
    else cmd.resolve({ lines: cmd.lines });
    this.next();
  }

  private onLine(line: string): void {
    this.emit('line', line);
    try {
      const cmd = this.current;
      if (cmd) {
        if (line === cmd.line) return; // echo (before ATE0)
        const final = finalResult(line);
        if (final) {
          this.finish(cmd, final.ok ? null : new Bc66CommandError(cmd.shown, final.code, final.text));
          return;
        }
        if (cmd.expect && line.toUpperCase().startsWith(cmd.expect)) {
          cmd.lines.push(line);
          return;
        }
        if (!line.startsWith('+') && !BOOT_LINES.test(line) && !cmd.expect) {
          // plain information text (ATI, AT+CGSN without =1) belongs to the command
          cmd.lines.push(line);
          return;
        }
      } else if (finalResult(line)) {
        return; // a late OK for a command that timed out
      }
      this.dispatchUrc(line);
    } catch (err) {
      this.emit('warning', err);
    }
  }

  private dispatchUrc(line: string): void {
    if (BOOT_LINES.test(line)) this.emit('reboot', line);
    const parsed = splitResult(line);
    const urc: Urc = parsed ? { name: parsed.name, fields: parsed.fields, line } : { name: line, fields: [], line };
    this.emit('urc', urc);
  }

  /** Sends `AT` until the modem answers OK: the first command after power-on is often lost. */
  async sync(tries = 5, timeoutMs = 1000): Promise<void> {
    let last: Error | undefined;
    for (let i = 0; i < tries; i++) {
      try {
        await this.command('AT', { timeoutMs });
        return;
      } catch (err) {
        last = err as Error;
        if (err instanceof Bc66PortError) throw err;
      }
    }
    throw new Bc66TimeoutError(`modem does not answer AT (${last?.message ?? 'no answer'})`);
  }
}
