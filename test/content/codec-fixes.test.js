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

  describe('J. SenML time', () => {
    const temp = { objectId: 3303, instanceId: 0, resourceId: 5700, resourceInstanceId: undefined };
    const strip = (records) => records.map((r) => ({ ...r, path: { ...r.path } }));

    it('keeps bt + t on every record, several values of one resource included (JSON)', () => {
      const payload = Buffer.from(JSON.stringify([
        { bn: '/3303/0/', bt: 1700000000, n: '5700', v: 20 }, { n: '5700', t: 60, v: 21 }, { n: '5700', t: 120, v: 22 }, { bn: '/3/0/', n: '0', vs: 'x' },
      ]));
      const records = strip(c.decodeRecords('senml-json', payload, { basePath: { objectId: 0 }, types: registry }));
      assert.deepStrictEqual(records, [
        { path: temp, value: 20, time: 1700000000 },
        { path: temp, value: 21, time: 1700000060 },
        { path: temp, value: 22, time: 1700000120 },
        { path: { objectId: 3, instanceId: 0, resourceId: 0, resourceInstanceId: undefined }, value: 'x', time: 1700000000 },
      ]);
      assert.deepStrictEqual(c.recordsToComposite(records), { '/3303/0/5700': 22, '/3/0/0': 'x' });
    });

    it('reads the CBOR labels bt (-3) and t (6)', () => {
      const payload = c.encodeCbor([
        new Map([[-2, '/3303/0/5700'], [-3, 1700000000], [2, 20]]),
        new Map([[6, 30.5], [2, 21]]),
      ]);
      const records = c.decodeRecords('senml-cbor', payload, { basePath: { objectId: 0 }, types: registry });
      assert.deepStrictEqual(records.map((r) => [r.value, r.time]), [[20, 1700000000], [21, 1700000030.5]]);
    });

    it('makes times below 2^28 relative to now (RFC 8428 §4.5.3)', () => {
      const before = Date.now() / 1000;
      const records = c.decodeRecords('senml-json', Buffer.from('[{"bn":"/3303/0/5700","t":-10,"v":1},{"t":0,"v":2}]'), { basePath: { objectId: 0 } });
      const after = Date.now() / 1000;
      assert.ok(records[0].time >= before - 10 && records[0].time <= after - 10, String(records[0].time));
      assert.ok(records[1].time >= before && records[1].time <= after);
    });

    it('adds no time to records without one, refuses a non-numeric time, and picks the newest value for the composite', () => {
      const plain = c.decodeRecords('senml-json', Buffer.from('[{"bn":"/3303/0/5700","v":1}]'), { basePath: { objectId: 0 } });
      assert.strictEqual('time' in plain[0], false);
      assert.throws(() => c.decodeRecords('senml-json', Buffer.from('[{"bn":"/3303/0/5700","t":"x","v":1}]'), { basePath: { objectId: 0 } }), c.DecodeError);
      assert.throws(() => c.decodeRecords('senml-cbor', c.encodeCbor([new Map([[-2, '/3303/0/5700'], [6, 'x'], [2, 1]])]), { basePath: { objectId: 0 } }), c.DecodeError);
      const outOfOrder = [{ path: temp, value: 2, time: 1700000100 }, { path: temp, value: 1, time: 1700000000 }];
      assert.deepStrictEqual(c.recordsToComposite(outOfOrder), { '/3303/0/5700': 2 });
    });

    it('writes the time of records back as t', () => {
      const records = [{ path: temp, value: 20, time: 1700000000 }, { path: temp, value: 21, time: 1700000060 }];
      for (const format of ['senml-json', 'senml-cbor']) {
        const buf = c.encodeRecords(format, records, { basePath: { objectId: 0 } });
        assert.deepStrictEqual(c.decodeRecords(format, buf, { basePath: { objectId: 0 }, types: registry }).map((r) => [r.value, r.time]), [[20, 1700000000], [21, 1700000060]]);
      }
    });
  });
});
