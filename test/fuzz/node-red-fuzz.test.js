'use strict';
// The server inside a REAL Node-RED runtime under hostile traffic: mutated datagrams of every kind
// at its NoSec and DTLS ports, and a "device" that answers every request of the flows (reads and
// the auto-observe) with mutated responses — Block1/Block2/Observe options of every length, odd
// content formats, truncated payloads, and answers from a spoofed port. Then: no uncaught exception
// or unhandled rejection, bounded heap, a valid Register answered within 100 ms, and no PSK key or
// identity in any log line, in the flow configuration, or in what the editor is sent.
const assert = require('assert');
const dgram = require('dgram');
const v8 = require('v8');
const vm = require('vm');
const helper = require('node-red-node-test-helper');
const { encodeMessage, decodeMessage, isMalformed } = require('../../dist/lwm2m/coap/message');
const { encodeCbor } = require('../../dist/lwm2m/content');
const { freeUdpPort, collector, delay } = require('../helpers');
const { rng, mutate, SEEDS } = require('./coap-fuzz');

const NODES = ['lwm2m-server', 'lwm2m-register', 'lwm2m-read', 'lwm2m-observe', 'lwm2m-bootstrap-config', 'lwm2m-bc66'].map((n) => require(`../../nodes/${n}.js`));
helper.init(require.resolve('node-red'));

const KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const BS_KEY = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const SECRET_IDENTITY = 'fz-identity-secret';
const ACK = 2;
/** Fuzzed datagrams: bounded in npm test; `npm run fuzz` runs more. */
const CASES = Number(process.env.FUZZ_CASES) || 6000;
const CON = 0;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

