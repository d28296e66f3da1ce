/**
 * Keeps the registrations in a JSON file, so a restarted server (a Node-RED restart, a redeploy)
 * still knows its devices and can reach them before their next Update. Writes are debounced and
 * atomic (temporary file + rename): a crash mid-write leaves the previous file intact.
 */
import { promises as fs } from 'fs';
import { isIP } from 'net';
import { Lwm2mError } from '../types';
import { Registration } from './registration';

export class PersistenceError extends Lwm2mError {}

type StoredRegistration = Omit<Registration, 'registeredAt' | 'updatedAt' | 'expiresAt'> & {
  registeredAt: string; updatedAt: string; expiresAt: string;
};

export class RegistrationFile {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly file: string, private readonly delayMs = 1000) {}

  /**
   * The registrations saved before, without the ones that expired meanwhile; [] when there is no
   * file. Entries that are not well-formed (a hand-edited or damaged file) are skipped and counted
   * in `skipped` by reason, never loaded nor written back.
   */
  async load(now = Date.now(), skipped: Map<string, number> = new Map()): Promise<Registration[]> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new PersistenceError(`cannot read ${this.file}: ${(err as Error).message}`);
    }
    let stored: StoredRegistration[];
    try {
      stored = JSON.parse(text) as StoredRegistration[];
      if (!Array.isArray(stored)) throw new Error('not an array');
    } catch (err) {
      throw new PersistenceError(`${this.file} is not a registration file: ${(err as Error).message}`);
    }
    const ids = new Set<string>();
    const endpoints = new Set<string>();
    const kept: Registration[] = [];
    for (const entry of stored) {
      const reason = problemOf(entry) ?? (ids.has(entry.id) ? 'duplicate id' : endpoints.has(entry.endpoint) ? 'duplicate endpoint' : undefined);
      if (reason) {
        skipped.set(reason, (skipped.get(reason) ?? 0) + 1);
        continue;
      }
      ids.add(entry.id);
      endpoints.add(entry.endpoint);
      const r: Registration = { ...entry, registeredAt: new Date(entry.registeredAt), updatedAt: new Date(entry.updatedAt), expiresAt: new Date(entry.expiresAt) };
      if (r.expiresAt.getTime() > now) kept.push(r);
    }
    return kept;
  }

  /** Saves `snapshot()` after a short delay; calls within the delay are folded into one write. */
  scheduleSave(snapshot: () => Registration[]): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.writing = this.writing.then(() => this.write(snapshot()));
    }, this.delayMs);
  }

  /** Writes now (pending or not) and waits for it. */
  async flush(snapshot: () => Registration[]): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.writing = this.writing.then(() => this.write(snapshot()));
    await this.writing;
  }

  private async write(registrations: Registration[]): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(registrations));
    await fs.rename(tmp, this.file);
  }
}

const isInt = (v: unknown, min: number, max: number): boolean => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const isText = (v: unknown, max = 4096): boolean => typeof v === 'string' && v.length <= max;
const isDate = (v: unknown): boolean => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** What is wrong with a stored entry, or undefined when it can be loaded. */
function problemOf(r: StoredRegistration): string | undefined {
  if (!r || typeof r !== 'object') return 'not an object';
  if (!isText(r.id, 64) || !r.id || !isText(r.endpoint, 256) || !r.endpoint) return 'no id or endpoint';
  if (!isText(r.address, 64) || !isIP(r.address) || !isInt(r.port, 1, 65535)) return 'bad address or port';
  if (!isInt(r.lifetime, 1, 2 ** 31) || !isDate(r.registeredAt) || !isDate(r.updatedAt) || !isDate(r.expiresAt)) return 'bad lifetime or dates';
  if (!isText(r.lwm2mVersion, 16) || !isText(r.binding, 16) || typeof r.queueMode !== 'boolean' || !isText(r.rootPath, 256) || !isText(r.objectLinks, 65536)) {
    return 'wrong types';
  }
  if ((r.identity !== undefined && !isText(r.identity, 512)) || (r.smsNumber !== undefined && !isText(r.smsNumber, 32))) return 'wrong types';
  if (!Array.isArray(r.supportedFormats) || !r.supportedFormats.every((f) => isInt(f, 0, 65535))) return 'wrong types';
  const objectOk = (o: Registration['objects'][number]) => o && typeof o === 'object' && isInt(o.objectId, 0, 65535)
    && (o.instanceId === undefined || isInt(o.instanceId, 0, 65535)) && (o.version === undefined || isText(o.version, 16));
  if (!Array.isArray(r.objects) || r.objects.length > 10_000 || !r.objects.every(objectOk)) return 'bad objects';
  return undefined;
}
