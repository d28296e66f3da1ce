'use strict';
// 3. Notification ingestion: N clients (default 1000), each observed on 2 resources, send CON
// notifications (SenML CBOR) as fast as the server acknowledges them. Counted twice: decoded by the
// core alone ('notify' events), and as Node-RED messages out of a real lwm2m-observe node.
const dgram = require('dgram');
const { generate } = require('coap-packet');
const { Fleet } = require('./lib/fleet');
const { ChildServer } = require('./lib/child-server');
const { table, fmt } = require('./lib/table');
const { encodeRecords } = require('../dist/lwm2m/content');

const PATHS = ['/3303/0/5700', '/3303/1/5700'];

function payloadFor(path, value) {
  const [o, i, r] = path.slice(1).split('/').map(Number);
  const p = { objectId: o, instanceId: i, resourceId: r };
  return encodeRecords('senml-cbor', [{ path: p, value }], { basePath: p });
}

function freePort() {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function run(kind, clients, seconds) {
  const server = new ChildServer(kind);
  const target = await server.start({ port: await freePort(), paths: PATHS });
  const fleet = new Fleet({ target, sockets: 32, window: 256, deadlineMs: 120000 });
  await fleet.open();
  const observations = [];
  const payload = payloadFor(PATHS[0], 21.5);
  fleet.onRequest = (packet, socket, rinfo) => {
    const observe = packet.options.find((o) => o.name === 'Observe');
    if (!observe) return { code: '4.04' };
    observations.push({ token: packet.token, socket, rinfo, seq: 1 });
    return { code: '2.05', options: [{ name: 'Observe', value: Buffer.from([1]) }, { name: 'Content-Format', value: Buffer.from([112]) }], payload };
  };
  await fleet.pump(clients, (i) => fleet.register(i, `obs-${i}`), () => {});
  if (kind === 'lwm2m-kit') await server.run('observeAll', { paths: PATHS, window: 128 });
  const expected = clients * PATHS.length;
  for (let i = 0; i < 300 && observations.length < expected; i++) await new Promise((r) => setTimeout(r, 20));

  // each observation: one CON notification in flight, the next as soon as it is acknowledged
  let acked = 0;
  let running = true;
  const loop = async (obs) => {
    while (running) {
      obs.seq++;
      const ok = await fleet.sendConfirmable(obs.socket, obs.rinfo, {
        code: '2.05', token: obs.token,
        options: [{ name: 'Observe', value: Buffer.from([(obs.seq >> 16) & 255, (obs.seq >> 8) & 255, obs.seq & 255]) }, { name: 'Content-Format', value: Buffer.from([112]) }],
        payload,
      });
      if (!ok) return;
      acked++;
    }
  };
  const counting = server.run('countNotifications', { seconds });
  const loops = observations.map(loop);
  const counted = await counting;
  running = false;
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 3000))]);
  fleet.close();
  await server.close();
  return { kind, observations: observations.length, acked, ...counted, rate: counted.notifications / counted.seconds };
}

async function main(clients = 1000, seconds = 5) {
  const rows = [];
  for (const kind of (process.env.BENCH_KINDS || 'lwm2m-kit,node-red-flow').split(',')) {
    const r = await run(kind, clients, seconds);
    process.stderr.write(`notifications ${kind}: ${fmt(r.rate)}/s\n`);
    rows.push([kind === 'lwm2m-kit' ? 'core alone (notify events)' : 'Node-RED flow (lwm2m-observe messages)', fmt(r.observations), fmt(r.notifications), fmt(r.seconds, 1), fmt(r.rate)]);
  }
  return { text: table(`Notification ingestion: ${fmt(clients)} clients × ${PATHS.length} observed resources, CON SenML-CBOR notifications`, ['path', 'observations', 'notifications decoded', 's', 'notifications/s'], rows) };
}

module.exports = { main };
if (require.main === module) main(Number(process.argv[2]) || 1000, Number(process.argv[3]) || 5).catch((e) => { console.error(e); process.exit(1); });
