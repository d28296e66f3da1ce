'use strict';
// Codecs: known vectors from the specifications, round trips for every format and type, and
// malformed input that must end in a DecodeError (never another exception).
const assert = require('assert');
const c = require('../../dist/lwm2m/content');
const { decodeCbor, encodeCbor } = require('../../dist/lwm2m/content/cbor');
const { ObjectRegistry } = require('../../dist/lwm2m/model');
const { parsePath } = require('../../dist/lwm2m/path');

const registry = ObjectRegistry.withBuiltins();
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// LwM2M 1.0/1.1 Core, TLV example "Single Object Instance": a read of the Device object /3/0
const DEVICE_TLV = hex(`
  C8 00 14 4F 70 65 6E 20 4D 6F 62 69 6C 65 20 41 6C 6C 69 61 6E 63 65
  C8 01 16 4C 69 67 68 74 77 65 69 67 68 74 20 4D 32 4D 20 43 6C 69 65 6E 74
  C8 02 09 33 34 35 30 30 30 31 32 33
  C3 03 31 2E 30
  86 06 41 00 01 41 01 05
  88 07 08 42 00 0E D8 42 01 13 88
  87 08 41 00 7D 42 01 03 84
  C1 09 64
  C1 0A 0F
  83 0B 41 00 00
  C4 0D 51 82 42 8F
  C6 0E 2B 30 32 3A 30 30
  C1 10 55`);

const DEVICE_VALUES = {
  0: 'Open Mobile Alliance', 1: 'Lightweight M2M Client', 2: '345000123', 3: '1.0',
  6: { 0: 1, 1: 5 }, 7: { 0: 3800, 1: 5000 }, 8: { 0: 125, 1: 900 }, 9: 100, 10: 15, 11: { 0: 0 },
  13: new Date(1367491215 * 1000), 14: '+02:00', 16: 'U',
};

