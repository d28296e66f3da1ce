'use strict';
// The LwM2M server core driven by raw CoAP from a second transport playing the device: the
// registration interface, bad input, rebinding, queue mode, Send, and where requests come from.
const assert = require('assert');
const dgram = require('dgram');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { Lwm2mServer, DeviceTimeoutError, DeviceNotFoundError, RequestFailedError } = require('../../dist/lwm2m/server');
const { DecodeError, encodeRecords } = require('../../dist/lwm2m/content');
const { nextEvent, delay } = require('../helpers');

const LINKS = Buffer.from('</>;rt="oma.lwm2m";ct="60 110 112 11542",</1/0>,</3/0>,</3303/0>;ver=1.1');

describe('LwM2M server core', function () {
  this.timeout(15000);
  let server;
  let device;
  let serverPeer;
  const opened = [];

  async function newDevice(handler = (ex) => ex.respond({ code: '4.04' })) {
    const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 2000 });
    t.setHandler(handler);
    await t.open();
    opened.push(t);
    return t;
  }

  function register(t, query = ['ep=dev', 'lt=60', 'lwm2m=1.1', 'b=U'], payload = LINKS) {
    return t.request(serverPeer, { method: 'POST', path: '/rd', query, contentFormat: 40, payload });
  }

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 1000, queueAwakeMs: 200, expiryGraceMs: 0 });
    server.on('warning', () => {});
    await server.start();
    serverPeer = server.address();
    device = await newDevice();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((t) => t.close()));
    await server.stop();
  });

  it('registers, updates and de-registers', async () => {
    const registered = nextEvent(server, 'register');
    const res = await register(device);
    assert.strictEqual(res.code, '2.01');
    assert.strictEqual(res.locationPath[0], 'rd');
    const [reg] = await registered;
    assert.deepStrictEqual(
      [reg.endpoint, reg.lifetime, reg.lwm2mVersion, reg.binding, reg.queueMode, reg.supportedFormats, reg.port],
      ['dev', 60, '1.1', 'U', false, [60, 110, 112, 11542], device.address().port],
    );
    assert.deepStrictEqual(reg.objects, [{ objectId: 1, instanceId: 0 }, { objectId: 3, instanceId: 0 }, { objectId: 3303, instanceId: 0, version: '1.1' }]);
    assert.strictEqual(server.getRegistrationById(reg.id), reg);

    const updated = nextEvent(server, 'update');
    const up = await device.request(serverPeer, { method: 'POST', path: `/rd/${reg.id}`, query: ['lt=120'] });
    assert.strictEqual(up.code, '2.04');
    assert.strictEqual((await updated)[0].lifetime, 120);

    const gone = nextEvent(server, 'deregister');
    assert.strictEqual((await device.request(serverPeer, { method: 'DELETE', path: `/rd/${reg.id}` })).code, '2.02');
    assert.strictEqual((await gone).endpoint, 'dev');
    assert.strictEqual(server.getRegistration('dev'), undefined);
    assert.strictEqual((await device.request(serverPeer, { method: 'POST', path: `/rd/${reg.id}` })).code, '4.04');
  });

  it('refuses bad registrations with 4.00 and a reason, and keeps serving', async () => {
    const cases = [
      [['lt=60'], LINKS, /missing endpoint/],
      [['ep=a', 'lt=abc'], LINKS, /lifetime/],
      [['ep=a', 'lt=-5'], LINKS, /lifetime/],
      [['ep=a', 'b=X'], LINKS, /binding/],
      [['ep=a'], Buffer.from('</1/0'), /object links/],
      [['ep=a'], Buffer.from('</foo/bar>'), /not <\/object>/],
    ];
    for (const [query, payload, reason] of cases) {
      const res = await register(device, query, payload);
      assert.strictEqual(res.code, '4.00', query.join('&'));
      assert.match(res.payload.toString(), reason);
    }
    // garbage datagrams are dropped by the CoAP layer; the server still answers
    const raw = dgram.createSocket('udp4');
    await new Promise((r) => raw.send(Buffer.from([0xff, 0x00, 0x13]), serverPeer.port, '127.0.0.1', r));
    await new Promise((r) => raw.send(Buffer.alloc(0), serverPeer.port, '127.0.0.1', r));
    raw.close();
    assert.strictEqual((await register(device)).code, '2.01');
  });

  it('replaces the registration of an endpoint that registers again', async () => {
    await register(device);
    const first = server.getRegistration('dev');
    const again = await newDevice();
    const replaced = nextEvent(server, 'register');
    await register(again);
    const [reg, previous] = await replaced;
    assert.strictEqual(previous.id, first.id);
    assert.notStrictEqual(reg.id, first.id);
    assert.strictEqual(server.listRegistrations().length, 1);
    assert.strictEqual(server.getRegistrationById(first.id), undefined);
  });

  it('sends device requests from its own port, with Accept from the negotiated format, to where the last Update came from', async () => {
    const seen = [];
    const answer = (ex) => {
      seen.push({ accept: ex.request.accept, peerPort: ex.request.peer.port, path: ex.request.pathSegments.join('/') });
      ex.respond({ code: '2.05', contentFormat: 112, payload: encodeRecords('senml-cbor', [{ path: { objectId: 3, instanceId: 0, resourceId: 0 }, value: 'Acme' }], { basePath: { objectId: 3, instanceId: 0, resourceId: 0 } }) });
    };
    device.setHandler(answer);
    const res = await register(device);
    const regId = res.locationPath[1];
    assert.strictEqual((await server.read('dev', '/3/0/0')).value, 'Acme');
    assert.deepStrictEqual(seen[0], { accept: 112, peerPort: serverPeer.port, path: '3/0/0' });

    // NAT rebinding: the same device updates from a new port
    const moved = await newDevice(answer);
    assert.strictEqual((await moved.request(serverPeer, { method: 'POST', path: `/rd/${regId}` })).code, '2.04');
    assert.strictEqual(server.getRegistration('dev').port, moved.address().port);
    await server.read('dev', '/3/0/0');
    assert.strictEqual(seen.length, 2);
    assert.strictEqual(server.listRegistrations().length, 1);
  });

  it('negotiates TLV for LwM2M 1.0 devices', async () => {
    let accept;
    device.setHandler((ex) => {
      accept = ex.request.accept;
      ex.respond({ code: '2.05', contentFormat: 11542, payload: Buffer.from('c10964', 'hex') });
    });
    await register(device, ['ep=old', 'lt=60'], Buffer.from('</1/0>,</3/0>'));
    assert.deepStrictEqual((await server.read('old', '/3/0')).value, { 9: 100 });
    assert.strictEqual(accept, 11542);
  });

  it('turns garbage answers, error codes and silence into typed errors', async () => {
    let mode = 'garbage';
    device.setHandler((ex) => {
      if (mode === 'garbage') ex.respond({ code: '2.05', contentFormat: 11542, payload: Buffer.from('c8ff', 'hex') });
      else if (mode === 'cbor') ex.respond({ code: '2.05', contentFormat: 112, payload: Buffer.from('9fffff', 'hex') });
      else if (mode === 'error') ex.respond({ code: '4.04', payload: Buffer.from('no such thing') });
      // 'silent': no answer at all
    });
    await register(device);
    await assert.rejects(server.read('dev', '/3/0', { format: 'tlv' }), DecodeError);
    mode = 'cbor';
    await assert.rejects(server.read('dev', '/3/0'), DecodeError);
    mode = 'error';
    await assert.rejects(server.read('dev', '/3/0/0'), (err) => err instanceof RequestFailedError && err.code === '4.04' && /no such thing/.test(err.message));
    mode = 'silent';
    const started = Date.now();
    await assert.rejects(server.read('dev', '/3/0/0', { timeoutMs: 300 }), DeviceTimeoutError);
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(server.read('nobody', '/3/0/0'), DeviceNotFoundError);
    await assert.rejects(server.read('dev', '/3/x'), /not a number/);
    await assert.rejects(server.execute('dev', '/3/0'), /execute needs a resource path/);
  });

  it('expires a registration when its lifetime runs out', async () => {
    await register(device, ['ep=brief', 'lt=1']);
    const expired = await nextEvent(server, 'expire', 4000);
    assert.strictEqual(expired.endpoint, 'brief');
    assert.strictEqual(server.getRegistration('brief'), undefined);
  });

  it('queues requests for a sleeping queue-mode device until it sends an Update', async () => {
    const received = [];
    device.setHandler((ex) => {
      received.push(ex.request.method);
      ex.respond({ code: '2.04' });
    });
    const res = await register(device, ['ep=sleepy', 'lt=60', 'lwm2m=1.1', 'Q']);
    assert.strictEqual(server.getRegistration('sleepy').queueMode, true);
    await delay(300); // past queueAwakeMs: the device sleeps
    const pending = server.execute('sleepy', '/3/0/4', undefined, { timeoutMs: 5000 });
    await delay(200);
    assert.deepStrictEqual(received, [], 'nothing is sent while the device sleeps');
    const woke = nextEvent(server, 'wakeup');
    await device.request(serverPeer, { method: 'POST', path: `/rd/${res.locationPath[1]}` });
    await woke;
    assert.strictEqual((await pending).code, '2.04');
    assert.deepStrictEqual(received, ['POST']);
    await delay(300);
    await assert.rejects(server.execute('sleepy', '/3/0/4', undefined, { timeoutMs: 200 }), /did not wake up/);
  });

  it('observes, decodes notifications, and forgets observations of a device that re-registers', async () => {
    let exchange;
    device.setHandler((ex) => {
      exchange = ex;
      ex.respond({ code: '2.05', contentFormat: 0, payload: Buffer.from('20.5') });
    });
    await register(device);
    const started = await server.observe('dev', '/3303/0/5700');
    assert.strictEqual(started.value, 20.5);
    assert.strictEqual(server.listObservations('dev').length, 1);
    const notified = nextEvent(server, 'notify');
    exchange.notify({ code: '2.05', contentFormat: 0, payload: Buffer.from('21.75') });
    const n = await notified;
    assert.deepStrictEqual([n.endpoint, n.path, n.value, n.observationId], ['dev', '/3303/0/5700', 21.75, started.observationId]);
    await register(device);
    assert.strictEqual(server.listObservations('dev').length, 0);
  });

  it('accepts Send (/dp) from a registered device', async () => {
    await register(device);
    const sent = nextEvent(server, 'send');
    const payload = encodeRecords('senml-cbor', [{ path: { objectId: 3303, instanceId: 0, resourceId: 5700 }, value: 19.5 }], { basePath: { objectId: 0 } });
    const res = await device.request(serverPeer, { method: 'POST', path: '/dp', contentFormat: 112, payload });
    assert.strictEqual(res.code, '2.04');
    assert.deepStrictEqual((await sent).value, { '/3303/0/5700': 19.5 });
    const stranger = await newDevice();
    assert.strictEqual((await stranger.request(serverPeer, { method: 'POST', path: '/dp', contentFormat: 112, payload })).code, '4.04');
  });
});

