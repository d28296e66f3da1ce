/**
 * The AT line protocol of the BC66: bytes to lines, lines to fields, and the shapes of final
 * results and URCs (reference: shared/reference/bc66-lwm2m-at.md). Lenient when reading: quoted
 * or bare fields, stray bytes, lone CR or LF.
 */
import { Lwm2mError } from '../lwm2m/types';

export const MAX_LINE = 1400;

/** Splits a byte stream into lines; keeps a partial line across chunks. */
export class LineSplitter {
  private buffer = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    this.buffer += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== '\r' && ch !== '\n') continue;
      const line = this.buffer.slice(start, i).replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '').trim();
      if (line) this.onLine(line);
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > MAX_LINE) {
      // a modem never sends lines this long: drop the garbage rather than grow without bound
      this.onLine(this.buffer.slice(0, MAX_LINE).trim());
      this.buffer = '';
    }
  }

  reset(): void {
    this.buffer = '';
  }
}

/** Splits `a,"b,c",3` into ['a', 'b,c', '3']: commas inside quotes stay, quotes go. */
export function parseFields(text: string): string[] {
  const fields: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      fields.push(current.trim());
      current = '';
    } else current += ch;
  }
  fields.push(current.trim());
  return fields;
}

/** `+QLWURC: "read",1,2` → { name: '+QLWURC', fields: ['read', '1', '2'] } */
export function splitResult(line: string): { name: string; fields: string[] } | undefined {
  const m = /^(\+[A-Z0-9]+)\s*:\s*(.*)$/i.exec(line);
  if (!m) return undefined;
  return { name: m[1].toUpperCase(), fields: parseFields(m[2]) };
}

export type FinalResult = { ok: true } | { ok: false; code?: number; text: string };

export function finalResult(line: string): FinalResult | undefined {
  if (line === 'OK') return { ok: true };
  if (line === 'ERROR') return { ok: false, text: line };
  const m = /^\+CMEE? ERROR:\s*(\d+)/i.exec(line);
  if (m) return { ok: false, code: Number(m[1]), text: line };
  return undefined;
}

export class AtArgumentError extends Lwm2mError {}

/**
 * Formats one AT command argument: numbers bare, strings quoted. The BC66 has no escape for a
 * quote or a line break inside a string (reference: the AT command syntax), so a quote becomes an
 * apostrophe and control characters are refused: a CR or LF would end the command and start
 * another one (`"Cel\r\nAT+QLWDEREG"` deregistered the device).
 */
export function atArg(value: string | number): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new AtArgumentError(`${value} cannot be sent to the modem: not a finite number`);
    return String(value);
  }
  if (/[\x00-\x1f\x7f]/.test(value)) throw new AtArgumentError(`a string with a line break or control character (${JSON.stringify(value.slice(0, 40))}) cannot be sent to the modem`);
  return `"${value.replace(/"/g, "'")}"`;
}

/** LwM2M value types of the BC66 (reference: Codes). */
export const VALUE_TYPE = { string: 1, opaque: 2, integer: 3, float: 4, boolean: 5 } as const;

/** BC66 result codes ↔ CoAP codes. */
export const RESULT_TO_COAP: Record<number, string> = { 1: '2.05', 2: '2.04', 11: '4.00', 12: '4.01', 13: '4.04', 14: '4.05', 15: '4.06' };
export const COAP_TO_RESULT: Record<string, number> = Object.fromEntries(Object.entries(RESULT_TO_COAP).map(([k, v]) => [v, Number(k)]));
