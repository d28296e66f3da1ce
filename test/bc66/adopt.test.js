'use strict';
// Start-up asks the modem its state (AT+QLWSTATUS?, AT+QLWCONFIG?, AT+QLWADDOBJ?) and adopts a
// registration made with the same configuration, as after a deploy or a host restart; a modem
// registered with another configuration is deregistered and configured again. Real emulator, real
// pty, real LwM2M server.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Bc66Driver, Bc66Emulator, Bc66Lwm2m, startPtyPair } = require('../../dist/bc66');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { nextEvent, recordModem } = require('../helpers');

const IMEI = '866425030022222';
const EP = `urn:imei:${IMEI}`;

describe('BC66 start-up adopts what the modem already has', function () {
  this.timeout(15000);
  let dir;
  let pty;
  let emulator;
  let server;
  let received; // commands the modem got
  let errors; // +CME ERROR codes it answered
  const devices = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-adopt-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    emulator = new Bc66Emulator({ path: pty.a, imei: IMEI, localAddress: '127.0.0.1', deregisterDelayMs: 300 });
    emulator.on('warning', () => {});
    ({ received, errors } = recordModem(emulator));
    await emulator.start();
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1' });
    server.on('warning', () => {});
    await server.start();
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.stop({ deregister: false }).catch(() => {});
    await emulator.stop();
    await pty.stop();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function device(overrides = {}) {
    const d = new Bc66Lwm2m(new Bc66Driver({ path: pty.b, commandTimeoutMs: 3000 }), {
      serverHost: '127.0.0.1', serverPort: server.address().port, mode: 'direct', lifetime: 120, security: 'nosec',
      objects: [{ objectId: 3303, instanceId: 0, resources: [5700, 5701] }],
      autoRegister: true, networkPollMs: 50, deregisterTimeoutMs: 3000, ...overrides,
    });
    d.on('warning', () => {});
    devices.push(d);
    return d;
  }
  const sent = (prefix) => received.filter((l) => l.toUpperCase().startsWith(prefix));

  it('adopts a modem registered with the same configuration: no configuration, no Register, reads reach the new host', async () => {
    const first = device();
    const registered = nextEvent(server, 'register');
    await first.start();
    await registered;
    first.setValue('/3303/0/5700', 20.5);
    await first.stop({ deregister: false }); // a deploy: the port closes, the modem stays registered
    assert.strictEqual(emulator.isRegistered, true);
    received.length = 0;

    const registrations = [];
    server.on('register', (r) => registrations.push(r));
    server.on('deregister', (r) => registrations.push(r));
    const second = device();
    second.inherit(first.snapshot());
    await second.start();
    assert.strictEqual(second.state, 'registered');
    assert.deepStrictEqual(sent('AT+QLWSTATUS?'), ['AT+QLWSTATUS?'], 'the modem was asked');
    assert.deepStrictEqual([...sent('AT+QLWCONFIG='), ...sent('AT+QLWADDOBJ='), ...sent('AT+QLWDELOBJ'), ...sent('AT+QLWREG'), ...sent('AT+QLWDEREG')], []);
    assert.deepStrictEqual(errors, []);
    assert.deepStrictEqual(registrations, [], 'the server saw neither a Register nor a Deregister');
    assert.deepStrictEqual(server.listRegistrations().map((r) => r.endpoint), [EP]);
    assert.strictEqual((await server.read(EP, '/3303/0/5700')).value, 20.5, 'the value handed on answers the read');
    second.setValue('/3303/0/5700', 22);
    assert.strictEqual((await server.read(EP, '/3303/0/5700')).value, 22);
  });

  it('deregisters a modem registered with another configuration and configures it again, objects declared once', async () => {
    const first = device({ objects: [{ objectId: 3303, instanceId: 0, resources: [5700] }, { objectId: 3311, instanceId: 0, resources: [5850] }] });
    await first.start();
    await first.stop({ deregister: false });
    received.length = 0;

    const gone = nextEvent(server, 'deregister');
    const registered = nextEvent(server, 'register', 8000);
    const second = device({ lifetime: 300 });
    await second.start();
    await gone;
    assert.strictEqual((await registered)[0].lifetime, 300);
    assert.strictEqual(second.state, 'registered');
    const order = received.filter((l) => /^AT\+QLW(DEREG|CONFIG=|DELOBJ|ADDOBJ=|REG)/.test(l));
    assert.deepStrictEqual(order, [
      'AT+QLWDEREG',
      `AT+QLWCONFIG=0,"127.0.0.1",${server.address().port},"${EP}",300,3`,
      'AT+QLWDELOBJ=3303', 'AT+QLWDELOBJ=3311',
      'AT+QLWADDOBJ=3303,0,2,5700,5701',
      'AT+QLWREG',
    ]);
    assert.deepStrictEqual(errors, []);
    assert.deepStrictEqual(emulator.declaredObjects, [{ objectId: 3303, instanceId: 0, resources: [5700, 5701] }]);
    assert.deepStrictEqual(server.listRegistrations().map((r) => [r.endpoint, r.lifetime]), [[EP, 300]]);
  });

  it('configures a modem that is configured but not registered without adding its objects twice', async () => {
    const first = device({ autoRegister: false });
    await first.start();
    await first.stop();
    received.length = 0;
    const second = device();
    await second.start();
    assert.strictEqual(second.state, 'registered');
    assert.deepStrictEqual(sent('AT+QLWCONFIG='), [], 'the same configuration is not sent again');
    assert.deepStrictEqual(sent('AT+QLWADDOBJ='), [], 'the objects are already there');
    assert.deepStrictEqual(sent('AT+QLWREG'), ['AT+QLWREG']);
    assert.deepStrictEqual(errors, []);
    assert.deepStrictEqual(emulator.declaredObjects, [{ objectId: 3303, instanceId: 0, resources: [5700, 5701] }]);
  });

  it('stop() deregisters by default and closes the port once +QLWDEREG came', async () => {
    const d = device();
    await d.start();
    const gone = nextEvent(server, 'deregister');
    await d.stop();
    assert.strictEqual(emulator.isRegistered, false);
    await gone;
    assert.ok(received.includes('AT+QLWDEREG'));
    assert.deepStrictEqual(errors, []);
  });
});
