'use strict';
// The server on its message layer, with raw datagrams on loopback: a retransmitted Register gets the
// first answer again without a second registration; separate responses and block-wise answers to
// the server's own requests arrive; requests still waiting fail when the server stops.
const assert = require('assert');
const dgram = require('dgram');
const { generate, parse } = require('coap-packet');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { delay } = require('../helpers');

describe('the server on its CoAP message layer', function () {
  this.timeout(15000);
  let server;
  let sock;

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 4000 });
    server.on('warning', () => {});
    await server.start();
    sock = dgram.createSocket('udp4');
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
  });
  afterEach(async () => {
    sock.close();
    await server.stop();
  });

  function exchange(packet) {
    return new Promise((resolve) => {
      sock.once('message', (msg) => resolve(parse(msg)));
      sock.send(generate(packet), server.address().port, '127.0.0.1');
    });
  }

  it('answers a retransmitted Register from the cache, without registering twice', async () => {
    let registrations = 0;
    server.on('register', () => registrations++);
    const register = {
      code: 'POST', messageId: 4242, token: Buffer.from([1, 2, 3, 4]), confirmable: true,
      options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Uri-Query', value: Buffer.from('ep=twice') }],
      payload: Buffer.from('</3/0>'),
    };
    const first = await exchange(register);
    const again = await exchange(register);
    assert.strictEqual(first.code, '2.01');
    assert.ok(first.ack);
    assert.strictEqual(first.messageId, 4242);
    assert.deepStrictEqual(again, first);
    assert.strictEqual(registrations, 1);
    // a NON request gets a NON answer
    const non = await exchange({ ...register, messageId: 7, confirmable: false, options: [{ name: 'Uri-Path', value: Buffer.from('rd') }, { name: 'Uri-Query', value: Buffer.from('ep=non') }] });
    assert.strictEqual(non.code, '2.01');
    assert.strictEqual(non.ack, false);
    assert.strictEqual(registrations, 2);
  });

  it('receives separate responses and block-wise answers to its own requests', async () => {
    const device = new CoapTransport({ address: '127.0.0.1' });
    const big = 'x'.repeat(3000);
    device.setHandler((ex) => {
      if (ex.request.pathSegments.join('/') === '3/0/0') {
        // answered after coap's piggyback window: an empty ACK first, then a CON response
        setTimeout(() => ex.respond({ code: '2.05', contentFormat: 0, payload: Buffer.from('late') }), 300);
      } else {
        ex.respond({ code: '2.05', contentFormat: 0, payload: Buffer.from(big) });
      }
    });
    await device.open();
    try {
      const reg = await device.request(server.address(), { method: 'POST', path: '/rd', query: ['ep=slow', 'lwm2m=1.1'], contentFormat: 40, payload: Buffer.from('</3/0>') });
      assert.strictEqual(reg.code, '2.01');
      assert.strictEqual((await server.read('slow', '/3/0/0', { format: 'text' })).value, 'late');
      assert.strictEqual((await server.read('slow', '/3/0/1', { format: 'text' })).value, big);
    } finally {
      await device.close();
    }
  });

  it('fails requests still waiting when the server stops', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise((r) => silent.bind(0, '127.0.0.1', r));
    try {
      const pending = server.transport.request({ address: '127.0.0.1', port: silent.address().port }, { method: 'GET', path: '/3/0', timeoutMs: 10000 });
      await delay(50);
      await server.stop();
      await assert.rejects(pending, /transport closed/);
    } finally {
      silent.close();
    }
  });
});
