'use strict';
// Bounded run of the datagram fuzzer (npm run fuzz runs 200k cases with a fresh seed).
const assert = require('assert');
const { fuzzServer } = require('./coap-fuzz');

describe('CoAP message layer fuzzing (bounded)', function () {
  this.timeout(30000);
  for (const seed of [1, 2, 3]) {
    it(`takes 3000 fuzzed datagrams (seed ${seed}) without a throw, a 5.00 or internal text, and still registers devices`, async () => {
      const r = await fuzzServer({ cases: 3000, seed });
      assert.deepStrictEqual(r.uncaught.map(String), []);
      assert.deepStrictEqual(r.textAnswers.map((b) => b.toString('hex')), []);
      assert.ok(r.stillServes, 'a valid Register after the fuzzing got 2.01');
    });
  }
});
