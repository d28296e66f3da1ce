'use strict';
// Plays the modem on one end of a REAL pty pair: `script(line, write)` answers each command line;
// `lines` keeps every line the host wrote.
const { SerialPort } = require('serialport');
const { LineSplitter } = require('../../dist/bc66/at-line');

async function scriptedModem(device, script) {
  const port = new SerialPort({ path: device, baudRate: 115200, autoOpen: false });
  await new Promise((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const write = (text) => port.write(text);
  const lines = [];
  const splitter = new LineSplitter((line) => {
    lines.push(line);
    script(line, write);
  });
  port.on('data', (d) => splitter.push(d));
  return { port, write, lines, close: () => new Promise((r) => (port.isOpen ? port.close(() => r()) : r())) };
}

module.exports = { scriptedModem };
