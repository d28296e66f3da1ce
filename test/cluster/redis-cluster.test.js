'use strict';
// Two server instances sharing a real redis-server: registrations and events of the whole fleet on
// each instance, requests forwarded to the instance a device talks to (and its notifications
// back), expiry taken by exactly one instance, the Lua scripts' atomicity, credentials shared, and
// a Redis that goes away and comes back.
const assert = require('assert');
const { Lwm2mServer, RedisStore } = require('../../dist/lwm2m/server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, delay } = require('../helpers');
const { hasRedis, startRedis } = require('./redis-server');

describe('fleet of server instances on Redis', function () {
  this.timeout(30000);
  let redis;
  let prefixCount = 0;
  const servers = [];
  const clients = [];

  before(async function () {
    if (!hasRedis()) {
      console.log('      (skipped: no redis-server; apt-get install redis-server)');
      this.skip();
    }
    redis = await startRedis();
  });
  after(async () => {
    if (redis) await redis.stop();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => {});
    for (const s of servers.splice(0)) await s.stop().catch(() => {});
  });

  async function fleet(n = 2, extra = {}) {
    const prefix = `test${++prefixCount}:`;
    const out = [];
    for (let i = 0; i < n; i++) {
      const shared = new RedisStore({ url: redis.url, prefix, instanceId: `inst-${i}`, ...extra });
      shared.on('error', () => {});
      const server = new Lwm2mServer({ port: await freeUdpPort(), address: '127.0.0.1', shared, requestTimeoutMs: 3000 });
      server.on('warning', () => {});
      await server.start();
      servers.push(server);
      out.push(server);
    }
    return out;
  }

  async function device(server, endpoint, lifetime = 60) {
    const client = new Lwm2mClient({ endpoint, server: { host: '127.0.0.1', port: server.address().port }, lifetime, localAddress: '127.0.0.1', autoUpdate: false });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel', 5750: 'lab' });
    clients.push(client);
    await client.start();
    return client;
  }

  function events(server) {
    const seen = [];
    for (const type of ['register', 'update', 'deregister', 'expire']) {
      server.on(type, (...args) => seen.push({ type, endpoint: args[0].endpoint, origin: args[args.length - 1] }));
    }
    return seen;
  }

  it('registers through one instance, known on both with its owner, events marked local or remote', async () => {
    const [a, b] = await fleet();
    const seenA = events(a);
    const seenB = events(b);
    const client = await device(a, 'fleet-1');
    for (let i = 0; i < 50 && !b.getRegistration('fleet-1'); i++) await delay(20);
    assert.strictEqual(b.getRegistration('fleet-1').owner, 'inst-0');
    assert.strictEqual(a.getRegistration('fleet-1').id, b.getRegistration('fleet-1').id);
    assert.deepStrictEqual(seenA.map((e) => [e.type, e.origin.remote]), [['register', false]]);
    assert.deepStrictEqual(seenB.map((e) => [e.type, e.origin.instance, e.origin.remote]), [['register', 'inst-0', true]]);

    await client.update();
    await client.stop();
    for (let i = 0; i < 50 && b.getRegistration('fleet-1'); i++) await delay(20);
    assert.strictEqual(b.getRegistration('fleet-1'), undefined);
    assert.deepStrictEqual(seenB.map((e) => e.type), ['register', 'update', 'deregister']);
    assert.deepStrictEqual(seenA.map((e) => e.type), ['register', 'update', 'deregister']);
  });

  it('forwards a request from the other instance: it leaves from the socket the device talks to', async () => {
    const [a, b] = await fleet();
    const client = await device(a, 'fleet-2');
    for (let i = 0; i < 50 && !b.getRegistration('fleet-2'); i++) await delay(20);
    const read = await b.read('fleet-2', '/3303/0/5700');
    assert.strictEqual(read.value, 21.5);
    await b.write('fleet-2', '/3303/0/5750', 'greenhouse');
    assert.strictEqual(client.getValue('/3303/0/5750'), 'greenhouse');
    const opaque = await b.read('fleet-2', '/3/0');
    assert.strictEqual(typeof opaque.value, 'object');
    // errors keep their CoAP code across the hop
    await assert.rejects(b.read('fleet-2', '/3303/0/9999'), (err) => err.code === '4.04');
    // an observation asked by b: notifications reach b
    const notes = [];
    b.on('notify', (n) => notes.push(n));
    const obs = await b.observe('fleet-2', '/3303/0/5700');
    assert.strictEqual(obs.value, 21.5);
    client.setValue('/3303/0/5700', 30.5);
    for (let i = 0; i < 100 && notes.length === 0; i++) await delay(20);
    assert.deepStrictEqual(notes.map((n) => [n.endpoint, n.path, n.value]), [['fleet-2', '/3303/0/5700', 30.5]]);
  });

  /** A UDP relay in front of the servers, like a load balancer: a socket per device, and a target that can change. */
  async function relay(target) {
    const dgram = require('dgram');
    const front = dgram.createSocket('udp4');
    const upstreams = new Map();
    const state = { target, port: 0, switchTo(t) { this.target = t; for (const u of upstreams.values()) u.close(); upstreams.clear(); } };
    front.on('message', (msg, from) => {
      const key = `${from.address}:${from.port}`;
      let up = upstreams.get(key);
      if (!up) {
        up = dgram.createSocket('udp4');
        up.on('message', (answer) => front.send(answer, from.port, from.address));
        up.on('error', () => {});
        up.bind(0, '127.0.0.1');
        upstreams.set(key, up);
      }
      up.send(msg, state.target, '127.0.0.1');
    });
    await new Promise((resolve) => front.bind(0, '127.0.0.1', resolve));
    state.port = front.address().port;
    state.close = () => { for (const u of upstreams.values()) u.close(); front.close(); };
    return state;
  }

  it('takes an observation over when its device\'s notifications reach another instance (a failover)', async () => {
    const [a, b] = await fleet();
    const lb = await relay(a.address().port);
    try {
      const client = new Lwm2mClient({ endpoint: 'fleet-obs', server: { host: '127.0.0.1', port: lb.port }, lifetime: 300, localAddress: '127.0.0.1', autoUpdate: false });
      client.on('warning', () => {});
      client.setInstance(3303, 0, { 5700: 1, 5701: 'Cel', 5750: 'lab' });
      clients.push(client);
      await client.start();
      const obs = await a.observe('fleet-obs', '/3303/0/5700', { tag: 'flow-node-7' });
      const big = await a.observe('fleet-obs', '/3303/0/5750', { tag: 'flow-node-8' });
      for (let i = 0; i < 50 && !(b.cluster.observationOf(obs.observationId) && b.cluster.observationOf(big.observationId)); i++) await delay(20);
      assert.ok(b.cluster.observationOf(obs.observationId), 'b knows the observations');
      // the balancer sends the device to b now (a is still up: nothing else tells b)
      lb.switchTo(b.address().port);
      const notes = [];
      b.on('notify', (n) => notes.push(n));
      client.setValue('/3303/0/5700', 2);
      for (let i = 0; i < 100 && notes.length === 0; i++) await delay(20);
      assert.deepStrictEqual(notes.map((n) => [n.endpoint, n.path, n.value, n.tag]), [['fleet-obs', '/3303/0/5700', 2, 'flow-node-7']]);
      assert.strictEqual(b.getRegistration('fleet-obs').owner, 'inst-1', 'the registration follows its device');
      assert.ok(b.isObserving('fleet-obs', '/3303/0/5700'));
      for (let i = 0; i < 50 && a.getRegistration('fleet-obs').owner !== 'inst-1'; i++) await delay(20);
      assert.strictEqual(a.getRegistration('fleet-obs').owner, 'inst-1', 'and a knows');
      // a read from a now goes through b, to the device's new path
      assert.strictEqual((await a.read('fleet-obs', '/3303/0/5700')).value, 2);
      // a large notification of another observation a started: taken over, its other blocks fetched from b
      const large = 'x'.repeat(3000);
      client.setValue('/3303/0/5750', large);
      for (let i = 0; i < 100 && !notes.some((n) => n.path === '/3303/0/5750'); i++) await delay(20);
      const whole = notes.find((n) => n.path === '/3303/0/5750');
      assert.ok(whole, 'the large notification reached b');
      assert.strictEqual(whole.value, large);
      assert.strictEqual(whole.tag, 'flow-node-8');
      // an unknown token is still refused (RST)
      assert.strictEqual(b.cluster.observationOf('00'.repeat(8)), undefined);
    } finally {
      lb.close();
    }
  });

  it('takes each expiry on exactly one instance, and both drop the registration', async () => {
    const [a, b, c] = await fleet(3, {});
    const expiries = [];
    for (const s of [a, b, c]) s.on('expire', (reg, origin) => expiries.push([reg.endpoint, origin.instance]));
    const client = await device(a, 'fleet-3', 1);
    await client.stop({ deregister: false }); // silent from now on
    for (let i = 0; i < 50 && !c.getRegistration('fleet-3'); i++) await delay(20);
    assert.ok(c.getRegistration('fleet-3'), 'known on every instance first');
    // lifetime 1 s (+ grace): every instance's replica lets it expire; one takes it in Redis
    for (let i = 0; i < 200 && [a, b, c].some((s) => s.getRegistration('fleet-3')); i++) await delay(50);
    await delay(300);
    assert.deepStrictEqual([a, b, c].map((s) => s.getRegistration('fleet-3')), [undefined, undefined, undefined]);
    assert.strictEqual(expiries.length, 3, `every instance heard of it once: ${JSON.stringify(expiries)}`);
    assert.strictEqual(new Set(expiries.map(([, instance]) => instance)).size, 1, 'all from the one instance that took it');
  });

  it('keeps registrations atomic: 200 devices re-registering through two instances at once leave one registration each', async () => {
    const [a, b] = await fleet();
    const shared = a.cluster.shared;
    const regs = [];
    for (let i = 0; i < 200; i++) {
      const now = new Date();
      for (const [n, owner] of [[1, 'inst-0'], [2, 'inst-1']]) {
        regs.push({
          id: `r${i}-${n}`, endpoint: `race-${i}`, lifetime: 60, lwm2mVersion: '1.1', binding: 'U', queueMode: false, rootPath: '/', objectLinks: '</3/0>',
          objects: [{ objectId: 3, instanceId: 0 }], supportedFormats: [], address: '127.0.0.1', port: 1000 + n, registeredAt: now, updatedAt: now,
          expiresAt: new Date(Date.now() + 60000), owner,
        });
      }
    }
    await Promise.all(regs.map((r) => (r.owner === 'inst-0' ? a : b).cluster.shared.register(r)));
    const all = await shared.registrations();
    assert.strictEqual(all.filter((r) => r.endpoint.startsWith('race-')).length, 200);
    // every endpoint's id index points at the registration stored for it, the other id is gone
    const kept = new Set(all.map((r) => r.id));
    for (const r of regs) {
      const deregistered = await shared.deregister(r);
      assert.strictEqual(deregistered, kept.has(r.id), `${r.id}`);
    }
  });

  it('shares credentials set at run time with every instance', async () => {
    const [a, b] = await fleet();
    a.security.set({ endpoint: 'psk-dev', identity: 'psk-dev-id', key: Buffer.from('00112233', 'hex') });
    for (let i = 0; i < 50 && !b.security.byIdentity('psk-dev-id'); i++) await delay(20);
    assert.deepStrictEqual(b.security.byIdentity('psk-dev-id').key, Buffer.from('00112233', 'hex'));
    a.security.delete({ identity: 'psk-dev-id' });
    for (let i = 0; i < 50 && b.security.byIdentity('psk-dev-id'); i++) await delay(20);
    assert.strictEqual(b.security.byIdentity('psk-dev-id'), undefined);
  });

  it('ignores garbage published on the fleet\'s channels by a stranger, and keeps working', async () => {
    const [a, b] = await fleet();
    const prefix = a.cluster.shared.prefix;
    const Redis = require('ioredis');
    const stranger = new Redis(redis.url);
    const garbage = ['', 'null', '42', '[]', '{', '{"type":"register"}', '{"type":"register","origin":"x","registration":{"endpoint":1}}',
      '{"type":"update","origin":"x","registration":{"endpoint":"e","id":"i","registeredAt":{"$date":"no"}}}',
      '{"id":"1","from":"x","method":"constructor","args":[]}', '{"id":"1","from":"x","method":"read","args":"no"}',
      '{"id":1,"result":{}}', '{"observationId":"x","notification":null}', '{"type":"put","origin":"x","record":{"observationId":5}}',
      '{"type":"put","origin":"x","entry":{"identity":"id-without-key"}}', 'x'.repeat(100000)];
    for (const channel of ['events', 'observations', 'security', 'call:inst-0', 'answer:inst-0', 'notify:inst-0']) {
      for (const g of garbage) await stranger.publish(`${prefix}${channel}`, g);
    }
    await stranger.quit();
    await delay(200);
    const client = await device(b, 'fleet-after-garbage');
    for (let i = 0; i < 50 && !a.getRegistration('fleet-after-garbage'); i++) await delay(20);
    assert.strictEqual((await a.read('fleet-after-garbage', '/3303/0/5700')).value, 21.5);
    assert.strictEqual(a.getRegistration('e'), undefined);
    assert.ok(client);
  });

  it('fails clearly while Redis is away, nothing crashes, and works again when it is back', async () => {
    const [a, b] = await fleet();
    await device(a, 'fleet-4');
    for (let i = 0; i < 50 && !b.getRegistration('fleet-4'); i++) await delay(20);
    const port = redis.port;
    await redis.stop();
    await delay(300);
    // a forwarded request cannot reach the owner: a clear error, at once
    await assert.rejects(b.read('fleet-4', '/3303/0/5700'), /Redis .* (is unavailable|failed)/);
    // a device that registers now is told to come back later (5.03), not registered half-way
    const late = new Lwm2mClient({ endpoint: 'fleet-late', server: { host: '127.0.0.1', port: a.address().port }, lifetime: 60, localAddress: '127.0.0.1', autoUpdate: false });
    late.on('warning', () => {});
    clients.push(late);
    await assert.rejects(late.register(), /5\.03/);
    assert.strictEqual(a.getRegistration('fleet-late'), undefined);
    // reads of devices this instance owns go on without Redis
    assert.strictEqual((await a.read('fleet-4', '/3303/0/5700')).value, 21.5);
    redis = await startRedis(port);
    for (let i = 0; i < 100 && !a.cluster.shared.available; i++) await delay(50);
    assert.ok(a.cluster.shared.available, 'reconnected');
    await late.register();
    assert.strictEqual(a.getRegistration('fleet-late').owner, 'inst-0');
  });
});
