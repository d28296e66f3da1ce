'use strict';
// The lwm2m-server node's DTLS socket in a Node-RED runtime: PSK credentials as node credentials,
// a certificate and key from PEM files with a device CA, the lwm2m-register node's security events
// and its "security" input setting a device's PSK at run time. No key reaches a message.
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, collector, delay, makePki } = require('../helpers');

const serverNode = require('../../nodes/lwm2m-server.js');
const registerNode = require('../../nodes/lwm2m-register.js');

helper.init(require.resolve('node-red'));

const PSK = '7468697320697320612070736b';

describe('lwm2m-server node over DTLS (PSK and certificates)', function () {
  this.timeout(30000);
  let dir;
  const closers = [];

  before(async function () {
    dir = makePki('node-ca', [['server', 'node-red-lwm2m'], ['device', 'urn:dev:cert-1']]);
    if (!dir) this.skip();
    await helper.startServer();
  });
  after(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await helper.stopServer();
  });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close().catch(() => {})));
    await helper.unload();
  });

  it('registers PSK and certificate devices, reports refusals, and takes a PSK from a flow', async () => {
    const [port, securePort] = [await freeUdpPort(), await freeUdpPort()];
    const flow = [
      { id: 'f1', type: 'tab', label: 'test' },
      { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, securePort, nosec: 'on', timeout: 3,
        certFile: path.join(dir, 'server.pem'), keyFile: path.join(dir, 'server.key'), caFile: path.join(dir, 'ca.pem') },
      { id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['out']] },
      { id: 'out', z: 'f1', type: 'helper' },
    ];
    await helper.load([serverNode, registerNode], flow, { srv: { psk: JSON.stringify([{ endpoint: 'urn:dev:psk-1', identity: 'psk-1', key: PSK }]) } });
    const srv = helper.getNode('srv');
    for (let i = 0; i < 100 && !srv.server.secureTransport?.listening; i++) await delay(20);
    const out = collector(helper.getNode('out'));
    const start = (endpoint, credentials) => {
      const c = new Lwm2mClient({ endpoint, lifetime: 60, localAddress: '127.0.0.1', requestTimeoutMs: 2000, server: { host: '127.0.0.1', port: securePort, ...credentials } });
      c.on('warning', () => {});
      closers.push(() => c.stop());
      c.start().catch(() => {});
      return c;
    };

    start('urn:dev:psk-1', { psk: { identity: 'psk-1', key: PSK } });
    const psk = await out.next((m) => m.topic === 'register' && m.endpoint === 'urn:dev:psk-1', 8000);
    assert.strictEqual(psk.payload.identity, 'psk-1');

    start('urn:dev:cert-1', {
      certificate: {
        privateKey: crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'device.key'))),
        certificate: new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'device.pem'))).raw,
        serverCertificate: new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'ca.pem'))).raw,
      },
    });
    const cert = await out.next((m) => m.topic === 'register' && m.endpoint === 'urn:dev:cert-1', 8000);
    assert.strictEqual(cert.payload.identity, 'x509:urn:dev:cert-1');
    const established = await out.next((m) => m.topic === 'security' && m.payload.event === 'dtls-established' && m.payload.identity === 'x509:urn:dev:cert-1');
    assert.strictEqual(established.payload.cipherSuite, 'TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8');

    // the PSK identity registering as another endpoint: refused, and the flow hears of it
    start('urn:dev:impostor', { psk: { identity: 'psk-1', key: PSK } });
    const refused = await out.next((m) => m.topic === 'security' && m.payload.event === 'refused', 8000);
    assert.deepStrictEqual([refused.payload.endpoint, refused.payload.identity, refused.payload.operation], ['urn:dev:impostor', 'psk-1', 'register']);

    // a flow gives a new device its PSK; then it registers
    helper.getNode('reg').receive({ topic: 'security', endpoint: 'urn:dev:psk-2', payload: { identity: 'psk-2', key: PSK } });
    start('urn:dev:psk-2', { psk: { identity: 'psk-2', key: PSK } });
    assert.strictEqual((await out.next((m) => m.topic === 'register' && m.endpoint === 'urn:dev:psk-2', 8000)).payload.identity, 'psk-2');

    assert.ok(!JSON.stringify(out.seen).includes(PSK), 'no key in any message');
    assert.strictEqual(srv.server.security.list().length, 2);
  });
});