describe('registration persistence', function () {
  this.timeout(15000);
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const { Lwm2mClient } = require('../../dist/lwm2m/client');

  it('knows its devices again after a restart, and can reach them before their next Update', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-persist-'));
    const file = path.join(dir, 'registrations.json');
    const first = new Lwm2mServer({ port: 0, address: '127.0.0.1', persistenceFile: file });
    await first.start();
    const port = first.address().port;
    const client = new Lwm2mClient({ endpoint: 'kept', server: { host: '127.0.0.1', port }, localAddress: '127.0.0.1', lifetime: 300, autoUpdate: false });
    client.on('warning', () => {});
    try {
      await client.start();
      const before = first.getRegistration('kept');
      await first.stop(); // flushes the file
      const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert.deepStrictEqual(saved.map((r) => r.endpoint), ['kept']);

      const second = new Lwm2mServer({ port, address: '127.0.0.1', persistenceFile: file });
      await second.start();
      try {
        const after = second.getRegistration('kept');
        assert.strictEqual(after.id, before.id);
        assert.strictEqual(after.port, before.port);
        assert.ok(after.expiresAt instanceof Date);
        assert.strictEqual((await second.read('kept', '/3/0/0')).code, '2.05');
        // an Update to the remembered location works without a new Register
        let registeredAgain = false;
        second.on('register', () => { registeredAgain = true; });
        const updated = nextEvent(second, 'update');
        await client.update();
        await updated;
        assert.strictEqual(registeredAgain, false);
      } finally {
        await client.stop();
        await second.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignores a damaged file with a warning', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-persist-'));
    const file = path.join(dir, 'registrations.json');
    fs.writeFileSync(file, '{not json');
    const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', persistenceFile: file });
    const warned = nextEvent(server, 'warning');
    await server.start();
    try {
      assert.match((await warned).message, /not a registration file/);
      assert.strictEqual(server.listRegistrations().length, 0);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
