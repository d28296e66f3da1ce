'use strict';
// The CoAP message layer (dist/lwm2m/coap) against the rules of RFC 7252 (messages, reliability,
// deduplication, NSTART, matching), RFC 7641 (Observe, both sides) and RFC 7959 (block-wise,
// both sides). The peer in every test is a raw UDP socket on 127.0.0.1 that builds and parses
// datagrams with the npm package `coap-packet` (an independent codec) or with hand-written
// bytes, so every assertion is about what is on the wire. Every test is bounded in time.
const assert = require('assert');
const crypto = require('crypto');
const dgram = require('dgram');
const { generate, parse } = require('coap-packet');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { CoapTimeoutError, CoapResetError, CoapTransportError } = require('../../dist/lwm2m/coap/errors');

const HOST = '127.0.0.1';
const CON = 0;
const NON = 1;
const ACK = 2;
const RST = 3;

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An empty message (code 0.00, no token), written by hand. */
function emptyMsg(type, mid) {
  return Buffer.from([0x40 | (type << 4), 0x00, mid >> 8, mid & 0xff]);
}

const typeOf = (buf) => (buf[0] >> 4) & 3;
const midOf = (buf) => buf.readUInt16BE(2);

function uint(n) {
  if (n === 0) return Buffer.alloc(0);
  const bytes = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return Buffer.from(bytes);
}

function readUint(buf) {
  let n = 0;
  for (const b of buf) n = n * 256 + b;
  return n;
}

function blockValue(num, more, szx) {
  return uint(num * 16 + (more ? 8 : 0) + szx);
}

function decodeBlock(buf) {
  const n = readUint(buf);
  return { num: Math.floor(n / 16), more: (n & 8) !== 0, szx: n & 7 };
}

/** Value of the first option called `name` (coap-packet's name, or the number as a string). */
function opt(msg, name) {
  const o = msg.options.find((x) => x.name === name);
  return o ? o.value : undefined;
}

function optAll(msg, name) {
  return msg.options.filter((x) => x.name === name).map((x) => x.value);
}

const pathOf = (msg) => optAll(msg, 'Uri-Path').map((v) => v.toString()).join('/');

/** A datagram built by coap-packet. */
function packet(type, fields) {
  return generate({ ...fields, confirmable: type === CON, ack: type === ACK, reset: type === RST });
}

function pattern(n, seed = 0) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8) + seed) & 0xff;
  return b;
}

const uriPath = (...segments) => segments.map((s) => ({ name: 'Uri-Path', value: Buffer.from(s) }));

/** A raw UDP peer: every datagram it receives is queued (and logged) with its arrival time. */
class RawPeer {
  static async create() {
    const sock = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, HOST, () => {
        sock.removeListener('error', reject);
        resolve();
      });
    });
    return new RawPeer(sock);
  }

  constructor(sock) {
    this.sock = sock;
    this.inbox = [];
    this.log = [];
    this.waiters = [];
    this.auto = null;
    this.closed = false;
    sock.on('message', (buf, rinfo) => this.onMessage(buf, rinfo));
  }

  get port() {
    return this.sock.address().port;
  }

  get addr() {
    return { address: HOST, port: this.port };
  }

  onMessage(buf, rinfo) {
    let msg = null;
    try {
      msg = parse(Buffer.from(buf));
    } catch {
      msg = null;
    }
    const item = { buf: Buffer.from(buf), rinfo: { address: rinfo.address, port: rinfo.port }, at: Date.now(), msg };
    this.log.push(item);
    if (this.auto) {
      this.auto(item);
      return;
    }
    const w = this.waiters.find((x) => x.filter(item));
    if (w) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      clearTimeout(w.timer);
      w.resolve(item);
      return;
    }
    this.inbox.push(item);
  }

  send(data, to) {
    if (this.closed) return data;
    this.sock.send(data, to.port, to.address);
    return data;
  }

  /** Answers a received request with a piggybacked response in an ACK. */
  reply(item, code, { payload, options = [], token = item.msg.token, messageId = item.msg.messageId } = {}) {
    return this.send(packet(ACK, { code, messageId, token, options, payload }), item.rinfo);
  }

  /** The next received datagram that passes `filter` (queued ones first); rejects after `ms`. */
  next(filter = () => true, ms = 2000) {
    const i = this.inbox.findIndex(filter);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { filter, resolve, timer: null };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`raw peer ${this.port}: no datagram within ${ms} ms`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Waits `ms` and returns (and removes) whatever was queued meanwhile. */
  async drain(ms) {
    await delay(ms);
    return this.inbox.splice(0);
  }

  close() {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const w of this.waiters.splice(0)) clearTimeout(w.timer);
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}

const hex = (buf) => Buffer.from(buf).toString('hex');

