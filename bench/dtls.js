'use strict';
// 6. DTLS (PSK): full and resumed handshakes/s against the bare crypto ceiling measured in the same
// run (the PRF and record protection one handshake needs, without any networking); a registration
// storm over DTLS beside the same storm over NoSec; heap per idle DTLS session. The server runs in
// its own process; the clients here are this package's DTLS client channels (one socket each).
const { randomBytes } = require('crypto');
const { generate } = require('coap-packet');
const { ChildServer } = require('./lib/child-server');
const { table, fmt } = require('./lib/table');
const { DtlsChannel } = require('../dist/dtls/channel');
const { UdpChannel } = require('../dist/lwm2m/coap/channel');
const { prf, sha256, Ccm8Protection } = require('../dist/dtls/crypto');

const KEY = '000102030405060708090a0b0c0d0e0f';

/** The crypto of one full PSK handshake on one side: premaster → master, key block, both Finished, two records. */
function bareCeiling(seconds) {
  const psk = Buffer.from(KEY, 'hex');
  const transcript = randomBytes(400);
  const seq = Buffer.alloc(8);
  const aad = Buffer.concat([seq, Buffer.from([22, 0xfe, 0xfd])]);
  let n = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    for (let i = 0; i < 50; i++) {
      const premaster = Buffer.concat([Buffer.from([0, 16]), Buffer.alloc(16), Buffer.from([0, 16]), psk]);
      const master = prf(premaster, 'extended master secret', sha256(transcript), 48);
      const block = prf(master, 'key expansion', randomBytes(64), 40);
      const p = new Ccm8Protection(block.subarray(0, 16), block.subarray(32, 36));
      const mine = prf(master, 'client finished', sha256(transcript), 12);
      const theirs = prf(master, 'server finished', sha256(transcript), 12);
      const sealed = p.seal(seq, aad, Buffer.concat([Buffer.alloc(12), mine]));
      p.open(seq, aad, sealed);
      p.seal(seq, aad, Buffer.concat([Buffer.alloc(12), theirs]));
      n++;
    }
  }
  return n / seconds;
}

async function clients(count, target) {
  const list = [];
  for (let i = 0; i < count; i++) {
    const c = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from(`dev-${i}`), key: Buffer.from(KEY, 'hex') }) } });
    c.on('warning', () => {});
    await c.start();
    list.push(c);
  }
  list.target = target;
  return list;
}

/** A CoAP ping (empty CON, answered with RST): one round trip on an established session. */
function ping(c, target) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10000);
    c.once('datagram', () => { clearTimeout(timer); resolve(true); });
    c.send(Buffer.from([0x40, 0, Math.floor(Math.random() * 256), Math.floor(Math.random() * 256)]), target);
  });
}

/** One handshake: the client forgets its session (as a rebooted device would) and starts another. */
function handshake(c, target) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10000);
    c.once('handshake', () => { clearTimeout(timer); resolve(true); });
    c.closeSessions(true);
    c.send(Buffer.alloc(0), target); // starts the handshake; the empty datagram itself is dropped above DTLS
  });
}

async function handshakes(server, list, resumed, seconds) {
  const cpuBefore = await server.run('cpu');
  let done = 0;
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(list.map(async (c) => {
    while (Date.now() < end) {
      if (!resumed) c.resumable.clear(); // forget the session: a full handshake
      if (await handshake(c, list.target)) done++; else failed++;
    }
  }));
  const cpuMicros = (await server.run('cpu')) - cpuBefore;
  // the server's CPU per handshake (with its ping and close_notify): its capacity on one core
  return { done, failed, rate: done / seconds, serverMicros: cpuMicros / Math.max(1, done), capacity: done / (cpuMicros / 1e6) };
}

/**
 * One Register per peer, as a template whose message id and token are patched per request.
 * `prefix`: dev (the endpoints bound to the DTLS identities) or nosec (endpoints with no credentials).
 */
