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

  function startClient(endpoint, port, value = 21.5) {
    const client = new Lwm2mClient({ endpoint, server: { host: '127.0.0.1', port }, lifetime: 300, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: value, 5701: 'Cel' });
    clients.push(client);
    return client.start().then(() => client);
  }

  /** The flow deployed, and one device registered and auto-observed through it. */
  async function observedDevice() {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    const before = await running('srv');
    const obsOut = collector(helper.getNode('obsOut'));
    const client = await startClient('kept-1', port);
    await obsOut.next((m) => m.topic === 'observe' && m.lwm2m.auto, 5000);
    return { port, before, client };
  }

  it('keeps socket, registrations and observations over Full deploys when the server\'s settings did not change', async () => {
    const { port, before, client } = await observedDevice();

    for (const type of ['full', 'flows', 'full']) {
      await helper.setFlows(flow(port), type);
      const srv = await running('srv');
      assert.strictEqual(srv.server, before.server, `${type} deploy: the same server, socket and all`);
      assert.deepStrictEqual(srv.server.listRegistrations().map((r) => r.endpoint), ['kept-1']);
      assert.strictEqual(srv.server.isObserving('kept-1', '/3303/0/5700'), true, `${type} deploy: still observing`);
    }
    // the notification reaches the new observe node, without a new Observe
    const obsAfter = collector(helper.getNode('obsOut'));
    client.setValue('/3303/0/5700', 23.25);
    const note = await obsAfter.next((m) => m.topic === 'notify', 5000);
    assert.strictEqual(note.payload, 23.25);
    const readOut = collector(helper.getNode('readOut'));
    helper.getNode('read').receive({ payload: 1 });
    assert.strictEqual((await readOut.next(() => true, 5000)).payload, 23.25);
  });

  it('carries registrations to a new socket when settings changed; the next Update restores the auto-observation', async () => {
    const { port, before, client } = await observedDevice();

    const changed = flow(port);
    changed[1].timeout = 3;
    await helper.setFlows(changed, 'full');
    const srv = await running('srv');
    assert.notStrictEqual(srv.server, before.server, 'a new server for new settings');
    assert.strictEqual(before.server.running, false, 'the old one stopped');
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

  it('keeps 1,000 devices and their observations over a Full deploy', async function () {
    this.timeout(60000);
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port));
    const before = await running('srv');
    const N = 1000;
    let observed = 0;
    const allObserved = new Promise((resolve) => {
      helper.getNode('obsOut').on('input', (m) => { if (m.topic === 'observe' && ++observed === N) resolve(); });
    });
    for (let i = 0; i < N; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => startClient(`fleet-${i + j}`, port, i + j)));
    }
    await allObserved;
    await helper.setFlows(flow(port), 'full');
    const srv = await running('srv');
    assert.strictEqual(srv.server.registrationCount, N);
    assert.strictEqual(srv.server.listObservations().length, N);
    const notes = collector(helper.getNode('obsOut'));
    clients[N - 1].setValue('/3303/0/5700', -5);
    assert.strictEqual((await notes.next((m) => m.topic === 'notify' && m.endpoint === `fleet-${N - 1}`, 5000)).payload, -5);
    assert.strictEqual(srv.server, before.server);
  });

  it('gets an auto-observation that failed again with backoff, and reports the failure to Catch', async () => {
    const port = await freeUdpPort();
    const nodes = flow(port);
    nodes.push({ id: 'catcher', z: 'f1', type: 'catch', scope: ['obs'], uncaught: false, wires: [['caught']] }, { id: 'caught', z: 'f1', type: 'helper' });
    await helper.load([...NODES, require('@node-red/nodes/core/common/25-catch.js')], nodes);
    await running('srv');
    const caught = collector(helper.getNode('caught'));
    const obsOut = collector(helper.getNode('obsOut'));
    const client = new Lwm2mClient({ endpoint: 'late-1', server: { host: '127.0.0.1', port }, lifetime: 300, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    clients.push(client);
    await client.start(); // no /3303 yet: the auto-observation gets 4.04
    const failure = await caught.next(() => true, 5000);
    assert.strictEqual(failure.code, '4.04');
    assert.match(failure.error.message, /auto-observe: late-1 \/3303\/0\/5700/);
    client.setInstance(3303, 0, { 5700: 19, 5701: 'Cel' });
    // first retry 5 s later, with no Update from the device
    const observed = await obsOut.next((m) => m.topic === 'observe' && m.lwm2m.auto, 9000);
    assert.strictEqual(observed.payload, 19);
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
