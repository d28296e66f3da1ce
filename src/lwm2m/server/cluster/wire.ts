/**
 * JSON as instances exchange it through the shared store: registrations with their dates, values
 * with Buffers (opaque) and Dates (time) kept as such, errors with their name and CoAP code.
 */
import type { Registration } from '../registration';

export function toWire(value: unknown): string {
  return JSON.stringify(value, function replacer(this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    if (raw instanceof Date) return { $date: raw.getTime() };
    if (Buffer.isBuffer(raw)) return { $bytes: raw.toString('base64') };
    return v;
  });
}

export function fromWire<T = unknown>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (typeof o.$date === 'number' && Object.keys(o).length === 1) return new Date(o.$date);
      if (typeof o.$bytes === 'string' && Object.keys(o).length === 1) return Buffer.from(o.$bytes, 'base64');
    }
    return v;
  }) as T;
}

const DATES = ['registeredAt', 'updatedAt', 'expiresAt'] as const;

/**
 * A registration as stored and sent: like toWire, without a replacer function (it runs for every
 * registration of a storm, where a replacer costs more than the rest of the JSON).
 */
export function registrationToWire(registration: Registration): string {
  const copy: Record<string, unknown> = { ...registration };
  for (const key of DATES) copy[key] = { $date: registration[key].getTime() };
  return JSON.stringify(copy);
}

/** A parsed registration (or event part) with its dates back; undefined when it is not one. */
export function registrationFromObject(value: unknown): Registration | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.endpoint !== 'string' || typeof r.id !== 'string') return undefined;
  for (const key of DATES) {
    const d = r[key] as { $date?: unknown } | undefined;
    if (!d || typeof d.$date !== 'number') return undefined;
    r[key] = new Date(d.$date);
  }
  return r as unknown as Registration;
}

/** A registration read back: well-formed, or undefined (another version's, or damaged). */
export function registrationFromWire(text: string | null | undefined): Registration | undefined {
  if (!text) return undefined;
  try {
    return registrationFromObject(JSON.parse(text));
  } catch {
    return undefined;
  }
}
