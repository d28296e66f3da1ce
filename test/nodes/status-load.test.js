'use strict';
// A registration storm through a Node-RED flow must not become a status storm: the server node's
// device count and each flow node's status change at most a few times a second, the last state
// always shown; every registration still reaches the flow, its payload a plain copy.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { events } = require('@node-red/util');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { freeUdpPort, collector, delay } = require('../helpers');

const serverNode = require('../../nodes/lwm2m-server.js');
const registerNode = require('../../nodes/lwm2m-register.js');
const readNode = require('../../nodes/lwm2m-read.js');

helper.init(require.resolve('node-red'));

describe('status under load', function () {
  this.timeout(30000);
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('coalesces status messages during a registration storm and a burst of reads; every event reaches the flow', async () => {
    const port = await freeUdpPort();
    await helper.load([serverNode, registerNode, readNode], [
      { id: 'f1', type: 'tab', label: 'load' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2 },
      { id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['out']] },
      { id: 'read', z: 'f1', type: 'lwm2m-read', server: 'srv', path: '/3/0/0', format: 'text', wires: [['readOut']] },
      { id: 'out', z: 'f1', type: 'helper' },
      { id: 'readOut', z: 'f1', type: 'helper' },
    ]);
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.running; i++) await delay(20);
    const statuses = new Map();
    const last = new Map();
    const onStatus = (e) => {
      statuses.set(e.id, (statuses.get(e.id) || 0) + 1);
      last.set(e.id, e.status);
    };
    events.on('node-status', onStatus);
    try {
      const out = collector(helper.getNode('out'));
      const devices = [];
      for (let s = 0; s < 8; s++) {
        const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
        t.setHandler((ex) => ex.respond({ code: '2.05', contentFormat: 0, payload: Buffer.from('acme') }));
        await t.open();
        devices.push(t);
      }
      const N = 800;
      const t0 = Date.now();
      await Promise.all(devices.map(async (t, s) => {
        for (let i = s; i < N; i += devices.length) {
          const r = await t.request({ address: '127.0.0.1', port }, { method: 'POST', path: '/rd', query: [`ep=load-${i}`, 'lt=300'], contentFormat: 40, payload: Buffer.from('</1/0>,</3/0>') });
          assert.strictEqual(r.code, '2.01');
        }
      }));
      const first = await out.next((m) => m.topic === 'register', 2000);
      assert.strictEqual(typeof first.payload.registeredAt, 'string', 'dates as ISO strings');
      assert.ok(Array.isArray(first.payload.objects));
      // reads issued from the flow, all at once
      const readOut = collector(helper.getNode('readOut'));
      const read = helper.getNode('read');
      for (let i = 0; i < 200; i++) read.receive({ endpoint: `load-${i}` });
      for (let i = 0; i < 200; i++) await readOut.next(() => true, 5000);
      await delay(600); // the last state shows within the interval
      const seconds = (Date.now() - t0) / 1000;
      assert.strictEqual(srv.server.registrationCount, N);
      for (const id of ['reg', 'read']) {
        const n = statuses.get(id) || 0;
        assert.ok(n <= 4 * seconds + 4, `${id}: ${n} status messages in ${seconds.toFixed(1)} s`);
      }
      assert.match(last.get('reg').text, new RegExp(`· ${N} devices$`), 'the last count is shown');
      for (const t of devices) await t.close();
    } finally {
      events.removeListener('node-status', onStatus);
    }
  });

  it('shows a failed request as its code and meaning, and keeps it until the next request', async () => {
    const port = await freeUdpPort();
    await helper.load([serverNode, registerNode, readNode], [
      { id: 'f1', type: 'tab', label: 'status' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2 },
      { id: 'read', z: 'f1', type: 'lwm2m-read', server: 'srv', endpoint: 'st-1', path: '/3/0/999', format: 'text', wires: [[]] },
    ]);
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.running; i++) await delay(20);
    const last = new Map();
    const onStatus = (e) => last.set(e.id, e.status);
    events.on('node-status', onStatus);
    const device = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    device.setHandler((ex) => ex.respond({ code: '4.04' }));
    await device.open();
    try {
      const register = (ep) => device.request({ address: '127.0.0.1', port }, { method: 'POST', path: '/rd', query: [`ep=${ep}`, 'lt=300'], contentFormat: 40, payload: Buffer.from('</3/0>') });
      await register('st-1');
      await delay(600);
      helper.getNode('read').receive({ payload: 1 });
      await delay(400);
      assert.strictEqual(last.get('read').text, '4.04 Not Found');
      await register('st-2'); // the server's device count changes: the error stays shown
      await delay(700);
      assert.strictEqual(last.get('read').text, '4.04 Not Found');
    } finally {
      events.removeListener('node-status', onStatus);
      await device.close();
    }
  });
});
