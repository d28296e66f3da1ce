'use strict';
// The lwm2m-server node with its registrations in Redis, in a Node-RED runtime: a Redis that is not
// there yet is on the status and tried again; one that goes away and comes back likewise; the
// Redis password is a credential and never appears in the status or the log.
const assert = require('assert');
const helper = require('node-red-node-test-helper');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, freeTcpPort, delay } = require('../helpers');
const { hasRedis, startRedis } = require('./redis-server');

const NODES = ['lwm2m-server', 'lwm2m-register'].map((n) => require(`../../nodes/${n}.js`));
helper.init(require.resolve('node-red'));


describe('lwm2m-server node on Redis (Node-RED runtime)', function () {
  this.timeout(30000);
  let redis;
  before(function () {
    if (!hasRedis()) {
      console.log('      (skipped: no redis-server)');
      this.skip();
    }
    return helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    if (redis) await redis.stop();
  });
  afterEach(() => helper.unload());

  it('waits for a Redis that is not there yet, says so, and starts once it is', async () => {
    const redisPort = await freeTcpPort();
    const port = await freeUdpPort();
    const flow = [
      { id: 't1', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, securePort: '', store: 'redis', redisUrl: `redis://127.0.0.1:${redisPort}`, redisPrefix: 'node1:', instanceId: 'n1' },
      { id: 'reg', z: 't1', type: 'lwm2m-register', server: 'srv', wires: [['out']] },
      { id: 'out', z: 't1', type: 'helper' },
    ];
    await helper.load(NODES, flow, { srv: { redisPassword: 'hunter2-secret' } });
    const srv = helper.getNode('srv');
    for (let i = 0; i < 50 && !/redisDown/.test(srv.currentStatus.text); i++) await delay(50);
    assert.match(srv.currentStatus.text, /redisDown/);
    assert.strictEqual(srv.server.running, false);
    redis = await startRedis(redisPort, { password: 'hunter2-secret' });
    for (let i = 0; i < 200 && !srv.server.running; i++) await delay(50);
    assert.ok(srv.server.running, 'started once Redis answered');
    const client = new Lwm2mClient({ endpoint: 'node-dev', server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    await client.start();
    assert.strictEqual(srv.server.getRegistration('node-dev').owner, 'n1');
    await client.stop();

    await redis.stop();
    for (let i = 0; i < 100 && !/redisDown/.test(srv.currentStatus.text); i++) await delay(50);
    assert.match(srv.currentStatus.text, /redisDown/, 'an outage is on the status');
    redis = await startRedis(redisPort, { password: 'hunter2-secret' });
    for (let i = 0; i < 200 && /redisDown/.test(srv.currentStatus.text); i++) await delay(50);
    assert.match(srv.currentStatus.text, /device/, 'and its end');
    const logged = JSON.stringify(helper.log().args);
    assert.ok(!logged.includes('hunter2-secret'), 'the password never reaches the log');
    assert.match(logged, /Redis at redis:\/\/127\.0\.0\.1:\d+ is unavailable/);
  });
});
