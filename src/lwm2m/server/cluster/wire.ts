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

/** A registration read back: well-formed, or undefined (another version's, or damaged). */
export function registrationFromWire(text: string | null | undefined): Registration | undefined {
  if (!text) return undefined;
  try {
    const r = fromWire<Registration>(text);
    if (typeof r.endpoint !== 'string' || typeof r.id !== 'string' || !(r.expiresAt instanceof Date)) return undefined;
    return r;
  } catch {
    return undefined;
  }
}
