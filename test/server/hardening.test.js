'use strict';
// Registration hardening over NoSec: unguessable registration ids, Update/De-register only from
// the registration's address when address changes are not allowed, a replaced registration as an
// event, and bounded Register payloads. Raw CoAP from second transports playing devices; loopback.
const assert = require('assert');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { Lwm2mServer, ObservationLimitError, RequestLimitError } = require('../../dist/lwm2m/server');
const { nextEvent } = require('../helpers');

const LINKS = Buffer.from('</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>');

describe('LwM2M server hardening (NoSec)', function () {
  this.timeout(15000);
  let server;
  const opened = [];

  async function start(options = {}) {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 1000, ...options });
    server.on('warning', () => {});
    await server.start();
  }

  async function peer(handler = (ex) => ex.respond({ code: '4.04' })) {
    const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 2000 });
    t.setHandler(handler);
    await t.open();
    opened.push(t);
    return t;
  }

  function register(t, endpoint, payload = LINKS) {
    return t.request(server.address(), { method: 'POST', path: '/rd', query: [`ep=${endpoint}`, 'lt=60', 'lwm2m=1.1'], contentFormat: 40, payload });
  }

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((t) => t.close()));
    await server?.stop();
  });

  it('gives registrations ids of 12 random URI-safe characters, never a counter', async () => {
    await start();
    const device = await peer();
    const ids = [];
    for (let i = 0; i < 50; i++) ids.push((await register(device, `dev-${i}`)).locationPath[1]);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{12}$/);
    assert.strictEqual(new Set(ids).size, ids.length);
    // consecutive ids share no prefix beyond chance: nothing in one tells the next
    const shared = ids.slice(1).filter((id, i) => id.slice(0, 4) === ids[i].slice(0, 4)).length;
    assert.ok(shared <= 1, `${shared} consecutive ids share their first four characters`);
  });

  it('without "allow address change", refuses Update and De-register from another address (4.03 and an event) and keeps the registration where it is', async () => {
    await start({ allowAddressChange: false });
    const device = await peer();
    const attacker = await peer();
    const id = (await register(device, 'victim')).locationPath[1];
    const refused = nextEvent(server, 'securityRefused');
    assert.strictEqual((await attacker.request(server.address(), { method: 'POST', path: `/rd/${id}`, query: ['lt=90'] })).code, '4.03');
    const r = await refused;
    assert.deepStrictEqual([r.operation, r.endpoint, r.port], ['update', 'victim', attacker.address().port]);
    assert.strictEqual((await attacker.request(server.address(), { method: 'DELETE', path: `/rd/${id}` })).code, '4.03');
    const reg = server.getRegistration('victim');
    assert.deepStrictEqual([reg.port, reg.lifetime], [device.address().port, 60], 'neither moved nor changed');
    // the device itself still updates
    assert.strictEqual((await device.request(server.address(), { method: 'POST', path: `/rd/${id}`, query: ['lt=90'] })).code, '2.04');
    assert.strictEqual(server.getRegistration('victim').lifetime, 90);
  });

  it('with address changes allowed (the default), an Update from a new address moves the registration there (NAT rebinding)', async () => {
    await start();
    const device = await peer();
    const rebound = await peer();
    const id = (await register(device, 'nat-dev')).locationPath[1];
    assert.strictEqual((await rebound.request(server.address(), { method: 'POST', path: `/rd/${id}` })).code, '2.04');
    assert.strictEqual(server.getRegistration('nat-dev').port, rebound.address().port);
  });

  it('tells flows when a Register from another address replaces a registration', async () => {
    await start();
    const first = await peer();
    const second = await peer();
    await register(first, 'twice');
    const replaced = nextEvent(server, 'replaced');
    await register(second, 'twice');
    const e = await replaced;
    assert.deepStrictEqual([e.endpoint, e.from.port, e.to.port], ['twice', first.address().port, second.address().port]);
  });

  it('refuses a Register payload over the limit with 4.13 and too many links with 4.00, and keeps serving', async () => {
    await start({ maxRegistrationPayload: 2000, maxRegistrationLinks: 50 });
    const device = await peer();
    const warned = nextEvent(server, 'warning');
    const big = Buffer.from(`</>;rt="oma.lwm2m",${Array.from({ length: 300 }, (_, i) => `</3303/${i}>`).join(',')}`);
    assert.ok(big.length > 2000);
    assert.strictEqual((await register(device, 'big', big)).code, '4.13');
    assert.match((await warned).message, /over the 2000 allowed/);
    const many = Buffer.from(`</>;rt="oma.lwm2m",${Array.from({ length: 60 }, (_, i) => `</3303/${i}>`).join(',')}`);
    assert.ok(many.length < 2000);
    assert.strictEqual((await register(device, 'many', many)).code, '4.00');
    assert.strictEqual((await register(device, 'fine')).code, '2.01');
    assert.strictEqual(server.getRegistration('big'), undefined);
  });

  it('bounds observations per device and in all: observe() beyond fails at once with a clear error', async () => {
    await start({ maxObservationsPerDevice: 3, maxObservations: 4 });
    const answer = (ex) => ex.respond({ code: '2.05', contentFormat: 0, payload: Buffer.from('42') });
    const a = await peer(answer);
    const b = await peer(answer);
    await register(a, 'obs-a');
    await register(b, 'obs-b');
    for (const rid of [0, 1, 2]) await server.observe('obs-a', `/3/0/${rid}`);
    await assert.rejects(server.observe('obs-a', '/3/0/9'), ObservationLimitError);
    await server.observe('obs-a', '/3/0/1'); // the same path again replaces, within the limit
    await server.observe('obs-b', '/3/0/0');
    await assert.rejects(server.observe('obs-b', '/3/0/1'), (err) => err instanceof ObservationLimitError && /4 observations are active/.test(err.message));
    await server.cancelObservation('obs-a', '/3/0/2');
    await server.observe('obs-b', '/3/0/1'); // room again
    assert.strictEqual(server.listObservations().length, 4);
  });

  it('bounds the requests pending to devices: beyond the limit a request fails at once, nothing is sent', async () => {
    await start({ maxPendingRequests: 3, requestTimeoutMs: 800 });
    let asked = 0;
    const silent = await peer(() => { asked++; }); // never answers
    await register(silent, 'silent');
    const pending = [0, 1, 2].map((rid) => server.read('silent', `/3/0/${rid}`).catch((err) => err));
    const t0 = Date.now();
    await assert.rejects(server.read('silent', '/3/0/9'), RequestLimitError);
    assert.ok(Date.now() - t0 < 50, 'refused at once');
    await Promise.all(pending);
    assert.ok(asked <= 3, `${asked} requests reached the device`);
    // once they timed out there is room again
    await assert.rejects(server.read('silent', '/3/0/0'), (err) => !(err instanceof RequestLimitError));
  });

  it('takes an answer to its request only from the device: the right token from another address is ignored', async () => {
    await start({ requestTimeoutMs: 2000 });
    const dgram = require('dgram');
    const { encodeMessage, decodeMessage } = require('../../dist/lwm2m/coap/message');
    const device = dgram.createSocket('udp4');
    const attacker = dgram.createSocket('udp4');
    for (const s of [device, attacker]) await new Promise((r) => s.bind(0, '127.0.0.1', r));
    const asked = new Promise((resolve) => device.on('message', (buf, rinfo) => {
      const m = decodeMessage(buf);
      if (m.code === 1) resolve({ m, rinfo }); // the server's GET
    }));
    device.send(encodeMessage({ type: 0, code: 2, messageId: 1, token: Buffer.from([1]), payload: Buffer.from('</3303/0>'),
      options: [{ number: 11, value: Buffer.from('rd') }, { number: 12, value: Buffer.from([40]) }, { number: 15, value: Buffer.from('ep=victim') }] }), server.address().port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    const reading = server.read('victim', '/3303/0/5700', { format: 'text' });
    const { m, rinfo } = await asked;
    const answer = (value, messageId, type) => encodeMessage({ type, code: 69, messageId, token: m.token, options: [{ number: 12, value: Buffer.alloc(0) }], payload: Buffer.from(value) });
    // the attacker knows the token (worst case) and answers first: as a piggybacked ACK, a CON and a NON
    attacker.send(answer('66.6', m.messageId, 2), rinfo.port, rinfo.address);
    attacker.send(answer('66.6', 0x7001, 0), rinfo.port, rinfo.address);
    attacker.send(answer('66.6', 0x7002, 1), rinfo.port, rinfo.address);
    await new Promise((r) => setTimeout(r, 100));
    device.send(answer('21.5', m.messageId, 2), rinfo.port, rinfo.address);
    assert.strictEqual((await reading).value, 21.5);
    for (const s of [device, attacker]) s.close();
  });
});
