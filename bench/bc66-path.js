'use strict';
// 5. BC66 path: AT exchanges per second and latency through the driver and the emulator over a real
// pty pair, against the raw pty round trip (a bare serialport peer answering OK to each line).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { SerialPort } = require('serialport');
const { Bc66Driver, Bc66Emulator, startPtyPair } = require('../dist/bc66');
const { LineSplitter } = require('../dist/bc66/at-line');
const { table, fmt } = require('./lib/table');

function open(device) {
  const port = new SerialPort({ path: device, baudRate: 115200, autoOpen: false });
  return new Promise((resolve, reject) => port.open((err) => (err ? reject(err) : resolve(port))));
}

function summary(latencies, seconds) {
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return { count: latencies.length, rate: latencies.length / seconds, p50: pct(0.5), p99: pct(0.99) };
}

async function raw(pty, n) {
  const peer = await open(pty.a);
  const splitter = new LineSplitter(() => peer.write('\r\nOK\r\n'));
  peer.on('data', (d) => splitter.push(d));
  const host = await open(pty.b);
  let waiting = null;
  const hostLines = new LineSplitter((line) => { if (line === 'OK' && waiting) { const w = waiting; waiting = null; w(); } });
  host.on('data', (d) => hostLines.push(d));
  const latencies = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await new Promise((resolve) => { waiting = resolve; host.write('AT\r\n'); });
    latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => host.close(() => r()));
  await new Promise((r) => peer.close(() => r()));
  return summary(latencies, seconds);
}

async function driverAndEmulator(pty, n, command) {
  const emulator = new Bc66Emulator({ path: pty.a });
  await emulator.start();
  const driver = new Bc66Driver({ path: pty.b });
  await driver.open();
  await driver.command('ATE0');
  const latencies = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await driver.command(command.line, { expect: command.expect });
    latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await driver.close();
  await emulator.stop();
  return summary(latencies, seconds);
}

async function main(n = 2000) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bc66-bench-'));
  const pty = await startPtyPair(path.join(dir, 'a'), path.join(dir, 'b'));
  try {
    const base = await raw(pty, n);
    const at = await driverAndEmulator(pty, n, { line: 'AT' });
    const cgsn = await driverAndEmulator(pty, n, { line: 'AT+CGSN=1', expect: '+CGSN' });
    const row = (name, r) => [name, fmt(r.count), fmt(r.rate), fmt(r.p50, 3), fmt(r.p99, 3), fmt(r.p50 - base.p50, 3)];
    return { text: table(`BC66 path: sequential AT exchanges over a pty pair (${fmt(n)} each)`, ['path', 'exchanges', 'exchanges/s', 'p50 ms', 'p99 ms', 'added p50 ms'], [
      row('raw pty round trip (baseline)', base), row('driver + emulator: AT', at), row('driver + emulator: AT+CGSN=1 (result line)', cgsn),
    ]) };
  } finally {
    await pty.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { main };
if (require.main === module) main(Number(process.argv[2]) || 2000).catch((e) => { console.error(e); process.exit(1); });
