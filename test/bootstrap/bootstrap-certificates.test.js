'use strict';
// Bootstrap of raw-public-key and X.509 accounts: the bootstrap server writes /0/x/3 (the device's
// public key or certificate), /0/x/4 (the server's) and /0/x/5 (the device's private key); the
// LwM2M server accepts the handed-out raw public key for that endpoint only, and X.509 by its CN.
// The software client bootstraps, then registers over coaps with what it was given. Loopback only.
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { BootstrapServer } = require('../../dist/lwm2m/server/bootstrap-server');
const { serverCredentialOf, validateConfig } = require('../../dist/lwm2m/server/bootstrap-config');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { rpkIdentity, spkiOf } = require('../../dist/dtls/certificates');
const { makePki, nextEvent } = require('../helpers');

describe('bootstrap of raw public keys and X.509 certificates', function () {
  this.timeout(20000);
  let dir;
  let pki;
  let server;
  let bs;
  const cleanup = [];

  before(function () {
    dir = makePki('fleet-ca', [['server', 'lwm2m-server'], ['device', 'urn:dev:bs-x509']]);
    if (!dir) this.skip();
    const read = (file) => fs.readFileSync(path.join(dir, file), 'utf8');
    pki = { serverKey: crypto.createPrivateKey(read('server.key')), serverCert: new crypto.X509Certificate(read('server.pem')).raw, ca: read('ca.pem'), deviceKey: read('device.key'), deviceCert: read('device.pem') };
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
    const handedOut = [];
    bs = new BootstrapServer({
      transport: server, sessionTimeoutMs: 8000, requestTimeoutMs: 2000,
      onCredentials: (endpoint, account) => {
        handedOut.push(account);
        const entry = serverCredentialOf(endpoint, account);
        if (entry) server.security.set(entry);
      },
    });
    bs.handedOut = handedOut;
    server.setBootstrapHandler((ex) => bs.handle(ex));
    cleanup.push(() => bs.stop());
  });
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function device(endpoint) {
    const c = new Lwm2mClient({ endpoint, bootstrap: { host: '127.0.0.1', port: server.address().port }, localAddress: '127.0.0.1', requestTimeoutMs: 2000 });
    c.on('warning', () => {});
    cleanup.push(() => c.stop());
    return c;
  }

  it('hands a device a key pair of its own for a raw-public-key account; the server takes that key for that endpoint only', async () => {
    const account = { uri: `coaps://127.0.0.1:${server.secureAddress().port}`, shortServerId: 3, lifetime: 90, securityMode: 'rpk', privateKey: 'generate', serverKey: spkiOf(pki.serverKey) };
    bs.setConfig({ endpoint: 'urn:dev:bs-rpk-*', servers: [account] });
    // a private key is a secret: not over NoSec unless the configuration says so
    const plain = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 3000 });
    await plain.open();
    cleanup.push(() => plain.close());
    assert.strictEqual((await plain.request(server.address(), { method: 'POST', path: '/bs', query: ['ep=urn:dev:bs-rpk-1'] })).code, '4.01');
    bs.setConfig({ endpoint: 'urn:dev:bs-rpk-*', keysOverNoSec: true, servers: [account] });

    const registered = nextEvent(server, 'register', 10000);
    const c = device('urn:dev:bs-rpk-1');
    await c.start();
    const [reg] = await registered;
    const given = bs.handedOut[0];
    assert.strictEqual(given.securityMode, 'rpk');
    assert.strictEqual(reg.endpoint, 'urn:dev:bs-rpk-1');
    assert.strictEqual(reg.identity, rpkIdentity(given.publicKey), 'registered with the key pair it was handed');
    assert.strictEqual((await server.read('urn:dev:bs-rpk-1', '/3/0/0')).value, 'node-red-contrib-lwm2m-kit');
    // the device holds /0/x: mode 1, its public key, the server's, its private key
    const security = c.objects.instanceIds(0).map((id) => c.objects.instance(0, id)).find((v) => v.get(2) === 1);
    assert.ok(security, 'a raw-public-key Security instance');
    assert.ok(security.get(3).equals(given.publicKey));
    assert.ok(security.get(4).equals(spkiOf(pki.serverKey)));
    assert.ok(crypto.createPublicKey(crypto.createPrivateKey({ key: security.get(5), format: 'der', type: 'pkcs8' })).export({ type: 'spki', format: 'der' }).equals(given.publicKey));

    // a second device gets another key pair; neither key registers as the other's endpoint
    const second = nextEvent(server, 'register', 10000, (r) => r.endpoint === 'urn:dev:bs-rpk-2');
    await device('urn:dev:bs-rpk-2').start();
    assert.notStrictEqual((await second)[0].identity, reg.identity);
    assert.strictEqual(server.security.byIdentity(reg.identity).endpoint, 'urn:dev:bs-rpk-1');
  });

  it('hands out an X.509 account (PEM in the configuration, DER on the device); the server accepts the certificate by its CN', async () => {
    bs.setConfig({
      endpoint: 'urn:dev:bs-x509', keysOverNoSec: true,
      servers: [{ uri: `coaps://127.0.0.1:${server.secureAddress().port}`, shortServerId: 4, lifetime: 90, securityMode: 'x509', privateKey: pki.deviceKey, certificate: pki.deviceCert, serverKey: pki.ca }],
    });
    const registered = nextEvent(server, 'register', 10000);
    await device('urn:dev:bs-x509').start();
    const [reg] = await registered;
    assert.deepStrictEqual([reg.endpoint, reg.identity], ['urn:dev:bs-x509', 'x509:urn:dev:bs-x509']);
    assert.strictEqual(serverCredentialOf('urn:dev:bs-x509', bs.handedOut[0]), undefined, 'nothing to bind: trust comes from the CA');
  });

  it('refuses RPK and X.509 accounts with missing or foreign keys, with a clear error', () => {
    const uri = 'coaps://127.0.0.1:5684';
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const cases = [
      [{ uri, shortServerId: 1, securityMode: 'rpk', privateKey: 'generate' }, /server's public key is missing/],
      [{ uri, shortServerId: 1, securityMode: 'rpk', privateKey: rsa, serverKey: spkiOf(pki.serverKey) }, /P-256/],
      [{ uri, shortServerId: 1, securityMode: 'rpk', privateKey: 'not a key', serverKey: spkiOf(pki.serverKey) }, /private key is not valid/],
      [{ uri: 'coap://127.0.0.1:5683', shortServerId: 1, securityMode: 'rpk', privateKey: 'generate', serverKey: spkiOf(pki.serverKey) }, /coaps:\/\//],
      [{ uri, shortServerId: 1, securityMode: 'x509', privateKey: 'generate', certificate: pki.deviceCert, serverKey: pki.ca }, /private key is not valid/],
      [{ uri, shortServerId: 1, securityMode: 'x509', privateKey: pki.deviceKey, serverKey: pki.ca }, /device's certificate is missing/],
    ];
    for (const [account, error] of cases) assert.throws(() => validateConfig({ endpoint: 'x', servers: [account] }), error);
  });
});
