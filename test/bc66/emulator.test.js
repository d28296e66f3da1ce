'use strict';
// The emulator's AT command set as the reference describes it, through the real driver over a pty,
// with a real LwM2M server behind it.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Bc66Driver, Bc66Emulator, Bc66Lwm2m, Bc66CommandError, startPtyPair } = require('../../dist/bc66');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { nextEvent } = require('../helpers');

describe('BC66 emulator command set', function () {
  this.timeout(20000);
  let dir;
  let pty;
  let emulator;
  let driver;
  let server;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-emu-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    emulator = new Bc66Emulator({ path: pty.a, imei: '866425030011111', localAddress: '127.0.0.1' });
    await emulator.start();
    driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 3000 });
    await driver.open();
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1' });
    server.on('warning', () => {});
    await server.start();
  });
  afterEach(async () => {
    await driver.close();
    await emulator.stop();
    await pty.stop();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const code = (promise) => promise.then(() => 'OK', (e) => (e instanceof Bc66CommandError ? (e.code ?? 'ERROR') : e.message));

  it('answers start-up, configuration and error cases like the module', async () => {
    await driver.sync();
    await driver.command('ATE0');
    assert.deepStrictEqual((await driver.command('ATI')).lines.slice(0, 2), ['Quectel_Ltd', 'Quectel_BC66']);
    assert.deepStrictEqual((await driver.command('AT+CGSN=1', { expect: '+CGSN' })).lines, ['+CGSN: 866425030011111']);
    assert.match((await driver.command('AT+CEREG?', { expect: '+CEREG' })).lines[0], /^\+CEREG: 0,1$/);
    assert.strictEqual(await code(driver.command('AT+QLWDEREG')), 4, 'not registered');
    assert.strictEqual(await code(driver.command('AT+QLWUPDATE=0,600')), 4, 'not registered');
    assert.strictEqual(await code(driver.command('AT+QLWCONFIG=0,"127.0.0.1",70000,"ep",86400,3')), 3, 'bad port');
    assert.strictEqual(await code(driver.command('AT+QLWCONFIG=0,"127.0.0.1",5683,"ep",10,3')), 3, 'lifetime below 20');
    assert.strictEqual(await code(driver.command('AT+QLWCONFIG=0,"127.0.0.1",5683,"ep",86400,0')), 3, 'PSK without identity and key');
    assert.strictEqual(await code(driver.command('AT+QLWREG')), 1, 'no configuration');
    assert.strictEqual(await code(driver.command('AT+NOSUCH')), 'ERROR');
    assert.strictEqual(await code(driver.command(`AT+QLWCONFIG=0,"127.0.0.1",${server.address().port},"urn:imei:866425030011111",86400,3`)), 'OK');
    assert.deepStrictEqual((await driver.command('AT+QLWCONFIG?', { expect: '+QLWCONFIG' })).lines,
      [`+QLWCONFIG: 0,"127.0.0.1",${server.address().port},"urn:imei:866425030011111",86400,3`]);
    assert.strictEqual(await code(driver.command('AT+QLWADDOBJ=3303,0,2,5700')), 3, 'count does not match the resources');
    assert.strictEqual(await code(driver.command('AT+QLWCFG="auto_reg",0')), 'OK');
  });

  it('registers, updates, reports its status and deregisters through Bc66Lwm2m', async () => {
    const device = new Bc66Lwm2m(driver, {
      serverHost: '127.0.0.1', serverPort: server.address().port, mode: 'direct', lifetime: 120, security: 'nosec',
      objects: [{ objectId: 3303, instanceId: 0, resources: Array.from({ length: 16 }, (_, i) => 5600 + i) }],
      autoRegister: false, networkPollMs: 50,
    });
    device.on('warning', () => {});
    const lines = [];
    driver.on('tx', (l) => lines.push(l));
    await device.start();
    // 16 resources: two AT+QLWADDOBJ commands (at most 14 each)
    assert.deepStrictEqual(lines.filter((l) => l.startsWith('AT+QLWADDOBJ=')).map((l) => l.split(',')[2]), ['14', '2']);
    assert.strictEqual(await device.status(), 0);
    const registered = nextEvent(server, 'register');
    await device.register();
    assert.strictEqual((await registered)[0].endpoint, 'urn:imei:866425030011111');
    assert.strictEqual(await device.status(), 2);
    const updated = nextEvent(server, 'update');
    const acknowledged = nextEvent(driver, 'urc', 5000, (u) => u.name === '+QLWUPDATE' && u.fields.length === 2);
    await device.update(300);
    assert.strictEqual((await updated)[0].lifetime, 300);
    assert.strictEqual((await acknowledged).fields[0], '0');
    const gone = nextEvent(server, 'deregister');
    const confirmed = nextEvent(driver, 'urc', 5000, (u) => u.name === '+QLWDEREG');
    await device.deregister();
    await gone;
    assert.deepStrictEqual((await confirmed).fields, ['0']);
  });
});
