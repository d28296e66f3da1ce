'use strict';
// Bootstrap: software clients bootstrap through the server's /bs interface and then register with
// the server they were given — in the core, and through the lwm2m-bootstrap-config node.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { BootstrapServer, BootstrapConfigError } = require('../../dist/lwm2m/server/bootstrap-server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, collector, nextEvent, delay } = require('../helpers');

helper.init(require.resolve('node-red'));

function bootstrapClient(port, endpoint) {
  const client = new Lwm2mClient({
    endpoint, bootstrap: { host: '127.0.0.1', port }, localAddress: '127.0.0.1', retryDelayMs: [60000, 60000], bootstrapTimeoutMs: 10000,
  });
  client.on('warning', () => {});
  return client;
}

describe('bootstrap server (core)', function () {
  this.timeout(30000);
  let server;
  let bs;
  let port;
  const clients = [];

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1' });
    server.on('warning', () => {});
    await server.start();
    port = server.address().port;
    bs = new BootstrapServer({ transport: server.transport, sessionTimeoutMs: 5000, requestTimeoutMs: 1000 });
    server.setBootstrapHandler((ex) => bs.handle(ex));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => {})));
    bs.stop();
    await server.stop();
  });

  it('bootstraps a client, which then registers with the server it was given', async () => {
    bs.setConfig({
      endpoint: 'dev-1',
      servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 101, lifetime: 300, binding: 'U', securityMode: 'nosec', defaultMaxPeriod: 60 }],
      extraWrites: { '/3/0/14': '+08:00' },
    });
    const events = [];
    bs.on('session', (e) => events.push(`${e.event}${e.step ? ` ${e.step} ${e.code}` : ''}`));
    const registered = nextEvent(server, 'register');
    const client = bootstrapClient(port, 'dev-1');
    clients.push(client);
    await client.start();
    const [reg] = await registered;
    assert.strictEqual(reg.endpoint, 'dev-1');
    assert.strictEqual(reg.lifetime, 300);
    assert.deepStrictEqual(events, [
      'started', 'step discover / 2.05', 'step delete /0 2.02', 'step delete /1 2.02', 'step write /0/1 2.04',
      'step write /1/0 2.04', 'step write /3/0/14 2.04', 'step finish 2.04', 'finished',
    ]);
    const security = client.getValue('/0/1');
    assert.deepStrictEqual([security[0], security[1], security[2], security[10]], [`coap://127.0.0.1:${port}`, false, 3, 101]);
    assert.strictEqual(client.getValue('/0/0/1'), true, 'the bootstrap account survives');
    assert.deepStrictEqual(client.getValue('/1/0'), { 0: 101, 1: 300, 3: 60, 6: true, 7: 'U' });
    assert.strictEqual(client.getValue('/3/0/14'), '+08:00');
  });

  it('writes several servers, PSK credentials included (over NoSec only when the configuration says so)', async () => {
    bs.setConfig({
      endpoint: 'multi-*',
      keysOverNoSec: true,
      servers: [
        { uri: `coap://127.0.0.1:${port}`, shortServerId: 1, lifetime: 60, securityMode: 'nosec' },
        { uri: 'coaps://127.0.0.1:5684', shortServerId: 2, lifetime: 90, securityMode: 'psk', pskIdentity: 'multi-7', pskKey: '000102030405' },
      ],
    });
    const client = bootstrapClient(port, 'multi-7');
    clients.push(client);
    await client.start();
    assert.strictEqual(client.state, 'registered');
    const psk = client.getValue('/0/2');
    assert.deepStrictEqual([psk[0], psk[2], psk[3].toString(), psk[5].toString('hex'), psk[10]], ['coaps://127.0.0.1:5684', 0, 'multi-7', '000102030405', 2]);
    assert.deepStrictEqual(client.getValue('/1/1'), { 0: 2, 1: 90, 6: true, 7: 'U' });
    assert.strictEqual(server.getRegistration('multi-7').lifetime, 60, 'registered with the first (coap) server');
  });

  it('refuses an endpoint without a configuration unless a default exists', async () => {
    bs.setConfig({ endpoint: 'known', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1, securityMode: 'nosec' }] });
    const stranger = bootstrapClient(port, 'stranger');
    clients.push(stranger);
    await assert.rejects(stranger.start(), /4\.00/);
    bs.setConfig({ endpoint: '*', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 9, securityMode: 'nosec' }] });
    const other = bootstrapClient(port, 'stranger-2');
    clients.push(other);
    await other.start();
    assert.strictEqual(other.getValue('/1/0/0'), 9);
  });

  it('validates configurations', () => {
    const bad = [
      { endpoint: '', servers: [] },
      { endpoint: 'a', servers: [] },
      { endpoint: 'a', servers: [{ uri: 'http://x', shortServerId: 1 }] },
      { endpoint: 'a', servers: [{ uri: 'coap://x', shortServerId: 0 }] },
      { endpoint: 'a', servers: [{ uri: 'coap://x', shortServerId: 1 }, { uri: 'coap://y', shortServerId: 1 }] },
      { endpoint: 'a', servers: [{ uri: 'coaps://x', shortServerId: 1, securityMode: 'psk', pskIdentity: 'i', pskKey: 'xyz' }] },
      { endpoint: 'a', servers: [{ uri: 'coap://x', shortServerId: 1, securityMode: 'psk', pskIdentity: 'i', pskKey: '00' }] },
      { endpoint: '/(/', servers: [{ uri: 'coap://x', shortServerId: 1 }] },
    ];
    for (const config of bad) assert.throws(() => bs.setConfig(config), BootstrapConfigError, JSON.stringify(config));
  });

  it('fails the session of a device that stops answering, while others still finish', async () => {
    bs.setConfig({ endpoint: '*', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1, securityMode: 'nosec' }] });
    const mute = new CoapTransport({ address: '127.0.0.1' });
    let answered = 0;
    mute.setHandler((ex) => {
      // answer the Bootstrap-Discover, then fall silent
      if (answered++ === 0) ex.respond({ code: '2.05', contentFormat: 40, payload: Buffer.from('</>;lwm2m=1.1,</0/0>') });
    });
    await mute.open();
    try {
      const failed = nextEvent(bs, 'session', 8000, (e) => e.endpoint === 'mute' && e.event === 'failed');
      assert.strictEqual((await mute.request(server.address(), { method: 'POST', path: '/bs', query: ['ep=mute'] })).code, '2.04');
      const healthy = bootstrapClient(port, 'healthy');
      clients.push(healthy);
      await healthy.start();
      assert.strictEqual(healthy.state, 'registered');
      const failure = await failed;
      assert.strictEqual(failure.step, 'delete /0');
      assert.match(failure.error, /no answer/);
    } finally {
      await mute.close();
    }
  });

  it('bootstraps 50 clients at once', async () => {
    bs.setConfig({ endpoint: 'fleet-*', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1, lifetime: 600, securityMode: 'nosec' }] });
    let finished = 0;
    bs.on('session', (e) => { if (e.event === 'finished') finished++; });
    const fleet = Array.from({ length: 50 }, (_, i) => bootstrapClient(port, `fleet-${i}`));
    clients.push(...fleet);
    const started = Date.now();
    await Promise.all(fleet.map((c) => c.start()));
    assert.strictEqual(finished, 50);
    assert.strictEqual(server.listRegistrations().length, 50);
    assert.ok(Date.now() - started < 15000);
  });

  it('runs the bootstrap server on a port of its own, handing out another server', async () => {
    const other = new Lwm2mServer({ port: 0, address: '127.0.0.1' });
    other.on('warning', () => {});
    await other.start();
    try {
      bs.setConfig({ endpoint: 'elsewhere', servers: [{ uri: `coap://127.0.0.1:${other.address().port}`, shortServerId: 5, lifetime: 90, securityMode: 'nosec' }] });
      const registered = nextEvent(other, 'register');
      const client = bootstrapClient(port, 'elsewhere');
      clients.push(client);
      await client.start();
      assert.strictEqual((await registered)[0].endpoint, 'elsewhere');
      assert.strictEqual(server.getRegistration('elsewhere'), undefined, 'the bootstrap server\'s own socket holds no registration');
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => {})));
      await other.stop();
    }
  });

  it('sends a device back to bootstrap when the server executes /1/x/9', async () => {
    bs.setConfig({ endpoint: 'again', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1, lifetime: 100, securityMode: 'nosec' }] });
    const client = bootstrapClient(port, 'again');
    clients.push(client);
    await client.start();
    bs.setConfig({ endpoint: 'again', servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 1, lifetime: 200, securityMode: 'nosec' }] });
    const reregistered = nextEvent(server, 'register', 8000);
    assert.strictEqual((await server.execute('again', '/1/0/9')).code, '2.04');
    const [reg] = await reregistered;
    assert.strictEqual(reg.lifetime, 200);
  });
});

