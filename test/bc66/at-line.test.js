'use strict';
const assert = require('assert');
const { LineSplitter, parseFields, splitResult, finalResult, atArg } = require('../../dist/bc66/at-line');
const { toAtValue, fromAtValue } = require('../../dist/bc66/values');
const { parseObjectList } = require('../../dist/bc66');

describe('BC66 AT line protocol', () => {
  it('splits a byte stream into lines across chunks, CR, LF and garbage', () => {
    const lines = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('\r\nO');
    s.push(Buffer.from('K\r\n+QLWURC: "read",62953,9,'));
    s.push('0,0\r\n\x00\x07\r\n\nERROR\r+CME ERROR: 4\n');
    assert.deepStrictEqual(lines, ['OK', '+QLWURC: "read",62953,9,0,0', 'ERROR', '+CME ERROR: 4']);
  });

  it('caps a line that never ends', () => {
    const lines = [];
    const s = new LineSplitter((l) => lines.push(l));
    s.push('x'.repeat(5000));
    assert.strictEqual(lines.length, 1);
    assert.ok(lines[0].length <= 1400);
  });

  it('reads quoted and bare fields, commas inside quotes', () => {
    assert.deepStrictEqual(parseFields('0,"1.2.3.4","5683",urn:imei:1,86400,3'), ['0', '1.2.3.4', '5683', 'urn:imei:1', '86400', '3']);
    assert.deepStrictEqual(parseFields('"a,b",c'), ['a,b', 'c']);
  });

  it('parses the reference\'s worked examples verbatim', () => {
    assert.deepStrictEqual(splitResult('+QLWURC: "write",36560,9,0,0,2,7,"5155454354454C",0'),
      { name: '+QLWURC', fields: ['write', '36560', '9', '0', '0', '2', '7', '5155454354454C', '0'] });
    assert.deepStrictEqual(splitResult('+QLWURC: "read",62953,9,0,0').fields, ['read', '62953', '9', '0', '0']);
    assert.deepStrictEqual(splitResult('+QLWURC: "execute",39040,15,0,5').fields, ['execute', '39040', '15', '0', '5']);
    assert.deepStrictEqual(splitResult('+QLWURC: "observe",624,0,9,0,0').fields, ['observe', '624', '0', '9', '0', '0']);
    assert.deepStrictEqual(fromAtValue(2, '5155454354454C'), Buffer.from('QUECTEL'));
    assert.strictEqual(fromAtValue(2, '0102', true), 258, 'a numeric resource written as opaque big-endian bytes');
    assert.deepStrictEqual(toAtValue('abcde'), { type: 1, len: 5, text: '"abcde"' });
    assert.deepStrictEqual(toAtValue(28.3), { type: 4, len: 4, text: '28.3' });
    assert.deepStrictEqual(toAtValue(Buffer.from('0123456789')), { type: 2, len: 10, text: '"30313233343536373839"' });
    assert.deepStrictEqual(toAtValue(true), { type: 5, len: 1, text: '1' });
  });

  it('recognises final results, including the misspelt +CMEE ERROR', () => {
    assert.deepStrictEqual(finalResult('OK'), { ok: true });
    assert.deepStrictEqual(finalResult('ERROR'), { ok: false, text: 'ERROR' });
    assert.deepStrictEqual(finalResult('+CME ERROR: 4'), { ok: false, code: 4, text: '+CME ERROR: 4' });
    assert.deepStrictEqual(finalResult('+CMEE ERROR: 32'), { ok: false, code: 32, text: '+CMEE ERROR: 32' });
    assert.strictEqual(finalResult('+QLWREG: 0'), undefined);
    assert.strictEqual(atArg('a"b'), '"a\'b"');
    assert.strictEqual(atArg(5683), '5683');
  });

  it('reads the object list of the config node', () => {
    assert.deepStrictEqual(parseObjectList('3303/0: 5700, 5701\n/3311/1:5850'), [
      { objectId: 3303, instanceId: 0, resources: [5700, 5701] }, { objectId: 3311, instanceId: 1, resources: [5850] },
    ]);
    assert.throws(() => parseObjectList('3303: 5700'), /not like/);
  });
});
