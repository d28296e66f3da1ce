'use strict';
// The software client against the real server: what the device side answers and when it notifies.
const assert = require('assert');
const { Lwm2mServer, RequestFailedError } = require('../../dist/lwm2m/server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { nextEvent, delay } = require('../helpers');

describe('software LwM2M client', function () {
  this.timeout(15000);
  let server;
  let client;

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 2000 });
    server.on('warning', () => {});
    await server.start();
    client = new Lwm2mClient({ endpoint: 'c1', server: { host: '127.0.0.1', port: server.address().port }, lifetime: 60, localAddress: '127.0.0.1' });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: 20, 5701: 'Cel' });
    await client.start();
  });
  afterEach(async () => {
    await client.stop();
    await server.stop();
  });

  it('announces its objects without the Security object', () => {
    const reg = server.getRegistration('c1');
    assert.deepStrictEqual(reg.objects.map((o) => o.objectId), [1, 3, 3303]);
    assert.deepStrictEqual(reg.supportedFormats, [110]); // one ct on </>: SenML JSON for 1.1
  });

  it('answers an observation of something absent with an error code, not an empty 2.05', async () => {
    await assert.rejects(server.observe('c1', '/3303/0/5601'), (e) => e instanceof RequestFailedError && e.code === '4.04');
    await assert.rejects(server.observe('c1', '/3304/0'), (e) => e instanceof RequestFailedError && e.code === '4.04');
    assert.strictEqual(client.isObserved('/3303/0/5601'), false);
  });

  it('holds notifications back for pmin and skips changes below st', async () => {
    assert.strictEqual((await server.writeAttributes('c1', '/3303/0/5700', { pmin: 1, st: 1 })).code, '2.04');
    await server.observe('c1', '/3303/0/5700');
    const values = [];
    server.on('notify', (n) => values.push([n.value, Date.now()]));
    const started = Date.now();
    client.setValue('/3303/0/5700', 20.5); // below st: not notified
    await delay(100);
    client.setValue('/3303/0/5700', 22); // notified, but not before pmin has passed since the first answer
    await nextEvent(server, 'notify', 3000);
    assert.deepStrictEqual(values.map((v) => v[0]), [22]);
    assert.ok(values[0][1] - started >= 800, `notified after ${values[0][1] - started} ms, pmin is 1 s`);
  });

  it('creates instances without an id from SenML JSON, SenML CBOR and LwM2M CBOR (names relative to the object)', async () => {
    let expected = 1;
    for (const format of ['senml-json', 'senml-cbor', 'lwm2m-cbor', 'tlv']) {
      const created = await server.create('c1', '/3303', { 5700: expected + 0.5, 5701: format }, { format });
      assert.deepStrictEqual(created, { code: '2.01', location: `/3303/${expected}` });
      assert.deepStrictEqual([client.getValue(`/3303/${expected}/5700`), client.getValue(`/3303/${expected}/5701`)], [expected + 0.5, format]);
      expected++;
    }
  });

  it('refuses writes to read-only resources and unknown instances, executes, creates and deletes', async () => {
    await assert.rejects(server.write('c1', '/3303/0/5700', 1), (e) => e.code === '4.05');
    await assert.rejects(server.write('c1', '/3303/9/5750', 'x'), (e) => e.code === '4.04');
    await assert.rejects(server.delete('c1', '/3/0'), (e) => e.code === '4.05');
    const updated = nextEvent(server, 'update', 3000);
    assert.strictEqual((await server.execute('c1', '/1/0/8')).code, '2.04'); // Registration Update Trigger
    await updated;
    assert.strictEqual((await server.write('c1', '/1/0/1', 300)).code, '2.04'); // lifetime: the client updates
    const [reg] = await nextEvent(server, 'update', 3000);
    assert.strictEqual(reg.lifetime, 300);
  });

  it('observes and writes several paths at once (Observe-Composite, Write-Composite)', async () => {
    client.setInstance(3304, 0, { 5700: 40 });
    const started = await server.observeComposite('c1', ['/3303/0/5700', '/3304/0/5700']);
    assert.deepStrictEqual(started.value, { '/3303/0/5700': 20, '/3304/0/5700': 40 });
    const notified = nextEvent(server, 'notify');
    client.setValue('/3304/0/5700', 41.5);
    const n = await notified;
    assert.deepStrictEqual(n.path, ['/3303/0/5700', '/3304/0/5700']);
    assert.deepStrictEqual(n.value, { '/3303/0/5700': 20, '/3304/0/5700': 41.5 });
    assert.strictEqual((await server.writeComposite('c1', { '/3303/0/5750': 'lab', '/3/0/14': '+09:00' })).code, '2.04');
    assert.deepStrictEqual([client.getValue('/3303/0/5750'), client.getValue('/3/0/14')], ['lab', '+09:00']);
    await server.cancelObservation('c1', ['/3303/0/5700', '/3304/0/5700']);
    assert.strictEqual(server.listObservations('c1').length, 0);
  });

  it('sends values with Send (/dp)', async () => {
    const sent = nextEvent(server, 'send');
    assert.strictEqual(await client.send(['/3303/0/5700']), '2.04');
    assert.deepStrictEqual((await sent).value, { '/3303/0/5700': 20 });
  });
});

describe('IPv6', function () {
  this.timeout(10000);
  it('registers and answers over ::1', async () => {
    const server = new Lwm2mServer({ port: 0, address: '::1', type: 'udp6' });
    await server.start();
    const client = new Lwm2mClient({ endpoint: 'v6', server: { host: '::1', port: server.address().port }, type: 'udp6', localAddress: '::1' });
    client.on('warning', () => {});
    try {
      await client.start();
      assert.strictEqual(server.getRegistration('v6').address, '::1');
      assert.strictEqual(client.getValue('/0/0/0'), `coap://[::1]:${server.address().port}`);
      assert.strictEqual((await server.read('v6', '/3/0/0')).value, 'node-red-contrib-lwm2m-kit');
    } finally {
      await client.stop();
      await server.stop();
    }
  });
});