function registerTemplate(i, prefix) {
  return generate({
    code: 'POST', messageId: 0, confirmable: true, token: Buffer.from([i >> 8, i & 255, 0, 0]),
    options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Content-Format', value: Buffer.from([40]) },
      { name: 'Uri-Query', value: Buffer.from(`ep=${prefix}-${i}`) }, { name: 'Uri-Query', value: Buffer.from('lt=86400') }, { name: 'Uri-Query', value: Buffer.from('lwm2m=1.1') }],
    payload: Buffer.from('</>;rt="oma.lwm2m";ct=112,</1/0>,</3/0>,</3303/0>,</3303/1>'),
  });
}

function registerRequest(template, mid) {
  const request = Buffer.from(template);
  request.writeUInt16BE(mid, 2);
  request.writeUInt16BE(mid, 6); // the token's last two bytes
  return request;
}

/**
 * Every peer keeps one Register in flight for `seconds`. The datagrams are made before the clock
 * starts (over DTLS: records sealed with the session's keys in sequence), and answers are only
 * counted, not decrypted: the clients cost the same over both transports, so the two figures
 * compare the server's work.
 */
async function registrationStorm(peers, seconds, datagramsFor) {
  const perPeer = Math.ceil((90_000 * seconds) / peers.length);
  const queues = peers.map((peer, i) => datagramsFor(peer, i, perPeer));
  let done = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(peers.map((peer, i) => new Promise((resolve) => {
    const queue = queues[i];
    let next = 0;
    const sendNext = () => {
      if (Date.now() >= end || next >= queue.length) {
        peer.socket.removeListener('datagram', onAnswer);
        clearTimeout(timer);
        resolve();
        return;
      }
      peer.socket.send(queue[next++], peer.target);
    };
    const onAnswer = () => { done++; sendNext(); };
    const timer = setTimeout(() => { peer.socket.removeListener('datagram', onAnswer); resolve(); }, seconds * 1000 + 10000);
    peer.socket.on('datagram', onAnswer);
    sendNext();
  })));
  return done / seconds;
}

