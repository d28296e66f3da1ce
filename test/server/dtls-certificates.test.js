'use strict';
// LwM2M over DTLS with certificates (X.509: the device's CN is its endpoint, as Leshan checks it)
// and raw public keys (bound to an endpoint in the security store): the software client registers,
// the server reads it, and an identity cannot register as another endpoint. Loopback only.
const assert = require('assert');
const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { rpkIdentity, spkiOf } = require('../../dist/dtls/certificates');
const { makePki, nextEvent } = require('../helpers');

describe('LwM2M over DTLS with X.509 certificates and raw public keys', function () {
  this.timeout(20000);
  let dir;
  let pki;
  let server;
  const cleanup = [];

  before(function () {
    dir = makePki('fleet-ca', [['server', 'lwm2m-server'], ['device', 'urn:dev:x509-1']]);
    if (!dir) this.skip();
    const key = (name) => crypto.createPrivateKey(fs.readFileSync(path.join(dir, `${name}.key`)));
    const der = (name) => new crypto.X509Certificate(fs.readFileSync(path.join(dir, `${name}.pem`))).raw;
    pki = { serverKey: key('server'), serverCert: der('server'), deviceKey: key('device'), deviceCert: der('device'), ca: der('ca') };
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    server = new Lwm2mServer({
      port: 0, address: '127.0.0.1', requestTimeoutMs: 3000,
      secure: { port: 0, certificate: { privateKey: pki.serverKey, chain: [pki.serverCert], rawPublicKey: true }, trustAnchors: [new crypto.X509Certificate(pki.ca)] },
    });
    server.on('warning', () => {});
    await server.start();
    cleanup.push(() => server.stop());
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function client(endpoint, certificate) {
    const c = new Lwm2mClient({ endpoint, lifetime: 60, localAddress: '127.0.0.1', requestTimeoutMs: 2000, server: { host: '127.0.0.1', port: server.secureAddress().port, certificate } });
    c.on('warning', () => {});
    c.setInstance(3303, 0, { 5700: 12.5, 5701: 'Cel' });
    cleanup.push(() => c.stop());
    return c;
  }

  it('registers a device with an X.509 certificate: its CN is its endpoint; the server reads it over the session', async () => {
    const registered = nextEvent(server, 'register', 8000);
    await client('urn:dev:x509-1', { privateKey: pki.deviceKey, certificate: pki.deviceCert, serverCertificate: pki.ca }).start();
    const [reg] = await registered;
    assert.strictEqual(reg.identity, 'x509:urn:dev:x509-1');
    assert.strictEqual((await server.read('urn:dev:x509-1', '/3303/0/5700')).value, 12.5);
  });

  it('refuses a certificate registering as another endpoint (4.03)', async () => {
    const refused = nextEvent(server, 'securityRefused', 8000);
    client('urn:dev:someone-else', { privateKey: pki.deviceKey, certificate: pki.deviceCert, serverCertificate: pki.ca }).start().catch(() => {});
    const r = await refused;
    assert.deepStrictEqual([r.operation, r.endpoint, r.identity], ['register', 'urn:dev:someone-else', 'x509:urn:dev:x509-1']);
    assert.strictEqual(server.getRegistration('urn:dev:someone-else'), undefined);
  });

  for (const [tool, args, endpoint] of [
    ['coap-client-openssl', ['-c', 'device.pem', '-j', 'device.key', '-C', 'ca.pem'], 'urn:dev:x509-1'],
    ['coap-client-gnutls', ['-M', 'device.key'], 'urn:dev:libcoap-rpk'],
  ]) {
    it(`takes a real LwM2M Register over coaps from libcoap's ${tool} ${args[0] === '-M' ? 'with a raw public key' : 'with a certificate'}`, async function () {
      try {
        execFileSync(tool, ['-h'], { stdio: 'ignore' });
      } catch (err) {
        if (err.code === 'ENOENT') {
          if (process.env.CI) throw new Error(`${tool} missing: .ci/run installs libcoap3-bin`);
          this.skip();
        }
      }
      if (args[0] === '-M') server.security.set({ endpoint, identity: rpkIdentity(spkiOf(pki.deviceKey)) });
      fs.writeFileSync(path.join(dir, 'links.txt'), '</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>');
      const registered = nextEvent(server, 'register', 8000);
      const p = require('child_process').spawn(tool, [...args, '-m', 'post', '-t', '40', '-f', 'links.txt',
        `coaps://127.0.0.1:${server.secureAddress().port}/rd?ep=${endpoint}&lt=60&lwm2m=1.1`], { cwd: dir, stdio: 'ignore' });
      cleanup.push(() => p.kill());
      const [reg] = await registered;
      assert.strictEqual(reg.endpoint, endpoint);
      assert.strictEqual(reg.identity, args[0] === '-M' ? rpkIdentity(spkiOf(pki.deviceKey)) : 'x509:urn:dev:x509-1');
    });
  }

  it('registers a device with a raw public key bound to its endpoint, and refuses an unknown key at the handshake', async () => {
    const deviceKey = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    server.security.set({ endpoint: 'urn:dev:rpk-1', identity: rpkIdentity(spkiOf(deviceKey)) });
    const registered = nextEvent(server, 'register', 8000);
    await client('urn:dev:rpk-1', { privateKey: deviceKey, serverPublicKey: spkiOf(pki.serverKey) }).start();
    assert.strictEqual((await registered)[0].identity, rpkIdentity(spkiOf(deviceKey)));
    assert.strictEqual((await server.read('urn:dev:rpk-1', '/3303/0/5701')).value, 'Cel');
    const failed = nextEvent(server, 'secureSession', 8000, (e) => e.event === 'failed');
    const stranger = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    client('urn:dev:rpk-2', { privateKey: stranger, serverPublicKey: spkiOf(pki.serverKey) }).start().catch(() => {});
    assert.strictEqual((await failed).alert, 42);
  });
});
