'use strict';
// The CoAP message layer against CoAP stacks we did not write: libcoap's coap-client and
// coap-server (Debian libcoap3-bin, installed by .ci/run) and the npm `coap` package, each as
// client and as server. Loopback only; every run is bounded by a timeout.
const assert = require('assert');
const { execFile, spawn } = require('child_process');
const dgram = require('dgram');
const fs = require('fs');
const os = require('os');
const path = require('path');
const coap = require('coap');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { freeUdpPort, nextEvent, delay } = require('../helpers');

const COAP_CLIENT = 'coap-client-notls';
const COAP_SERVER = 'coap-server-notls';

function haveLibcoap() {
  try {
    require('child_process').execFileSync(COAP_CLIENT, ['-h'], { stdio: 'ignore' });
  } catch (err) {
    return err.status !== undefined; // it ran (and exited non-zero on -h)
  }
  return true;
}

function coapClient(args, ms = 15000) {
  return new Promise((resolve, reject) => {
    execFile(COAP_CLIENT, args, { timeout: ms, encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${COAP_CLIENT} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

describe('CoAP interop: libcoap', function () {
  this.timeout(30000);
  const cleanup = [];
  let tmp;

  before(function () {
    if (!haveLibcoap()) {
      if (process.env.CI) throw new Error(`${COAP_CLIENT} is missing: .ci/run installs libcoap3-bin`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-interop-'));
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  async function startServer() {
    const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 3000 });
    server.on('warning', () => {});
    await server.start();
    cleanup.push(() => server.stop());
    return server;
  }

  async function startTransport(handler) {
    const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 5000 });
    t.setHandler(handler);
    await t.open();
    cleanup.push(() => t.close());
    return t;
  }

  it('takes a block-wise Register from coap-client -b 64 (Block1, 6 blocks) with every object link', async () => {
    const server = await startServer();
    const links = `</>;rt="oma.lwm2m";ct=110,${Array.from({ length: 30 }, (_, i) => `</3303/${i}>`).join(',')}`;
    const file = path.join(tmp, 'links.txt');
    fs.writeFileSync(file, links);
    const registered = nextEvent(server, 'register', 10000);
    await coapClient(['-m', 'post', '-b', '64', '-t', '40', '-f', file, `coap://127.0.0.1:${server.address().port}/rd?ep=libcoap-dev&lt=60&lwm2m=1.1`]);
    const [reg] = await registered;
    assert.strictEqual(reg.endpoint, 'libcoap-dev');
    assert.strictEqual(reg.objects.length, 30);
    assert.strictEqual(reg.objectLinks, links);
    assert.deepStrictEqual(reg.supportedFormats, [110]);
  });

  it('serves a large resource to coap-client through Block2, at its block size and at ours', async () => {
    const body = pattern(20000);
    let calls = 0;
    const t = await startTransport((ex) => {
      calls++;
      ex.respond({ code: '2.05', payload: body, contentFormat: 42 });
    });
    for (const args of [['-b', '64'], []]) {
      const out = path.join(tmp, `big${args.length}.bin`);
      await coapClient(['-m', 'get', ...args, '-o', out, `coap://127.0.0.1:${t.address().port}/big`]);
      assert.ok(fs.readFileSync(out).equals(body), `body intact with ${args.join(' ') || 'default block size'}`);
    }
    assert.strictEqual(calls, 2, 'the handler runs once per transfer, not once per block');
  });

  it('keeps answering coap-client after garbage datagrams, and answers none of them with text', async () => {
    const t = await startTransport((ex) => ex.respond({ code: '2.05', payload: Buffer.from('ok') }));
    const port = t.address().port;
    const raw = dgram.createSocket('udp4');
    cleanup.push(() => new Promise((r) => raw.close(r)));
    const answers = [];
    raw.on('message', (m) => answers.push(m));
    await new Promise((r) => raw.bind(0, '127.0.0.1', r));
    const garbage = [Buffer.alloc(0), Buffer.from([0x40]), Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x49, 1, 0, 1]),
      Buffer.from([0x40, 1, 0, 2, 0xf0]), Buffer.from([0x40, 1, 0, 3, 0xff])];
    for (const g of garbage) raw.send(g, port, '127.0.0.1');
    await delay(200);
    const out = await coapClient(['-m', 'get', `coap://127.0.0.1:${port}/x`]);
    assert.strictEqual(out.toString().trim(), 'ok');
    // only RSTs (for the CONs whose header parsed), never a response with a payload
    assert.ok(answers.every((a) => a.length === 4 && (a[0] & 0x30) === 0x30), `answers: ${answers.map((a) => a.toString('hex'))}`);
  });

  it('is a client of coap-server: PUT of 5000 bytes through Block1, GET back through Block2', async () => {
    const port = await freeUdpPort();
    const proc = spawn(COAP_SERVER, ['-A', '127.0.0.1', '-p', String(port), '-d', '4'], { stdio: 'ignore' });
    cleanup.push(() => new Promise((r) => {
      proc.once('exit', r);
      proc.kill();
    }));
    const t = await startTransport((ex) => ex.respond({ code: '4.04' }));
    const peer = { address: '127.0.0.1', port };
    // coap-server takes a moment to bind
    for (let i = 0; i < 50; i++) {
      try {
        await t.request(peer, { method: 'GET', path: '/', timeoutMs: 300 });
        break;
      } catch { await delay(100); }
    }
    const body = pattern(5000);
    const put = await t.request(peer, { method: 'PUT', path: '/lwm2m-kit', contentFormat: 42, payload: body });
    assert.ok(['2.01', '2.04'].includes(put.code), put.code);
    const got = await t.request(peer, { method: 'GET', path: '/lwm2m-kit' });
    assert.strictEqual(got.code, '2.05');
    assert.ok(got.payload.equals(body), `GET returned ${got.payload.length} bytes`);
  });
});

describe('CoAP interop: npm coap', function () {
  this.timeout(15000);
  const cleanup = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('registers a device that speaks through coap\'s Agent with our server', async () => {
    const server = new Lwm2mServer({ port: 0, address: '127.0.0.1' });
    server.on('warning', () => {});
    await server.start();
    cleanup.push(() => server.stop());
    const agent = new coap.Agent({ type: 'udp4' });
    cleanup.push(() => agent.close());
    const registered = nextEvent(server, 'register');
    const res = await new Promise((resolve, reject) => {
      const req = coap.request({ host: '127.0.0.1', port: server.address().port, method: 'POST', pathname: '/rd', query: 'ep=npm-coap&lt=60&lwm2m=1.1', agent });
      req.setOption('Content-Format', 'application/link-format');
      req.on('response', resolve);
      req.on('error', reject);
      req.end(Buffer.from('</>;rt="oma.lwm2m";ct=110,</3/0>,</3303/0>'));
    });
    assert.strictEqual(res.code, '2.01');
    const [reg] = await registered;
    assert.strictEqual(reg.endpoint, 'npm-coap');
    assert.strictEqual(`/${res.options.filter((o) => o.name === 'Location-Path').map((o) => o.value.toString()).join('/')}`, `/rd/${reg.id}`);
  });

  it('is observed by coap\'s client: notifications arrive in order with growing Observe numbers', async () => {
    let exchange;
    const t = new CoapTransport({ address: '127.0.0.1' });
    t.setHandler((ex) => {
      exchange = ex;
      ex.respond({ code: '2.05', payload: Buffer.from('0'), contentFormat: 0 });
    });
    await t.open();
    cleanup.push(() => t.close());
    const agent = new coap.Agent({ type: 'udp4' });
    cleanup.push(() => agent.close());
    const stream = await new Promise((resolve, reject) => {
      const req = coap.request({ host: '127.0.0.1', port: t.address().port, pathname: '/3303/0/5700', observe: true, agent });
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    const seen = [];
    stream.on('data', (d) => seen.push(d.toString()));
    for (let i = 1; i <= 3; i++) {
      assert.strictEqual(await exchange.notify({ code: '2.05', payload: Buffer.from(String(i)), contentFormat: 0 }, i === 2), true);
      await delay(30);
    }
    await delay(100);
    assert.deepStrictEqual(seen, ['0', '1', '2', '3']);
    stream.close();
  });

  it('is a client of coap\'s server: a large answer through Block2 and a large request through Block1', async () => {
    const body = pattern(9000);
    let received;
    const server = coap.createServer({ type: 'udp4' });
    server.on('request', (req, res) => {
      if (req.method === 'PUT') {
        received = req.payload;
        res.code = '2.04';
        res.end();
      } else {
        res.setOption('Content-Format', 'application/octet-stream');
        res.end(body);
      }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    // coap's server answers from timers that throw once its socket is closed: let them run first
    cleanup.push(() => delay(200).then(() => new Promise((r) => server.close(r))));
    const peer = { address: '127.0.0.1', port: server._sock.address().port };
    const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 5000 });
    await t.open();
    cleanup.push(() => t.close());
    const got = await t.request(peer, { method: 'GET', path: '/big' });
    assert.strictEqual(got.code, '2.05');
    assert.ok(got.payload.equals(body), `got ${got.payload.length} bytes`);
    const put = await t.request(peer, { method: 'PUT', path: '/big', payload: body.subarray(0, 3000), contentFormat: 42 });
    assert.strictEqual(put.code, '2.04');
    assert.ok(received && received.equals(body.subarray(0, 3000)), `server got ${received && received.length} bytes`);
  });
});
