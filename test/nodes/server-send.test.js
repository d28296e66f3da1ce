'use strict';
// Send (/dp) through a Node-RED runtime: the lwm2m-register node outputs what devices push, from
// the software client (SenML CBOR) and from a raw device with time-stamped SenML JSON.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { freeUdpPort, collector, delay } = require('../helpers');

const serverNode = require('../../nodes/lwm2m-server.js');
const registerNode = require('../../nodes/lwm2m-register.js');

helper.init(require.resolve('node-red'));

describe('lwm2m-register outputs Send (/dp) data', function () {
  this.timeout(30000);
  let port;
  const closers = [];

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    port = await freeUdpPort();
  });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close().catch(() => {})));
    await helper.unload();
  });

  async function setup() {
    await helper.load([serverNode, registerNode], [
      { id: 'f1', type: 'tab', label: 'test' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2, format: 'auto' },
      { id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['out']] },
      { id: 'only', z: 'f1', type: 'lwm2m-register', server: 'srv', endpoint: 'someone-else', wires: [['otherOut']] },
      { id: 'out', z: 'f1', type: 'helper' },
      { id: 'otherOut', z: 'f1', type: 'helper' },
    ]);
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.running; i++) await delay(20);
    assert.ok(srv.server.running, 'server did not start listening');
    return { out: collector(helper.getNode('out')), other: collector(helper.getNode('otherOut')) };
  }

  it('outputs topic "send" with the composite value, the records and the format', async () => {
    const { out, other } = await setup();
    const client = new Lwm2mClient({ endpoint: 'sender', server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1' });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel' });
    closers.push(() => client.stop());
    await client.start();
    await out.next((m) => m.topic === 'register');
    assert.strictEqual(await client.send(['/3303/0/5700', '/3/0/0']), '2.04');
    const msg = await out.next((m) => m.topic === 'send');
    assert.strictEqual(msg.endpoint, 'sender');
    assert.deepStrictEqual(msg.payload, { '/3303/0/5700': 21.5, '/3/0/0': 'node-red-contrib-lwm2m-kit' });
    assert.strictEqual(msg.lwm2m.format, 'senml-cbor');
    assert.deepStrictEqual(msg.lwm2m.records, [{ path: '/3303/0/5700', value: 21.5 }, { path: '/3/0/0', value: 'node-red-contrib-lwm2m-kit' }]);
    await delay(100);
    assert.strictEqual(other.seen.filter((m) => m.topic === 'send').length, 0, 'a node for another endpoint stays quiet');
  });

  it('keeps every time-stamped value of a resource in msg.lwm2m.records', async () => {
    const { out } = await setup();
    const device = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 2000 });
    device.setHandler((ex) => ex.respond({ code: '4.04' }));
    await device.open();
    closers.push(() => device.close());
    const peer = { address: '127.0.0.1', port };
    const reg = await device.request(peer, { method: 'POST', path: '/rd', query: ['ep=logger', 'lwm2m=1.1'], contentFormat: 40, payload: Buffer.from('</>;ct=110,</3303/0>') });
    assert.strictEqual(reg.code, '2.01');
    await out.next((m) => m.topic === 'register');
    const payload = Buffer.from(JSON.stringify([{ bn: '/3303/0/5700', bt: 1700000000, v: 20.5 }, { t: 60, v: 21 }, { t: 120, v: 21.5 }]));
    assert.strictEqual((await device.request(peer, { method: 'POST', path: '/dp', contentFormat: 110, payload })).code, '2.04');
    const msg = await out.next((m) => m.topic === 'send');
    assert.strictEqual(msg.endpoint, 'logger');
    assert.deepStrictEqual(msg.payload, { '/3303/0/5700': 21.5 });
    assert.deepStrictEqual(msg.lwm2m, {
      format: 'senml-json',
      records: [
        { path: '/3303/0/5700', value: 20.5, time: 1700000000 },
        { path: '/3303/0/5700', value: 21, time: 1700000060 },
        { path: '/3303/0/5700', value: 21.5, time: 1700000120 },
      ],
    });
  });
});
