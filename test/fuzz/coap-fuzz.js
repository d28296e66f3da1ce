'use strict';
// Datagram fuzzing of the CoAP message layer under a running LwM2M server: random bytes, mutated
// valid requests (registration, Send, bootstrap, block-wise, observe) and truncations, sent from
// several sockets. The server must never throw, never answer with internal text, and keep
// serving a valid Register afterwards. Used by the test suite (bounded) and `npm run fuzz`.
const dgram = require('dgram');
const { generate } = require('coap-packet');
const { Lwm2mServer } = require('../../dist/lwm2m/server');

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

const SEEDS = [
  () => generate({ code: 'POST', messageId: 1, token: Buffer.from([1, 2]), confirmable: true, payload: Buffer.from('</1/0>,</3/0>'),
    options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Content-Format', value: Buffer.from([40]) }, { name: 'Uri-Query', value: Buffer.from('ep=fz') }] }),
  () => generate({ code: 'POST', messageId: 2, token: Buffer.from([3]), confirmable: true, payload: Buffer.alloc(64, 0x41),
    options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Block1', value: Buffer.from([0x0a]) }, { name: 'Size1', value: Buffer.from([200]) }] }),
  () => generate({ code: 'POST', messageId: 3, token: Buffer.from([4]), confirmable: false, payload: Buffer.from([0x81, 0xa2, 0x00, 0x63, 0x2f, 0x33, 0x2f, 0x02, 0x01]),
    options: [{ name: 'Uri-Path', value: Buffer.from('dp') }, { name: 'Content-Format', value: Buffer.from([112]) }] }),
  () => generate({ code: 'POST', messageId: 4, token: Buffer.from([5]), confirmable: true,
    options: [{ name: 'Uri-Path', value: Buffer.from('bs') }, { name: 'Uri-Query', value: Buffer.from('ep=fz') }] }),
  () => generate({ code: 'GET', messageId: 5, token: Buffer.from([6, 7, 8]), confirmable: true,
    options: [{ name: 'Observe', value: Buffer.alloc(0) }, { name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Block2', value: Buffer.from([0x12]) }] }),
  () => generate({ code: '2.05', messageId: 6, token: Buffer.from([9]), confirmable: true, payload: Buffer.from('x'),
    options: [{ name: 'Observe', value: Buffer.from([5]) }] }),
  () => Buffer.from([0x40, 0, 0, 7]),
  () => Buffer.from([0x60, 0, 0, 8]),
  () => Buffer.from([0x70, 0, 0, 9]),
];

function mutate(buf, random) {
  const b = Buffer.from(buf);
  const kind = Math.floor(random() * 5);
  if (kind === 0) return b.subarray(0, Math.floor(random() * b.length));
  if (kind === 1) {
    for (let i = 0, n = 1 + Math.floor(random() * 4); i < n && b.length; i++) b[Math.floor(random() * b.length)] = Math.floor(random() * 256);
    return b;
  }
  if (kind === 2) return Buffer.concat([b, Buffer.from(Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256)))]);
  if (kind === 3) return Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
  if (b.length > 4) b[4 + Math.floor(random() * (b.length - 4))] ^= 0xf0; // option nibbles
  return b;
}

/**
 * Sends `cases` fuzzed datagrams; resolves with what was seen. Throws nothing itself: the caller
 * checks `uncaught`, `textAnswers` and `stillServes`.
 */
async function fuzzServer({ cases = 2000, seed = 1, sockets = 4 } = {}) {
  const random = rng(seed);
  const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 500 });
  const warnings = [];
  server.on('warning', (w) => warnings.push(w));
  await server.start();
  const { port } = server.address();
  const uncaught = [];
  const onUncaught = (err) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  const textAnswers = [];
  const socks = [];
  for (let i = 0; i < sockets; i++) {
    const s = dgram.createSocket('udp4');
    s.on('message', (m) => {
      // a 5.00 (0xa0) answer, or any answer carrying a stack trace or an exception text
      if (m.length >= 2 && m[1] === 0xa0) textAnswers.push(m);
      else if (/Error|buffer bounds|at .*\.js/.test(m.toString('latin1'))) textAnswers.push(m);
    });
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    socks.push(s);
  }
  for (let i = 0; i < cases; i++) {
    const seedMsg = SEEDS[Math.floor(random() * SEEDS.length)]();
    socks[i % sockets].send(mutate(seedMsg, random), port, '127.0.0.1');
    if (i % 200 === 199) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 200));
  // the server still takes a valid registration
  const probe = dgram.createSocket('udp4');
  await new Promise((r) => probe.bind(0, '127.0.0.1', r));
  const answer = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 2000);
    probe.once('message', (m) => { clearTimeout(timer); resolve(m); });
    probe.send(SEEDS[0](), port, '127.0.0.1');
  });
  probe.close();
  for (const s of socks) s.close();
  await server.stop();
  await new Promise((r) => setTimeout(r, 50));
  process.removeListener('uncaughtException', onUncaught);
  return { uncaught, textAnswers, stillServes: Boolean(answer && answer[1] === 0x41), warnings: warnings.length };
}

module.exports = { fuzzServer, rng, mutate, SEEDS };

if (require.main === module) {
  const cases = Number(process.env.FUZZ_CASES || 200000);
  const seed = Number(process.env.FUZZ_SEED || Date.now() % 100000);
  fuzzServer({ cases, seed }).then((r) => {
    console.log(`coap fuzz: ${cases} datagrams, seed ${seed}: uncaught ${r.uncaught.length}, 5.00/text answers ${r.textAnswers.length}, still serves ${r.stillServes}, warnings ${r.warnings}`);
    process.exit(r.uncaught.length || r.textAnswers.length || !r.stillServes ? 1 : 0);
  }, (err) => { console.error(err); process.exit(1); });
}
