'use strict';
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 with X.509 certificates (checked against a trust anchor, the
// identity is the leaf's CN) and with raw public keys (RFC 7250): against OpenSSL's s_client and
// s_server, and between our own client and server. Certificates are made by the openssl command
// in a temporary folder; loopback only.
const assert = require('assert');
const { execFileSync, spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { DtlsChannel } = require('../../dist/dtls/channel');
const { verifyChain, rpkIdentity, spkiOf } = require('../../dist/dtls/certificates');
const { UdpChannel } = require('../../dist/lwm2m/coap/channel');
const { freeUdpPort, nextEvent, delay } = require('../helpers');

function haveOpenssl() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('DTLS with certificates and raw public keys (ECDHE-ECDSA, CCM-8)', function () {
  this.timeout(20000);
  let dir;
  let pki;
  const cleanup = [];

  before(function () {
    if (!haveOpenssl()) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dtls-pki-'));
    const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const issue = (name, cn, ca) => {
      run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
      run('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
      run('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.pem`);
    };
    for (const ca of ['ca', 'rogue']) {
      run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${ca}.key`);
      run('req', '-x509', '-new', '-key', `${ca}.key`, '-subj', `/CN=${ca}-anchor`, '-days', '2', '-out', `${ca}.pem`);
    }
    issue('server', 'lwm2m-server', 'ca');
    issue('device', 'dev-x509', 'ca');
    issue('intruder', 'dev-x509', 'rogue');
    const load = (name) => ({
      key: crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${name}.key`))),
      der: new crypto.X509Certificate(fs.readFileSync(path.join(dir, `${name}.pem`))).raw,
    });
    pki = { server: load('server'), device: load('device'), anchors: [new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'ca.pem')))] };
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const x509Verifier = () => (c) => (c.type === 'x509' ? verifyChain(c.chain, pki.anchors) : undefined);

  async function server(options) {
    const ch = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), { server: options });
    ch.on('warning', () => {});
    ch.on('datagram', (d, peer) => ch.send(Buffer.concat([Buffer.from('echo:'), d]), peer));
    await ch.start();
    cleanup.push(() => ch.stop());
    return ch;
  }

  function run(args, { input, until, ms = 8000 } = {}) {
    return new Promise((resolve) => {
      const p = spawn('openssl', args, { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      const take = (d) => {
        out += d;
        if (until && until.test(out)) p.kill();
      };
      p.stdout.on('data', take);
      p.stderr.on('data', take);
      const timer = setTimeout(() => p.kill(), ms);
      p.on('exit', () => {
        clearTimeout(timer);
        resolve(out);
      });
      if (input) {
        p.stdin.write(input);
        setTimeout(() => p.stdin.end(), 800);
      }
    });
  }

  it('serves openssl s_client with a client certificate: chain checked, identity = the CN', async () => {
    const ch = await server({ certificate: { privateKey: pki.server.key, chain: [pki.server.der] }, verifyPeer: x509Verifier() });
    const handshake = nextEvent(ch, 'handshake', 8000);
    const out = run(['s_client', '-dtls1_2', '-connect', `127.0.0.1:${ch.address().port}`, '-cert', 'device.pem', '-key', 'device.key',
      '-CAfile', 'ca.pem', '-cipher', 'ECDHE-ECDSA-AES128-CCM8', '-ign_eof'], { input: 'hello\n', until: /echo:hello/ });
    const e = await handshake;
    assert.strictEqual(e.identity, 'x509:dev-x509');
    assert.strictEqual(e.cipherSuite, 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8');
    const text = await out;
    assert.match(text, /Verify return code: 0 \(ok\)/, 'OpenSSL verified our chain');
    assert.match(text, /echo:hello/);
  });

  it('refuses a client certificate from another authority with bad_certificate', async () => {
    const ch = await server({ certificate: { privateKey: pki.server.key, chain: [pki.server.der] }, verifyPeer: x509Verifier() });
    const failed = nextEvent(ch, 'handshakeFailed', 8000);
    const out = await run(['s_client', '-dtls1_2', '-connect', `127.0.0.1:${ch.address().port}`, '-cert', 'intruder.pem', '-key', 'intruder.key',
      '-cipher', 'ECDHE-ECDSA-AES128-CCM8'], { input: 'x\n' });
    assert.strictEqual((await failed).alert, 42);
    assert.match(out, /bad certificate/i);
  });

  it('is a client of openssl s_server that asks for a certificate: both chains checked', async () => {
    const port = await freeUdpPort();
    const srv = spawn('openssl', ['s_server', '-dtls1_2', '-accept', String(port), '-cert', 'server.pem', '-key', 'server.key', '-CAfile', 'ca.pem',
      '-Verify', '1', '-cipher', 'ECDHE-ECDSA-AES128-CCM8'], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    srv.stdout.on('data', (d) => { out += d; });
    srv.stderr.on('data', (d) => { out += d; });
    cleanup.push(() => new Promise((r) => { srv.once('exit', r); srv.kill(); }));
    await delay(400);
    const c = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), {
      client: { credentialsFor: () => ({ certificate: { privateKey: pki.device.key, chain: [pki.device.der] }, verifyPeer: x509Verifier() }) },
    });
    await c.start();
    cleanup.push(() => c.stop());
    const handshake = nextEvent(c, 'handshake', 8000);
    c.send(Buffer.from('hello from a certified device\n'), { address: '127.0.0.1', port });
    const e = await handshake;
    assert.strictEqual(e.identity, 'x509:lwm2m-server', 'the server proved its CN to us');
    for (let i = 0; i < 40 && !out.includes('hello from a certified device'); i++) await delay(50);
    assert.match(out, /hello from a certified device/);
    assert.match(out, /CN = dev-x509|CN=dev-x509/, 's_server saw our certificate');
  });

  for (const [tool, args, expected] of [
    ['coap-client-gnutls', ['-M', 'device.key'], (key) => rpkIdentity(spkiOf(key))],
    ['coap-client-openssl', ['-c', 'device.pem', '-j', 'device.key', '-C', 'ca.pem'], () => 'x509:dev-x509'],
  ]) {
    it(`carries CoAP for libcoap's ${tool} ${args[0] === '-M' ? 'with a raw public key' : 'with a client certificate'}`, async function () {
      try {
        execFileSync(tool, ['-h'], { stdio: 'ignore' });
      } catch (err) {
        if (err.code === 'ENOENT') {
          if (process.env.CI) throw new Error(`${tool} missing: .ci/run installs libcoap3-bin`);
          this.skip();
        }
      }
      const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
      const rpk = args[0] === '-M';
      const channel = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), {
        server: rpk
          ? { certificate: { privateKey: pki.server.key, rawPublicKey: true }, verifyPeer: (c) => (c.type === 'rpk' ? rpkIdentity(c.spki) : undefined) }
          : { certificate: { privateKey: pki.server.key, chain: [pki.server.der] }, verifyPeer: x509Verifier() },
      });
      const t = new CoapTransport({ channel });
      t.setHandler((ex) => ex.respond({ code: '2.05', payload: Buffer.from(`hi ${ex.request.peer.identity}`) }));
      await t.open();
      cleanup.push(() => t.close());
      const out = await new Promise((resolve) => {
        const p = spawn(tool, [...args, '-m', 'get', `coaps://127.0.0.1:${channel.address().port}/x`], { cwd: dir });
        let text = '';
        p.stdout.on('data', (d) => { text += d; });
        p.stderr.on('data', (d) => { text += d; });
        const timer = setTimeout(() => p.kill(), 8000);
        p.on('exit', () => { clearTimeout(timer); resolve(text); });
      });
      assert.ok(out.includes(`hi ${expected(pki.device.key)}`), out);
    });
  }

  it('speaks raw public keys (RFC 7250) between our client and server: each side knows the other by its key', async () => {
    const serverKey = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const deviceKey = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const deviceId = rpkIdentity(spkiOf(deviceKey));
    const serverId = rpkIdentity(spkiOf(serverKey));
    const known = (id) => (c) => (c.type === 'rpk' && rpkIdentity(c.spki) === id ? id : undefined);
    const ch = await server({ certificate: { privateKey: serverKey, rawPublicKey: true }, verifyPeer: known(deviceId) });
    const c = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), {
      client: { credentialsFor: () => ({ certificate: { privateKey: deviceKey, rawPublicKey: true }, verifyPeer: known(serverId) }) },
    });
    await c.start();
    cleanup.push(() => c.stop());
    const serverSide = nextEvent(ch, 'handshake', 8000);
    const reply = nextEvent(c, 'datagram', 8000);
    c.send(Buffer.from('rpk'), ch.address());
    assert.strictEqual((await serverSide).identity, deviceId);
    assert.strictEqual((await reply)[0].toString(), 'echo:rpk');
    assert.strictEqual(c.session(ch.address()).identity, serverId);
    // an unknown key is refused
    const stranger = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const s2 = new DtlsChannel(new UdpChannel({ address: '127.0.0.1' }), {
      client: { credentialsFor: () => ({ certificate: { privateKey: stranger, rawPublicKey: true }, verifyPeer: known(serverId) }) },
    });
    await s2.start();
    cleanup.push(() => s2.stop());
    const refused = nextEvent(ch, 'handshakeFailed', 8000);
    s2.send(Buffer.from('x'), ch.address());
    assert.strictEqual((await refused).alert, 42);
  });
});
