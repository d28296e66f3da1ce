'use strict';
// DTLS 1.2: known-answer vectors for the PRF and the record protection, then handshakes with
// peers we did not write (OpenSSL's s_client and s_server, node-dtls-client, libcoap's
// coap-client-openssl/-gnutls over coaps), and hostile input. Loopback only, bounded in time.
const assert = require('assert');
const { spawn, execFileSync } = require('child_process');
const dgram = require('dgram');
const { prf, Ccm8Protection, CbcSha256Protection } = require('../../dist/dtls/crypto');
const { DtlsChannel } = require('../../dist/dtls/channel');
const { ReplayWindow } = require('../../dist/dtls/records');
const { UdpChannel } = require('../../dist/lwm2m/coap/channel');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { freeUdpPort, nextEvent, delay } = require('../helpers');

const KEY = Buffer.from('secretkey123456');
const KEY_HEX = KEY.toString('hex');

function has(cmd, args = ['version']) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status !== undefined && err.code !== 'ENOENT';
  }
}

/** Runs a peer program; ends it after `ms`, or as soon as its output matches `until`. */
function run(cmd, args, { input, ms = 8000, until } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const take = (d) => {
      out += d;
      if (until && until.test(out)) p.kill();
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    const timer = setTimeout(() => p.kill(), ms);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    // input: a string, or chunks written 60 ms apart (s_client sends each as its own record)
    const chunks = input === undefined ? [] : [].concat(input);
    chunks.forEach((chunk, i) => setTimeout(() => p.stdin.write(chunk), 60 * i));
    if (input !== undefined) setTimeout(() => p.stdin.end(), 800 + 60 * chunks.length);
  });
}

