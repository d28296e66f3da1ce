'use strict';
// Codec fixes: the OMA JSON shape Wakaama expects, SenML names for a Create without an instance
// id, and SenML time stamps kept on the records.
const assert = require('assert');
const c = require('../../dist/lwm2m/content');
const { ObjectRegistry } = require('../../dist/lwm2m/model');
const { parsePath } = require('../../dist/lwm2m/path');

const registry = ObjectRegistry.withBuiltins();

describe('codec fixes', () => {
  describe('C. OMA JSON (11543)', () => {
    const encode = (path, value) => {
      const base = parsePath(path);
      return JSON.parse(c.encodeRecords('oma-json', c.treeToRecords(base, value, registry), { basePath: base, types: registry }).toString());
    };

    it('writes one resource with bn = the instance path and n = the resource id', () => {
      assert.deepStrictEqual(encode('/31024/11/5', 'x'), { bn: '/31024/11/', e: [{ n: '5', sv: 'x' }] });
      assert.deepStrictEqual(encode('/3/0/14', '+02:00'), { bn: '/3/0/', e: [{ n: '14', sv: '+02:00' }] });
    });

    it('names resource instances "r/ri" below the instance', () => {
      assert.deepStrictEqual(encode('/31024/11/5/0', 'y'), { bn: '/31024/11/', e: [{ n: '5/0', sv: 'y' }] });
      assert.deepStrictEqual(encode('/3/0/7', { 0: 3800, 1: 5000 }), { bn: '/3/0/', e: [{ n: '7/0', v: 3800 }, { n: '7/1', v: 5000 }] });
    });

    it('keeps instance and object payloads as they were', () => {
      assert.deepStrictEqual(encode('/3/0', { 14: '+01:00', 9: 80 }), { bn: '/3/0/', e: [{ n: '9', v: 80 }, { n: '14', sv: '+01:00' }] });
      assert.deepStrictEqual(encode('/3303', { 0: { 5700: 1.5 } }), { bn: '/3303/', e: [{ n: '0/5700', v: 1.5 }] });
    });

    it('decodes both shapes of a single resource, and "bn" without a trailing slash', () => {
      const p = parsePath('/31024/11/5');
      for (const text of ['{"bn":"/31024/11/","e":[{"n":"5","sv":"x"}]}', '{"bn":"/31024/11/5","e":[{"sv":"x"}]}', '{"bn":"/31024/11","e":[{"n":"5","sv":"x"}]}', '{"e":[{"n":"/31024/11/5","sv":"x"}]}']) {
        const records = c.decodeRecords('oma-json', Buffer.from(text), { basePath: p });
        assert.deepStrictEqual(records, [{ path: { objectId: 31024, instanceId: 11, resourceId: 5, resourceInstanceId: undefined }, value: 'x' }], text);
      }
    });
  });

  describe('D. a new instance (Create without an instance id)', () => {
    const records = c.treeToRecords(parsePath('/3303/0'), { 5700: 3.5, 5701: 'Cel' }, registry);
    const multi = c.treeToRecords(parsePath('/3/0'), { 7: { 0: 3800, 1: 5000 } }, registry);
    const opts = { basePath: parsePath('/3303'), types: registry, newInstance: true };

    it('SenML JSON/CBOR: no base name, names relative to the object', () => {
      assert.deepStrictEqual(JSON.parse(c.encodeRecords('senml-json', records, opts)), [{ n: '5700', v: 3.5 }, { n: '5701', vs: 'Cel' }]);
      assert.deepStrictEqual(JSON.parse(c.encodeRecords('senml-json', multi, { ...opts, basePath: parsePath('/3') })), [{ n: '7/0', v: 3800 }, { n: '7/1', v: 5000 }]);
      const cbor = c.decodeCbor(c.encodeRecords('senml-cbor', records, opts));
      assert.deepStrictEqual(cbor, [new Map([[0, '5700'], [2, 3.5]]), new Map([[0, '5701'], [3, 'Cel']])]);
    });

    it('TLV: resource TLVs without an instance wrapper; LwM2M CBOR: resource ids at the top level', () => {
      const tlv = c.encodeRecords('tlv', records, opts);
      assert.notStrictEqual(tlv[0] >> 6, 0);
      assert.deepStrictEqual(c.decodeCbor(c.encodeRecords('lwm2m-cbor', multi, { ...opts, basePath: parsePath('/3') })), new Map([[7, new Map([[0, 3800], [1, 5000]])]]));
    });

    it('refuses formats that cannot say it', () => {
      for (const format of ['oma-json', 'text', 'opaque']) assert.throws(() => c.encodeRecords(format, records.slice(0, 1), opts), c.EncodeError);
    });
  });
});
