'use strict';
// Locale parity: for every node, the zh-TW message catalogue has exactly the en-US keys (deep,
// dotted paths) and no empty value, and the zh-TW help has the en-US help's structure (as many
// <h3> sections, the same <dt> property names in the same order); every data-i18n and _('…') key
// the editor HTML uses is in the en-US catalogue.
const assert = require('assert');
const fs = require('fs');
const path = require('path');

const NODES_DIR = path.join(__dirname, '..', '..', 'nodes');
const LOCALES = path.join(NODES_DIR, 'locales');
const NODE_NAMES = fs.readdirSync(NODES_DIR).filter((f) => f.endsWith('.html')).map((f) => f.slice(0, -5)).sort();

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Dotted paths of every leaf of a catalogue, with its value. */
function leaves(tree, prefix = '') {
  const out = [];
  for (const [key, value] of Object.entries(tree)) {
    const at = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && !Array.isArray(value)) out.push(...leaves(value, at));
    else out.push([at, value]);
  }
  return out;
}

function lookup(tree, dotted) {
  return dotted.split('.').reduce((node, key) => (node && typeof node === 'object' ? node[key] : undefined), tree);
}

/** The help text of a node: the body of its <script type="text/html" data-help-name="…">. */
function helpOf(html, name) {
  const re = new RegExp(`<script[^>]*data-help-name="${name}"[^>]*>([\\s\\S]*?)</script>`);
  const m = html.match(re);
  return m ? m[1] : undefined;
}

const stripTags = (s) => s.replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();

/**
 * The help's structure: its <h3> count, and per section (text before the first <h3>, then each <h3>)
 * the <dt> property names (the text before the type span).
 */
function structure(help) {
  const h3 = (help.match(/<h3[\s>]/g) ?? []).length;
  const sections = help.split(/<h3[\s>]/).map((part) => [...part.matchAll(/<dt[^>]*>([\s\S]*?)<\/dt>/g)]
    .map((m) => stripTags(m[1].split(/<span class="property-type">/)[0])));
  return { h3, sections };
}

/**
 * Config nodes (lwm2m-server, lwm2m-bc66) describe their editor fields in <dt>: those are the
 * editor's labels, which zh-TW translates like the labels themselves, so only their number per
 * section must match. Flow nodes describe msg properties, whose names are never translated.
 */
const isConfigNode = (html) => /category:\s*['"]config['"]/.test(html);

/** The catalogue keys an editor HTML file uses: data-i18n="[attr]key;[attr]key" and _('key') / this._('key'). */
function usedKeys(html) {
  const keys = new Set();
  for (const m of html.matchAll(/data-i18n="([^"]*)"/g)) {
    for (const part of m[1].split(';')) {
      const key = part.replace(/^\[[^\]]*\]/, '').trim();
      if (key) keys.add(key);
    }
  }
  for (const m of html.matchAll(/\b_\(\s*(['"`])([^'"`]+)\1/g)) keys.add(m[2]);
  return [...keys];
}

describe('locales (en-US and zh-TW)', () => {
  it('knows the nodes', () => {
    assert.ok(NODE_NAMES.length >= 8, NODE_NAMES.join(', '));
  });

  for (const name of NODE_NAMES) {
    describe(name, () => {
      const enFile = path.join(LOCALES, 'en-US', `${name}.json`);
      const zhFile = path.join(LOCALES, 'zh-TW', `${name}.json`);
      const html = fs.readFileSync(path.join(NODES_DIR, `${name}.html`), 'utf8');

      it('has the same catalogue keys in en-US and zh-TW, none empty', () => {
        const en = leaves(readJson(enFile));
        const zh = leaves(readJson(zhFile));
        const enKeys = en.map(([k]) => k).sort();
        const zhKeys = zh.map(([k]) => k).sort();
        assert.deepStrictEqual(zhKeys.filter((k) => !enKeys.includes(k)), [], 'zh-TW keys that en-US lacks');
        assert.deepStrictEqual(enKeys.filter((k) => !zhKeys.includes(k)), [], 'en-US keys that zh-TW lacks');
        for (const [locale, entries] of [['en-US', en], ['zh-TW', zh]]) {
          const empty = entries.filter(([, v]) => typeof v !== 'string' || v.trim() === '').map(([k]) => k);
          assert.deepStrictEqual(empty, [], `${locale}: empty or non-text values`);
        }
      });

      it('has a zh-TW help with the en-US help\'s sections and properties', () => {
        const en = helpOf(html, name);
        assert.ok(en, `nodes/${name}.html has no help`);
        const zhHtml = fs.readFileSync(path.join(LOCALES, 'zh-TW', `${name}.html`), 'utf8');
        const zh = helpOf(zhHtml, name);
        assert.ok(zh, `nodes/locales/zh-TW/${name}.html has no help for ${name}`);
        const e = structure(en);
        const z = structure(zh);
        assert.strictEqual(z.h3, e.h3, '<h3> sections');
        if (isConfigNode(html)) {
          assert.deepStrictEqual(z.sections.map((dt) => dt.length), e.sections.map((dt) => dt.length), '<dt> field descriptions per section');
          for (const dt of z.sections.flat()) assert.ok(dt, 'an empty <dt>');
        } else {
          assert.deepStrictEqual(z.sections, e.sections, '<dt> property names per section, in order');
        }
      });

      it('has every key its editor HTML uses in the en-US catalogue', () => {
        const en = readJson(enFile);
        const missing = usedKeys(html).filter((key) => typeof lookup(en, key) !== 'string');
        assert.deepStrictEqual(missing, []);
      });
    });
  }
});
