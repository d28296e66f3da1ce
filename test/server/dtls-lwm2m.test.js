'use strict';
// LwM2M over DTLS (coaps, PSK): the server's secure socket, credentials bound to endpoints,
// authorization of every registration-interface operation, the software client over DTLS, a
// real Register from libcoap's coap-client-openssl, and the seed's flow: bootstrap over NoSec
// hands out a PSK, the device registers over coaps with it. Loopback only.
const assert = require('assert');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { BootstrapServer } = require('../../dist/lwm2m/server/bootstrap-server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { DtlsChannel } = require('../../dist/dtls/channel');
const { UdpChannel } = require('../../dist/lwm2m/coap/channel');
const { nextEvent, delay } = require('../helpers');

const KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const LINKS = Buffer.from('</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>');

function hasTool(tool) {
  try {
    execFileSync(tool, ['-h'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.code !== 'ENOENT';
  }
}

describe('LwM2M over DTLS (PSK)', function () {
  this.timeout(20000);
  let server;
  const cleanup = [];

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', secure: { port: 0 }, requestTimeoutMs: 3000 });
    server.on('warning', () => {});
    server.security.set({ endpoint: 'sec-1', identity: 'sec-1-id', key: KEY });
    await server.start();
    cleanup.push(() => server.stop());
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function client(endpoint, psk, extra = {}) {
    const c = new Lwm2mClient({
      endpoint, lifetime: 60, localAddress: '127.0.0.1', requestTimeoutMs: 2000, retryDelayMs: [200, 400],
      server: { host: '127.0.0.1', port: server.secureAddress().port, psk }, ...extra,
    });
    c.on('warning', () => {});
    c.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel' });
    cleanup.push(() => c.stop());
    return c;
  }

  /** A device on a raw CoAP transport over its own DTLS client channel. */
  async function rawDevice(identity, key = KEY) {
    const channel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from(identity), key }) } });
    const t = new CoapTransport({ channel, requestTimeoutMs: 3000 });
    t.setHandler((ex) => ex.respond({ code: '2.05', payload: Buffer.from('23.5'), contentFormat: 0 }));
    await t.open();
    cleanup.push(() => t.close());
    return t;
  }

  const register = (t, ep, peer) => t.request(peer ?? server.secureAddress(), { method: 'POST', path: '/rd', query: [`ep=${ep}`, 'lt=60', 'lwm2m=1.1'], contentFormat: 40, payload: LINKS });

  it('registers the software client over coaps and reads, writes, observes it through the session', async () => {
    const c = client('sec-1', { identity: 'sec-1-id', key: KEY });
    const registered = nextEvent(server, 'register', 8000);
    await c.start();
    const [reg] = await registered;
    assert.strictEqual(reg.identity, 'sec-1-id');
    assert.strictEqual((await server.read('sec-1', '/3303/0/5700')).value, 21.5);
    assert.strictEqual((await server.write('sec-1', '/3303/0/5750', 'vault')).code, '2.04');
    assert.strictEqual(c.getValue('/3303/0/5750'), 'vault');
    await server.observe('sec-1', '/3303/0/5700');
    const notified = nextEvent(server, 'notify', 5000);
    c.setValue('/3303/0/5700', 22);
    assert.strictEqual((await notified).value, 22);
    const updated = nextEvent(server, 'update', 5000);
    await c.update({ lifetime: 120 });
    assert.strictEqual((await updated)[0].lifetime, 120);
  });

  it('refuses a wrong key at the handshake and reports it, without the key', async () => {
    const failed = nextEvent(server, 'secureSession', 8000, (e) => e.event === 'failed');
    const c = client('sec-1', { identity: 'sec-1-id', key: Buffer.from('ffffffffffffffff', 'hex') });
    c.start().catch(() => {});
    const e = await failed;
    assert.strictEqual(e.identity, 'sec-1-id');
    assert.ok(!JSON.stringify(e).includes('ffffffff') && !JSON.stringify(e).includes(KEY.toString('hex')));
    assert.strictEqual(server.getRegistration('sec-1'), undefined);
  });

  it('authorizes by identity: another endpoint 4.03, NoSec for a credentialed endpoint 4.03, Update and De-register only from the same identity', async () => {
    const refusals = [];
    server.on('securityRefused', (r) => refusals.push(r));
    const dev = await rawDevice('sec-1-id');
    assert.strictEqual((await register(dev, 'impostor')).code, '4.03');
    const plain = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    await plain.open();
    cleanup.push(() => plain.close());
    assert.strictEqual((await register(plain, 'sec-1', server.address())).code, '4.03');
    const ok = await register(dev, 'sec-1');
    assert.strictEqual(ok.code, '2.01');
    const location = `/${ok.locationPath.join('/')}`;
    // a second identity, bound to another endpoint, tries to update and de-register sec-1
    server.security.set({ endpoint: 'sec-2', identity: 'sec-2-id', key: KEY });
    const other = await rawDevice('sec-2-id');
    assert.strictEqual((await other.request(server.secureAddress(), { method: 'POST', path: location, query: ['lt=99'] })).code, '4.03');
    assert.strictEqual((await other.request(server.secureAddress(), { method: 'DELETE', path: location })).code, '4.03');
    assert.strictEqual((await plain.request(server.address(), { method: 'DELETE', path: location })).code, '4.03');
    assert.ok(server.getRegistration('sec-1'));
    assert.deepStrictEqual(refusals.map((r) => [r.operation, r.endpoint, r.identity]), [
      ['register', 'impostor', 'sec-1-id'], ['register', 'sec-1', undefined], ['update', 'sec-1', 'sec-2-id'],
      ['deregister', 'sec-1', 'sec-2-id'], ['deregister', 'sec-1', undefined],
    ]);
    assert.ok(refusals.every((r) => !JSON.stringify(r).includes(KEY.toString('hex'))));
    // the server reaches the device through its DTLS session
    assert.strictEqual((await server.read('sec-1', '/3303/0/5700', { format: 'text' })).value, 23.5);
    assert.strictEqual((await dev.request(server.secureAddress(), { method: 'DELETE', path: location })).code, '2.02');
  });

  /** A NAT between a device and the server whose outside port can change (a rebinding). */
  async function nat(target) {
    const dgram = require('dgram');
    const bound = (s) => new Promise((r) => s.bind(0, '127.0.0.1', r));
    const inside = dgram.createSocket('udp4');
    await bound(inside);
    let device;
    let outside;
    const open = async () => {
      const s = dgram.createSocket('udp4');
      await bound(s);
      s.on('message', (m) => inside.send(m, device.port, device.address));
      return s;
    };
    outside = await open();
    inside.on('message', (m, r) => {
      device = r;
      outside.send(m, target.port, target.address);
    });
    const n = {
      port: () => inside.address().port,
      outsidePort: () => outside.address().port,
      async rebind() {
        const old = outside;
        outside = await open();
        old.close();
      },
      close: () => { inside.close(); outside.close(); },
    };
    cleanup.push(n.close);
    return n;
  }

  it('follows a device behind a NAT that rebinds, without a new handshake (connection ID, RFC 9146)', async () => {
    const handshakes = [];
    server.on('secureSession', (e) => { if (e.event === 'established') handshakes.push(e); });
    const n = await nat(server.secureAddress());
    const c = client('sec-1', { identity: 'sec-1-id', key: KEY }, { server: { host: '127.0.0.1', port: n.port(), psk: { identity: 'sec-1-id', key: KEY } } });
    const registered = nextEvent(server, 'register', 8000);
    await c.start();
    const [reg] = await registered;
    assert.strictEqual(reg.port, n.outsidePort());
    await server.observe('sec-1', '/3303/0/5700');
    await n.rebind();
    // the device's next message is a notification (not an Update): the session, then the registration, follow it
    const moved = nextEvent(server, 'moved', 5000);
    const notified = nextEvent(server, 'notify', 5000);
    c.setValue('/3303/0/5700', 24);
    assert.strictEqual((await notified).value, 24);
    const [after, before] = await moved;
    assert.notStrictEqual(before.port, after.port);
    assert.strictEqual(after.port, n.outsidePort(), 'the registration follows the session to the new outside port');
    assert.strictEqual(handshakes.length, 1, 'no second handshake');
    assert.strictEqual((await server.read('sec-1', '/3303/0/5700')).value, 24, 'the server reaches the device at its new address');
  });

  it('keeps a session through 61 s of silence (NB-IoT PSM): the server reads the device without a new handshake', async function () {
    this.timeout(90000);
    const handshakes = [];
    server.on('secureSession', (e) => handshakes.push(e.event));
    const c = client('sec-1', { identity: 'sec-1-id', key: KEY }, { autoUpdate: false, lifetime: 300 });
    await c.start();
    await delay(61000);
    assert.strictEqual((await server.read('sec-1', '/3303/0/5700')).value, 21.5);
    assert.deepStrictEqual(handshakes, ['established'], 'one handshake, no session lost to the silence');
  });

  it('serves only the bootstrap interface on NoSec when told so', async () => {
    const s = new Lwm2mServer({ port: 0, address: '127.0.0.1', nosec: 'bootstrap', secure: { port: 0 } });
    s.setBootstrapHandler((ex) => ex.respond({ code: '2.04' }));
    await s.start();
    cleanup.push(() => s.stop());
    const plain = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    await plain.open();
    cleanup.push(() => plain.close());
    assert.strictEqual((await register(plain, 'anyone', s.address())).code, '4.03');
    assert.strictEqual((await plain.request(s.address(), { method: 'POST', path: '/bs', query: ['ep=anyone'] })).code, '2.04');
  });

  for (const tool of ['coap-client-openssl', 'coap-client-gnutls']) {
    it(`takes a real LwM2M Register over coaps from libcoap's ${tool} -u/-k`, async function () {
      if (!hasTool(tool)) {
        if (process.env.CI) throw new Error(`${tool} missing: .ci/run installs libcoap3-bin`);
        this.skip();
      }
      server.security.set({ endpoint: `libcoap-${tool}`, identity: `id-${tool}`, key: Buffer.from('secretPSK') });
      const file = path.join(os.tmpdir(), `links-${process.pid}.txt`);
      fs.writeFileSync(file, LINKS);
      const registered = nextEvent(server, 'register', 8000);
      const p = spawn(tool, ['-m', 'post', '-t', '40', '-f', file, '-u', `id-${tool}`, '-k', 'secretPSK',
        `coaps://127.0.0.1:${server.secureAddress().port}/rd?ep=libcoap-${tool}&lt=60&lwm2m=1.1`], { stdio: 'ignore' });
      cleanup.push(() => { p.kill(); fs.rmSync(file, { force: true }); });
      const [reg] = await registered;
      assert.strictEqual(reg.endpoint, `libcoap-${tool}`);
      assert.strictEqual(reg.identity, `id-${tool}`);
      assert.strictEqual(reg.objects.length, 3);
    });
  }

  it('the seed\'s flow: bootstrap over NoSec hands out a PSK for coaps, the server accepts it, the device registers with it', async () => {
    const bs = new BootstrapServer({
      transport: server, sessionTimeoutMs: 8000, requestTimeoutMs: 2000,
      onCredentials: (endpoint, account) => server.security.set({ endpoint, identity: account.pskIdentity, key: account.pskKey, scope: 'server' }),
    });
    server.setBootstrapHandler((ex) => bs.handle(ex));
    cleanup.push(() => bs.stop());
    // without keysOverNoSec the key is not handed out in the clear: the device is refused (4.01)
    bs.setConfig({
      endpoint: 'seed-dev',
      servers: [{ uri: `coaps://127.0.0.1:${server.secureAddress().port}`, shortServerId: 7, lifetime: 90, securityMode: 'psk', pskIdentity: 'seed-dev-psk', pskKey: 'a1b2c3d4e5f60718' }],
    });
    const plainBs = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    await plainBs.open();
    cleanup.push(() => plainBs.close());
    const refused = nextEvent(bs, 'session', 3000, (e) => e.event === 'failed');
    assert.strictEqual((await plainBs.request(server.address(), { method: 'POST', path: '/bs', query: ['ep=seed-dev'] })).code, '4.01');
    assert.match((await refused).error, /not sent over NoSec/);
    bs.setConfig({
      endpoint: 'seed-dev',
      keysOverNoSec: true,
      servers: [{ uri: `coaps://127.0.0.1:${server.secureAddress().port}`, shortServerId: 7, lifetime: 90, securityMode: 'psk', pskIdentity: 'seed-dev-psk', pskKey: 'a1b2c3d4e5f60718' }],
    });
    const c = new Lwm2mClient({ endpoint: 'seed-dev', bootstrap: { host: '127.0.0.1', port: server.address().port }, localAddress: '127.0.0.1', requestTimeoutMs: 2000 });
    c.on('warning', () => {});
    cleanup.push(() => c.stop());
    const registered = nextEvent(server, 'register', 10000);
    await c.start();
    const [reg] = await registered;
    assert.deepStrictEqual([reg.endpoint, reg.identity, reg.lifetime], ['seed-dev', 'seed-dev-psk', 90]);
    assert.strictEqual((await server.read('seed-dev', '/3/0/0')).value, 'node-red-contrib-lwm2m-kit');
    // the same endpoint can no longer register without DTLS
    const plain = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    await plain.open();
    cleanup.push(() => plain.close());
    assert.strictEqual((await register(plain, 'seed-dev', server.address())).code, '4.03');
    await delay(10);
  });
});
