'use strict';
// A Full deploy restarts every node: the lwm2m-server node that replaces the stopped one (same id)
// takes over its registrations, so flows reach devices at once instead of after their next
// Register; an auto-observation missing after the deploy is started again at the device's next
// Update. A deleted server node hands nothing on.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, collector, delay } = require('../helpers');

const NODES = ['lwm2m-server', 'lwm2m-register', 'lwm2m-read', 'lwm2m-observe'].map((n) => require(`../../nodes/${n}.js`));
helper.init(require.resolve('node-red'));

describe('deploys keep registrations', function () {
  this.timeout(20000);
  const clients = [];
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => {});
    await helper.unload();
  });

  function flow(port, serverId = 'srv') {
    return [
      { id: 'f1', type: 'tab', label: 'deploy' },
      { id: serverId, type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2 },
      { id: 'read', z: 'f1', type: 'lwm2m-read', server: serverId, endpoint: 'kept-1', path: '/3303/0/5700', format: 'auto', wires: [['readOut']] },
      { id: 'obs', z: 'f1', type: 'lwm2m-observe', server: serverId, endpoint: '', path: '', format: 'auto', autoObserve: true, autoPaths: '/3303/0/5700', wires: [['obsOut']] },
      { id: 'readOut', z: 'f1', type: 'helper' },
      { id: 'obsOut', z: 'f1', type: 'helper' },
    ];
  }

  async function running(id) {
    for (let i = 0; i < 100; i++) {
      const n = helper.getNode(id);
      if (n && n.server && n.server.running) return n;
      await delay(20);
    }
    throw new Error(`${id} did not start`);
  }

  it('carries registrations over a Full deploy; the next Update restores the auto-observation', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    await running('srv');
    const obsOut = collector(helper.getNode('obsOut'));
    const client = new Lwm2mClient({ endpoint: 'kept-1', server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel' });
    clients.push(client);
    await client.start();
    await obsOut.next((m) => m.topic === 'observe' && m.lwm2m.auto, 5000);

    await helper.setFlows(flow(port), 'full');
    const srv = await running('srv');
    assert.deepStrictEqual(srv.server.listRegistrations().map((r) => r.endpoint), ['kept-1'], 'known right after the deploy');
    const readOut = collector(helper.getNode('readOut'));
    helper.getNode('read').receive({ payload: 1 });
    assert.strictEqual((await readOut.next(() => true, 5000)).payload, 21.5);

    // observations do not survive a new socket: the device's next Update starts it again
    assert.strictEqual(srv.server.isObserving('kept-1', '/3303/0/5700'), false);
    const obsAfter = collector(helper.getNode('obsOut'));
    await client.update();
    await obsAfter.next((m) => m.topic === 'observe' && m.lwm2m.auto, 5000);
    assert.strictEqual(srv.server.isObserving('kept-1', '/3303/0/5700'), true);
  });

  it('hands nothing on from a server node that was deleted', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, 'srv-a'));
    await running('srv-a');
    const client = new Lwm2mClient({ endpoint: 'kept-1', server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    clients.push(client);
    await client.start();
    await helper.setFlows(flow(port, 'srv-b'), 'full'); // srv-a deleted, srv-b new
    const b = await running('srv-b');
    assert.deepStrictEqual(b.server.listRegistrations(), []);
    await helper.setFlows(flow(port, 'srv-a'), 'full'); // a new srv-a: the deleted one's devices are not its
    const a = await running('srv-a');
    assert.deepStrictEqual(a.server.listRegistrations(), []);
  });
});