describe('content codecs', () => {
  describe('TLV', () => {
    const base = parsePath('/3/0');
    it('decodes the specification\'s Device object example', () => {
      const records = c.decodeRecords('tlv', DEVICE_TLV, { basePath: base, types: registry });
      assert.deepStrictEqual(c.recordsToTree(base, records), DEVICE_VALUES);
    });
    it('encodes it back to the same bytes', () => {
      const records = c.treeToRecords(base, DEVICE_VALUES, registry);
      assert.strictEqual(c.encodeRecords('tlv', records, { basePath: base, types: registry }).toString('hex'), DEVICE_TLV.toString('hex'));
    });
    it('wraps instances for an object-level payload and reads them back', () => {
      const obj = parsePath('/3303');
      const tree = { 0: { 5700: 21.5, 5701: 'Cel' }, 1: { 5700: -3.25 } };
      const buf = c.encodeRecords('tlv', c.treeToRecords(obj, tree, registry), { basePath: obj, types: registry });
      assert.strictEqual(buf[0] >> 6, 0, 'object instance TLV first');
      assert.deepStrictEqual(c.recordsToTree(obj, c.decodeRecords('tlv', buf, { basePath: obj, types: registry })), tree);
    });
    it('uses 16-bit ids and 24-bit lengths where needed', () => {
      const p = parsePath('/3303/0/5750');
      const long = 'x'.repeat(70000);
      const buf = c.encodeRecords('tlv', [{ path: p, value: long }], { basePath: p, types: registry });
      assert.strictEqual(buf[0], 0xf8); // resource, 16-bit id, 24-bit length
      assert.strictEqual(c.decodeRecords('tlv', buf, { basePath: p, types: registry })[0].value, long);
    });
    it('decodes an unknown resource as opaque bytes', () => {
      const [r] = c.decodeRecords('tlv', hex('C1 05 2A'), { basePath: parsePath('/9999/0'), types: registry });
      assert.deepStrictEqual(r.value, Buffer.from([0x2a]));
    });
  });

  describe('SenML', () => {
    it('writes the LwM2M names with a base name, as the specification shows', () => {
      const base = parsePath('/3/0');
      const records = c.treeToRecords(base, { 0: 'Open Mobile Alliance', 9: 100, 6: { 0: 1 } }, registry);
      const json = JSON.parse(c.encodeRecords('senml-json', records, { basePath: base }).toString());
      assert.deepStrictEqual(json, [
        { bn: '/3/0/', n: '0', vs: 'Open Mobile Alliance' }, { n: '6/0', v: 1 }, { n: '9', v: 100 },
      ]);
    });
    it('decodes the specification\'s SenML JSON example', () => {
      const payload = Buffer.from('[{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"9","v":100},{"n":"13","v":1367491215},{"n":"6/0","v":1},{"n":"6/1","v":5}]');
      const records = c.decodeRecords('senml-json', payload, { basePath: parsePath('/3/0'), types: registry });
      assert.deepStrictEqual(c.recordsToTree(parsePath('/3/0'), records), {
        0: 'Open Mobile Alliance', 1: 'Lightweight M2M Client', 9: 100, 13: new Date(1367491215000), 6: { 0: 1, 1: 5 },
      });
    });
    it('uses the SenML CBOR labels (bn -2, n 0, v 2, vs 3, vb 4, vd 8)', () => {
      const p = parsePath('/3303/0/5700');
      const buf = c.encodeRecords('senml-cbor', [{ path: p, value: 21.5 }], { basePath: p });
      // [{-2: "/3303/0/5700", 2: 21.5}]
      assert.strictEqual(buf.toString('hex'), '81a2216c2f333330332f302f3537303002fa41ac0000');
    });
    it('round-trips every value type in JSON and CBOR', () => {
      const values = [
        [parsePath('/3/0/0'), 'ünïcode'], [parsePath('/3/0/9'), -42], [parsePath('/3303/0/5700'), 0.1],
        [parsePath('/1/0/6'), true], [parsePath('/5/0/0'), Buffer.from([0, 1, 254, 255])], [parsePath('/3/0/13'), new Date(1700000000000)],
        [parsePath('/1/0/10'), { objectId: 11, instanceId: 2 }],
      ].map(([path, value]) => ({ path, value }));
      for (const format of ['senml-json', 'senml-cbor', 'lwm2m-cbor']) {
        const buf = c.encodeRecords(format, values, { basePath: { objectId: 0 } });
        const key = (r) => `${r.path.objectId}/${r.path.instanceId}/${r.path.resourceId}`;
        const sorted = (list) => [...list].sort((a, b) => key(a).localeCompare(key(b)));
        assert.deepStrictEqual(sorted(c.decodeRecords(format, buf, { basePath: { objectId: 0 }, types: registry })), sorted(values), format);
      }
    });
    it('encodes and decodes the path list of a composite request', () => {
      const paths = [parsePath('/3/0/0'), parsePath('/3303/0'), parsePath('/1')];
      for (const format of ['senml-json', 'senml-cbor', 'lwm2m-cbor']) {
        assert.deepStrictEqual(c.decodePathList(format, c.encodePathList(format, paths)), paths, format);
      }
    });
  });

  describe('text, opaque, OMA JSON, LwM2M CBOR', () => {
    it('text/plain follows the resource type', () => {
      const t = (path, text) => c.decodeRecords('text', Buffer.from(text), { basePath: parsePath(path), types: registry })[0].value;
      assert.strictEqual(t('/3/0/9', '87'), 87);
      assert.strictEqual(t('/1/0/6', '1'), true);
      assert.deepStrictEqual(t('/3/0/13', '1367491215'), new Date(1367491215000));
      assert.deepStrictEqual(t('/1/0/10', '3:0'), { objectId: 3, instanceId: 0 });
      assert.strictEqual(c.encodeRecords('text', [{ path: parsePath('/1/0/6'), value: false }], { basePath: parsePath('/1/0/6') }).toString(), '0');
      assert.throws(() => t('/3/0/9', 'abc'), c.DecodeError);
      assert.throws(() => c.encodeRecords('text', [], { basePath: parsePath('/3/0/9') }), c.EncodeError);
    });
    it('opaque carries the bytes as they are', () => {
      const p = parsePath('/5/0/0');
      const bytes = Buffer.from([1, 2, 3]);
      assert.deepStrictEqual(c.decodeRecords('opaque', c.encodeRecords('opaque', [{ path: p, value: bytes }], { basePath: p }), { basePath: p })[0].value, bytes);
    });
    it('OMA JSON (LwM2M 1.0) round-trips an instance', () => {
      const base = parsePath('/3/0');
      const tree = { 0: 'Acme', 9: 55, 13: new Date(1000 * 1500000000) };
      const buf = c.encodeRecords('oma-json', c.treeToRecords(base, tree, registry), { basePath: base });
      assert.deepStrictEqual(JSON.parse(buf.toString()).bn, '/3/0/');
      assert.deepStrictEqual(c.recordsToTree(base, c.decodeRecords('oma-json', buf, { basePath: base, types: registry })), tree);
    });
    it('LwM2M CBOR nests maps by path element', () => {
      const buf = c.encodeRecords('lwm2m-cbor', [{ path: parsePath('/3/0/9'), value: 100 }], { basePath: parsePath('/3/0') });
      assert.strictEqual(buf.toString('hex'), 'a103a100a1091864'); // {3: {0: {9: 100}}}
      // a collapsed key [3, 0] is the same path
      const collapsed = hex('a1 82 03 00 a1 09 18 64');
      assert.deepStrictEqual(c.decodeRecords('lwm2m-cbor', collapsed, { basePath: parsePath('/3/0') }), [{ path: parsePath('/3/0/9'), value: 100 }]);
    });
  });

  describe('link format (RFC 6690)', () => {
    it('parses registration links with quoted parameters and flags', () => {
      const links = c.parseLinkFormat('</>;rt="oma.lwm2m";ct="60 110 112",</1/0>,</3/0>;ver=1.1,</3303>;title="a,b;c";obs');
      assert.deepStrictEqual(links, [
        { uri: '/', params: { rt: 'oma.lwm2m', ct: '60 110 112' } },
        { uri: '/1/0', params: {} },
        { uri: '/3/0', params: { ver: '1.1' } },
        { uri: '/3303', params: { title: 'a,b;c', obs: true } },
      ]);
      assert.deepStrictEqual(c.parseLinkFormat(c.formatLinkFormat(links)), links);
    });
    it('rejects malformed links', () => {
      for (const bad of ['/3/0', '</3/0', '</3/0>;', '</3/0>,junk', '</1>;a="x']) assert.throws(() => c.parseLinkFormat(bad), c.DecodeError, bad);
    });
  });

  describe('CBOR (RFC 8949 Appendix A vectors)', () => {
    const vectors = [
      ['00', 0], ['17', 23], ['1818', 24], ['1864', 100], ['1903e8', 1000], ['1a000f4240', 1000000],
      ['1bffffffffffffffff', 18446744073709551615n], ['20', -1], ['3903e7', -1000], ['f93e00', 1.5], ['f97c00', Infinity],
      ['fa47c35000', 100000], ['fb3ff199999999999a', 1.1], ['f4', false], ['f5', true], ['f6', null],
      ['4401020304', Buffer.from([1, 2, 3, 4])], ['6161', 'a'], ['83010203', [1, 2, 3]], ['7f657374726561646d696e67ff', 'streaming'],
    ];
    for (const [h, value] of vectors) {
      it(`decodes ${h}`, () => assert.deepStrictEqual(decodeCbor(hex(h)), value));
    }
    it('encodes the shortest forms', () => {
      // JavaScript cannot tell 100000.0 from 100000, and half floats are never the shortest exact form we emit
      for (const [h, value] of vectors.filter(([h2]) => !h2.startsWith('f9') && !h2.startsWith('7f') && h2 !== 'fa47c35000')) {
        assert.strictEqual(encodeCbor(value).toString('hex'), h, String(value));
      }
      const m = new Map([[1, 2], [3, 4]]);
      assert.strictEqual(encodeCbor(m).toString('hex'), 'a201020304');
    });
  });

  describe('malformed input', () => {
    const cases = {
      tlv: [hex('C8 00 14 4F'), hex('C8'), hex('E8 00'), hex('18 00 FF'), hex('C1 09 64 C1')],
      'senml-json': [Buffer.from('{'), Buffer.from('{"bn":"/3/0/"}'), Buffer.from('[1,2]'), Buffer.from('[{"n":"/3/x/0","v":1}]'), Buffer.from('[{"n":"/3/0/9"}]')],
      'senml-cbor': [hex('81'), hex('a1'), hex('9b ff ff ff ff ff ff ff ff'), hex('81 a1 00 01'), hex('ff')],
      'lwm2m-cbor': [hex('a1 03'), hex('a1 63 61 62 63 01'), hex('83 01 02 03')],
      'oma-json': [Buffer.from('[]'), Buffer.from('{"e":[{"n":"x"}]}')],
    };
    for (const [format, payloads] of Object.entries(cases)) {
      it(`${format}: typed DecodeError`, () => {
        for (const p of payloads) {
          assert.throws(() => c.decodeRecords(format, p, { basePath: parsePath('/3/0'), types: registry }), c.DecodeError, `${format} ${p.toString('hex')}`);
        }
      });
    }
    it('random bytes never throw anything but DecodeError', () => {
      let seed = 42;
      const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
      for (let i = 0; i < 3000; i++) {
        const buf = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
        for (const format of ['tlv', 'senml-json', 'senml-cbor', 'lwm2m-cbor', 'oma-json', 'text']) {
          try {
            c.decodeRecords(format, buf, { basePath: parsePath('/3/0/0'), types: registry });
          } catch (err) {
            if (!(err instanceof c.DecodeError)) throw new Error(`${format} ${buf.toString('hex')}: ${err.stack}`);
          }
        }
      }
    });
    it('rejects values of the wrong type when encoding', () => {
      assert.throws(() => c.treeToRecords(parsePath('/3303/0/5700'), 'hot', registry), /not a valid float/);
      assert.throws(() => c.treeToRecords(parsePath('/3303/0'), { abc: 1 }, registry), /not a numeric id/);
      assert.throws(() => c.treeToRecords(parsePath('/3303/0'), 5, registry), /needs a resource path/);
      assert.deepStrictEqual(c.treeToRecords(parsePath('/3303/0/5700'), '21.5', registry)[0].value, 21.5);
    });
  });

  it('names and codes of the formats', () => {
    assert.strictEqual(c.toFormatCode('senml-cbor'), 112);
    assert.strictEqual(c.toFormatCode('11542'), 11542);
    assert.strictEqual(c.formatName(1542), 'tlv');
    assert.throws(() => c.toFormatCode('xml'), /unknown content format/);
  });
});
