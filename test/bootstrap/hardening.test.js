'use strict';
// The bootstrap server under a flood of Bootstrap-Requests from one socket: each refused request
// costs one answer (4.29 with Max-Age, or 5.03 when the concurrent sessions are used up) and never
// a request to the sender; a valid Register on the same socket is still answered within 100 ms,
// and a real device bootstraps right after. Raw datagrams on loopback.
const assert = require('assert');
const dgram = require('dgram');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { BootstrapServer } = require('../../dist/lwm2m/server/bootstrap-server');
const { SourceRateLimiter } = require('../../dist/lwm2m/server/rate-limit');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { encodeMessage, decodeMessage, isMalformed } = require('../../dist/lwm2m/coap/message');
const { nextEvent, delay } = require('../helpers');

const NON = 1;
const POST = 2;

function bootstrapRequest(messageId, endpoint) {
  return encodeMessage({
    type: NON, code: POST, messageId, token: Buffer.from([messageId >> 8, messageId & 255]),
    options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from(`ep=${endpoint}`) }], payload: Buffer.alloc(0),
  });
}

describe('bootstrap server under a flood', function () {
  this.timeout(30000);
  let server;
  let bs;
  const cleanup = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function start(options = {}) {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 2000 });
    server.on('warning', () => {});
    await server.start();
    cleanup.push(() => server.stop());
    bs = new BootstrapServer({ transport: server, sessionTimeoutMs: 3000, requestTimeoutMs: 1000, ...options });
    bs.setConfig({ endpoint: 'flood-*', servers: [{ uri: `coap://127.0.0.1:${server.address().port}`, shortServerId: 1, lifetime: 60 }] });
    server.setBootstrapHandler((ex) => bs.handle(ex));
    cleanup.push(() => bs.stop());
  }

  it('answers each refused Bootstrap-Request once, sends no requests beyond the allowed sessions, and keeps serving', async () => {
    await start({ maxSessions: 20 });
    const sock = dgram.createSocket('udp4');
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => sock.close(r)));
    const got = { responses: 0, requests: 0, codes: new Map() };
    sock.on('message', (buf) => {
      const m = decodeMessage(buf);
      if (isMalformed(m)) return;
      if (m.code >= 1 && m.code < 32) got.requests++;
      else if (m.code !== 0) {
        got.responses++;
        const code = `${m.code >> 5}.${String(m.code & 31).padStart(2, '0')}`;
        got.codes.set(code, (got.codes.get(code) || 0) + 1);
      }
    });
    const refusals = [];
    bs.on('session', (e) => e.event === 'failed' && e.step === 'request' && refusals.push(e));
    const FLOOD = 5000;
    for (let i = 0; i < FLOOD; i++) {
      sock.send(bootstrapRequest(i + 1, `flood-${i}`), server.address().port, '127.0.0.1');
      if (i % 500 === 499) await delay(1); // let the socket drain: loopback drops what its buffers cannot hold
    }
    // a valid Register from another socket: right behind the flood it waits for the datagrams queued
    // ahead of it on the socket (each refused at the cost of one answer); once they are answered,
    // the flood leaves no work behind that could stall it
    const device = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 2000 });
    await device.open();
    cleanup.push(() => device.close());
    const registerOnce = async (ep) => {
      const t0 = Date.now();
      const reg = await device.request(server.address(), { method: 'POST', path: '/rd', query: [`ep=${ep}`, 'lt=60'], contentFormat: 40, payload: Buffer.from('</1/0>,</3/0>') });
      assert.strictEqual(reg.code, '2.01');
      return Date.now() - t0;
    };
    const behind = await registerOnce('bystander-1');
    assert.ok(behind < 1000, `Register behind ${FLOOD} queued requests answered in ${behind} ms`);
    for (let last = -1; last !== got.responses;) {
      last = got.responses;
      await delay(50);
    }
    const after = await registerOnce('bystander-2');
    assert.ok(after < 100, `Register after the flood answered in ${after} ms`);
    await delay(1500);
    assert.ok(got.responses <= FLOOD, `${got.responses} answers to ${FLOOD} requests`);
    assert.ok((got.codes.get('4.29') || 0) >= FLOOD - 100, `most are 4.29: ${JSON.stringify([...got.codes])}`);
    assert.ok((got.codes.get('2.04') || 0) <= 5, 'only the burst of one source starts sessions');
    // each started session sends its requests to the flooder, which never answers: bounded by the burst
    assert.ok(got.requests <= 5 * 3, `${got.requests} requests sent to the flooding socket`);
    assert.ok(refusals.length <= 5, `${refusals.length} refusal events (at most one a second)`);
    assert.ok(refusals.every((e) => e.code === '4.29' && e.address === '127.0.0.1'));

    // a real device from another socket bootstraps and registers
    const c = new Lwm2mClient({ endpoint: 'flood-legit', bootstrap: { host: '127.0.0.1', port: server.address().port }, localAddress: '127.0.0.1', requestTimeoutMs: 2000 });
    c.on('warning', () => {});
    cleanup.push(() => c.stop());
    const registered = nextEvent(server, 'register', 10000, (r) => r.endpoint === 'flood-legit');
    await c.start();
    await registered;
  });

  it('answers 5.03 with Max-Age once the concurrent sessions are used up', async () => {
    await start({ maxSessions: 2, requestsPerSource: { burst: 100, perSecond: 100 } });
    const sock = dgram.createSocket('udp4');
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => sock.close(r)));
    const answers = [];
    sock.on('message', (buf) => {
      const m = decodeMessage(buf);
      if (!isMalformed(m) && m.code >= 64) answers.push(m);
    });
    for (let i = 0; i < 5; i++) sock.send(bootstrapRequest(100 + i, `flood-s${i}`), server.address().port, '127.0.0.1');
    await delay(300);
    const codes = answers.map((m) => `${m.code >> 5}.${String(m.code & 31).padStart(2, '0')}`).sort();
    assert.deepStrictEqual(codes, ['2.04', '2.04', '5.03', '5.03', '5.03']);
    const busy = answers.find((m) => m.code === (5 << 5 | 3));
    const maxAge = busy.options.find((o) => o.number === 14);
    assert.ok(maxAge && maxAge.value.readUIntBE(0, maxAge.value.length) === 10, 'Max-Age 10');
  });

  it('keeps its per-source table bounded, forgetting the source heard from longest ago', () => {
    const limiter = new SourceRateLimiter(2, 1, 100);
    for (let i = 0; i < 10000; i++) limiter.allow(`10.0.${i >> 8}.${i & 255}:5683`, 1000);
    assert.strictEqual(limiter.size, 100);
    assert.ok(limiter.allow('a', 0) && limiter.allow('a', 0) && !limiter.allow('a', 0), 'a burst of two');
    assert.ok(limiter.allow('a', 1000), 'one more a second later');
  });
});