describe('DTLS known-answer vectors', () => {
  it('TLS 1.2 PRF (SHA-256): the published 100-byte vector', () => {
    const out = prf(Buffer.from('9bbe436ba940f017b17652849a71db35', 'hex'), 'test label', Buffer.from('a0ba9f936cda311827a6f796ffd5198c', 'hex'), 100);
    assert.strictEqual(out.toString('hex'), 'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66');
  });

  it('AES-128-CCM-8: RFC 3610 packet vector #1 through the record protection', () => {
    // nonce = salt (4 bytes) ‖ explicit (8): the vector's 13-byte nonce does not fit DTLS's 12, so the
    // cipher is checked against Node's raw CCM with the vector, and the record layout separately
    const crypto = require('crypto');
    const c = crypto.createCipheriv('aes-128-ccm', Buffer.from('c0c1c2c3c4c5c6c7c8c9cacbcccdcecf', 'hex'), Buffer.from('00000003020100a0a1a2a3a4a5', 'hex'), { authTagLength: 8 });
    c.setAAD(Buffer.from('0001020304050607', 'hex'), { plaintextLength: 23 });
    const body = Buffer.concat([c.update(Buffer.from('08090a0b0c0d0e0f101112131415161718191a1b1c1d1e', 'hex')), c.final(), c.getAuthTag()]);
    assert.strictEqual(body.toString('hex'), '588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0');
    const p = new Ccm8Protection(Buffer.alloc(16, 1), Buffer.from('01020304', 'hex'));
    const seq = Buffer.from('0001000000000007', 'hex');
    // the additional data of a record: epoch ‖ sequence ‖ type ‖ version (the length is appended)
    const aad = (s) => Buffer.concat([s, Buffer.from([23, 0xfe, 0xfd])]);
    const sealed = p.seal(seq, aad(seq), Buffer.from('hello'));
    assert.strictEqual(sealed.length, 8 + 5 + 8);
    assert.ok(sealed.subarray(0, 8).equals(seq), 'explicit nonce = epoch ‖ sequence');
    assert.strictEqual(p.open(seq, aad(seq), sealed).toString(), 'hello');
    const tampered = Buffer.from(sealed);
    tampered[10] ^= 1;
    assert.strictEqual(p.open(seq, aad(seq), tampered), undefined);
    const other = Buffer.from('0001000000000008', 'hex');
    assert.strictEqual(p.open(other, aad(other), sealed), undefined, 'sequence is authenticated');
  });

  it('AES-128-CCM-8 on long-lived AES contexts (busy sessions) matches OpenSSL\'s CCM byte for byte', () => {
    const crypto = require('crypto');
    const { CcmCipher } = require('../../dist/dtls/ccm');
    const seeded = (n, k) => crypto.createHash('sha256').update(`${n}/${k}`).digest().subarray(0, n % 33);
    for (let k = 0; k < 40; k++) {
      const key = crypto.createHash('md5').update(String(k)).digest();
      const cipher = new CcmCipher(key);
      for (let j = 0; j < 25; j++) {
        // lengths across block edges, with and without additional data; the same contexts all along
        const nonce = crypto.createHash('sha256').update(`n${k}/${j}`).digest().subarray(0, 12);
        const aad = j % 5 === 0 ? Buffer.alloc(0) : seeded(j * 7 + 13, k);
        const plaintext = Buffer.concat([seeded(j * 11 + 1, k), seeded(j * 3 + 17, k)]);
        if (plaintext.length === 0) continue; // OpenSSL's CCM wants at least one byte through update()
        const reference = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
        reference.setAAD(aad, { plaintextLength: plaintext.length });
        const expected = Buffer.concat([reference.update(plaintext), reference.final(), reference.getAuthTag()]);
        assert.strictEqual(cipher.seal(nonce, aad, plaintext).toString('hex'), expected.toString('hex'), `seal ${k}/${j}`);
        assert.ok(cipher.open(nonce, aad, expected).equals(plaintext), `open ${k}/${j}`);
        const tampered = Buffer.from(expected);
        tampered[j % tampered.length] ^= 0x10;
        assert.strictEqual(cipher.open(nonce, aad, tampered), undefined, `tampered ${k}/${j}`);
      }
    }
    // through the record protection: its first records use one-shot ciphers, later ones the contexts
    const p = new Ccm8Protection(Buffer.alloc(16, 5), Buffer.from('0a0b0c0d', 'hex'));
    const q = new Ccm8Protection(Buffer.alloc(16, 5), Buffer.from('0a0b0c0d', 'hex'));
    for (let i = 0; i < 12; i++) {
      const seq = Buffer.from(`00010000000000${(i + 16).toString(16)}`, 'hex');
      const aad = Buffer.concat([seq, Buffer.from([23, 0xfe, 0xfd])]);
      const sealed = p.seal(seq, aad, Buffer.from(`record ${i}`));
      assert.strictEqual(q.open(seq, aad, sealed).toString(), `record ${i}`);
      assert.ok(sealed.equals(new Ccm8Protection(Buffer.alloc(16, 5), Buffer.from('0a0b0c0d', 'hex')).seal(seq, aad, Buffer.from(`record ${i}`))), 'one-shot and context seal alike');
    }
  });

  it('AES-128-CBC + HMAC-SHA256 records: round trip, bad MAC and bad padding both refused', () => {
    const p = new CbcSha256Protection(Buffer.alloc(16, 2), Buffer.alloc(32, 3));
    const seq = Buffer.alloc(8);
    for (const n of [0, 1, 15, 16, 17, 100]) {
      const aad = Buffer.concat([seq, Buffer.from([23, 0xfe, 0xfd])]);
      const sealed = p.seal(seq, aad, Buffer.alloc(n, 0x61));
      assert.strictEqual(sealed.length % 16, 0);
      assert.ok(p.open(seq, aad, sealed).equals(Buffer.alloc(n, 0x61)));
      const bad = Buffer.from(sealed);
      bad[bad.length - 1] ^= 0x40;
      assert.strictEqual(p.open(seq, aad, bad), undefined);
    }
  });

  it('anti-replay window: once each, 64 back, older refused', () => {
    const w = new ReplayWindow();
    for (const s of [0, 1, 5, 3, 100]) {
      assert.ok(w.fresh(s));
      w.mark(s);
      assert.ok(!w.fresh(s));
    }
    assert.ok(w.fresh(37) && !w.fresh(36) && !w.fresh(5));
    // against a plain reference (a set of what was marked) over random jumps, both words and their edges
    let seed = 7;
    const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const window = new ReplayWindow();
    const marked = new Set();
    let highest = -1;
    for (let i = 0; i < 20000; i++) {
      const s = Math.max(0, highest + [1, 2, 31, 32, 33, 63, 64, 65][rnd(8)] - rnd(70));
      const expected = s > highest || (highest - s < 64 && !marked.has(s));
      assert.strictEqual(window.fresh(s), expected, `sequence ${s} after ${highest}`);
      if (expected) {
        window.mark(s);
        marked.add(s);
        highest = Math.max(highest, s);
      }
    }
  });
});

