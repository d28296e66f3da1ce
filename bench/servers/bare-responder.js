'use strict';
// Baseline: the ceiling on this machine — a bare dgram socket answering every CON POST /rd with a
// piggybacked 2.01 + Location-Path, parsing and generating with coap-packet, storing nothing.
const dgram = require('dgram');
const { parse, generate } = require('coap-packet');
const { serve } = require('./harness');

serve(async () => {
  const socket = dgram.createSocket('udp4');
  let id = 0;
  const devices = []; // where each registration came from: the read baseline reads them all
  const pendingReads = new Map();
  let nextMid = 1;
  socket.on('message', (msg, rinfo) => {
    if (msg.length >= 4 && ((msg[0] >> 4) & 0x03) === 2 && msg[1] !== 0) {
      const done = pendingReads.get(msg.readUInt16BE(2));
      if (done) { pendingReads.delete(msg.readUInt16BE(2)); done(msg); }
      return;
    }
    let packet;
    try { packet = parse(msg); } catch { return; }
    if (packet.code === '0.00' || !packet.code.startsWith('0.')) return;
    const reply = generate({
      messageId: packet.messageId, token: packet.token, ack: true, code: '2.01',
      options: [{ name: 'Location-Path', value: Buffer.from('rd') }, { name: 'Location-Path', value: Buffer.from(String(++id)) }],
    });
    devices.push({ address: rinfo.address, port: rinfo.port });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  const commands = {
    // read baseline: GET /3/0 with Accept SenML-CBOR to every device, matched on message id, no decoding
    async readAll({ window }) {
      const latencies = [];
      let ok = 0;
      let next = 0;
      const started = process.hrtime.bigint();
      const readOne = (device) => new Promise((resolve) => {
        const mid = nextMid; nextMid = (nextMid % 65535) + 1;
        const t0 = process.hrtime.bigint();
        const timer = setTimeout(() => { pendingReads.delete(mid); resolve(); }, 5000);
        pendingReads.set(mid, () => { clearTimeout(timer); ok++; latencies.push(Number(process.hrtime.bigint() - t0) / 1e6); resolve(); });
        socket.send(generate({ messageId: mid, token: Buffer.from([mid >> 8, mid & 255]), confirmable: true, code: 'GET',
          options: [{ name: 'Uri-Path', value: Buffer.from('3') }, { name: 'Uri-Path', value: Buffer.from('0') }, { name: 'Accept', value: Buffer.from([112]) }] }),
          device.port, device.address);
      });
      const worker = async () => { while (next < devices.length) await readOne(devices[next++]); };
      await Promise.all(Array.from({ length: window }, worker));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      latencies.sort((a, b) => a - b);
      const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
      return { total: devices.length, ok, seconds, p50: pct(0.5), p99: pct(0.99) };
    },
  };
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.setRecvBufferSize(4 * 1024 * 1024); // the same receive buffer every server kind gets
  return { port: socket.address().port, count: () => id, close: () => socket.close(), commands };
});