function heapAfterGc() {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('fuzzing the server in a Node-RED runtime', function () {
  this.timeout(60000 + CASES);
  const problems = [];
  const onProblem = (err) => problems.push(err);
  before(() => {
    process.on('uncaughtException', onProblem);
    process.on('unhandledRejection', onProblem);
    return helper.startServer();
  });
  after(async () => {
    process.removeListener('uncaughtException', onProblem);
    process.removeListener('unhandledRejection', onProblem);
    await helper.stopServer();
  });
  afterEach(() => helper.unload());

  it('survives mutated datagrams and mutated answers, keeps serving, and leaks no key', async () => {
    const [port, securePort] = [await freeUdpPort(), await freeUdpPort()];
    const flow = [
      { id: 'f1', type: 'tab', label: 'fuzz' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, securePort, nosec: 'on', bootstrap: true, timeout: 1, format: 'auto' },
      { id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['regOut']] },
      { id: 'read', z: 'f1', type: 'lwm2m-read', server: 'srv', endpoint: 'fz-raw', path: '/3303/0/5700', format: 'auto', wires: [['readOut']] },
      { id: 'obs', z: 'f1', type: 'lwm2m-observe', server: 'srv', endpoint: '', path: '', format: 'auto', autoObserve: true, autoPaths: '/3303/0/5700', wires: [['obsOut']] },
      { id: 'bsc', z: 'f1', type: 'lwm2m-bootstrap-config', server: 'srv', endpoint: 'fz-bs-*', deletePaths: '/0, /1', extraWrites: '', keysOverNoSec: false,
        servers: [{ uri: `coaps://127.0.0.1:${securePort}`, ssid: 1, lifetime: 60, binding: 'U', security: 'psk' }], wires: [['bsOut']] },
      { id: 'catcher', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['catchOut']] },
      ...['regOut', 'readOut', 'obsOut', 'bsOut', 'catchOut'].map((id) => ({ id, z: 'f1', type: 'helper' })),
    ];
    await helper.load(NODES, flow, {
      srv: { psk: JSON.stringify([{ endpoint: 'fz-psk', identity: SECRET_IDENTITY, key: KEY }]) },
      bsc: { psk: JSON.stringify({ 1: { identity: `${SECRET_IDENTITY}-bs`, key: BS_KEY } }) },
    });
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.running; i++) await delay(20);
    assert.ok(srv.server.running);
    const regOut = collector(helper.getNode('regOut'));
    collector(helper.getNode('catchOut'));
    const heapBefore = heapAfterGc();
    const random = rng(7);

    // the raw device: registers, then answers every request with a mutated response
    const device = dgram.createSocket('udp4');
    await new Promise((r) => device.bind(0, '127.0.0.1', r));
    const spoof = dgram.createSocket('udp4');
    await new Promise((r) => spoof.bind(0, '127.0.0.1', r));
    let answered = 0;
    device.on('message', (buf, rinfo) => {
      const m = decodeMessage(buf);
      if (isMalformed(m) || m.code < 1 || m.code > 31) return;
      answered++;
      const length = Math.floor(random() * 6); // 0..5 bytes: over 3 is not a block option at all
      const option = [23, 27, 6, 28, 12][Math.floor(random() * 5)]; // Block2, Block1, Observe, Size2, Content-Format
      const options = [{ number: option, value: Buffer.from(Array.from({ length }, () => Math.floor(random() * 256))) }];
      if (random() < 0.5) options.push({ number: 12, value: Buffer.from([[0, 40, 42, 60, 110, 112, 11542, 11543][Math.floor(random() * 8)] >> 8 & 0xff, [0, 40, 42, 60, 110, 112, 11542, 11543][Math.floor(random() * 8)] & 0xff]) });
      const payloads = [encodeCbor([new Map([[-2, '/3303/0/'], [0, '5700'], [2, 21.5]])]), Buffer.from([0xe8, 0x16, 0x44, 0x08, 1, 2]), Buffer.from('[{"n":"/3303/0/5700","v":'), Buffer.alloc(0)];
      const payload = mutate(payloads[Math.floor(random() * payloads.length)], random);
      const answer = encodeMessage({ type: m.type === CON ? ACK : 1, code: 69, messageId: m.messageId, token: m.token, options, payload });
      // now and then the "answer" comes from another port with the right token: it must be ignored
      (random() < 0.2 ? spoof : device).send(answer, rinfo.port, rinfo.address);
    });
    const register = encodeMessage({ type: CON, code: 2, messageId: 1, token: Buffer.from([1]), payload: Buffer.from('</3303/0>'),
      options: [{ number: 11, value: Buffer.from('rd') }, { number: 12, value: Buffer.from([40]) }, { number: 15, value: Buffer.from('ep=fz-raw') }, { number: 15, value: Buffer.from('lt=60') }] });
    device.send(register, port, '127.0.0.1');
    await regOut.next((m) => m.topic === 'register' && m.endpoint === 'fz-raw', 5000);
    const read = helper.getNode('read');
    for (let i = 0; i < 60; i++) {
      read.receive({ payload: i });
      await delay(5);
    }

    // mutated datagrams of every kind at both ports, from several sockets
    const socks = [];
    for (let i = 0; i < 4; i++) {
      const s = dgram.createSocket('udp4');
      await new Promise((r) => s.bind(0, '127.0.0.1', r));
      socks.push(s);
    }
    for (let i = 0; i < CASES; i++) {
      const target = i % 5 === 4 ? securePort : port;
      socks[i % socks.length].send(mutate(SEEDS[Math.floor(random() * SEEDS.length)](), random), target, '127.0.0.1');
      if (i % 300 === 299) await delay(2);
    }
    // a bootstrap attempt over NoSec for a configuration with keys: refused, nothing leaks
    socks[0].send(encodeMessage({ type: CON, code: 2, messageId: 9, token: Buffer.from([9]), payload: Buffer.alloc(0),
      options: [{ number: 11, value: Buffer.from('bs') }, { number: 15, value: Buffer.from('ep=fz-bs-1') }] }), port, '127.0.0.1');
    await delay(1500); // reads time out (1 s), retransmissions end

    // a valid Register from a fresh socket is answered within 100 ms
    const probe = dgram.createSocket('udp4');
    await new Promise((r) => probe.bind(0, '127.0.0.1', r));
    const t0 = Date.now();
    const reply = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 2000);
      probe.once('message', (m) => { clearTimeout(timer); resolve(m); });
      probe.send(encodeMessage({ type: CON, code: 2, messageId: 77, token: Buffer.from([7, 7]), payload: Buffer.from('</1/0>,</3/0>'),
        options: [{ number: 11, value: Buffer.from('rd') }, { number: 12, value: Buffer.from([40]) }, { number: 15, value: Buffer.from('ep=fz-after') }] }), port, '127.0.0.1');
    });
    const latency = Date.now() - t0;
    for (const s of [...socks, probe, device, spoof]) s.close();

    assert.deepStrictEqual(problems.map(String), [], 'no uncaught exception or unhandled rejection');
    assert.ok(reply && reply[1] === 0x41, 'the Register got 2.01');
    assert.ok(latency < 100, `Register answered in ${latency} ms`);
    assert.ok(answered > 10, `the device was asked ${answered} times`);
    const grown = heapAfterGc() - heapBefore;
    assert.ok(grown < 64 * 1024 * 1024, `heap grew ${Math.round(grown / 1e6)} MB`);

    // no key or identity in any log line, in the flow configuration, or in credentials the editor gets
    const secrets = [KEY, BS_KEY, SECRET_IDENTITY];
    const logged = JSON.stringify(helper.log().args);
    assert.ok(helper.log().args.length > 0, 'the log spy heard the runtime');
    for (const secret of secrets) assert.ok(!logged.toLowerCase().includes(secret.toLowerCase()), `${secret.slice(0, 6)}… in the log`);
    const flows = JSON.stringify(helper._redNodes.getFlows().flows);
    for (const secret of secrets) assert.ok(!flows.includes(secret), 'a secret in the flow configuration');
    for (const type of ['lwm2m-server', 'lwm2m-bootstrap-config', 'lwm2m-bc66']) {
      const definition = helper._redNodes.getCredentialDefinition(type) ?? {};
      for (const [name, field] of Object.entries(definition)) assert.strictEqual(field.type, 'password', `${type}.${name} is sent to the editor`);
    }
  });
});
