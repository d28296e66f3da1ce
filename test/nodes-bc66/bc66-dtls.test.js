'use strict';
// The seed's flow over DTLS, end to end in one Node-RED runtime: flow → lwm2m-bc66 (PSK) → real pty
// → BC66 emulator → bootstrap over coaps with its bootstrap PSK → register over coaps with the PSK
// it was given (a random key per device, accepted by the server without being typed) → the server
// flow reads, writes, executes and observes it. Credentials live in node credentials only.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { Bc66Emulator, startPtyPair } = require('../../dist/bc66');
const { freeUdpPort, collector } = require('../helpers');

const TYPES = ['lwm2m-server', 'lwm2m-bc66', 'lwm2m-register', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-observe', 'lwm2m-bootstrap-config'];
const NODES = TYPES.map((t) => require(`../../nodes/${t}.js`));
const IMEI = '866425030055501';
const EP = `urn:imei:${IMEI}`;
const BS_KEY = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

helper.init(require.resolve('node-red'));

describe('BC66 over DTLS: bootstrap and register with PSK (Node-RED, emulator, server)', function () {
  this.timeout(40000);
  let dir;
  let pty;
  let emulator;

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-dtls-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    emulator = new Bc66Emulator({ path: pty.a, imei: IMEI, localAddress: '127.0.0.1' });
    emulator.on('warning', () => {});
    await emulator.start();
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.stop();
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bootstraps over coaps, registers over coaps with the key it was given, and the server flow reaches it', async () => {
    const [port, securePort] = [await freeUdpPort(), await freeUdpPort()];
    const flow = [
      { id: 'f1', type: 'tab' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, securePort, nosec: 'bootstrap', timeout: 8, bootstrap: true },
      { id: 'modem', type: 'lwm2m-bc66', serialPort: pty.b, baudRate: 115200, endpoint: '', serverHost: '127.0.0.1', serverPort: securePort,
        mode: 'bootstrap', lifetime: 300, security: 'psk', objects: '3303/0: 5700, 5701, 5750, 5605', autoRegister: true },
      { id: 'bsc', z: 'f1', type: 'lwm2m-bootstrap-config', server: 'srv', endpoint: 'urn:imei:*', deletePaths: '/0, /1',
        servers: [{ uri: `coaps://127.0.0.1:${securePort}`, ssid: 1, lifetime: 120, binding: 'U', security: 'psk' }], extraWrites: '', wires: [['bsOut']] },
      { id: 'srvReg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['sReg']] },
      { id: 'srvRead', z: 'f1', type: 'lwm2m-read', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sRead']] },
      { id: 'srvWrite', z: 'f1', type: 'lwm2m-write', server: 'srv', endpoint: EP, path: '/3303/0/5750', wires: [['sWrite']] },
      { id: 'srvExec', z: 'f1', type: 'lwm2m-execute', server: 'srv', endpoint: EP, path: '/3303/0/5605', wires: [['sExec']] },
      { id: 'srvObs', z: 'f1', type: 'lwm2m-observe', server: 'srv', endpoint: EP, path: '/3303/0/5700', wires: [['sObs']] },
      { id: 'devReg', z: 'f1', type: 'lwm2m-register', modem: 'modem', wires: [['dReg']] },
      { id: 'devObs', z: 'f1', type: 'lwm2m-observe', modem: 'modem', path: '/3303/0/5700', confirmable: true, wires: [['dObs']] },
      { id: 'devWrite', z: 'f1', type: 'lwm2m-write', modem: 'modem', wires: [['dWrite']] },
      { id: 'devExec', z: 'f1', type: 'lwm2m-execute', modem: 'modem', wires: [['dExec']] },
      ...['bsOut', 'sReg', 'sRead', 'sWrite', 'sExec', 'sObs', 'dReg', 'dObs', 'dWrite', 'dExec'].map((id) => ({ id, z: 'f1', type: 'helper' })),
    ];
    const credentials = {
      // the server knows the device's bootstrap identity; its server identity comes from the bootstrap
      srv: { psk: JSON.stringify([{ endpoint: EP, identity: `bs-${IMEI}`, key: BS_KEY, scope: 'bootstrap' }]) },
      modem: { pskIdentity: `bs-${IMEI}`, pskKey: BS_KEY },
      bsc: { psk: JSON.stringify({ 1: { identity: 'srv-{ep}', key: 'random' } }) },
    };
    await helper.load(NODES, flow, credentials);
    const out = {};
    for (const id of ['bsOut', 'sReg', 'sRead', 'sWrite', 'sExec', 'sObs', 'dReg', 'dObs', 'dWrite', 'dExec']) out[id] = collector(helper.getNode(id));

    helper.getNode('devObs').receive({ path: '/3303/0/5700', payload: 19.5 });
    const finished = await out.bsOut.next((m) => m.payload.event === 'finished', 20000);
    assert.strictEqual(finished.endpoint, EP);
    const reg = await out.sReg.next((m) => m.topic === 'register', 20000);
    assert.strictEqual(reg.endpoint, EP);
    assert.strictEqual(reg.payload.identity, `srv-${EP}`, 'registered over DTLS with the identity the bootstrap gave it');
    const session = await out.sReg.next((m) => m.topic === 'security' && m.payload.event === 'dtls-established' && m.payload.identity === `srv-${EP}`);
    assert.strictEqual(session.payload.cipherSuite, 'TLS_PSK_WITH_AES_128_CCM_8');

    helper.getNode('srvRead').receive({});
    assert.strictEqual((await out.sRead.next()).payload, 19.5);
    helper.getNode('srvWrite').receive({ payload: 'vault' });
    assert.strictEqual((await out.sWrite.next()).code, '2.04');
    assert.strictEqual((await out.dWrite.next()).payload, 'vault');
    helper.getNode('srvExec').receive({ payload: "0='now'" });
    assert.strictEqual((await out.sExec.next()).code, '2.04');
    await out.dExec.next();
    helper.getNode('srvObs').receive({});
    assert.strictEqual((await out.sObs.next((m) => m.topic === 'observe')).payload, 19.5);
    helper.getNode('devObs').receive({ payload: 20.25 });
    assert.strictEqual((await out.sObs.next((m) => m.topic === 'notify')).payload, 20.25);

    // no key in any message the flows saw, nor in the flow's node properties
    const seen = JSON.stringify(Object.values(out).flatMap((c) => c.seen));
    assert.ok(!seen.includes(BS_KEY), 'the bootstrap key is in no message');
    assert.ok(!/"key"/.test(seen), 'no key field in any message');
    assert.ok(!JSON.stringify(flow).includes(BS_KEY));
  });
});
