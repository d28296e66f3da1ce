/**
 * Localized runtime texts. Every node's status and warning texts live in one catalogue
 * (lwm2m-server.json, "status" and "runtime"), under their full key so that any node can use them:
 * - a status without numbers is sent as its key, and each editor shows it in its own language;
 * - a status with numbers, and warnings and log lines, are put together here in Node-RED's language
 *   (settings.lang, else the LANG of its process).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { NodeAPI } from 'node-red';

const NAMESPACE = 'node-red-contrib-lwm2m-kit/lwm2m-server:lwm2m-server';

let translate: ((key: string, args?: Record<string, unknown>) => string) | null = null;

/** Called when a node module registers: RED._ is the runtime's translator. */
export function useTranslator(RED: NodeAPI): void {
  translate ??= (key, args) => (RED as unknown as { _: (k: string, a?: Record<string, unknown>) => string })._(key, args);
}

/** A status text the editor translates (no numbers in it). */
export function statusKey(key: string): string {
  return `${NAMESPACE}.status.${key}`;
}

/**
 * A runtime text in Node-RED's language; in English from the package's own en-US catalogue when
 * the runtime has none loaded (an embedding runtime, the test helper), else `fallback` or the key.
 */
export function t(key: string, args?: Record<string, unknown>, fallback?: string): string {
  const full = `${NAMESPACE}.${key}`;
  const text = translate ? translate(full, args) : full;
  if (text !== full && text !== full.slice(full.indexOf(':') + 1)) return text;
  const english = lookup(englishCatalogue(), `lwm2m-server.${key}`);
  if (typeof english !== 'string') return fallback ?? key;
  return english.replace(/__(\w+)__/g, (m, name: string) => (args && name in args ? String(args[name]) : m));
}

/** Operation names by label: runRequest asks for one at every request. Only the catalogue's own are kept (a label may come from msg.topic). */
const operations = new Map<string, string>();

/** The name of an operation (`read`, `write-attributes`…) for a status; the label itself when the catalogue has none. */
export function operationLabel(label: string): string {
  let text = operations.get(label);
  if (text !== undefined) return text;
  text = t(`op.${label}`, undefined, label);
  if (typeof lookup(englishCatalogue(), `lwm2m-server.op.${label}`) === 'string') operations.set(label, text);
  return text;
}

let english: unknown;
function englishCatalogue(): unknown {
  if (english === undefined) {
    try {
      english = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'nodes', 'locales', 'en-US', 'lwm2m-server.json'), 'utf8'));
    } catch {
      english = null;
    }
  }
  return english;
}

function lookup(tree: unknown, dotted: string): unknown {
  let node = tree;
  for (const part of dotted.split('.')) {
    if (!node || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}
