'use strict';
// Mutated DTLS records (taken from a real handshake and its application data) and random bytes sent
// to a DTLS server channel from several sockets: nothing throws, no half-open state piles up beyond
// what cookies allow, and a real client still completes a handshake afterwards. Bounded.
const assert = require('assert');
const dgram = require('dgram');
const { DtlsChannel } = require('../../dist/dtls/channel');
const { UdpChannel } = require('../../dist/lwm2m/coap/channel');
const { nextEvent, delay } = require('../helpers');

const KEY = Buffer.from('fuzzing-key-0123');

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

function mutate(buf, random) {
  const b = Buffer.from(buf);
  const kind = Math.floor(random() * 4);
  if (kind === 0) return b.subarray(0, Math.floor(random() * b.length));
  if (kind === 1) {
    for (let i = 0, n = 1 + Math.floor(random() * 6); i < n && b.length; i++) b[Math.floor(random() * b.length)] = Math.floor(random() * 256);
    return b;
  }
  if (kind === 2 && b.length > 13) { b.writeUInt16BE(Math.floor(random() * 65536), 11); return b; } // record length lies
  return Buffer.from(Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
}

describe('DTLS fuzzing (bounded)', function () {
  this.timeout(30000);

  it('takes 3000 mutated records without a throw and still completes a real handshake', async () => {
    const server = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { server: { pskFor: () => KEY }, handshakeTimeoutMs: 1000 });
    const uncaught = [];
    const onUncaught = (err) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    server.on('warning', () => {});
    server.on('datagram', (d, peer) => server.send(d, peer));
    await server.start();
    const target = server.address();
    // record a real client's datagrams as seeds
    const lower = new UdpChannel({ address: '127.0.0.1' });
    const seeds = [];
    const send = lower.send.bind(lower);
    lower.send = (d, p) => { seeds.push(Buffer.from(d)); send(d, p); };
    const client = new DtlsChannel(lower, { client: { credentialsFor: () => ({ identity: Buffer.from('fz'), key: KEY }) } });
    await client.start();
    const echoed = nextEvent(client, 'datagram', 5000);
    client.send(Buffer.from('seed'), target);
    await echoed;
    const sockets = [];
    for (let i = 0; i < 4; i++) {
      const s = dgram.createSocket('udp4');
      await new Promise((r) => s.bind(0, '127.0.0.1', r));
      sockets.push(s);
    }
    const random = rng(7);
    for (let i = 0; i < 3000; i++) {
      sockets[i % 4].send(mutate(seeds[Math.floor(random() * seeds.length)], random), target.port, target.address);
      // the client's own session, from its own address, gets mutated records too
      if (i % 10 === 0) send(mutate(seeds[seeds.length - 1], random), target);
      if (i % 200 === 199) await delay(5);
    }
    await delay(300);
    assert.ok(server.sessionCount <= 5, `${server.sessionCount} sessions after the fuzzing`);
    // a fresh client still gets through
    const fresh = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from('fz2'), key: KEY }) } });
    await fresh.start();
    const ok = nextEvent(fresh, 'datagram', 5000);
    fresh.send(Buffer.from('after'), target);
    assert.strictEqual((await ok)[0].toString(), 'after');
    for (const s of sockets) s.close();
    await fresh.stop();
    await client.stop();
    await server.stop();
    process.removeListener('uncaughtException', onUncaught);
    assert.deepStrictEqual(uncaught.map(String), []);
  });
});
