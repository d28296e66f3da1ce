'use strict';
// Baseline: a minimal npm `coap` server answering 2.01 + Location-Path, storing nothing: the cost of
// the coap package's message layer alone.
const coap = require('coap');
const { serve } = require('./harness');

serve(async () => {
  const server = coap.createServer({ type: 'udp4' });
  let id = 0;
  server.on('request', (req, res) => {
    res.code = '2.01';
    res.setOption('Location-Path', [Buffer.from('rd'), Buffer.from(String(++id))]);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server._sock.setRecvBufferSize(4 * 1024 * 1024); // the same receive buffer every server kind gets
  return { port: server._sock.address().port, count: () => id, close: () => server.close() };
});