describe('DTLS with independent peers', function () {
  this.timeout(20000);
  const cleanup = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function server(extra = {}) {
    const ch = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), {
      server: { pskFor: (id) => (id.toString() === 'dev1' ? KEY : undefined) }, ...extra,
    });
    ch.on('warning', () => {});
    ch.on('datagram', (d, peer) => ch.send(Buffer.concat([Buffer.from('echo:'), d]), peer));
    await ch.start();
    cleanup.push(() => ch.stop());
    return ch;
  }

  async function client(identity = 'dev1', key = KEY) {
    const ch = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from(identity), key }) } });
    ch.on('warning', () => {});
    await ch.start();
    cleanup.push(() => ch.stop());
    return ch;
  }

  for (const [cipher, suite] of [['PSK-AES128-CCM8', 'TLS_PSK_WITH_AES_128_CCM_8'], ['PSK-AES128-CBC-SHA256', 'TLS_PSK_WITH_AES_128_CBC_SHA256'],
    ['ECDHE-PSK-AES128-CBC-SHA256', 'TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256']]) {
    it(`serves openssl s_client with ${cipher} (extended master secret), data both ways`, async function () {
      if (!has('openssl')) this.skip();
      const ch = await server();
      const handshake = nextEvent(ch, 'handshake', 8000);
      const got = nextEvent(ch, 'datagram', 8000);
      // eight records each way: past the first few a busy session's CCM keys run on long-lived AES contexts
      const lines = ['hello\n', ...Array.from({ length: 7 }, (_, i) => `line ${i + 2}\n`)];
      const r = run('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${ch.address().port}`, '-psk_identity', 'dev1', '-psk', KEY_HEX,
        '-cipher', `${cipher}:@SECLEVEL=0`, '-ign_eof'], { input: lines, until: /echo:line 8/ });
      const e = await handshake;
      assert.strictEqual(e.identity, 'dev1');
      assert.strictEqual(e.cipherSuite, suite);
      const [data, peer] = await got;
      assert.strictEqual(data.toString(), 'hello\n');
      assert.strictEqual(peer.identity, 'dev1');
      const { out } = await r;
      assert.match(out, /Extended master secret: yes/);
      for (const line of lines) assert.ok(out.includes(`echo:${line}`), `echo of ${line.trim()}`);
    });

    it(`is a client of openssl s_server with ${cipher}`, async function () {
      if (!has('openssl')) this.skip();
      const port = await freeUdpPort();
      const srv = spawn('openssl', ['s_server', '-dtls1_2', '-accept', String(port), '-nocert', '-psk', KEY_HEX, '-cipher', `${cipher}:@SECLEVEL=0`], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      srv.stdout.on('data', (d) => { out += d; });
      cleanup.push(() => new Promise((r) => { srv.once('exit', r); srv.kill(); }));
      await delay(400);
      const ch = await client();
      const handshake = nextEvent(ch, 'handshake', 8000);
      ch.send(Buffer.from('hello from lwm2m-kit\n'), { address: '127.0.0.1', port });
      assert.strictEqual((await handshake).cipherSuite, suite);
      for (let i = 2; i <= 8; i++) ch.send(Buffer.from(`record ${i}\n`), { address: '127.0.0.1', port });
      for (let i = 0; i < 40 && !out.includes('record 8'); i++) await delay(50);
      assert.match(out, /hello from lwm2m-kit/);
      for (let i = 2; i <= 8; i++) assert.ok(out.includes(`record ${i}`), `OpenSSL opened record ${i}`);
      assert.match(out, new RegExp(`CIPHER is ${cipher}`));
    });
  }

  it('resumes an OpenSSL session (abbreviated handshake, no key exchange)', async function () {
    if (!has('openssl')) this.skip();
    const ch = await server();
    const file = require('path').join(require('os').tmpdir(), `dtls-sess-${process.pid}`);
    cleanup.push(() => require('fs').rmSync(file, { force: true }));
    const args = ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${ch.address().port}`, '-psk_identity', 'dev1', '-psk', KEY_HEX,
      '-cipher', 'PSK-AES128-CCM8:@SECLEVEL=0', '-ign_eof'];
    const events = [];
    ch.on('handshake', (e) => events.push(e));
    const first = await run('openssl', [...args, '-sess_out', file], { input: 'one\n', until: /echo:one/ });
    assert.match(first.out, /New, TLSv1.2/);
    const second = await run('openssl', [...args, '-sess_in', file], { input: 'two\n', until: /echo:two/ });
    assert.match(second.out, /Reused, TLSv1.2/);
    assert.match(second.out, /echo:two/);
    assert.deepStrictEqual(events.map((e) => [e.identity, e.resumed]), [['dev1', false], ['dev1', true]]);
  });

  it('resumes its own sessions both ways, and not with another identity', async () => {
    const srv = await server({ server: { pskFor: (id) => (['dev1', 'dev2'].includes(id.toString()) ? KEY : undefined) } });
    const events = [];
    srv.on('handshake', (e) => events.push([e.identity, e.resumed]));
    let identity = 'dev1';
    const c = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from(identity), key: KEY }) } });
    await c.start();
    cleanup.push(() => c.stop());
    const echo = () => new Promise((resolve) => c.once('datagram', resolve));
    let answer = echo();
    c.send(Buffer.from('a'), srv.address());
    assert.strictEqual((await answer).toString(), 'echo:a');
    c.closeSessions();
    await delay(50);
    answer = echo();
    c.send(Buffer.from('b'), srv.address());
    assert.strictEqual((await answer).toString(), 'echo:b');
    assert.strictEqual(c.session(srv.address()).resumed, true);
    // new credentials for the same peer: a full handshake with them, not the old session
    c.closeSessions();
    identity = 'dev2';
    await delay(50);
    answer = echo();
    c.send(Buffer.from('c'), srv.address());
    assert.strictEqual((await answer).toString(), 'echo:c');
    assert.deepStrictEqual(events, [['dev1', false], ['dev1', true], ['dev2', false]]);
  });

  it('refuses a wrong key with a decrypt_error alert and reports it; an unknown identity with unknown_psk_identity', async function () {
    if (!has('openssl')) this.skip();
    const ch = await server();
    for (const [identity, key, alert] of [['dev1', '00112233', 51], ['nobody', KEY_HEX, 115]]) {
      const failed = nextEvent(ch, 'handshakeFailed', 8000);
      const r = run('openssl', ['s_client', '-dtls1_2', '-connect', `127.0.0.1:${ch.address().port}`, '-psk_identity', identity, '-psk', key,
        '-cipher', 'PSK-AES128-CCM8:@SECLEVEL=0'], { input: 'x\n' });
      const e = await failed;
      assert.strictEqual(e.alert, alert);
      assert.ok(!JSON.stringify(e).includes(KEY_HEX) && !JSON.stringify(e).includes('secretkey'), 'no key in the event');
      assert.match((await r).out, alert === 51 ? /alert decrypt error/ : /alert unknown psk identity/);
    }
    assert.strictEqual(ch.sessionCount, 0);
  });

  for (const cipher of ['TLS_PSK_WITH_AES_128_CCM_8', 'TLS_PSK_WITH_AES_128_CBC_SHA256']) {
    it(`serves node-dtls-client with ${cipher}`, async () => {
      const { dtls } = require('node-dtls-client');
      const ch = await server();
      const socket = dtls.createSocket({ type: 'udp4', address: '127.0.0.1', port: ch.address().port, psk: { dev1: KEY.toString() }, ciphers: [cipher], timeout: 3000 });
      cleanup.push(() => new Promise((r) => { try { socket.close(r); } catch { r(); } setTimeout(r, 300); }));
      await new Promise((resolve, reject) => {
        socket.on('connected', resolve);
        socket.on('error', reject);
      });
      const reply = new Promise((resolve) => socket.on('message', resolve));
      socket.send(Buffer.from('ping'));
      assert.strictEqual((await reply).toString(), 'echo:ping');
    });
  }

  for (const tool of ['coap-client-openssl', 'coap-client-gnutls']) {
    it(`carries CoAP for libcoap's ${tool} -u/-k (coaps://) to our message layer`, async function () {
      if (!has(tool, ['-h'])) {
        if (process.env.CI) throw new Error(`${tool} missing: .ci/run installs libcoap3-bin`);
        this.skip();
      }
      const channel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { server: { pskFor: (id) => (id.toString() === 'dev1' ? KEY : undefined) } });
      const t = new CoapTransport({ channel });
      let seen;
      t.setHandler((ex) => {
        seen = ex.request;
        ex.respond({ code: '2.05', payload: Buffer.from(`hi ${ex.request.peer.identity}`) });
      });
      await t.open();
      cleanup.push(() => t.close());
      const { out } = await run(tool, ['-m', 'get', '-u', 'dev1', '-k', KEY.toString(), `coaps://127.0.0.1:${channel.address().port}/3/0/0`]);
      assert.match(out, /hi dev1/);
      assert.deepStrictEqual(seen.pathSegments, ['3', '0', '0']);
    });
  }

  it('is a client of libcoap\'s coap-server-openssl over DTLS: PSK, a Block1 PUT and a Block2 GET', async function () {
    if (!has('coap-server-openssl', ['-h'])) {
      if (process.env.CI) throw new Error('coap-server-openssl missing: .ci/run installs libcoap3-bin');
      this.skip();
    }
    const port = await freeUdpPort();
    const srv = spawn('coap-server-openssl', ['-A', '127.0.0.1', '-p', String(port - 1), '-k', KEY.toString(), '-d', '4'], { stdio: 'ignore' });
    cleanup.push(() => new Promise((r) => { srv.once('exit', r); srv.kill(); }));
    const channel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from('dev1'), key: KEY }) } });
    const t = new CoapTransport({ channel, requestTimeoutMs: 4000 });
    await t.open();
    cleanup.push(() => t.close());
    const peer = { address: '127.0.0.1', port }; // libcoap serves DTLS on its port + 1
    let put;
    for (let i = 0; i < 20 && !put; i++) {
      put = await t.request(peer, { method: 'PUT', path: '/lwm2m-kit', payload: Buffer.alloc(3000, 7), contentFormat: 42, timeoutMs: 1500 }).catch(() => undefined);
      if (!put) { channel.closeSessions(true); await delay(100); }
    }
    assert.ok(put && ['2.01', '2.04'].includes(put.code), `PUT answered ${put && put.code}`);
    const got = await t.request(peer, { method: 'GET', path: '/lwm2m-kit' });
    assert.strictEqual(got.code, '2.05');
    assert.ok(got.payload.equals(Buffer.alloc(3000, 7)));
    assert.strictEqual(channel.session(peer).cipherSuite, 'TLS_PSK_WITH_AES_128_CCM_8');
  });

  it('our client and server: CoAP requests both ways over one session', async () => {
    const serverChannel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { server: { pskFor: (id) => (id.toString() === 'dev1' ? KEY : undefined) } });
    const s = new CoapTransport({ channel: serverChannel });
    s.setHandler((ex) => ex.respond({ code: '2.05', payload: Buffer.from(`from server to ${ex.request.peer.identity}`) }));
    await s.open();
    cleanup.push(() => s.close());
    const clientChannel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from('dev1'), key: KEY }) } });
    const c = new CoapTransport({ channel: clientChannel });
    c.setHandler((ex) => ex.respond({ code: '2.05', payload: Buffer.from('from client') }));
    await c.open();
    cleanup.push(() => c.close());
    const res = await c.request(serverChannel.address(), { method: 'GET', path: '/x', timeoutMs: 5000 });
    assert.strictEqual(res.payload.toString(), 'from server to dev1');
    const back = await s.request({ address: '127.0.0.1', port: clientChannel.address().port }, { method: 'GET', path: '/y', timeoutMs: 5000 });
    assert.strictEqual(back.payload.toString(), 'from client');
  });
});

