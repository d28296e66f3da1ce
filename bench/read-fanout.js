'use strict';
// 2. Read fan-out: with N registered clients (default 10k), the server reads /3/0 (SenML-CBOR) from
// every one of them, `window` requests in flight, twice (the first pass warms the JIT up). Baseline: the bare dgram + coap-packet responder
// reading the same fleet with raw GETs matched on message id and no decoding (the ceiling).
const { Fleet } = require('./lib/fleet');
const { ChildServer } = require('./lib/child-server');
const { table, fmt } = require('./lib/table');
const { encodeRecords } = require('../dist/lwm2m/content');

function deviceAnswer() {
  const values = [[0, 'Open Mobile Alliance'], [1, 'Lightweight M2M Client'], [2, '345000123'], [3, '1.0'], [9, 100], [11, 0], [13, new Date(1700000000000)], [16, 'U']];
  const payload = encodeRecords('senml-cbor', values.map(([r, value]) => ({ path: { objectId: 3, instanceId: 0, resourceId: r }, value })), { basePath: { objectId: 3, instanceId: 0 } });
  return { code: '2.05', options: [{ name: 'Content-Format', value: Buffer.from([112]) }], payload };
}

async function fanout(kind, n, window) {
  // node-red: the reads are messages into an lwm2m-read node of a real Node-RED runtime, its
  // outputs counted by a node behind it (bench/servers/node-red-flow.js)
  const server = new ChildServer(kind === 'node-red' ? 'node-red-flow' : kind);
  const target = await server.start(kind === 'node-red' ? { flow: 'register' } : undefined);
  // one socket per request in flight: devices behind one socket share an address, and the server
  // keeps NSTART (one outstanding request per peer, RFC 7252 §4.7) as it should with real devices
  const fleet = new Fleet({ target, sockets: window, window: 512, deadlineMs: 300000 });
  await fleet.open();
  const answer = deviceAnswer();
  fleet.onRequest = () => answer;
  let registered = 0;
  await fleet.pump(n, (i) => fleet.register(i, `read-${i}`), (i, r) => { if (r && r.code === '2.01') registered++; });
  // two passes over the fleet: the first includes the JIT's warm-up, the second is the steady rate
  const first = await server.run('readAll', { path: '/3/0', format: 'senml-cbor', window });
  const result = await server.run('readAll', { path: '/3/0', format: 'senml-cbor', window });
  fleet.close();
  await server.close();
  return { kind, registered, ...result, firstRate: first.ok / first.seconds, rate: result.ok / result.seconds };
}

async function main(n = 10000, window = 256) {
  const rows = [];
  for (const kind of ['bare-responder', 'lwm2m-kit', 'node-red']) {
    const r = await fanout(kind, n, window);
    process.stderr.write(`read ${kind}: ${fmt(r.rate)}/s\n`);
    rows.push([kind === 'node-red' ? 'node-red (lwm2m-read in a flow)' : kind, fmt(r.registered), fmt(r.ok), fmt(r.firstRate), fmt(r.rate), r.p50 === undefined ? '' : fmt(r.p50, 2), r.p99 === undefined ? '' : fmt(r.p99, 2),
      r.statusMessages === undefined ? '' : fmt(r.statusMessages / r.seconds, 1)]);
  }
  return { text: table(`Read fan-out: GET /3/0 SenML-CBOR from ${fmt(n)} devices, ${window} in flight`, ['server', 'devices', 'reads ok (second pass)', 'reads/s, first pass', 'reads/s, second pass', 'p50 ms', 'p99 ms', 'status messages/s to the editor'], rows) };
}

module.exports = { main };
if (require.main === module) main(Number(process.argv[2]) || 10000).catch((e) => { console.error(e); process.exit(1); });
