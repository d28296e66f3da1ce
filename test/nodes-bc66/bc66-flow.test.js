'use strict';
// End to end in one Node-RED runtime: flow → lwm2m-bc66 → real pty → BC66 emulator → CoAP →
// lwm2m-server → flow. The server flow reads, writes, executes and observes the device; the device
// flow sees the writes and executes and its values reach the server flow. Then the serial line
// vanishes and comes back, and the device registers again; and a device that bootstraps.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { Bc66Emulator, startPtyPair } = require('../../dist/bc66');
const { freeUdpPort, collector, delay } = require('../helpers');

const TYPES = ['lwm2m-server', 'lwm2m-bc66', 'lwm2m-register', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-observe', 'lwm2m-bootstrap-config'];
const NODES = TYPES.map((t) => require(`../../nodes/${t}.js`));
const IMEI = '866425030099887';
const EP = `urn:imei:${IMEI}`;

helper.init(require.resolve('node-red'));

function flow(port, hostLink, mode = 'direct', answer = 'values') {
  const outs = ['sReg', 'sRead', 'sWrite', 'sExec', 'sObs', 'dReg', 'dWrite', 'dExec', 'dObs', 'dRead', 'bsOut'];
  return [
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 8, bootstrap: mode === 'bootstrap' },
    { id: 'modem', type: 'lwm2m-bc66', serialPort: hostLink, baudRate: 115200, endpoint: '', serverHost: '127.0.0.1', serverPort: port,
      mode, lifetime: 300, security: 'nosec', objects: '3303/0: 5700, 5701, 5750, 5605', autoRegister: true },
    // server side
    { id: 'srvReg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['sReg']] },
    { id: 'srvRead', z: 'f1', type: 'lwm2m-read', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sRead']] },
    { id: 'srvWrite', z: 'f1', type: 'lwm2m-write', server: 'srv', endpoint: EP, path: '/3303/0/5750', wires: [['sWrite']] },
    { id: 'srvExec', z: 'f1', type: 'lwm2m-execute', server: 'srv', endpoint: EP, path: '/3303/0/5605', wires: [['sExec']] },
    { id: 'srvObs', z: 'f1', type: 'lwm2m-observe', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sObs']] },
    // device side
    { id: 'devReg', z: 'f1', type: 'lwm2m-register', modem: 'modem', wires: [['dReg']] },
    { id: 'devRead', z: 'f1', type: 'lwm2m-read', modem: 'modem', answer, wires: [['dRead']] },
    { id: 'devWrite', z: 'f1', type: 'lwm2m-write', modem: 'modem', wires: [['dWrite']] },
    { id: 'devExec', z: 'f1', type: 'lwm2m-execute', modem: 'modem', wires: [['dExec']] },
    { id: 'devObs', z: 'f1', type: 'lwm2m-observe', modem: 'modem', path: '/3303/0/5700', confirmable: true, wires: [['dObs']] },
    ...(mode === 'bootstrap' ? [{ id: 'bsc', z: 'f1', type: 'lwm2m-bootstrap-config', server: 'srv', endpoint: 'urn:imei:*', deletePaths: '/0, /1',
      servers: [{ uri: `coap://127.0.0.1:${port}`, ssid: 1, lifetime: 120, binding: 'U', security: 'nosec' }], extraWrites: '', wires: [['bsOut']] }] : []),
    ...outs.map((id) => ({ id, z: 'f1', type: 'helper' })),
  ];
}

describe('BC66 end to end over a pty (Node-RED, emulator, server)', function () {
  this.timeout(40000);
  let dir;
  let pty;
  let emulator;
  let port;
  let out;

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-e2e-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    emulator = new Bc66Emulator({ path: pty.a, imei: IMEI, localAddress: '127.0.0.1' });
    emulator.on('warning', () => {});
    await emulator.start();
    port = await freeUdpPort();
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.stop();
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function load(mode, answer) {
    await helper.load(NODES, flow(port, pty.b, mode, answer));
    out = {};
    for (const id of ['sReg', 'sRead', 'sWrite', 'sExec', 'sObs', 'dReg', 'dWrite', 'dExec', 'dObs', 'dRead', 'bsOut']) out[id] = collector(helper.getNode(id));
  }

  it('registers, and the server flow reads, writes, executes and observes the device', async () => {
    await load('direct');
    // the device flow sets its value before the server asks for it
    helper.getNode('devObs').receive({ path: '/3303/0/5700', payload: 21.5 });
    const reg = await out.sReg.next((m) => m.topic === 'register', 15000);
    assert.strictEqual(reg.endpoint, EP);
    assert.ok(reg.payload.objects.some((o) => o.objectId === 3303));
    await out.dReg.next((m) => m.payload === 'registered');

    helper.getNode('srvRead').receive({});
    assert.strictEqual((await out.sRead.next()).payload, 21.5);
    assert.strictEqual((await out.dRead.next()).path, '/3303/0/5700', 'the device flow sees the read');

    helper.getNode('srvWrite').receive({ payload: 'greenhouse' });
    assert.strictEqual((await out.sWrite.next()).code, '2.04');
    const written = await out.dWrite.next();
    assert.deepStrictEqual([written.path, written.payload], ['/3303/0/5750', 'greenhouse']);

    helper.getNode('srvExec').receive({ payload: "0='now'" }); // Core §5.4.5 argument syntax
    assert.strictEqual((await out.sExec.next()).code, '2.04');
    const executed = await out.dExec.next();
    assert.deepStrictEqual([executed.path, executed.payload], ['/3303/0/5605', "0='now'"]);

    helper.getNode('srvObs').receive({});
    assert.strictEqual((await out.sObs.next((m) => m.topic === 'observe')).payload, 21.5);
    assert.strictEqual((await out.dObs.next((m) => m.topic === 'observe')).path, '/3303/0/5700');
    helper.getNode('devObs').receive({ payload: 23.75 });
    const notified = await out.sObs.next((m) => m.topic === 'notify');
    assert.strictEqual(notified.payload, 23.75);
    const ack = await out.dObs.next((m) => m.topic === 'notify' && m.payload.notified);
    assert.deepStrictEqual(ack.payload, { notified: true, acked: true });
  });

  it('recovers when the serial line vanishes and comes back: the device registers again', async () => {
    await load('direct');
    await out.sReg.next((m) => m.topic === 'register', 15000);
    await out.dReg.next((m) => m.payload === 'registered');

    // unplug: the pty disappears with the emulator behind it
    await emulator.stop();
    await pty.stop();
    await out.dReg.next((m) => m.payload === 'closed', 10000);
    assert.strictEqual(helper.getNode('modem').currentStatus.fill, 'red');
    await delay(200);

    // plug back in: a fresh modem on the same device path
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    emulator = new Bc66Emulator({ path: pty.a, imei: IMEI, localAddress: '127.0.0.1' });
    emulator.on('warning', () => {});
    await emulator.start();
    const again = await out.sReg.next((m) => m.topic === 'register', 20000);
    assert.strictEqual(again.endpoint, EP);
    await out.dReg.next((m) => m.payload === 'registered', 5000);
    helper.getNode('devObs').receive({ path: '/3303/0/5700', payload: 30 });
    helper.getNode('srvRead').receive({});
    assert.strictEqual((await out.sRead.next()).payload, 30);
  });

  it('lets the device flow answer reads itself', async () => {
    await load('direct', 'flow');
    await out.sReg.next((m) => m.topic === 'register', 15000);
    await out.dReg.next((m) => m.payload === 'registered');
    helper.getNode('srvRead').receive({});
    const request = await out.dRead.next();
    assert.strictEqual(request.path, '/3303/0/5700');
    helper.getNode('devRead').receive({ lwm2m: { requestId: request.lwm2m.requestId }, payload: 19.25 });
    assert.strictEqual((await out.sRead.next()).payload, 19.25);
    // a read nobody answers gets 4.04 after the flow's answer time (4 s, well inside the server's 8 s)
    helper.getNode('srvRead').receive({ path: '/3303/0/5701' });
    await out.dRead.next();
    const srvCatch = await new Promise((resolve) => {
      const node = helper.getNode('srvRead');
      const original = node.error.bind(node);
      node.error = (err, msg) => { resolve({ err, msg }); original(err, msg); };
    });
    assert.strictEqual(srvCatch.msg.code, '4.04');
  });

  it('configures and registers again after the modem reboots', async () => {
    await load('direct');
    await out.sReg.next((m) => m.topic === 'register', 15000);
    await out.dReg.next((m) => m.payload === 'registered');
    await delay(300);
    const registrationsBefore = out.sReg.seen.filter((m) => m.topic === 'register').length;
    const statesBefore = out.dReg.seen.length;
    await emulator.reboot(); // prints RDY and +CPIN: READY, forgets its LwM2M configuration
    for (let i = 0; i < 100 && out.sReg.seen.filter((m) => m.topic === 'register').length === registrationsBefore; i++) await delay(100);
    assert.strictEqual(out.sReg.seen.filter((m) => m.topic === 'register').length, registrationsBefore + 1, 'registered once more');
    assert.ok(out.dReg.seen.slice(statesBefore).some((m) => m.payload === 'starting'), 'the node went through start-up again');
    assert.strictEqual(out.sReg.seen.filter((m) => m.topic === 'register').pop().endpoint, EP);
    for (let i = 0; i < 50 && out.dReg.seen[out.dReg.seen.length - 1].payload !== 'registered'; i++) await delay(100);
    assert.strictEqual(out.dReg.seen[out.dReg.seen.length - 1].payload, 'registered');
  });

  it('bootstraps through the emulator and ends registered with the server it was given', async () => {
    await load('bootstrap');
    const finished = await out.bsOut.next((m) => m.payload.event === 'finished', 15000);
    assert.strictEqual(finished.endpoint, EP);
    const reg = await out.sReg.next((m) => m.topic === 'register', 15000);
    assert.strictEqual(reg.payload.lifetime, 120);
    await out.dReg.next((m) => m.payload === 'registered');
  });
});
