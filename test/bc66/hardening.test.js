'use strict';
// The BC66 path against hostile or careless input: AT arguments that would end a command (CR/LF)
// or carry NaN are refused before anything reaches the modem, and a refused or timed-out
// AT+QLWCONFIG never shows the PSK identity or key in an error or a 'tx' event. A scripted modem
// on a REAL pty pair, as in driver.test.js.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Bc66Driver, Bc66Lwm2m, startPtyPair, atArg, AtArgumentError } = require('../../dist/bc66');
const { scriptedModem } = require('./scripted-modem');

const KEY = '00112233445566778899aabbccddeeff';
const IDENTITY = 'secret-identity-1';

/** Answers the bring-up commands; `config` decides what AT+QLWCONFIG gets. */
function modemScript(config) {
  return (line, write) => {
    if (line.startsWith('AT+QLWCONFIG=')) return config(write);
    if (line === 'AT+CGSN=1') return write('\r\n+CGSN: 866425030012345\r\n\r\nOK\r\n');
    if (line === 'AT+CEREG?') return write('\r\n+CEREG: 0,1\r\n\r\nOK\r\n');
    if (line === 'AT+CGATT?') return write('\r\n+CGATT: 1\r\n\r\nOK\r\n');
    return write('\r\nOK\r\n');
  };
}

describe('BC66 hardening', function () {
  this.timeout(20000);
  let dir;
  let pty;
  let modem;
  let driver;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-hard-'));
    pty = await startPtyPair(path.join(dir, 'modem'), path.join(dir, 'host'));
  });
  afterEach(async () => {
    if (driver) await driver.close();
    if (modem) await modem.close();
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    driver = modem = null;
  });

  it('refuses AT arguments with line breaks, control characters or non-finite numbers', () => {
    for (const bad of ['Cel\r\nAT+QLWDEREG\r\n', 'a\nb', 'nul\u0000', 'esc\u001b[2J', NaN, Infinity, -Infinity]) {
      assert.throws(() => atArg(bad), AtArgumentError, JSON.stringify(String(bad)));
    }
    assert.strictEqual(atArg('say "hi"'), '"say \'hi\'"');
    assert.strictEqual(atArg(21.5), '21.5');
  });

  for (const [what, answer] of [['refused', (write) => write('\r\n+CME ERROR: 4\r\n')], ['timed out', () => {}]]) {
    it(`keeps the PSK identity and key out of errors and 'tx' events when AT+QLWCONFIG is ${what}`, async () => {
      modem = await scriptedModem(pty.a, modemScript(answer));
      driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 600 });
      const shown = [];
      driver.on('tx', (line) => shown.push(line));
      driver.on('warning', (err) => shown.push(err.message));
      const client = new Bc66Lwm2m(driver, {
        serverHost: '127.0.0.1', serverPort: 5684, mode: 'direct', lifetime: 300, security: 'psk', pskIdentity: IDENTITY, pskKey: KEY,
        objects: [{ objectId: 3303, instanceId: 0, resources: [5700] }], autoRegister: false, networkPollMs: 10, networkPolls: 3,
      });
      client.on('warning', (err) => shown.push(err.message));
      const err = await client.start().then(() => null, (e) => e);
      assert.ok(err, 'start fails');
      shown.push(err.message, String(err.stack));
      assert.ok(modem.lines.some((l) => l.includes(KEY)), 'the modem itself got the key');
      assert.ok(shown.some((l) => l.startsWith('AT+QLWCONFIG=')), 'the command is shown');
      for (const text of shown) {
        assert.ok(!text.toLowerCase().includes(KEY), `key in "${text}"`);
        assert.ok(!text.includes(IDENTITY), `identity in "${text}"`);
      }
    });
  }

  it('refuses a value a flow sets with a line break or NaN: nothing of it reaches the modem', async () => {
    modem = await scriptedModem(pty.a, modemScript((write) => write('\r\nOK\r\n')));
    driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 600 });
    const client = new Bc66Lwm2m(driver, {
      serverHost: '127.0.0.1', serverPort: 5683, mode: 'direct', lifetime: 300, security: 'nosec',
      objects: [{ objectId: 3303, instanceId: 0, resources: [5701] }], autoRegister: false, networkPollMs: 10, networkPolls: 3,
    });
    await client.start();
    const before = modem.lines.length;
    await assert.rejects(client.setValue('/3303/0/5701', 'Cel\r\nAT+QLWDEREG\r\n'), AtArgumentError);
    await assert.rejects(client.setValue('/3303/0/5700', NaN), AtArgumentError);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepStrictEqual(modem.lines.slice(before), [], 'nothing was written to the modem');
  });

  it('refuses URCs whose numeric fields do not parse, with a warning, and never sends a command with NaN', async () => {
    modem = await scriptedModem(pty.a, modemScript((write) => write('\r\nOK\r\n')));
    driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 600 });
    const client = new Bc66Lwm2m(driver, {
      serverHost: '127.0.0.1', serverPort: 5683, mode: 'direct', lifetime: 300, security: 'nosec',
      objects: [{ objectId: 3303, instanceId: 0, resources: [5700] }], autoRegister: false, networkPollMs: 10, networkPolls: 3,
    });
    const warnings = [];
    client.on('warning', (err) => warnings.push(err.message));
    await client.start();
    await client.setValue('/3303/0/5700', 21.5);
    for (const urc of ['+QLWURC: "read",abc,3303,0,5700', '+QLWURC: "read",7,3303,,5700', '+QLWURC: "write",8,3303,x,5700,4,4,21.5',
      '+QLWURC: "execute",9,3,0,4.5', '+QLWURC: "observe",10,0,3303,0,NaN']) modem.write(`\r\n${urc}\r\n`);
    modem.write('\r\n+QLWURC: "read",11,3303,0,5700\r\n'); // a good one after them is still answered
    for (let i = 0; i < 50 && !modem.lines.some((l) => l.startsWith('AT+QLWRDRSP=11,')); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(modem.lines.some((l) => l.startsWith('AT+QLWRDRSP=11,')), 'the good read is answered');
    assert.deepStrictEqual(modem.lines.filter((l) => /NaN|undefined/.test(l)), []);
    assert.strictEqual(warnings.filter((w) => /is not a number/.test(w)).length, 5, warnings.join('\n'));
  });
});
