'use strict';
// Numbers that cannot be delivered exactly: integers beyond ±2^53 (they would arrive silently
// rounded) are refused by every decoder; NaN and ±Infinity only reach a flow for a Float resource
// in a format with IEEE floats (TLV, LwM2M CBOR, SenML CBOR), never from JSON or text; a flow
// cannot write them either.
const assert = require('assert');
const { DecodeError, decodeRecords, encodeRecords, encodeCbor, coerceValue } = require('../../dist/lwm2m/content');
const { ObjectRegistry } = require('../../dist/lwm2m/model');

const types = ObjectRegistry.withBuiltins();
const FLOAT = { objectId: 3303, instanceId: 0, resourceId: 5700 }; // Sensor Value
const INTEGER = { objectId: 3, instanceId: 0, resourceId: 9 }; // Battery Level

/** A TLV resource value (type 0b11, 8-bit identifier, 8-bit length). */
function tlv(resourceId, bytes) {
  return Buffer.concat([Buffer.from([0xc8, resourceId, bytes.length]), bytes]);
}

function decode(format, payload, path) {
  return decodeRecords(format, payload, { basePath: path, types })[0].value;
}

describe('numbers that cannot be delivered exactly', () => {
  it('TLV: 64-bit integers beyond ±2^53 are refused, safe ones and IEEE NaN for Float delivered', () => {
    const big = Buffer.alloc(8);
    big.writeBigInt64BE(2n ** 62n);
    assert.throws(() => decode('tlv', tlv(9, big), INTEGER), DecodeError);
    const safe = Buffer.alloc(8);
    safe.writeBigInt64BE(BigInt(Number.MAX_SAFE_INTEGER));
    assert.strictEqual(decode('tlv', tlv(9, safe), INTEGER), Number.MAX_SAFE_INTEGER);
    const nan = Buffer.alloc(8);
    nan.writeDoubleBE(NaN);
    assert.ok(Number.isNaN(decode('tlv', Buffer.concat([Buffer.from([0xe8, 0x16, 0x44, 0x08]), nan]), FLOAT)));
  });

  it('LwM2M CBOR: a 64-bit integer is refused, NaN is a Float\'s only', () => {
    const payload = (value) => encodeCbor(new Map([[3303, new Map([[0, new Map([[5700, value]])]])]]));
    const intPayload = (value) => encodeCbor(new Map([[3, new Map([[0, new Map([[9, value]])]])]]));
    assert.throws(() => decode('lwm2m-cbor', intPayload(2n ** 64n - 1n), { objectId: 3 }), DecodeError);
    assert.throws(() => decode('lwm2m-cbor', intPayload(2 ** 60), { objectId: 3 }), DecodeError);
    assert.throws(() => decode('lwm2m-cbor', intPayload(NaN), { objectId: 3 }), DecodeError);
    assert.ok(Number.isNaN(decode('lwm2m-cbor', payload(NaN), { objectId: 3303 })));
    assert.strictEqual(decode('lwm2m-cbor', payload(-Infinity), { objectId: 3303 }), -Infinity);
  });

  it('SenML: JSON cannot carry Infinity (1e999), SenML CBOR floats can for Float only', () => {
    const json = Buffer.from('[{"bn":"/3303/0/","n":"5700","v":1e999}]');
    assert.throws(() => decode('senml-json', json, { objectId: 3303 }), DecodeError);
    const cbor = (name, v) => encodeCbor([new Map([[-2, '/3303/0/'], [0, name], [2, v]])]);
    assert.strictEqual(decode('senml-cbor', cbor('5700', Infinity), { objectId: 3303 }), Infinity);
    const intCbor = encodeCbor([new Map([[-2, '/3/0/'], [0, '9'], [2, 2n ** 63n]])]);
    assert.throws(() => decode('senml-cbor', intCbor, { objectId: 3 }), DecodeError);
  });

  it('text: "NaN", "Infinity" and integers beyond 2^53 are refused', () => {
    for (const text of ['NaN', 'Infinity', '-Infinity']) assert.throws(() => decode('text', Buffer.from(text), FLOAT), DecodeError, text);
    assert.throws(() => decode('text', Buffer.from('18446744073709551615'), INTEGER), DecodeError);
    assert.strictEqual(decode('text', Buffer.from('21.5'), FLOAT), 21.5);
  });

  it('flows cannot write NaN, ±Infinity or unsafe integers', () => {
    assert.throws(() => coerceValue(NaN, 'float', '/3303/0/5700'));
    assert.throws(() => coerceValue(Infinity, 'float', '/3303/0/5700'));
    assert.throws(() => coerceValue(2 ** 64, 'integer', '/3/0/9'));
    assert.throws(() => encodeRecords('senml-json', [{ path: FLOAT, value: NaN }], { types }));
    assert.strictEqual(coerceValue(9007199254740991, 'integer', '/3/0/9'), 9007199254740991);
  });
});
