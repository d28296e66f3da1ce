'use strict';
// The driver against a scripted modem on a REAL pseudo-terminal pair (both ends opened by
// serialport's real bindings): results, URCs at any time, errors, timeouts, a vanishing port.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Bc66Driver, Bc66CommandError, Bc66TimeoutError, startPtyPair } = require('../../dist/bc66');
const { scriptedModem } = require('./scripted-modem');
const { nextEvent, delay } = require('../helpers');

describe('BC66 driver over a pty', function () {
  this.timeout(20000);
  let dir;
  let pty;
  let modem;
  let driver;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
  });
  afterEach(async () => {
    if (driver) await driver.close();
    if (modem) await modem.close();
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    driver = modem = null;
  });

  it('matches results and final codes, and passes URCs that arrive between a command and its OK', async () => {
    modem = await scriptedModem(pty.a, (line, write) => {
      if (line === 'AT+CGSN=1') write('\r\n+QLWURC: "ping",1\r\n+CGSN: 866425030012345\r\n\r\nOK\r\n');
      else if (line === 'AT+QLWDEREG') write('\r\n+CME ERROR: 4\r\n');
      else if (line === 'AT+QLWREG') write('\r\n+CMEE ERROR: 32\r\n');
      else if (line === 'AT+QLWUPDATE=0,600') write('\r\n+QLWUPDATE: 17\r\n\r\nOK\r\n\r\n+QLWUPDATE: 0,17\r\n');
      else if (line === 'ATI') write('\r\nQuectel_Ltd\r\nQuectel_BC66\r\nRevision: BC66NBR01A07\r\n\r\nOK\r\n');
      else if (line === 'AT+BOGUS') write('\r\nERROR\r\n');
      else if (line === 'AT+SLOW') { /* never answers */ }
      else write('\r\nOK\r\n');
    });
    driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 500 });
    const urcs = [];
    driver.on('urc', (u) => urcs.push(u));
    await driver.open();
    await driver.sync();
    assert.deepStrictEqual((await driver.command('AT+CGSN=1', { expect: '+CGSN' })).lines, ['+CGSN: 866425030012345']);
    assert.deepStrictEqual(urcs.map((u) => [u.name, u.fields]), [['+QLWURC', ['ping', '1']]]);
    assert.deepStrictEqual((await driver.command('ATI')).lines, ['Quectel_Ltd', 'Quectel_BC66', 'Revision: BC66NBR01A07']);
    await assert.rejects(driver.command('AT+QLWDEREG'), (e) => e instanceof Bc66CommandError && e.code === 4);
    await assert.rejects(driver.command('AT+QLWREG'), (e) => e instanceof Bc66CommandError && e.code === 32);
    await assert.rejects(driver.command('AT+BOGUS'), (e) => e instanceof Bc66CommandError && e.code === undefined);
    const later = nextEvent(driver, 'urc', 2000, (u) => u.name === '+QLWUPDATE');
    assert.deepStrictEqual((await driver.command('AT+QLWUPDATE=0,600', { expect: '+QLWUPDATE' })).lines, ['+QLWUPDATE: 17']);
    assert.deepStrictEqual((await later).fields, ['0', '17']);
    // a timed-out command fails alone: the queue goes on
    const slow = driver.command('AT+SLOW');
    const next = driver.command('AT');
    await assert.rejects(slow, Bc66TimeoutError);
    await next;
  });

  it('survives garbage, split lines and unknown URCs', async () => {
    modem = await scriptedModem(pty.a, (line, write) => {
      if (line === 'AT') {
        write('\x00\xff\xfe garbage\r\n+WEIRD: 1,2\r\n+QLWURC: "lwstatus",3\r\nO');
        setTimeout(() => write('K\r\n'), 50);
      }
    });
    driver = new Bc66Driver({ path: pty.b });
    const urcs = [];
    driver.on('urc', (u) => urcs.push(u.name));
    await driver.open();
    await driver.command('AT');
    assert.ok(urcs.includes('+WEIRD') && urcs.includes('+QLWURC'));
  });

  it('reports a modem reboot', async () => {
    modem = await scriptedModem(pty.a, (line, write) => write('\r\nOK\r\n'));
    driver = new Bc66Driver({ path: pty.b });
    await driver.open();
    const reboot = nextEvent(driver, 'reboot');
    modem.write('\r\nRDY\r\n');
    assert.strictEqual(await reboot, 'RDY');
  });

  it('fails pending commands when the port vanishes, then reopens it when it comes back', async () => {
    modem = await scriptedModem(pty.a, (line, write) => {
      if (line !== 'AT+HANG') write('\r\nOK\r\n');
    });
    driver = new Bc66Driver({ path: pty.b, reopenDelayMs: [100, 400], commandTimeoutMs: 5000 });
    await driver.open();
    const hanging = assert.rejects(driver.command('AT+HANG'), /closed/);
    const closed = nextEvent(driver, 'close', 5000);
    await modem.close();
    await pty.stop();
    await closed;
    await hanging;
    await assert.rejects(driver.command('AT'), /not open/);
    await delay(300);
    const reopened = nextEvent(driver, 'open', 8000);
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
    modem = await scriptedModem(pty.a, (line, write) => write('\r\nOK\r\n'));
    await reopened;
    await driver.command('AT');
  });
});
