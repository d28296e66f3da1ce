'use strict';
// Full deploys with a BC66 (the emulator behind a real pty): every node is closed and created
// again; the modem stays registered and the new lwm2m-bc66 node adopts it (asks AT+QLWSTATUS? and
// sends no AT+QLWCONFIG / AT+QLWADDOBJ / AT+QLWREG / AT+QLWDEREG), so there is no +CME ERROR, the
// server keeps exactly one registration, and reads, observations and notifications carry on.
// Deleting the modem node deregisters the device. Before the fix, the first deploy left the node
// "not registered" (the late +QLWDEREG of its predecessor) and the second got +CME ERROR: 1.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { Bc66Emulator, startPtyPair } = require('../../dist/bc66');
const { freeUdpPort, collector, delay, recordModem } = require('../helpers');

const TYPES = ['lwm2m-server', 'lwm2m-bc66', 'lwm2m-register', 'lwm2m-read', 'lwm2m-observe'];
const NODES = TYPES.map((t) => require(`../../nodes/${t}.js`));
const IMEI = '866425030077665';
const EP = `urn:imei:${IMEI}`;

helper.init(require.resolve('node-red'));

function flow(port, hostLink, withModem = true) {
  return [
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 8 },
    { id: 'srvReg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['sReg']] },
    { id: 'srvRead', z: 'f1', type: 'lwm2m-read', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sRead']] },
    { id: 'srvObs', z: 'f1', type: 'lwm2m-observe', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sObs']] },
    ...(withModem ? [
      { id: 'modem', type: 'lwm2m-bc66', serialPort: hostLink, baudRate: 115200, endpoint: '', serverHost: '127.0.0.1', serverPort: port,
        mode: 'direct', lifetime: 300, security: 'nosec', objects: '3303/0: 5700, 5701', autoRegister: true },
      { id: 'devReg', z: 'f1', type: 'lwm2m-register', modem: 'modem', wires: [['dReg']] },
      { id: 'devObs', z: 'f1', type: 'lwm2m-observe', modem: 'modem', path: '/3303/0/5700', wires: [['dObs']] },
    ] : []),
    ...['sReg', 'sRead', 'sObs', 'dReg', 'dObs'].map((id) => ({ id, z: 'f1', type: 'helper' })),
  ];
}

describe('BC66 over Full deploys (Node-RED, emulator, server)', function () {
  this.timeout(15000);
  let dir;
  let pty;
  let emulator;
  let received;
  let errors;

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-deploy-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    // the Deregister of a modem takes a network round trip: its +QLWDEREG comes late
    emulator = new Bc66Emulator({ path: pty.a, imei: IMEI, localAddress: '127.0.0.1', deregisterDelayMs: 800 });
    emulator.on('warning', () => {});
    ({ received, errors } = recordModem(emulator));
    await emulator.start();
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.stop();
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function registeredStatus() {
    for (let i = 0; i < 100; i++) {
      const modem = helper.getNode('modem');
      if (modem && /^registered/.test(modem.currentStatus.text)) return modem;
      await delay(50);
    }
    throw new Error(`the modem node is "${helper.getNode('modem').currentStatus.text}", not registered`);
  }

  it('stays registered over two Full deploys: no +CME ERROR, one registration, reads and notifications work after each', async () => {
    const port = await freeUdpPort();
    await helper.load(NODES, flow(port, pty.b));
    const serverEvents = [];
    const srv = helper.getNode('srv').server;
    srv.on('register', (r) => serverEvents.push(`register ${r.endpoint}`));
    srv.on('deregister', (r) => serverEvents.push(`deregister ${r.endpoint}`));
    let sReg = collector(helper.getNode('sReg'));
    await sReg.next((m) => m.topic === 'register', 10000);
    await registeredStatus();
    helper.getNode('devObs').receive({ payload: 21.5 });
    let sRead = collector(helper.getNode('sRead'));
    helper.getNode('srvRead').receive({});
    assert.strictEqual((await sRead.next()).payload, 21.5);
    let sObs = collector(helper.getNode('sObs'));
    helper.getNode('srvObs').receive({});
    assert.strictEqual((await sObs.next((m) => m.topic === 'observe')).payload, 21.5);
    assert.deepStrictEqual(serverEvents, [`register ${EP}`]);
    serverEvents.length = 0;
    received.length = 0;

    for (const [i, value] of [[1, 30.25], [2, 18]]) {
      await helper.setFlows(flow(port, pty.b), 'full');
      const modem = await registeredStatus();
      const dReg = collector(helper.getNode('dReg'));
      assert.strictEqual(modem.device.state, 'registered', `deploy ${i}`);
      assert.deepStrictEqual(errors, [], `deploy ${i}: no +CME ERROR`);
      assert.deepStrictEqual(received.filter((l) => /^AT\+QLW(CONFIG=|ADDOBJ=|DELOBJ|REG|DEREG)/i.test(l)), [], `deploy ${i}: adopted, not configured or registered again`);
      assert.ok(received.includes('AT+QLWSTATUS?'), `deploy ${i}: the modem was asked its state`);
      assert.strictEqual(emulator.isRegistered, true);
      assert.deepStrictEqual(helper.getNode('srv').server.listRegistrations().map((r) => r.endpoint), [EP], `deploy ${i}: one registration`);

      // a read reaches the new device flow's values (the last one handed on, then a new one)
      sRead = collector(helper.getNode('sRead'));
      helper.getNode('srvRead').receive({});
      assert.notStrictEqual((await sRead.next()).payload, undefined);
      helper.getNode('devObs').receive({ payload: value });
      sObs = collector(helper.getNode('sObs'));
      // the server's observation survived: the new device node notifies it
      assert.strictEqual((await sObs.next((m) => m.topic === 'notify')).payload, value, `deploy ${i}: notification`);
      helper.getNode('srvRead').receive({});
      assert.strictEqual((await sRead.next()).payload, value, `deploy ${i}: read`);
      await delay(1000); // longer than the Deregister round trip: a late +QLWDEREG would show now
      assert.match(modem.currentStatus.text, /^registered/);
      assert.deepStrictEqual(dReg.seen.map((m) => m.payload).filter((s) => s !== 'registered'), []);
      received.length = 0;
    }
    assert.deepStrictEqual(serverEvents, [], 'the server saw no Register or Deregister over the deploys');
    assert.deepStrictEqual(errors, []);

    // deleting the modem node deregisters the device
    const gone = new Promise((resolve) => helper.getNode('srv').server.once('deregister', resolve));
    await helper.setFlows(flow(port, pty.b, false), 'full');
    assert.strictEqual((await gone).endpoint, EP);
    assert.strictEqual(emulator.isRegistered, false);
    assert.deepStrictEqual(received.filter((l) => /^AT\+QLWDEREG/.test(l)), ['AT+QLWDEREG']);
    assert.deepStrictEqual(errors, []);
  });
});
