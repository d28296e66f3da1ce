'use strict';
// A real Node-RED runtime with the server-role nodes, and the software LwM2M client as a real
// device over UDP on loopback: registration events, read/write/execute/observe/discover/create/
// delete through the nodes, errors to Catch, update/deregister/expiry, and redeploys.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, collector, delay } = require('../helpers');

const serverNode = require('../../nodes/lwm2m-server.js');
const registerNode = require('../../nodes/lwm2m-register.js');
const readNode = require('../../nodes/lwm2m-read.js');
const writeNode = require('../../nodes/lwm2m-write.js');
const executeNode = require('../../nodes/lwm2m-execute.js');
const observeNode = require('../../nodes/lwm2m-observe.js');
const NODES = [serverNode, registerNode, readNode, writeNode, executeNode, observeNode];

helper.init(require.resolve('node-red'));

function flow(port, extra = {}) {
  return withTab([
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: extra.timeout || 2, format: 'auto', queueAwake: 93 },
    { id: 'reg', type: 'lwm2m-register', server: 'srv', wires: [['regOut']] },
    { id: 'read', type: 'lwm2m-read', server: 'srv', endpoint: 'dev-1', path: '/3/0/0', format: 'auto', named: !!extra.named, wires: [['readOut']] },
    { id: 'write', type: 'lwm2m-write', server: 'srv', endpoint: 'dev-1', path: '', mode: '', format: 'auto', ...(extra.writeValue ? { value: extra.writeValue[0], valueType: extra.writeValue[1] } : {}), wires: [['writeOut']] },
    { id: 'exec', type: 'lwm2m-execute', server: 'srv', endpoint: 'dev-1', path: '/3/0/4', wires: [['execOut']] },
    { id: 'obs', type: 'lwm2m-observe', server: 'srv', endpoint: '', path: '', format: 'auto', autoObserve: !!extra.autoPaths, autoPaths: extra.autoPaths || '', wires: [['obsOut']] },
    { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['catchOut']] },
    ...['regOut', 'readOut', 'writeOut', 'execOut', 'obsOut', 'catchOut'].map((id) => ({ id, type: 'helper' })),
  ]);
}

/** Flow nodes belong to a tab (a Catch node needs one); the config node does not. */
function withTab(nodes) {
  return [{ id: 'f1', type: 'tab', label: 'test' }, ...nodes.map((n) => (n.type === 'lwm2m-server' ? n : { z: 'f1', ...n }))];
}

async function waitListening(configNode) {
  for (let i = 0; i < 100 && !configNode.server.running; i++) await delay(20);
  assert.ok(configNode.server.running, 'server did not start listening');
}

function device(port, endpoint = 'dev-1', extra = {}) {
  const client = new Lwm2mClient({
    endpoint, server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1', retryDelayMs: [100, 200], ...extra,
  });
  client.on('warning', () => {});
  client.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel' });
  return client;
}

