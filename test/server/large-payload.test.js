'use strict';
// Bodies larger than one datagram between the server and the software client, both ways through
// RFC 7959: a 64 KB firmware package written to /5/0/0 (Block1) and a 64 KB opaque resource read
// and observed (Block2). Loopback, real sockets.
const assert = require('assert');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { nextEvent } = require('../helpers');

function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 9)) & 0xff;
  return b;
}

describe('64 KB through block-wise transfers', function () {
  this.timeout(20000);
  let server;
  let client;

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 10000 });
    server.on('warning', () => {});
    await server.start();
    client = new Lwm2mClient({ endpoint: 'big', server: { host: '127.0.0.1', port: server.address().port }, lifetime: 60, localAddress: '127.0.0.1' });
    client.on('warning', () => {});
    client.setInstance(5, 0, { 1: '', 3: 0, 5: 0 });
    client.setInstance(6, 0, { 0: 25.03, 1: 121.56, 4: pattern(65536, 7), 5: new Date(0) });
    await client.start();
  });
  afterEach(async () => {
    await client.stop();
    await server.stop();
  });

  for (const format of ['opaque', 'senml-cbor', 'tlv']) {
    it(`writes a 64 KB package to /5/0/0 as ${format}, and it arrives intact`, async () => {
      const firmware = pattern(65536, format.length);
      const written = nextEvent(client, 'write', 15000);
      assert.strictEqual((await server.write('big', '/5/0/0', firmware, { format })).code, '2.04');
      const [path, records] = await written;
      assert.strictEqual(path, '/5/0/0');
      assert.strictEqual(records.length, 1);
      assert.ok(Buffer.isBuffer(records[0].value) && records[0].value.equals(firmware), `got ${records[0].value.length} bytes`);
    });
  }

  it('reads a 64 KB opaque resource (/6/0/4) through Block2, as opaque and as SenML CBOR', async () => {
    for (const format of ['opaque', 'senml-cbor']) {
      const { value } = await server.read('big', '/6/0/4', { format });
      assert.ok(Buffer.isBuffer(value) && value.equals(pattern(65536, 7)), `${format}: got ${value && value.length} bytes`);
    }
  });

  it('observes a 64 KB resource: the first answer and a notification arrive whole (RFC 7959 §2.6)', async () => {
    const first = await server.observe('big', '/6/0/4', { format: 'opaque' });
    assert.ok(first.value.equals(pattern(65536, 7)));
    const notified = nextEvent(server, 'notify', 15000);
    client.setValue('/6/0/4', pattern(65536, 99));
    const n = await notified;
    assert.ok(Buffer.isBuffer(n.value) && n.value.equals(pattern(65536, 99)), `notification of ${n.value.length} bytes`);
  });
});