describe('CoAP message layer: RFC rules against a raw UDP peer', function () {
  this.timeout(10000);
  const cleanup = [];

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // cleanup must not fail the next test
      }
    }
  });

  async function transport(options = {}) {
    const t = new CoapTransport({
      port: 0, address: HOST, ackTimeoutMs: 50, ackRandomFactor: 1, maxRetransmit: 2, requestTimeoutMs: 3000, ...options,
    });
    t.warnings = [];
    t.on('warning', (err) => t.warnings.push(err));
    await t.open();
    cleanup.push(() => t.close());
    return t;
  }

  async function rawPeer() {
    const p = await RawPeer.create();
    cleanup.push(() => p.close());
    return p;
  }

  /** A timer that is cleared after the test (a slow handler must not outlive it). */
  function later(ms, fn) {
    const timer = setTimeout(fn, ms);
    cleanup.push(() => clearTimeout(timer));
    return timer;
  }

  // ------------------------------------------------------------------------------------------
  describe('RFC 7252 (answering side)', () => {
    it('(1) answers a CON ping (empty CON, 0.00) with RST carrying the same message id', async () => {
      const t = await transport();
      const p = await rawPeer();
      let calls = 0;
      t.setHandler(() => calls++);
      p.send(Buffer.from([0x40, 0x00, 0xbe, 0xef]), t.address());
      const r = await p.next();
      assert.strictEqual(hex(r.buf), '7000beef');
      assert.strictEqual(r.rinfo.port, t.address().port);
      assert.deepStrictEqual(await p.drain(100), []);
      assert.strictEqual(calls, 0);
    });

    it('(2) ignores malformed datagrams (RST only to a CON whose header parses), never 5.00 or text, and keeps serving', async () => {
      const t = await transport();
      const p = await rawPeer();
      const to = t.address();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.05', payload: Buffer.from('still here'), contentFormat: 0 });
      });
      const hdr = (first, code, mid) => [first, code, mid >> 8, mid & 0xff];
      const nine = [1, 2, 3, 4, 5, 6, 7, 8, 9];
      // no answer at all: no header, a wrong version, or not a CON
      const silent = [
        ['empty datagram', []],
        ['1 byte', [0x40]],
        ['3 bytes', [0x40, 0x01, 0x12]],
        ['version 2 with CON bits', [0x80, 0x01, 0x12, 0x34, 0xb1, 0x61]],
        ['version 0 with CON bits', [0x00, 0x01, 0x12, 0x35]],
        ['NON, token length 9', [...hdr(0x59, 0x01, 0x1001), ...nine]],
        ['NON, option delta nibble 15', [...hdr(0x50, 0x01, 0x1002), 0xf1, 0x61]],
        ['NON, option length nibble 15', [...hdr(0x50, 0x01, 0x1003), 0xbf, 0x61]],
        ['NON, truncated option value', [...hdr(0x50, 0x01, 0x1004), 0xb5, 0x61, 0x62]],
        ['NON, payload marker with no payload', [...hdr(0x50, 0x01, 0x1005), 0xb1, 0x61, 0xff]],
        ['ACK, token length 9', [...hdr(0x69, 0x45, 0x1006), ...nine]],
        ['RST, truncated option value', [...hdr(0x70, 0x45, 0x1007), 0xb5, 0x61]],
      ];
      for (const [, bytes] of silent) p.send(Buffer.from(bytes), to);
      const noise = await p.drain(200);
      assert.deepStrictEqual(noise.map((x) => hex(x.buf)), [], 'no datagram answers a malformed non-CON');

      // a CON whose 4-byte header parses: RST with its message id (§4.2), nothing else
      const rejected = [
        ['CON, token length 9', [...hdr(0x49, 0x01, 0x2001), ...nine]],
        ['CON, option delta nibble 15', [...hdr(0x40, 0x01, 0x2002), 0xf1, 0x61]],
        ['CON, option length nibble 15', [...hdr(0x40, 0x01, 0x2003), 0xbf, 0x61]],
        ['CON, truncated option value', [...hdr(0x40, 0x01, 0x2004), 0xb5, 0x61, 0x62]],
        ['CON, payload marker with no payload', [...hdr(0x40, 0x01, 0x2005), 0xb1, 0x61, 0xff]],
        ['CON, truncated token', [...hdr(0x44, 0x01, 0x2006), 0xaa, 0xbb]],
        ['CON empty message with a token', [...hdr(0x41, 0x00, 0x2007), 0xaa]],
      ];
      for (const [, bytes] of rejected) p.send(Buffer.from(bytes), to);
      const answers = await p.drain(250);
      assert.deepStrictEqual(answers.map((x) => hex(x.buf)).sort(),
        rejected.map(([, b]) => hex(emptyMsg(RST, (b[2] << 8) | b[3]))).sort());
      for (const a of answers) {
        assert.strictEqual(a.buf.length, 4, 'an RST is 4 bytes: no code, no text');
        assert.notStrictEqual(a.buf[1], 0xa0, 'never a 5.00');
      }
      assert.strictEqual(calls, 0);

      // still serving
      p.send(packet(CON, { code: 'GET', messageId: 0x3001, token: Buffer.from([0xc0, 0xff]), options: uriPath('ok') }), to);
      const r = await p.next();
      assert.strictEqual(r.msg.ack, true);
      assert.strictEqual(r.msg.code, '2.05');
      assert.strictEqual(r.msg.messageId, 0x3001);
      assert.strictEqual(hex(r.msg.token), 'c0ff');
      assert.strictEqual(r.msg.payload.toString(), 'still here');
      assert.strictEqual(calls, 1);
    });

    it('(3) answers a duplicate CON request with the same bytes and runs the handler once', async () => {
      const t = await transport();
      const p = await rawPeer();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.05', payload: Buffer.from(`answer ${calls}`), contentFormat: 0 });
      });
      const token = Buffer.from([1, 2, 3, 4]);
      const request = packet(CON, { code: 'GET', messageId: 0x1234, token, options: uriPath('dup') });
      p.send(request, t.address());
      const first = await p.next();
      p.send(request, t.address());
      const second = await p.next();
      p.send(request, t.address());
      const third = await p.next();
      assert.strictEqual(hex(second.buf), hex(first.buf));
      assert.strictEqual(hex(third.buf), hex(first.buf));
      assert.strictEqual(first.msg.ack, true);
      assert.strictEqual(first.msg.code, '2.05');
      assert.strictEqual(first.msg.messageId, 0x1234);
      assert.strictEqual(hex(first.msg.token), hex(token));
      assert.strictEqual(first.msg.payload.toString(), 'answer 1');
      assert.deepStrictEqual(await p.drain(100), []);
      assert.strictEqual(calls, 1);
    });

    it('(3b) answers a duplicate of a CON still being processed with an empty ACK at once, then one separate response', async () => {
      const t = await transport({ separateResponseAfterMs: 5000, ackTimeoutMs: 60, ackRandomFactor: 1, maxRetransmit: 4 });
      const p = await rawPeer();
      let calls = 0;
      let exchange;
      t.setHandler((ex) => {
        calls++;
        exchange = ex;
      });
      const token = Buffer.from([0xd0, 0x0d]);
      const request = packet(CON, { code: 'POST', messageId: 0x1235, token, options: uriPath('work'), payload: Buffer.from('job') });
      p.send(request, t.address());
      assert.deepStrictEqual(await p.drain(100), [], 'nothing before the separate-response delay');
      p.send(request, t.address());
      const ack = await p.next(() => true, 500);
      assert.strictEqual(hex(ack.buf), hex(emptyMsg(ACK, 0x1235)), 'the duplicate gets the empty ACK now');
      p.send(request, t.address());
      assert.strictEqual(hex((await p.next(() => true, 500)).buf), hex(emptyMsg(ACK, 0x1235)), 'and again');
      assert.strictEqual(calls, 1);
      exchange.respond({ code: '2.04', payload: Buffer.from('done') });
      const response = await p.next();
      assert.strictEqual(typeOf(response.buf), CON);
      assert.strictEqual(response.msg.code, '2.04');
      assert.strictEqual(hex(response.msg.token), 'd00d');
      assert.notStrictEqual(response.msg.messageId, 0x1235);
      p.send(emptyMsg(ACK, response.msg.messageId), t.address());
      assert.deepStrictEqual(await p.drain(200), []);
      assert.strictEqual(calls, 1);
    });

    it('(4) runs the handler once for a duplicate NON request', async () => {
      const t = await transport();
      const p = await rawPeer();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.05', payload: Buffer.from('non answer') });
      });
      const token = Buffer.from([9, 8, 7]);
      const request = packet(NON, { code: 'GET', messageId: 0x4321, token, options: uriPath('dup') });
      p.send(request, t.address());
      p.send(request, t.address());
      await delay(30);
      p.send(request, t.address());
      const got = await p.drain(200);
      assert.strictEqual(calls, 1);
      assert.strictEqual(got.length, 1, 'one response, to the first copy only');
      const r = got[0].msg;
      assert.strictEqual(typeOf(got[0].buf), NON);
      assert.strictEqual(r.code, '2.05');
      assert.strictEqual(hex(r.token), hex(token));
      assert.strictEqual(r.payload.toString(), 'non answer');
    });

    it('(5) rejects an unknown critical option with 4.02 piggybacked; ignores an unknown elective one', async () => {
      const t = await transport();
      const p = await rawPeer();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.05', payload: Buffer.from('served') });
      });
      const token = Buffer.from([0xaa, 0xbb]);
      p.send(packet(CON, {
        code: 'GET', messageId: 0x2001, token, options: [...uriPath('x'), { name: '25', value: Buffer.from([1]) }],
      }), t.address());
      const bad = await p.next();
      assert.strictEqual(bad.msg.ack, true);
      assert.strictEqual(bad.msg.code, '4.02');
      assert.strictEqual(bad.msg.messageId, 0x2001);
      assert.strictEqual(hex(bad.msg.token), 'aabb');
      assert.strictEqual(calls, 0);

      p.send(packet(CON, {
        code: 'GET', messageId: 0x2002, token, options: [...uriPath('x'), { name: '65000', value: Buffer.from([1, 2]) }],
      }), t.address());
      const ok = await p.next();
      assert.strictEqual(ok.msg.ack, true);
      assert.strictEqual(ok.msg.code, '2.05');
      assert.strictEqual(ok.msg.messageId, 0x2002);
      assert.strictEqual(ok.msg.payload.toString(), 'served');
      assert.strictEqual(calls, 1);
    });

    it('(6) sends an empty ACK for a slow handler, then a CON separate response retransmitted until ACKed', async function () {
      this.timeout(8000);
      const t = await transport({ separateResponseAfterMs: 200, ackTimeoutMs: 60, ackRandomFactor: 1, maxRetransmit: 4 });
      const p = await rawPeer();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        later(1500, () => ex.respond({ code: '2.05', payload: Buffer.from('late'), contentFormat: 0 }));
      });
      const token = Buffer.from([5, 5, 5, 5, 5]);
      const started = Date.now();
      p.send(packet(CON, { code: 'GET', messageId: 0x3001, token, options: uriPath('slow') }), t.address());
      const ack = await p.next(() => true, 1500);
      assert.strictEqual(hex(ack.buf), hex(emptyMsg(ACK, 0x3001)));
      const ackAfter = ack.at - started;
      assert.ok(ackAfter >= 150 && ackAfter < 1000, `empty ACK after ${ackAfter} ms`);

      const response = await p.next(() => true, 3000);
      assert.ok(response.at - started >= 1400, 'the separate response comes when the handler answers');
      assert.strictEqual(typeOf(response.buf), CON);
      assert.strictEqual(response.msg.code, '2.05');
      assert.strictEqual(hex(response.msg.token), hex(token));
      assert.notStrictEqual(response.msg.messageId, 0x3001);
      assert.strictEqual(response.msg.payload.toString(), 'late');

      const again = await p.next(() => true, 1000);
      assert.strictEqual(hex(again.buf), hex(response.buf), 'retransmitted unchanged');
      const third = await p.next(() => true, 1000);
      assert.strictEqual(hex(third.buf), hex(response.buf));
      assert.ok(third.at - again.at > (again.at - response.at) * 1.4, 'back-off grows');
      p.send(emptyMsg(ACK, response.msg.messageId), t.address());
      assert.deepStrictEqual((await p.drain(600)).map((x) => hex(x.buf)), [], 'no retransmission after the ACK');
      assert.strictEqual(calls, 1);
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('RFC 7252 (requesting side)', () => {
    it('(7) retransmits an unanswered CON MAX_RETRANSMIT times with doubling intervals, then rejects with CoapTimeoutError', async () => {
      const t = await transport({ ackTimeoutMs: 40, ackRandomFactor: 1.5, maxRetransmit: 3, requestTimeoutMs: 10000 });
      const p = await rawPeer();
      const started = Date.now();
      const err = await t.request(p.addr, { method: 'GET', path: '/silent' }).then(() => null, (e) => e);
      const elapsed = Date.now() - started;
      assert.ok(err instanceof CoapTimeoutError, `rejected with ${err && err.constructor.name}: ${err && err.message}`);
      const got = p.inbox.splice(0);
      assert.strictEqual(got.length, 4, 'the first transmission and MAX_RETRANSMIT (3) retransmissions');
      for (const g of got) assert.strictEqual(hex(g.buf), hex(got[0].buf), 'same datagram, same message id');
      assert.strictEqual(typeOf(got[0].buf), CON);
      assert.strictEqual(pathOf(got[0].msg), 'silent');
      const gaps = got.slice(1).map((g, i) => g.at - got[i].at);
      assert.ok(gaps[0] >= 35 && gaps[0] <= 60 + 40, `initial timeout in [ACK_TIMEOUT, ACK_TIMEOUT*1.5]: ${gaps}`);
      for (let i = 1; i < gaps.length; i++) {
        const ratio = gaps[i] / gaps[i - 1];
        assert.ok(ratio > 1.4 && ratio < 3, `intervals roughly double: ${gaps}`);
      }
      // gives up one more (doubled) timeout after the last retransmission
      const lastGap = started + elapsed - got[3].at;
      assert.ok(lastGap >= gaps[2] * 1.5, `gave up ${lastGap} ms after the last retransmission (gaps ${gaps})`);
      assert.ok(elapsed < 2500, `gave up after ${elapsed} ms`);
      assert.deepStrictEqual(await p.drain(200), [], 'nothing after the give-up');
    });

    it('(8) rejects at once with CoapResetError when the peer answers RST', async () => {
      const t = await transport({ ackTimeoutMs: 1000, requestTimeoutMs: 10000 });
      const p = await rawPeer();
      p.auto = (item) => p.send(emptyMsg(RST, midOf(item.buf)), item.rinfo);
      const started = Date.now();
      const err = await t.request(p.addr, { method: 'GET', path: '/reset' }).then(() => null, (e) => e);
      const elapsed = Date.now() - started;
      assert.ok(err instanceof CoapResetError, `rejected with ${err && err.constructor.name}`);
      assert.ok(elapsed < 300, `rejected after ${elapsed} ms`);
      assert.strictEqual(p.log.length, 1, 'not retransmitted after the RST');
    });

    it('(9) NSTART=1: one outstanding request per peer; another peer is not held back', async () => {
      const t = await transport({ nstart: 1, ackTimeoutMs: 1000, ackRandomFactor: 1, requestTimeoutMs: 5000 });
      const a = await rawPeer();
      const b = await rawPeer();
      const results = ['/1', '/2', '/3'].map((path) => t.request(a.addr, { method: 'GET', path }));
      const first = await a.next();
      assert.strictEqual(pathOf(first.msg), '1');
      const viaB = t.request(b.addr, { method: 'GET', path: '/b' });
      const atB = await b.next(() => true, 300);
      assert.strictEqual(pathOf(atB.msg), 'b');
      b.reply(atB, '2.05', { payload: Buffer.from('from b') });
      assert.strictEqual((await viaB).payload.toString(), 'from b');
      assert.deepStrictEqual(await a.drain(150), [], 'A got nothing more while its request is outstanding');

      a.reply(first, '2.05', { payload: Buffer.from('one') });
      const second = await a.next();
      assert.strictEqual(pathOf(second.msg), '2');
      assert.deepStrictEqual(await a.drain(150), []);
      a.reply(second, '2.05', { payload: Buffer.from('two') });
      const third = await a.next();
      assert.strictEqual(pathOf(third.msg), '3');
      a.reply(third, '2.05', { payload: Buffer.from('three') });
      const answers = await Promise.all(results);
      assert.deepStrictEqual(answers.map((r) => r.payload.toString()), ['one', 'two', 'three']);
      assert.strictEqual(new Set([first, second, third].map((x) => x.msg.messageId)).size, 3);
    });

    it('(10) message ids are distinct per peer and counted per peer; tokens are 8 distinct bytes', async () => {
      const t = await transport({ ackTimeoutMs: 1000, nstart: 1 });
      const a = await rawPeer();
      const b = await rawPeer();
      for (const p of [a, b]) p.auto = (item) => p.reply(item, '2.05', { payload: Buffer.from('x') });
      await Promise.all(Array.from({ length: 200 }, (_, i) => t.request(a.addr, { method: 'GET', path: `/n/${i}` })));
      assert.strictEqual(a.log.length, 200, 'no retransmission');
      assert.strictEqual(new Set(a.log.map((x) => midOf(x.buf))).size, 200, 'distinct message ids');
      for (const x of a.log) assert.strictEqual(x.msg.token.length, 8);
      assert.strictEqual(new Set(a.log.map((x) => hex(x.msg.token))).size, 200, 'distinct tokens');

      a.log.length = 0;
      for (let i = 0; i < 20; i++) {
        await t.request(a.addr, { method: 'GET', path: '/a' });
        await t.request(b.addr, { method: 'GET', path: '/b' });
      }
      for (const p of [a, b]) {
        const mids = p.log.map((x) => midOf(x.buf));
        assert.strictEqual(mids.length, 20);
        for (let i = 1; i < mids.length; i++) {
          assert.strictEqual(mids[i], (mids[i - 1] + 1) & 0xffff, `each peer's ids count on their own: ${mids}`);
        }
      }
      const tokens = [...a.log, ...b.log].map((x) => hex(x.msg.token));
      assert.strictEqual(new Set(tokens).size, 40);
    });

    it('(11a) matches a piggybacked response by message id, token and source endpoint', async () => {
      const t = await transport({ ackTimeoutMs: 500, ackRandomFactor: 1, requestTimeoutMs: 3000 });
      const p = await rawPeer();
      const other = await rawPeer();
      const result = t.request(p.addr, { method: 'GET', path: '/m' });
      let settled = null;
      result.then((r) => { settled = r; }, (e) => { settled = e; });
      const req = await p.next();
      const { messageId, token } = req.msg;
      // an ACK from another endpoint with the same message id and token: not the answer
      other.send(packet(ACK, { code: '2.05', messageId, token, payload: Buffer.from('wrong endpoint') }), req.rinfo);
      // an ACK with another message id and the right token: not the answer
      p.send(packet(ACK, { code: '2.05', messageId: (messageId + 1) & 0xffff, token, payload: Buffer.from('wrong mid') }), req.rinfo);
      await delay(80);
      assert.strictEqual(settled, null, 'not matched by a wrong endpoint or message id');
      p.reply(req, '2.05', { payload: Buffer.from('right'), options: [{ name: 'Content-Format', value: uint(0) }] });
      const r = await result;
      assert.strictEqual(r.code, '2.05');
      assert.strictEqual(r.payload.toString(), 'right');
      assert.strictEqual(r.contentFormat, 0);
      assert.strictEqual(r.peer.port, p.port);
    });

    // RFC 7252 §5.3.2: a piggybacked response matches only when the message id AND the token match
    it('(11b) does not take a piggybacked response whose token differs from the request\'s', async () => {
      const t = await transport({ ackTimeoutMs: 500, ackRandomFactor: 1, requestTimeoutMs: 3000 });
      const p = await rawPeer();
      const result = t.request(p.addr, { method: 'GET', path: '/m' });
      const req = await p.next();
      const wrongToken = Buffer.from(req.msg.token.map((x) => x ^ 0xff));
      // right message id, wrong token (RFC 7252 §5.3.2: both must match)
      p.send(packet(ACK, { code: '2.05', messageId: req.msg.messageId, token: wrongToken, payload: Buffer.from('wrong token') }), req.rinfo);
      await delay(80);
      // the real answer follows as a separate response with the request's token
      p.send(packet(CON, { code: '2.05', messageId: 0x7777, token: req.msg.token, payload: Buffer.from('right') }), req.rinfo);
      const r = await result;
      assert.strictEqual(r.payload.toString(), 'right', 'the ACK with the wrong token was taken as the response');
    });

    it('(11c) accepts a separate response (empty ACK, then CON response) and ACKs it', async () => {
      const t = await transport({ ackTimeoutMs: 40, ackRandomFactor: 1, maxRetransmit: 4, requestTimeoutMs: 3000 });
      const p = await rawPeer();
      const result = t.request(p.addr, { method: 'GET', path: '/sep' });
      const req = await p.next();
      p.send(emptyMsg(ACK, req.msg.messageId), req.rinfo);
      assert.deepStrictEqual(await p.drain(200), [], 'no retransmission after the empty ACK');
      p.send(packet(CON, {
        code: '2.05', messageId: 0x4444, token: req.msg.token, payload: Buffer.from('separate'),
        options: [{ name: 'Content-Format', value: uint(42) }],
      }), req.rinfo);
      const ack = await p.next();
      assert.strictEqual(hex(ack.buf), hex(emptyMsg(ACK, 0x4444)));
      const r = await result;
      assert.strictEqual(r.code, '2.05');
      assert.strictEqual(r.payload.toString(), 'separate');
      assert.strictEqual(r.contentFormat, 42);
      // the CON response again (its ACK was lost): ACKed again
      p.send(packet(CON, { code: '2.05', messageId: 0x4444, token: req.msg.token, payload: Buffer.from('separate') }), req.rinfo);
      assert.strictEqual(hex((await p.next()).buf), hex(emptyMsg(ACK, 0x4444)));
    });

    it('(11d) answers a CON response with an unknown token with RST and keeps waiting for the right one', async () => {
      const t = await transport({ ackTimeoutMs: 500, ackRandomFactor: 1, requestTimeoutMs: 3000 });
      const p = await rawPeer();
      const result = t.request(p.addr, { method: 'GET', path: '/tok' });
      let settled = null;
      result.then((r) => { settled = r; }, (e) => { settled = e; });
      const req = await p.next();
      p.send(emptyMsg(ACK, req.msg.messageId), req.rinfo);
      const wrongToken = Buffer.from(req.msg.token.map((x) => x ^ 0x55));
      p.send(packet(CON, { code: '2.05', messageId: 0x5151, token: wrongToken, payload: Buffer.from('not yours') }), req.rinfo);
      const rst = await p.next();
      assert.strictEqual(hex(rst.buf), hex(emptyMsg(RST, 0x5151)));
      await delay(50);
      assert.strictEqual(settled, null, 'a response with a wrong token is not accepted');
      p.send(packet(CON, { code: '2.05', messageId: 0x5152, token: req.msg.token, payload: Buffer.from('yours') }), req.rinfo);
      assert.strictEqual(hex((await p.next()).buf), hex(emptyMsg(ACK, 0x5152)));
      assert.strictEqual((await result).payload.toString(), 'yours');
    });

    it('(12) close() rejects pending requests, stops every timer, and a late respond() does not throw', async () => {
      const problems = [];
      const guard = (err) => problems.push(err);
      process.on('uncaughtException', guard);
      process.on('unhandledRejection', guard);
      cleanup.push(() => {
        process.removeListener('uncaughtException', guard);
        process.removeListener('unhandledRejection', guard);
      });
      const t = await transport({ ackTimeoutMs: 40, ackRandomFactor: 1, maxRetransmit: 4, nstart: 1, requestTimeoutMs: 5000, separateResponseAfterMs: 10000 });
      const p = await rawPeer();
      const exchanges = [];
      t.setHandler((ex) => exchanges.push(ex));
      const settle = (promise) => promise.then((r) => ({ ok: r }), (e) => ({ err: e, at: Date.now() }));
      const pending = settle(t.request(p.addr, { method: 'GET', path: '/pending' }));
      const queued = settle(t.request(p.addr, { method: 'GET', path: '/queued' }));
      const req = await p.next();
      assert.strictEqual(pathOf(req.msg), 'pending');
      // an exchange of the answering side still open, and an observe relation
      p.send(packet(CON, { code: 'GET', messageId: 0x6001, token: Buffer.from([1]), options: uriPath('slow') }), t.address());
      p.send(packet(CON, { code: 'GET', messageId: 0x6002, token: Buffer.from([2]), options: [{ name: 'Observe', value: uint(0) }, ...uriPath('obs')] }), t.address());
      const deadline = Date.now() + 1000;
      while (exchanges.length < 2 && Date.now() < deadline) await delay(5);
      assert.strictEqual(exchanges.length, 2);
      exchanges[1].respond({ code: '2.05', payload: Buffer.from('v0') });
      assert.strictEqual(exchanges[1].observing, true);
      await p.next((m) => m.msg && m.msg.messageId === 0x6002); // sent before the close: it arrives
      let cancelled = 0;
      exchanges[1].onCancel(() => cancelled++);
      const scheduler = t.layer.scheduler; // white-box: the layer's one timer
      assert.ok(scheduler && scheduler.size > 0, 'retransmissions and the slow exchange are scheduled');

      const closedAt = Date.now();
      await t.close();
      const [a, b] = await Promise.all([pending, queued]);
      for (const outcome of [a, b]) {
        assert.ok(outcome.err instanceof CoapTransportError, `rejected with ${outcome.err && outcome.err.constructor.name}`);
        assert.ok(!(outcome.err instanceof CoapTimeoutError), 'a close is not a time-out');
        assert.ok(outcome.at - closedAt < 100);
      }
      assert.strictEqual(cancelled, 1, 'the observe relation ended with the transport');
      assert.strictEqual(exchanges[1].observing, false);
      assert.strictEqual(scheduler.size, 0);
      assert.strictEqual(scheduler.timer, null, 'no timer left running');
      p.inbox.length = 0;
      p.log.length = 0;
      assert.doesNotThrow(() => exchanges[0].respond({ code: '2.05', payload: Buffer.from('too late') }));
      assert.strictEqual(await exchanges[1].notify({ code: '2.05', payload: Buffer.from('v1') }, true), false);
      await assert.rejects(t.request(p.addr, { method: 'GET', path: '/after' }), CoapTransportError);
      await delay(300);
      assert.deepStrictEqual(p.log.map((x) => hex(x.buf)), [], 'nothing sent after close');
      assert.deepStrictEqual(problems, []);
      await t.close(); // idempotent
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('RFC 7641', () => {
    async function observeFromRaw(t, p, firstSeq) {
      const obsP = t.observe(p.addr, { method: 'GET', path: '/obs' });
      const reg = await p.next();
      assert.strictEqual(typeOf(reg.buf), CON);
      assert.strictEqual(reg.msg.code, '0.01');
      assert.strictEqual(hex(opt(reg.msg, 'Observe')), '', 'Observe 0 (an empty uint)');
      assert.strictEqual(reg.msg.token.length, 8);
      p.reply(reg, '2.05', { payload: Buffer.from(`n${firstSeq}`), options: [{ name: 'Observe', value: uint(firstSeq) }] });
      const obs = await obsP;
      assert.strictEqual(obs.first.observe, firstSeq);
      assert.strictEqual(obs.first.payload.toString(), `n${firstSeq}`);
      assert.strictEqual(hex(obs.token), hex(reg.msg.token));
      return { obs, reg };
    }

    it('(13) as observer: delivers only fresh notifications (12, 13) and ACKs every CON one, stale ones too', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const { obs, reg } = await observeFromRaw(t, p, 10);
      const seen = [];
      obs.on('notification', (r) => seen.push([r.observe, r.payload.toString()]));
      let mid = 0x5001;
      for (const seq of [12, 11, 12, 13]) {
        const m = mid++;
        p.send(packet(CON, {
          code: '2.05', messageId: m, token: reg.msg.token, payload: Buffer.from(`n${seq}`),
          options: [{ name: 'Observe', value: uint(seq) }],
        }), reg.rinfo);
        const ack = await p.next();
        assert.strictEqual(hex(ack.buf), hex(emptyMsg(ACK, m)), `notification ${seq} (MID ${m}) ACKed`);
      }
      await delay(50);
      assert.deepStrictEqual(seen, [[12, 'n12'], [13, 'n13']]);
      obs.close();
    });

    it('(14) as observer: after obs.close() a CON notification gets RST', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const { obs, reg } = await observeFromRaw(t, p, 3);
      let ended = 0;
      let delivered = 0;
      obs.on('end', () => ended++);
      obs.on('notification', () => delivered++);
      obs.close();
      assert.strictEqual(ended, 1);
      p.send(packet(CON, {
        code: '2.05', messageId: 0x5101, token: reg.msg.token, payload: Buffer.from('n4'), options: [{ name: 'Observe', value: uint(4) }],
      }), reg.rinfo);
      const rst = await p.next();
      assert.strictEqual(hex(rst.buf), hex(emptyMsg(RST, 0x5101)));
      assert.strictEqual(delivered, 0);
    });

    it('(15) as observed: notifications with rising Observe and the same token; RST or Observe 1 cancels', async () => {
      const t = await transport({ ackTimeoutMs: 500, ackRandomFactor: 1 });
      const p = await rawPeer();
      const to = t.address();
      const exchanges = [];
      t.setHandler((ex) => {
        exchanges.push(ex);
        ex.respond({ code: '2.05', payload: Buffer.from('v0'), contentFormat: 0 });
      });
      const T1 = Buffer.from([0x71, 0x71, 0x71, 0x71]);
      p.send(packet(CON, { code: 'GET', messageId: 0x6001, token: T1, options: [{ name: 'Observe', value: uint(0) }, ...uriPath('temp')] }), to);
      const first = await p.next();
      assert.strictEqual(first.msg.ack, true);
      assert.strictEqual(first.msg.messageId, 0x6001);
      assert.strictEqual(first.msg.code, '2.05');
      assert.strictEqual(hex(first.msg.token), hex(T1));
      const n0 = readUint(opt(first.msg, 'Observe'));
      assert.strictEqual(exchanges.length, 1);
      const ex = exchanges[0];
      assert.strictEqual(ex.request.observe, 0);
      assert.strictEqual(ex.observing, true);
      let cancels = 0;
      ex.onCancel(() => cancels++);

      const d1 = ex.notify({ code: '2.05', payload: Buffer.from('v1'), contentFormat: 0 }, true);
      const c1 = await p.next();
      assert.strictEqual(typeOf(c1.buf), CON);
      assert.strictEqual(c1.msg.code, '2.05');
      assert.strictEqual(hex(c1.msg.token), hex(T1));
      assert.strictEqual(c1.msg.payload.toString(), 'v1');
      const n1 = readUint(opt(c1.msg, 'Observe'));
      assert.ok(n1 > n0, `Observe rises: ${n0} → ${n1}`);
      p.send(emptyMsg(ACK, c1.msg.messageId), to);
      assert.strictEqual(await d1, true);

      const d2 = ex.notify({ code: '2.05', payload: Buffer.from('v2') }, false);
      const c2 = await p.next();
      assert.strictEqual(typeOf(c2.buf), NON);
      assert.strictEqual(hex(c2.msg.token), hex(T1));
      const n2 = readUint(opt(c2.msg, 'Observe'));
      assert.ok(n2 > n1, `Observe rises: ${n1} → ${n2}`);
      assert.notStrictEqual(c2.msg.messageId, c1.msg.messageId);
      assert.strictEqual(await d2, true);

      // RST to a CON notification cancels the relation
      const d3 = ex.notify({ code: '2.05', payload: Buffer.from('v3') }, true);
      const c3 = await p.next();
      assert.strictEqual(typeOf(c3.buf), CON);
      assert.ok(readUint(opt(c3.msg, 'Observe')) > n2);
      p.send(emptyMsg(RST, c3.msg.messageId), to);
      assert.strictEqual(await d3, false);
      assert.strictEqual(ex.observing, false);
      assert.strictEqual(cancels, 1);
      assert.strictEqual(await ex.notify({ code: '2.05', payload: Buffer.from('v4') }, false), false);
      assert.deepStrictEqual(await p.drain(100), [], 'no notification after the cancel');

      // a GET with Observe 1 and the relation's token cancels it too
      const T2 = Buffer.from([0x72, 0x72]);
      p.send(packet(CON, { code: 'GET', messageId: 0x6002, token: T2, options: [{ name: 'Observe', value: uint(0) }, ...uriPath('temp')] }), to);
      const second = await p.next();
      assert.ok(opt(second.msg, 'Observe') !== undefined);
      const ex2 = exchanges[1];
      assert.strictEqual(ex2.observing, true);
      let cancels2 = 0;
      ex2.onCancel(() => cancels2++);
      p.send(packet(CON, { code: 'GET', messageId: 0x6003, token: T2, options: [{ name: 'Observe', value: uint(1) }, ...uriPath('temp')] }), to);
      const dereg = await p.next();
      assert.strictEqual(dereg.msg.messageId, 0x6003);
      assert.strictEqual(dereg.msg.code, '2.05');
      assert.strictEqual(opt(dereg.msg, 'Observe'), undefined, 'the answer to Observe 1 carries no Observe');
      assert.strictEqual(ex2.observing, false);
      assert.strictEqual(cancels2, 1);
      assert.strictEqual(await ex2.notify({ code: '2.05', payload: Buffer.from('x') }, false), false);
      assert.strictEqual(exchanges.length, 3);
      assert.strictEqual(exchanges[2].request.observe, 1);
    });
  });

  // ------------------------------------------------------------------------------------------
  describe('RFC 7959', () => {
    it('(16) reassembles a 3000-byte Block1 PUT (512-byte blocks, a new token each): 2.31 per block, handler once', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const bodies = [];
      t.setHandler((ex) => {
        bodies.push(ex.request.payload);
        ex.respond({ code: '2.04' });
      });
      const body = pattern(3000);
      const blocks = Math.ceil(3000 / 512);
      let lastToken;
      for (let num = 0; num < blocks; num++) {
        const more = num < blocks - 1;
        const token = crypto.randomBytes(4);
        lastToken = token;
        const options = [...uriPath('big'), { name: 'Block1', value: blockValue(num, more, 5) }];
        if (num === 0) options.push({ name: 'Size1', value: uint(3000) });
        p.send(packet(CON, { code: 'PUT', messageId: 0x7000 + num, token, options, payload: body.subarray(num * 512, (num + 1) * 512) }), t.address());
        const r = await p.next();
        assert.strictEqual(r.msg.ack, true);
        assert.strictEqual(r.msg.messageId, 0x7000 + num);
        assert.strictEqual(hex(r.msg.token), hex(token));
        if (more) {
          assert.strictEqual(r.msg.code, '2.31', `block ${num}`);
          assert.strictEqual(hex(opt(r.msg, 'Block1')), hex(blockValue(num, true, 5)), `Block1 echo of block ${num}`);
          assert.strictEqual(bodies.length, 0);
        } else {
          assert.strictEqual(r.msg.code, '2.04');
          assert.strictEqual(hex(opt(r.msg, 'Block1')), hex(blockValue(num, false, 5)), 'final Block1 with M=0');
        }
      }
      assert.strictEqual(bodies.length, 1);
      assert.ok(bodies[0].equals(body), 'the handler sees the whole body');
    });

    it('(17) answers 4.08 to a Block1 block out of order and 4.13 beyond maxBodySize (Size1 or cumulative)', async () => {
      const t = await transport({ ackTimeoutMs: 500, maxBodySize: 1000 });
      const p = await rawPeer();
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.04' });
      });
      const to = t.address();
      const put = async (mid, path, num, more, payload, extra = []) => {
        p.send(packet(CON, {
          code: 'PUT', messageId: mid, token: Buffer.from([mid & 0xff]), payload,
          options: [...uriPath(path), { name: 'Block1', value: blockValue(num, more, 5) }, ...extra],
        }), to);
        const r = await p.next();
        assert.strictEqual(r.msg.ack, true);
        assert.strictEqual(r.msg.messageId, mid);
        return r.msg;
      };
      const chunk = pattern(512);
      assert.strictEqual((await put(0x7101, 'ooo', 0, true, chunk)).code, '2.31');
      assert.strictEqual((await put(0x7102, 'ooo', 2, true, chunk)).code, '4.08', 'block 2 after block 0');
      assert.strictEqual((await put(0x7103, 'fresh', 1, false, chunk)).code, '4.08', 'block 1 with no block 0');

      const announced = await put(0x7104, 'huge', 0, true, chunk, [{ name: 'Size1', value: uint(5000) }]);
      assert.strictEqual(announced.code, '4.13', 'Size1 over the limit');
      assert.strictEqual(readUint(opt(announced, 'Size1')), 1000, 'Size1 tells the limit');

      assert.strictEqual((await put(0x7105, 'grow', 0, true, chunk)).code, '2.31');
      const cumulative = await put(0x7106, 'grow', 1, true, chunk);
      assert.strictEqual(cumulative.code, '4.13', '1024 bytes received, over 1000');
      assert.strictEqual(calls, 0);
    });

    it('(18) serves a 5000-byte answer block-wise (Block2 + Size2), handler once, honouring a smaller SZX', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const body = pattern(5000, 3);
      let calls = 0;
      t.setHandler((ex) => {
        calls++;
        ex.respond({ code: '2.05', payload: body, contentFormat: 42 });
      });
      const to = t.address();
      let mid = 0x7200;
      const get = async (block2) => {
        const options = uriPath('blob');
        if (block2) options.push({ name: 'Block2', value: blockValue(block2.num, false, block2.szx) });
        const m = mid++;
        p.send(packet(CON, { code: 'GET', messageId: m, token: crypto.randomBytes(2), options }), to);
        const r = await p.next();
        assert.strictEqual(r.msg.ack, true);
        assert.strictEqual(r.msg.messageId, m);
        assert.strictEqual(r.msg.code, '2.05');
        assert.strictEqual(readUint(opt(r.msg, 'Content-Format')), 42);
        return r.msg;
      };

      // transfer 1: block 0 at this side's size (1024), block 1, then the peer asks for 512-byte blocks
      const b0 = await get(null);
      assert.strictEqual(hex(opt(b0, 'Block2')), hex(blockValue(0, true, 6)));
      assert.strictEqual(readUint(opt(b0, 'Size2')), 5000);
      assert.ok(b0.payload.equals(body.subarray(0, 1024)));
      const parts = [b0.payload];
      const b1 = await get({ num: 1, szx: 6 });
      assert.strictEqual(hex(opt(b1, 'Block2')), hex(blockValue(1, true, 6)));
      assert.strictEqual(opt(b1, 'Size2'), undefined);
      parts.push(b1.payload);
      for (let num = 4; ; num++) { // 2048 / 512 = 4
        const b = await get({ num, szx: 5 });
        const got = decodeBlock(opt(b, 'Block2'));
        assert.deepStrictEqual({ num: got.num, szx: got.szx }, { num, szx: 5 });
        assert.ok(b.payload.equals(body.subarray(num * 512, (num + 1) * 512)), `block ${num} of 512`);
        parts.push(b.payload);
        if (!got.more) {
          assert.strictEqual(num, 9);
          break;
        }
      }
      assert.ok(Buffer.concat(parts).equals(body));
      assert.strictEqual(calls, 1, 'the handler ran once for the whole transfer');

      // transfer 2: early negotiation, 256-byte blocks from block 0
      const c0 = await get({ num: 0, szx: 4 });
      assert.strictEqual(hex(opt(c0, 'Block2')), hex(blockValue(0, true, 4)));
      assert.strictEqual(readUint(opt(c0, 'Size2')), 5000);
      const parts2 = [c0.payload];
      for (let num = 1; ; num++) {
        const b = await get({ num, szx: 4 });
        const got = decodeBlock(opt(b, 'Block2'));
        assert.deepStrictEqual({ num: got.num, szx: got.szx }, { num, szx: 4 });
        parts2.push(b.payload);
        if (!got.more) break;
      }
      assert.strictEqual(parts2.length, 20);
      assert.ok(Buffer.concat(parts2).equals(body));
      assert.strictEqual(calls, 2, 'once per transfer');
    });

    it('(19a) as client: sends a 5000-byte PUT in Block1 blocks that the peer reassembles exactly', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const body = pattern(5000, 11);
      const received = [];
      p.auto = (item) => {
        const b = decodeBlock(opt(item.msg, 'Block1'));
        received.push({ ...b, msg: item.msg });
        p.reply(item, b.more ? '2.31' : '2.04', { options: [{ name: 'Block1', value: blockValue(b.num, b.more, b.szx) }] });
      };
      const r = await t.request(p.addr, { method: 'PUT', path: '/up/load', payload: body, contentFormat: 42 });
      assert.strictEqual(r.code, '2.04');
      assert.deepStrictEqual(received.map((b) => [b.num, b.more, b.szx]),
        [[0, true, 6], [1, true, 6], [2, true, 6], [3, true, 6], [4, false, 6]]);
      assert.strictEqual(readUint(opt(received[0].msg, 'Size1')), 5000);
      for (const b of received) {
        assert.strictEqual(b.msg.code, '0.03');
        assert.strictEqual(pathOf(b.msg), 'up/load');
        assert.strictEqual(readUint(opt(b.msg, 'Content-Format')), 42);
      }
      assert.ok(Buffer.concat(received.map((b) => b.msg.payload)).equals(body), 'reassembled exactly');
      assert.strictEqual(new Set(received.map((b) => b.msg.messageId)).size, 5);
    });

    it('(19b) as client: a GET answered in Block2 blocks resolves with the whole body', async () => {
      const t = await transport({ ackTimeoutMs: 500 });
      const p = await rawPeer();
      const body = pattern(3000, 5);
      const asked = [];
      p.auto = (item) => {
        const v = opt(item.msg, 'Block2');
        const want = v === undefined ? null : decodeBlock(v);
        asked.push(want && [want.num, want.szx]);
        const num = want ? want.num : 0;
        const szx = 4;
        const size = 256;
        const more = (num + 1) * size < body.length;
        const options = [{ name: 'Block2', value: blockValue(num, more, szx) }, { name: 'Content-Format', value: uint(42) }];
        if (num === 0) options.push({ name: 'Size2', value: uint(body.length) });
        p.reply(item, '2.05', { options, payload: body.subarray(num * size, (num + 1) * size) });
      };
      const r = await t.request(p.addr, { method: 'GET', path: '/down' });
      assert.strictEqual(r.code, '2.05');
      assert.strictEqual(r.contentFormat, 42);
      assert.ok(r.payload.equals(body), `whole body (${r.payload.length} bytes)`);
      assert.deepStrictEqual(asked, [null, ...Array.from({ length: 11 }, (_, i) => [i + 1, 4])]);
      for (const x of p.log) assert.strictEqual(pathOf(x.msg), 'down');
    });
  });
});