describe('server-role nodes in a Node-RED runtime', function () {
  this.timeout(30000);
  let port;
  let clients = [];

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    port = await freeUdpPort();
    clients = [];
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    await helper.unload();
  });

  async function setup(extra) {
    await helper.load([...NODES, require('@node-red/nodes/core/common/25-catch.js')].filter(Boolean), flow(port, extra));
    const out = {};
    for (const id of ['regOut', 'readOut', 'writeOut', 'execOut', 'obsOut', 'catchOut']) out[id] = collector(helper.getNode(id));
    await waitListening(helper.getNode('srv'));
    return out;
  }

  it('reports registration and reads, writes, executes, discovers, creates and deletes through the nodes', async () => {
    const out = await setup();
    const client = device(port);
    clients.push(client);
    await client.start();
    const reg = await out.regOut.next((m) => m.topic === 'register');
    assert.strictEqual(reg.endpoint, 'dev-1');
    assert.strictEqual(reg.payload.endpoint, 'dev-1');
    assert.ok(reg.payload.objects.some((o) => o.objectId === 3303 && o.instanceId === 0));
    assert.strictEqual(reg.payload.lwm2mVersion, '1.1');

    helper.getNode('read').receive({});
    const manufacturer = await out.readOut.next();
    assert.strictEqual(manufacturer.payload, 'node-red-contrib-lwm2m-kit');
    assert.strictEqual(manufacturer.code, '2.05');

    helper.getNode('read').receive({ path: '/3303/0', format: 'tlv' });
    const instance = await out.readOut.next((m) => m.path === '/3303/0');
    assert.deepStrictEqual(instance.payload, { 5700: 21.5, 5701: 'Cel' });
    assert.strictEqual(instance.format, 'tlv');

    helper.getNode('read').receive({ path: ['/3/0/0', '/3303/0/5700'] });
    const composite = await out.readOut.next((m) => Array.isArray(m.path));
    assert.deepStrictEqual(composite.payload, { '/3/0/0': 'node-red-contrib-lwm2m-kit', '/3303/0/5700': 21.5 });

    helper.getNode('write').receive({ path: '/3/0/14', payload: '+05:30' });
    assert.strictEqual((await out.writeOut.next()).code, '2.04');
    assert.strictEqual(client.getValue('/3/0/14'), '+05:30');

    helper.getNode('write').receive({ path: '/3303/0', payload: { 5750: 'greenhouse' } });
    await out.writeOut.next((m) => m.path === '/3303/0');
    assert.strictEqual(client.getValue('/3303/0/5750'), 'greenhouse');

    const executed = new Promise((resolve) => client.once('execute', (path, args) => resolve({ path, args })));
    helper.getNode('exec').receive({ payload: "0='now'" });
    assert.strictEqual((await out.execOut.next()).code, '2.04');
    assert.deepStrictEqual(await executed, { path: '/3/0/4', args: "0='now'" });

    helper.getNode('read').receive({ topic: 'discover', path: '/3303' });
    const discovered = await out.readOut.next((m) => m.topic === 'discover');
    assert.ok(discovered.payload.some((l) => l.uri === '/3303/0/5700'));

    helper.getNode('write').receive({ topic: 'create', path: '/3303', payload: { 5700: 3.5, 5701: 'Cel' } });
    const created = await out.writeOut.next((m) => m.topic === 'create');
    assert.strictEqual(created.code, '2.01');
    assert.strictEqual(created.lwm2m.location, '/3303/1');
    assert.strictEqual(client.getValue('/3303/1/5700'), 3.5);

    helper.getNode('write').receive({ topic: 'delete', path: '/3303/1' });
    assert.strictEqual((await out.writeOut.next((m) => m.topic === 'delete')).code, '2.02');
    assert.strictEqual(client.getValue('/3303/1'), undefined);
    assert.strictEqual(out.catchOut.seen.length, 0, `unexpected errors: ${JSON.stringify(out.catchOut.seen.map((m) => m.error))}`);
  });

  it('observes, outputs notifications, applies attributes and cancels', async () => {
    const out = await setup();
    const client = device(port);
    clients.push(client);
    await client.start();
    await out.regOut.next((m) => m.topic === 'register');

    helper.getNode('obs').receive({ endpoint: 'dev-1', path: '/3303/0/5700', attributes: { pmin: 0 } });
    const first = await out.obsOut.next((m) => m.topic === 'observe');
    assert.strictEqual(first.payload, 21.5);
    assert.ok(first.lwm2m.observationId);
    client.setValue('/3303/0/5700', 23.25);
    const n1 = await out.obsOut.next((m) => m.topic === 'notify');
    assert.strictEqual(n1.payload, 23.25);
    assert.strictEqual(n1.endpoint, 'dev-1');
    assert.strictEqual(n1.path, '/3303/0/5700');
    client.setValue('/3303/0/5700', 24);
    assert.strictEqual((await out.obsOut.next((m) => m.topic === 'notify')).payload, 24);

    helper.getNode('obs').receive({ topic: 'cancel', endpoint: 'dev-1', path: '/3303/0/5700', active: true });
    await out.obsOut.next((m) => m.topic === 'cancel');
    for (let i = 0; i < 50 && client.isObserved('/3303/0/5700'); i++) await delay(20);
    assert.strictEqual(client.isObserved('/3303/0/5700'), false);
    const before = out.obsOut.seen.filter((m) => m.topic === 'notify').length;
    client.setValue('/3303/0/5700', 30);
    await delay(200);
    assert.strictEqual(out.obsOut.seen.filter((m) => m.topic === 'notify').length, before, 'no notification after cancel');
  });

  it('auto-observes configured paths on every registration, again after re-registration', async () => {
    const out = await setup({ autoPaths: '/3303/0/5700' });
    const client = device(port, 'auto-1');
    clients.push(client);
    await client.start();
    const first = await out.obsOut.next((m) => m.topic === 'observe' && m.endpoint === 'auto-1');
    assert.strictEqual(first.payload, 21.5);
    client.setValue('/3303/0/5700', 19);
    assert.strictEqual((await out.obsOut.next((m) => m.topic === 'notify')).payload, 19);
    // a fresh registration drops the server's observations: the node re-establishes them
    await client.register();
    await out.obsOut.next((m) => m.topic === 'observe' && m.endpoint === 'auto-1');
    client.setValue('/3303/0/5700', 18);
    assert.strictEqual((await out.obsOut.next((m) => m.topic === 'notify' && m.payload === 18)).endpoint, 'auto-1');
  });

  it('sends errors to Catch with msg.code and keeps serving', async () => {
    const out = await setup({ timeout: 1 });
    const client = device(port);
    clients.push(client);
    await client.start();
    await out.regOut.next((m) => m.topic === 'register');

    helper.getNode('read').receive({ endpoint: 'nobody' });
    const unknown = await out.catchOut.next();
    assert.match(unknown.error.message, /no registered device with endpoint "nobody"/);

    helper.getNode('read').receive({ path: '/3/x/0' });
    assert.match((await out.catchOut.next()).error.message, /not a number/);

    helper.getNode('read').receive({ path: '/3303/7' });
    const missing = await out.catchOut.next();
    assert.strictEqual(missing.code, '4.04');

    helper.getNode('write').receive({ path: '/3/0/0', payload: 'not writable' });
    assert.strictEqual((await out.catchOut.next()).code, '4.05');

    helper.getNode('write').receive({ path: '/3303/0/5700', payload: 'warm' });
    assert.match((await out.catchOut.next()).error.message, /not a valid float/);

    // a device that vanished without deregistering: the request times out, nothing crashes
    const ghost = device(port, 'ghost');
    await ghost.start();
    await out.regOut.next((m) => m.endpoint === 'ghost');
    await ghost.transport.close();
    helper.getNode('read').receive({ endpoint: 'ghost' });
    const timeout = await out.catchOut.next(() => true, 8000);
    assert.match(timeout.error.message, /ghost/);
    assert.strictEqual(timeout.error.source.id, 'read');

    helper.getNode('read').receive({});
    assert.strictEqual((await out.readOut.next()).payload, 'node-red-contrib-lwm2m-kit');
  });

  it('names values by the object model (msg.named) and writes the node\'s typed Value', async () => {
    const out = await setup({ named: true, writeValue: ['+02:00', 'str'] });
    const client = device(port);
    clients.push(client);
    await client.start();
    await out.regOut.next((m) => m.topic === 'register');
    helper.getNode('read').receive({ path: '/3303/0' });
    const read = await out.readOut.next(() => true);
    assert.deepStrictEqual(read.payload, { 5700: 21.5, 5701: 'Cel' });
    assert.deepStrictEqual(read.named, { 'Sensor Value': 21.5, 'Sensor Units': 'Cel' });
    helper.getNode('read').receive({ path: ['/3303/0/5700', '/3/0/0'] });
    const composite = await out.readOut.next(() => true);
    assert.deepStrictEqual(composite.named, { '/3303/0/5700': { 'Sensor Value': 21.5 }, '/3/0/0': { Manufacturer: 'node-red-contrib-lwm2m-kit' } });
    // the node's Value, not msg.payload
    helper.getNode('write').receive({ path: '/3/0/14', payload: 'not this' });
    assert.strictEqual((await out.writeOut.next(() => true)).code, '2.04');
    assert.strictEqual(client.getValue('/3/0/14'), '+02:00');
  });

  it('reports update, deregister and lifetime expiry', async () => {
    const out = await setup();
    const client = device(port);
    clients.push(client);
    await client.start();
    await out.regOut.next((m) => m.topic === 'register');
    await client.update({ lifetime: 120 });
    const update = await out.regOut.next((m) => m.topic === 'update');
    assert.strictEqual(update.payload.lifetime, 120);
    await client.deregister();
    assert.strictEqual((await out.regOut.next((m) => m.topic === 'deregister')).endpoint, 'dev-1');

    const shortLived = device(port, 'short', { lifetime: 1, autoUpdate: false });
    clients.push(shortLived);
    await shortLived.start();
    await out.regOut.next((m) => m.topic === 'register' && m.endpoint === 'short');
    const expired = await out.regOut.next((m) => m.topic === 'expire', 6000);
    assert.strictEqual(expired.endpoint, 'short');

    helper.getNode('reg').receive({ topic: 'list' });
    const list = await out.regOut.next((m) => m.topic === 'list');
    assert.deepStrictEqual(list.payload, []);
  });

  it('keeps registrations across a redeploy when asked to', async () => {
    const fs = require('fs');
    const os = require('os');
    const path = require('path');
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-nr-'));
    helper.settings({ userDir });
    try {
      const persistentFlow = withTab([
        { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2, persist: true },
        { id: 'reg', type: 'lwm2m-register', server: 'srv', wires: [['regOut']] },
        { id: 'regOut', type: 'helper' },
      ]);
      await helper.load(NODES, persistentFlow);
      await waitListening(helper.getNode('srv'));
      const client = device(port, 'remembered', { autoUpdate: false });
      clients.push(client);
      await client.start();
      await helper.unload();
      assert.ok(fs.existsSync(path.join(userDir, 'lwm2m-registrations-srv.json')));
      await helper.load(NODES, persistentFlow);
      await waitListening(helper.getNode('srv'));
      const out = collector(helper.getNode('regOut'));
      helper.getNode('reg').receive({ topic: 'list' });
      const list = await out.next((m) => m.topic === 'list');
      assert.deepStrictEqual(list.payload.map((r) => r.endpoint), ['remembered']);
    } finally {
      helper.settings({ userDir: undefined });
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it('re-binds the same port on 20 redeploys without leaking handles', async () => {
    const fixedPort = port;
    const handleCount = () => process._getActiveHandles().length;
    let baseline;
    for (let i = 0; i < 20; i++) {
      await helper.load(NODES, withTab([
        { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port: fixedPort, timeout: 2 },
        { id: 'read', type: 'lwm2m-read', server: 'srv', endpoint: 'x', path: '/3/0/0', wires: [] },
        { id: 'obs', type: 'lwm2m-observe', server: 'srv', autoObserve: true, autoPaths: '/3/0/9', wires: [] },
      ]));
      const srv = helper.getNode('srv');
      await waitListening(srv);
      assert.strictEqual(srv.server.address().port, fixedPort);
      await helper.unload();
      if (i === 1) baseline = handleCount();
    }
    assert.ok(handleCount() <= baseline + 1, `active handles grew from ${baseline} to ${handleCount()}`);
  });
});
