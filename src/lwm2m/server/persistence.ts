/**
 * Keeps the registrations in a JSON file, so a restarted server (a Node-RED restart, a redeploy)
 * still knows its devices and can reach them before their next Update. Writes are debounced and
 * atomic (temporary file + rename): a crash mid-write leaves the previous file intact.
 */
import { promises as fs } from 'fs';
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

  /** The registrations saved before, without the ones that expired meanwhile; [] when there is no file. */
  async load(now = Date.now()): Promise<Registration[]> {
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
    return stored
      .filter((r) => r && typeof r.endpoint === 'string' && typeof r.id === 'string')
      .map((r) => ({ ...r, registeredAt: new Date(r.registeredAt), updatedAt: new Date(r.updatedAt), expiresAt: new Date(r.expiresAt) }))
      .filter((r) => r.expiresAt.getTime() > now);
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