describe('DTLS under hostile input', function () {
  this.timeout(20000);
  const cleanup = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function pair(serverOptions = {}) {
    const srv = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { server: { pskFor: () => KEY }, ...serverOptions });
    srv.on('warning', () => {});
    await srv.start();
    cleanup.push(() => srv.stop());
    return srv;
  }

  function rawSocket() {
    const s = dgram.createSocket('udp4');
    const got = [];
    s.on('message', (m) => got.push(m));
    cleanup.push(() => new Promise((r) => s.close(r)));
    return new Promise((r) => s.bind(0, '127.0.0.1', () => r({ s, got })));
  }

  function clientHello(random, cookie = Buffer.alloc(0), messageSeq = 0) {
    const body = Buffer.concat([Buffer.from([0xfe, 0xfd]), random, Buffer.from([0]), Buffer.from([cookie.length]), cookie,
      Buffer.from([0, 2, 0xc0, 0xa8, 1, 0])]);
    const hs = Buffer.concat([Buffer.from([1]), Buffer.from([0, body.length >> 8, body.length & 255]), Buffer.from([0, messageSeq, 0, 0, 0, 0, body.length >> 8, body.length & 255]), body]);
    return Buffer.concat([Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, messageSeq, hs.length >> 8, hs.length & 255]), hs]);
  }

  it('answers 10k ClientHellos without cookies statelessly: HelloVerifyRequests, no session kept', async () => {
    const srv = await pair();
    const { s, got } = await rawSocket();
    for (let i = 0; i < 10000; i++) {
      s.send(clientHello(require('crypto').randomBytes(32)), srv.address().port, '127.0.0.1');
      if (i % 100 === 99) await delay(5); // paced: the answers, not the socket buffers, are under test
    }
    await delay(300);
    assert.strictEqual(srv.sessionCount, 0);
    assert.ok(got.length > 9000, `${got.length} HelloVerifyRequests`);
    assert.ok(got.every((m) => m[0] === 22 && m[13] === 3), 'every answer is a HelloVerifyRequest');
  });

  it('drops garbage, a wrong cookie and a fragment bomb, and still completes a real handshake', async () => {
    const srv = await pair();
    const { s, got } = await rawSocket();
    const port = srv.address().port;
    const junk = [Buffer.alloc(0), Buffer.from([22]), Buffer.alloc(13, 22), Buffer.from('not dtls at all'), Buffer.concat([Buffer.from([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4]), Buffer.alloc(4)]),
      clientHello(Buffer.alloc(32, 1), Buffer.alloc(16, 9))];
    // a ClientHello claiming a 16 MB body in a tiny fragment
    const bomb = Buffer.from(clientHello(Buffer.alloc(32, 2)));
    bomb.writeUIntBE(0xffffff, 14, 3);
    junk.push(bomb);
    for (const j of junk) s.send(j, port, '127.0.0.1');
    await delay(200);
    assert.strictEqual(srv.sessionCount, 0);
    assert.ok(got.every((m) => m[0] === 22 && m[13] === 3), 'only HelloVerifyRequests came back');
    const c = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { client: { credentialsFor: () => ({ identity: Buffer.from('x'), key: KEY }) } });
    await c.start();
    cleanup.push(() => c.stop());
    const ok = nextEvent(srv, 'handshake', 5000);
    c.send(Buffer.from('hi'), { address: '127.0.0.1', port });
    await ok;
  });

  it('delivers a record once: a replayed datagram and an old-epoch record are dropped', async () => {
    const srv = await pair();
    const got = [];
    srv.on('datagram', (d) => got.push(d.toString()));
    // a client on a raw socket we can replay from: a DtlsChannel over a channel that records what it sends
    const lower = new UdpChannel({ address: '127.0.0.1' });
    const sent = [];
    const send = lower.send.bind(lower);
    lower.send = (d, p) => { sent.push(d); send(d, p); };
    const c = new DtlsChannel(lower, { client: { credentialsFor: () => ({ identity: Buffer.from('x'), key: KEY }) } });
    await c.start();
    cleanup.push(() => c.stop());
    const ok = nextEvent(srv, 'datagram', 5000);
    c.send(Buffer.from('once'), srv.address());
    await ok;
    const appRecord = sent[sent.length - 1];
    assert.strictEqual(appRecord[0], 25, 'application data with the connection ID the server gave (RFC 9146 tls12_cid)');
    send(appRecord, srv.address());
    const oldEpoch = Buffer.from(appRecord);
    oldEpoch.writeUInt16BE(0, 3);
    send(oldEpoch, srv.address());
    await delay(200);
    assert.deepStrictEqual(got, ['once']);
  });

  it('expires a half-open handshake', async () => {
    const srv = await pair({ handshakeTimeoutMs: 100 });
    // a client that stops after the cookie exchange: its key does not matter, it never sends flight 5
    const { s } = await rawSocket();
    const port = srv.address().port;
    const hvr = await new Promise((resolve) => {
      s.once('message', resolve);
      s.send(clientHello(Buffer.alloc(32, 5)), port, '127.0.0.1');
    });
    const cookie = hvr.subarray(28, 28 + hvr[27]);
    s.send(clientHello(Buffer.alloc(32, 5), cookie, 1), port, '127.0.0.1');
    await delay(100);
    assert.strictEqual(srv.sessionCount, 1);
    const failed = nextEvent(srv, 'handshakeFailed', 8000);
    assert.match((await failed).reason, /timed out/);
    assert.strictEqual(srv.sessionCount, 0);
  });
});