describe('lwm2m-bootstrap-config node', function () {
  this.timeout(20000);
  const nodes = ['lwm2m-server', 'lwm2m-register', 'lwm2m-bootstrap-config'].map((t) => require(`../../nodes/${t}.js`));
  let client;

  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(async () => {
    if (client) await client.stop().catch(() => {});
    client = null;
    await helper.unload();
  });

  it('bootstraps a client from the editor configuration, takes new configurations from messages and reports sessions', async () => {
    const port = await freeUdpPort();
    await helper.load(nodes, [
      { id: 'f1', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 2, bootstrap: true },
      { id: 'bsc', z: 'f1', type: 'lwm2m-bootstrap-config', server: 'srv', endpoint: 'node-*', deletePaths: '/0, /1',
        servers: [{ uri: `coap://127.0.0.1:${port}`, ssid: 3, lifetime: 240, binding: 'U', security: 'nosec' }], extraWrites: '', wires: [['bsOut']] },
      { id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['regOut']] },
      { id: 'bsOut', z: 'f1', type: 'helper' },
      { id: 'regOut', z: 'f1', type: 'helper' },
    ]);
    const bsOut = collector(helper.getNode('bsOut'));
    const regOut = collector(helper.getNode('regOut'));
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.running; i++) await delay(20);

    client = bootstrapClient(port, 'node-1');
    await client.start();
    const reg = await regOut.next((m) => m.topic === 'register');
    assert.strictEqual(reg.payload.lifetime, 240);
    const finished = await bsOut.next((m) => m.payload.event === 'finished');
    assert.strictEqual(finished.endpoint, 'node-1');

    // a flow feeds a configuration for another endpoint at run time
    helper.getNode('bsc').receive({ endpoint: 'db-device', payload: { servers: [{ uri: `coap://127.0.0.1:${port}`, shortServerId: 4, lifetime: 77, securityMode: 'nosec' }] } });
    await client.stop();
    client = bootstrapClient(port, 'db-device');
    await client.start();
    assert.strictEqual((await regOut.next((m) => m.topic === 'register' && m.endpoint === 'db-device')).payload.lifetime, 77);
  });
});
