/**
 * CoRE Link Format (RFC 6690, content format 40): registration payloads and Discover answers,
 * e.g. `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>;ver=1.1`.
 */
import { DecodeError } from './errors';

export interface Link {
  uri: string;
  params: Record<string, string | true>;
}

const MAX_LINKS = 10000;

export function parseLinkFormat(text: string): Link[] {
  const links: Link[] = [];
  let i = 0;
  const n = text.length;
  const skipSpace = () => {
    while (i < n && /\s/.test(text[i])) i++;
  };
  skipSpace();
  if (i === n) return links;
  for (;;) {
    skipSpace();
    if (text[i] !== '<') throw new DecodeError(`link-format: expected "<" at position ${i}`);
    const end = text.indexOf('>', i + 1);
    if (end < 0) throw new DecodeError('link-format: unterminated "<"');
    const link: Link = { uri: text.slice(i + 1, end), params: {} };
    i = end + 1;
    while (i < n && text[i] === ';') {
      i++;
      const start = i;
      while (i < n && /[A-Za-z0-9!#$&+\-.^_`|~*]/.test(text[i])) i++;
      const name = text.slice(start, i);
      if (!name) throw new DecodeError(`link-format: empty parameter name at position ${start}`);
      if (text[i] !== '=') {
        link.params[name] = true;
        continue;
      }
      i++;
      if (text[i] === '"') {
        let value = '';
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n) i++;
          value += text[i++];
        }
        if (i >= n) throw new DecodeError('link-format: unterminated quoted value');
        i++;
        link.params[name] = value;
      } else {
        const vs = i;
        while (i < n && text[i] !== ';' && text[i] !== ',') i++;
        link.params[name] = text.slice(vs, i).trim();
      }
    }
    links.push(link);
    if (links.length > MAX_LINKS) throw new DecodeError('link-format: too many links');
    skipSpace();
    if (i >= n) break;
    if (text[i] !== ',') throw new DecodeError(`link-format: expected "," or ";" at position ${i}`);
    i++;
  }
  return links;
}

export function formatLinkFormat(links: Link[]): string {
  return links.map((l) => {
    let s = `<${l.uri}>`;
    for (const [k, v] of Object.entries(l.params)) {
      if (v === true) s += `;${k}`;
      else if (/^[0-9.]+$/.test(v)) s += `;${k}=${v}`;
      else s += `;${k}="${v.replace(/(["\\])/g, '\\$1')}"`;
    }
    return s;
  }).join(',');
}