async function main(seconds = 4, concurrency = 64, idleSessions = 1000) {
  const server = new ChildServer('lwm2m-kit');
  await server.start({ secure: { port: 0 } });
  const securePort = await server.run('addCredentials', { n: Math.max(concurrency, idleSessions), key: KEY });
  const target = { address: '127.0.0.1', port: securePort };
  const ceiling = bareCeiling(seconds);
  const list = await clients(concurrency, target);
  const full = await handshakes(server, list, false, seconds);
  const resumed = await handshakes(server, list, true, seconds);
  process.stderr.write(`dtls handshakes: full ${fmt(full.rate)}/s (server capacity ${fmt(full.capacity)}/s), resumed ${fmt(resumed.rate)}/s (${fmt(resumed.capacity)}/s), crypto ceiling ${fmt(ceiling)}/s\n`);

  // registration storm: the same Registers over the established sessions and over NoSec sockets
  for (const c of list) await ping(c, target);
  // white-box: each client's UDP socket and session, so requests are sealed ahead and answers only counted
  const secure = list.map((c) => {
    c.lower.removeAllListeners('datagram');
    return { socket: c.lower, target, records: [...c.sessions.values()][0].conn.records };
  });
  const dtlsCpu = await server.run('cpu');
  const overDtls = await registrationStorm(secure, seconds, (peer, i, n) => {
    const template = registerTemplate(i, 'dev');
    return Array.from({ length: n }, (_, k) => peer.records.encode(23, peer.records.writeEpoch, registerRequest(template, (k + 2) & 0xffff)));
  });
  const dtlsMicros = ((await server.run('cpu')) - dtlsCpu) / Math.max(1, overDtls * seconds);
  const nosecTarget = { address: '127.0.0.1', port: (await server.run('nosecPort')) };
  const plain = [];
  for (let i = 0; i < concurrency; i++) {
    const u = new UdpChannel({ address: '127.0.0.1' });
    await u.start();
    plain.push({ socket: u, target: nosecTarget });
  }
  const nosecCpu = await server.run('cpu');
  const overNoSec = await registrationStorm(plain, seconds, (peer, i, n) => {
    const template = registerTemplate(i, 'nosec');
    return Array.from({ length: n }, (_, k) => registerRequest(template, (k + 2) & 0xffff));
  });
  const nosecMicros = ((await server.run('cpu')) - nosecCpu) / Math.max(1, overNoSec * seconds);
  process.stderr.write(`registrations over DTLS ${fmt(overDtls)}/s (server ${fmt(dtlsMicros)} µs each), over NoSec ${fmt(overNoSec)}/s (${fmt(nosecMicros)} µs)\n`);
  for (const c of list) await c.stop();
  for (const u of plain) await u.socket.stop();

  // heap per idle session: `idleSessions` established sessions, then nothing
  const before = await server.run('sessionHeap');
  const idle = await clients(idleSessions, target);
  for (let i = 0; i < idle.length; i += 100) await Promise.all(idle.slice(i, i + 100).map((c) => ping(c, target)));
  const after = await server.run('sessionHeap');
  const sessions = Math.max(1, after.sessions - before.sessions);
  const perSession = (after.heapUsed - before.heapUsed) / sessions;
  // buffers' memory lives outside the heap (a small buffer can keep a whole shared 8 KB pool slab alive)
  const externalPerSession = (after.external - before.external) / sessions;
  for (const c of idle) await c.stop();
  await server.close();

  const t1 = table(`DTLS 1.2 PSK handshakes (TLS_PSK_WITH_AES_128_CCM_8, cookie exchange, extended master secret), ${concurrency} clients, ${seconds} s each`,
    ['what', 'measured per second', 'server CPU per handshake', 'server capacity per core', 'capacity vs crypto ceiling'], [
      ['bare crypto ceiling (PRF + record protection of one handshake, one side, no I/O)', fmt(ceiling), fmt(1e6 / ceiling) + ' µs', fmt(ceiling), '100%'],
      ['full handshakes (clients in the bench process drive them)', fmt(full.rate), fmt(full.serverMicros) + ' µs', fmt(full.capacity), fmt((full.capacity / ceiling) * 100) + '%'],
      ['resumed handshakes (abbreviated)', fmt(resumed.rate), fmt(resumed.serverMicros) + ' µs', fmt(resumed.capacity), fmt((resumed.capacity / ceiling) * 100) + '%'],
    ]);
  const t2 = table(`Registration storm over DTLS beside NoSec (${concurrency} devices re-registering, one in flight each)`,
    ['transport', 'registrations/s', 'vs NoSec', 'server CPU per registration', 'server capacity per core', 'capacity vs NoSec'], [
      ['NoSec (coap)', fmt(overNoSec), '100%', fmt(nosecMicros) + ' µs', fmt(1e6 / nosecMicros), '100%'],
      ['DTLS (coaps, CCM-8, connection ID)', fmt(overDtls), fmt((overDtls / overNoSec) * 100) + '%', fmt(dtlsMicros) + ' µs', fmt(1e6 / dtlsMicros), fmt((nosecMicros / dtlsMicros) * 100) + '%'],
    ]);
  const t3 = table('Memory per idle DTLS session (server, after GC)', ['sessions', 'heap B/session', 'buffers outside the heap B/session', 'total B/session'],
    [[fmt(after.sessions - before.sessions), fmt(perSession), fmt(externalPerSession), fmt(perSession + externalPerSession)]]);
  return { full, resumed, ceiling, overDtls, overNoSec, dtlsMicros, nosecMicros, perSession, text: [t1, t2, t3].join('\n') };
}

module.exports = { main };
if (require.main === module) main(Number(process.argv[2]) || 4).catch((e) => { console.error(e); process.exit(1); });
