'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ObjectRegistry, parseDdf, DdfError, BUILTIN_OBJECTS } = require('../../dist/lwm2m/model');

const VALID_TYPES = new Set(['string', 'integer', 'unsigned', 'float', 'boolean', 'opaque', 'time', 'objlnk', 'corelnk', 'none']);

function ddf(body, objectId = '33000') {
  return `<?xml version="1.0" encoding="utf-8"?><LWM2M><Object ObjectType="MODefinition"><Name>Test</Name>
    <ObjectID>${objectId}</ObjectID><ObjectVersion>1.2</ObjectVersion><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
    <Resources>${body}</Resources></Object></LWM2M>`;
}
const item = (id, type = 'Float', ops = 'R') => `<Item ID="${id}"><Name>R${id}</Name><Operations>${ops}</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type>${type}</Type><Units>Cel</Units></Item>`;

describe('object model', () => {
  it('built-in objects are consistent and match the specification', () => {
    const ids = BUILTIN_OBJECTS.map((o) => o.id);
    assert.strictEqual(new Set(ids).size, ids.length);
    for (const id of [0, 1, 2, 3, 4, 5, 6, 7, 3303, 3311, 3323]) assert.ok(ids.includes(id), `object ${id}`);
    for (const obj of BUILTIN_OBJECTS) {
      for (const r of obj.resources.values()) {
        assert.ok(VALID_TYPES.has(r.type), `${obj.id}/${r.id} type ${r.type}`);
        assert.strictEqual(r.operations === 'E', r.type === 'none', `${obj.id}/${r.id}: executables and only they have no type`);
      }
    }
    const reg = ObjectRegistry.withBuiltins();
    assert.deepStrictEqual(
      ['/3/0', '/1/1', '/3/4', '/0/1', '/3303/5700', '/3/11'].map((p) => {
        const [o, r] = p.slice(1).split('/').map(Number);
        const d = reg.resource(o, r);
        return `${d.name}|${d.operations}|${d.type}|${d.multiple}`;
      }),
      ['Manufacturer|R|string|false', 'Lifetime|RW|integer|false', 'Reboot|E|none|false', 'Bootstrap-Server||boolean|false',
        'Sensor Value|R|float|false', 'Error Code|R|integer|true'],
    );
  });

  it('parses a DDF file', () => {
    const [def] = parseDdf(ddf(item(1) + item(2, 'Unsigned Integer', 'RW') + item(3, '', 'E')), 'x.xml');
    assert.strictEqual(def.id, 33000);
    assert.strictEqual(def.version, '1.2');
    assert.strictEqual(def.multiple, true);
    assert.deepStrictEqual([...def.resources.values()].map((r) => [r.id, r.type, r.operations]), [[1, 'float', 'R'], [2, 'unsigned', 'RW'], [3, 'none', 'E']]);
  });

  it('rejects broken files with an error naming the file and the problem', () => {
    const cases = [
      ['not xml <', /not well-formed XML/],
      ['<foo/>', /no <LWM2M> root/],
      [ddf(item(1), 'abc'), /ObjectID "abc"/],
      [ddf(item(1) + item(1)), /resource 1 is defined twice/],
      [ddf(item(1, 'Colour')), /unknown <Type> "Colour"/],
      [ddf(item(1, 'Float', 'RWX')), /unknown <Operations>/],
      ['<!DOCTYPE x [<!ENTITY a "aaaa">]><LWM2M/>', /entity declarations/],
    ];
    for (const [xml, pattern] of cases) {
      assert.throws(() => parseDdf(xml, 'bad.xml'), (err) => err instanceof DdfError && err.file === 'bad.xml' && /^bad\.xml: /.test(err.message) && pattern.test(err.message), String(pattern));
    }
  });

  it('loads a folder, collecting bad files instead of throwing; user files replace built-ins', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddf-'));
    try {
      fs.writeFileSync(path.join(dir, 'good.xml'), ddf(item(5700, 'String')));
      fs.writeFileSync(path.join(dir, '3303.xml'), ddf(item(5700, 'Integer'), '3303'));
      fs.writeFileSync(path.join(dir, 'bad.xml'), '<LWM2M><Object><Name>x</Name></Object></LWM2M>');
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
      const reg = ObjectRegistry.withBuiltins();
      const report = await reg.loadFolder(dir);
      assert.deepStrictEqual(report.loaded.map((d) => d.id).sort((a, b) => a - b), [3303, 33000]);
      assert.strictEqual(report.errors.length, 1);
      assert.match(report.errors[0].message, /^bad\.xml: missing <ObjectID>/);
      assert.strictEqual(reg.resourceType(3303, 5700), 'integer');
      assert.strictEqual(reg.resourceType(33000, 5700), 'string');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads every file of the OMA registry beside the project, or rejects it by name', async function () {
    const dir = path.join(__dirname, '..', '..', '..', 'shared', 'lwm2m-registry');
    if (!fs.existsSync(dir)) this.skip();
    const files = fs.readdirSync(dir).filter((n) => n.endsWith('.xml'));
    const reg = new ObjectRegistry();
    const report = await reg.loadFolder(dir);
    const rejected = report.errors.map((e) => e.file);
    assert.ok(report.errors.every((e) => e instanceof DdfError && files.includes(e.file)));
    assert.ok(report.loaded.length >= 327, `${report.loaded.length} objects loaded`);
    assert.strictEqual(new Set(report.loaded.map((d) => d.id)).size + rejected.length, files.length);
  });
});
