'use strict';
// LwM2M conformance details of the server core, driven by raw CoAP from a second transport that
// plays the device: format negotiation, registration codes, queue mode, bootstrap sessions,
// composite observation cancel, write-attributes checks and Send time stamps.
const assert = require('assert');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { Lwm2mError } = require('../../dist/lwm2m/types');
const { BootstrapServer } = require('../../dist/lwm2m/server/bootstrap-server');
const { encodeRecords, decodeRecords, decodePathList } = require('../../dist/lwm2m/content');
const { nextEvent, delay } = require('../helpers');

describe('LwM2M server conformance', function () {
  this.timeout(15000);
  let server;
  let device;
  let serverPeer;
  const opened = [];

  async function newDevice(handler = (ex) => ex.respond({ code: '4.04' })) {
    const t = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 2000 });
    t.setHandler(handler);
    await t.open();
    opened.push(t);
    return t;
  }

  function register(t, query, payload, contentFormat = 40) {
    return t.request(serverPeer, { method: 'POST', path: '/rd', query, contentFormat, payload: Buffer.from(payload) });
  }

  /** Makes the device answer every request with `answer(request)` and records the requests. */
  function answering(t, answer) {
    const seen = [];
    t.setHandler((ex) => {
      seen.push(ex.request);
      ex.respond(answer(ex.request));
    });
    return seen;
  }

  beforeEach(async () => {
    server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 1000, queueAwakeMs: 200, expiryGraceMs: 0 });
    server.on('warning', () => {});
    await server.start();
    serverPeer = server.address();
    device = await newDevice();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((t) => t.close()));
    await server.stop();
  });

  describe('A. supported formats from the registration', () => {
    it('takes ct from a root link without rt="oma.lwm2m"', async () => {
      assert.strictEqual((await register(device, ['ep=a', 'lwm2m=1.1'], '</>;ct=110,</3/0>')).code, '2.01');
      assert.deepStrictEqual(server.getRegistration('a').supportedFormats, [110]);
      assert.deepStrictEqual(server.getRegistration('a').objects, [{ objectId: 3, instanceId: 0 }]);
      await register(device, ['ep=b', 'lwm2m=1.1'], '</>;ct="60 110 11543",</3/0>');
      assert.deepStrictEqual(server.getRegistration('b').supportedFormats, [60, 110, 11543]);
      await register(device, ['ep=c', 'lwm2m=1.1'], '</>;rt="oma.lwm2m";ct=112,</3/0>');
      assert.deepStrictEqual(server.getRegistration('c').supportedFormats, [112]);
    });

    it('reads a device that registered `</>;ct=110` in SenML JSON', async () => {
      const seen = answering(device, () => ({ code: '2.05', contentFormat: 110, payload: Buffer.from('[{"bn":"/3/0/0","vs":"Acme"}]') }));
      await register(device, ['ep=a', 'lwm2m=1.1'], '</>;ct=110,</3/0>');
      assert.strictEqual((await server.read('a', '/3/0/0')).value, 'Acme');
      assert.strictEqual(seen[0].accept, 110);
    });
  });

  describe('B. format negotiation', () => {
    const reg = (formats, version = '1.1') => ({ lwm2mVersion: version, supportedFormats: formats });
    it('picks an advertised format for 1.1+ devices, defaults otherwise', () => {
      assert.strictEqual(server.negotiateFormat(reg([11543])), 'oma-json');
      assert.strictEqual(server.negotiateFormat(reg([60, 11543])), 'oma-json');
      assert.strictEqual(server.negotiateFormat(reg([11544])), 'lwm2m-cbor');
      assert.strictEqual(server.negotiateFormat(reg([11542, 11543])), 'tlv');
      assert.strictEqual(server.negotiateFormat(reg([110, 11542])), 'senml-json');
      assert.strictEqual(server.negotiateFormat(reg([112, 110])), 'senml-cbor');
      assert.strictEqual(server.negotiateFormat(reg([])), 'senml-cbor');
      assert.strictEqual(server.negotiateFormat(reg([], '1.2')), 'senml-cbor');
      assert.strictEqual(server.negotiateFormat(reg([], '1.0')), 'tlv');
      assert.strictEqual(server.negotiateFormat(reg([11543], '1.0')), 'oma-json');
      assert.strictEqual(server.negotiateFormat(reg([1543], '1.0')), 'oma-json');
      assert.strictEqual(server.negotiateFormat(reg([11542, 11543], '1.0')), 'tlv');
      assert.strictEqual(server.negotiateFormat(reg([11543]), 'tlv'), 'tlv');
    });

    it('reads a 1.1 device that advertised only OMA JSON with Accept 11543', async () => {
      const seen = answering(device, () => ({ code: '2.05', contentFormat: 11543, payload: Buffer.from('{"bn":"/3/0/","e":[{"n":"0","sv":"Acme"}]}') }));
      await register(device, ['ep=j', 'lwm2m=1.1'], '</>;rt="oma.lwm2m";ct=11543,</3/0>');
      assert.deepStrictEqual((await server.read('j', '/3/0')).value, { 0: 'Acme' });
      assert.strictEqual(seen[0].accept, 11543);
    });

    it('uses an advertised composite format: LwM2M CBOR, SenML JSON, else SenML CBOR', async () => {
      const values = [{ path: { objectId: 3, instanceId: 0, resourceId: 0 }, value: 'Acme' }];
      const seen = answering(device, (req) => ({
        code: '2.05', contentFormat: req.accept, payload: encodeRecords(req.accept === 11544 ? 'lwm2m-cbor' : req.accept === 110 ? 'senml-json' : 'senml-cbor', values, { basePath: { objectId: 0 } }),
      }));
      await register(device, ['ep=l', 'lwm2m=1.2'], '</>;ct=11544,</3/0>');
      assert.deepStrictEqual((await server.readComposite('l', ['/3/0/0'])).value, { '/3/0/0': 'Acme' });
      assert.deepStrictEqual([seen[0].method, seen[0].contentFormat, seen[0].accept], ['FETCH', 11544, 11544]);
      assert.deepStrictEqual(decodePathList('lwm2m-cbor', seen[0].payload), [{ objectId: 3, instanceId: 0, resourceId: 0, resourceInstanceId: undefined }]);
      await register(device, ['ep=s', 'lwm2m=1.1'], '</>;ct="60 110",</3/0>');
      await server.readComposite('s', ['/3/0/0']);
      assert.strictEqual(seen[1].accept, 110);
      await register(device, ['ep=n', 'lwm2m=1.1'], '</3/0>');
      await server.readComposite('n', ['/3/0/0']);
      assert.strictEqual(seen[2].accept, 112);
    });
  });

  describe('D. Create without an instance id', () => {
    function creating() {
      return answering(device, () => ({ code: '2.01', locationPath: ['3303', '4'] }));
    }

    it('sends SenML named relative to the object to a device that advertised only SenML JSON', async () => {
      const seen = creating();
      await register(device, ['ep=s', 'lwm2m=1.1'], '</>;ct=110,</3303/0>');
      const result = await server.create('s', '/3303', { 5700: 3.5, 5701: 'Cel' });
      assert.deepStrictEqual(result, { code: '2.01', location: '/3303/4' });
      assert.deepStrictEqual([seen[0].method, seen[0].pathSegments.join('/'), seen[0].contentFormat], ['POST', '3303', 110]);
      assert.deepStrictEqual(JSON.parse(seen[0].payload.toString()), [{ n: '5700', v: 3.5 }, { n: '5701', vs: 'Cel' }]);
    });

    it('sends LwM2M CBOR with resource ids at the top level to a device that advertised only 11544', async () => {
      const seen = creating();
      await register(device, ['ep=l', 'lwm2m=1.2'], '</>;ct=11544,</3303/0>');
      await server.create('l', '/3303', { 5700: 3.5 });
      assert.strictEqual(seen[0].contentFormat, 11544);
      assert.deepStrictEqual(require('../../dist/lwm2m/content').decodeCbor(seen[0].payload), new Map([[5700, 3.5]]));
    });

    it('keeps TLV for 1.0 devices, devices that advertised TLV or nothing, and OMA JSON-only devices', async () => {
      const seen = creating();
      await register(device, ['ep=old'], '</>;ct=11543,</3303/0>');
      await server.create('old', '/3303', { 5700: 3.5 });
      await register(device, ['ep=both', 'lwm2m=1.1'], '</>;ct="112 110 11542",</3303/0>');
      await server.create('both', '/3303', { 5700: 3.5 });
      await register(device, ['ep=none', 'lwm2m=1.1'], '</3303/0>');
      await server.create('none', '/3303', { 5700: 3.5 });
      await register(device, ['ep=json', 'lwm2m=1.1'], '</>;ct=11543,</3303/0>');
      await server.create('json', '/3303', { 5700: 3.5 });
      assert.deepStrictEqual(seen.map((r) => r.contentFormat), [11542, 11542, 11542, 11542]);
      for (const r of seen) assert.notStrictEqual(r.payload[0] >> 6, 0, 'no object instance TLV');
    });

    it('uses a requested format, and refuses one that cannot say "new instance"', async () => {
      const seen = creating();
      await register(device, ['ep=both', 'lwm2m=1.1'], '</>;ct="112 11542",</3303/0>');
      await server.create('both', '/3303', { 5700: 3.5 }, { format: 'senml-cbor' });
      assert.strictEqual(seen[0].contentFormat, 112);
      await assert.rejects(server.create('both', '/3303', { 5700: 3.5 }, { format: 'oma-json' }), /cannot use oma-json/);
      // with an instance id: the negotiated format, naming the instance
      await server.create('both', '/3303', { 5700: 3.5 }, { instanceId: 7 });
      assert.strictEqual(seen[1].contentFormat, 112);
    });
  });

  describe('E. registration answer codes', () => {
    it('answers an unsupported LwM2M version with 4.12', async () => {
      for (const v of ['9.9', '2.0', '1.3']) {
        const res = await register(device, ['ep=v', `lwm2m=${v}`], '</3/0>');
        assert.strictEqual(res.code, '4.12', v);
        assert.match(res.payload.toString(), /unsupported LwM2M version/);
      }
      assert.strictEqual((await register(device, ['ep=v', 'lwm2m=1.2'], '</3/0>')).code, '2.01');
    });

    it('answers a Register without any object link with 4.00', async () => {
      for (const payload of ['', '</>;rt="oma.lwm2m";ct=110', '</>;ct=110']) {
        const res = await register(device, ['ep=e', 'lwm2m=1.1'], payload);
        assert.strictEqual(res.code, '4.00', JSON.stringify(payload));
        assert.match(res.payload.toString(), /names no object/);
      }
      assert.strictEqual(server.getRegistration('e'), undefined);
    });

    it('answers an Update that carries ep= with 4.00 and keeps the registration', async () => {
      const res = await register(device, ['ep=u', 'lt=60', 'lwm2m=1.1'], '</3/0>');
      const id = res.locationPath[1];
      const up = await device.request(serverPeer, { method: 'POST', path: `/rd/${id}`, query: ['ep=other', 'lt=120'] });
      assert.strictEqual(up.code, '4.00');
      assert.match(up.payload.toString(), /ep=/);
      assert.strictEqual(server.getRegistration('u').lifetime, 60);
      assert.strictEqual(server.getRegistration('other'), undefined);
      assert.strictEqual((await device.request(serverPeer, { method: 'POST', path: `/rd/${id}`, query: ['lt=120'] })).code, '2.04');
    });

    it('accepts a Register payload labelled text/plain (0) like link format (40), and refuses others', async () => {
      assert.strictEqual((await register(device, ['ep=t', 'lwm2m=1.1'], '</>;ct=110,</3/0>', 0)).code, '2.01');
      assert.deepStrictEqual(server.getRegistration('t').objects, [{ objectId: 3, instanceId: 0 }]);
      assert.deepStrictEqual(server.getRegistration('t').supportedFormats, [110]);
      const res = await register(device, ['ep=x', 'lwm2m=1.1'], '</3/0>', 50);
      assert.strictEqual(res.code, '4.00');
      assert.match(res.payload.toString(), /link-format/);
    });
  });

  describe('F. queue mode across Updates', () => {
    const update = (id, query) => device.request(serverPeer, { method: 'POST', path: `/rd/${id}`, query });

    it('keeps queue mode of a 1.1 device through an Update with b=U', async () => {
      const res = await register(device, ['ep=q', 'lt=60', 'lwm2m=1.1', 'b=U', 'Q'], '</3/0>');
      const id = res.locationPath[1];
      assert.strictEqual(server.getRegistration('q').queueMode, true);
      assert.strictEqual((await update(id, ['b=U'])).code, '2.04');
      assert.strictEqual(server.getRegistration('q').queueMode, true);
      assert.strictEqual(server.getRegistration('q').binding, 'U');
      // and an Update does not turn it on for a 1.1 device registered without Q
      const other = await register(device, ['ep=r', 'lt=60', 'lwm2m=1.2', 'b=U'], '</3/0>');
      await update(other.locationPath[1], ['b=U', 'Q']);
      assert.strictEqual(server.getRegistration('r').queueMode, false);
    });

    it('still follows the binding of a 1.0 device', async () => {
      const res = await register(device, ['ep=old', 'lt=60', 'b=UQ'], '</3/0>');
      const id = res.locationPath[1];
      assert.strictEqual(server.getRegistration('old').queueMode, true);
      await update(id, ['b=U']);
      assert.strictEqual(server.getRegistration('old').queueMode, false);
      await update(id, ['b=UQ']);
      assert.strictEqual(server.getRegistration('old').queueMode, true);
    });
  });

  describe('G. bootstrap server', () => {
    let bs;
    beforeEach(() => {
      bs = new BootstrapServer({ transport: server.transport, sessionTimeoutMs: 5000, requestTimeoutMs: 1000 });
      server.setBootstrapHandler((ex) => bs.handle(ex));
      bs.setConfig({ endpoint: 'bs-dev', servers: [{ uri: 'coap://127.0.0.1:5683', shortServerId: 7, lifetime: 300, securityMode: 'nosec' }] });
    });
    afterEach(() => bs.stop());

    for (const code of ['4.05', '4.04', '4.00']) {
      it(`goes on without discover data when Bootstrap-Discover is answered ${code}`, async () => {
        const seen = answering(device, (req) => {
          if (req.method === 'GET') return { code };
          return { code: req.method === 'DELETE' ? '2.02' : '2.04' };
        });
        const events = [];
        bs.on('session', (e) => events.push(e));
        const finished = nextEvent(bs, 'session', 5000, (e) => e.event === 'finished' || e.event === 'failed');
        const res = await device.request(serverPeer, { method: 'POST', path: '/bs', query: ['ep=bs-dev'] });
        assert.strictEqual(res.code, '2.04');
        const end = await finished;
        assert.strictEqual(end.event, 'finished', JSON.stringify(end));
        assert.deepStrictEqual(seen.map((r) => `${r.method} /${r.pathSegments.join('/')}`), [
          'GET /', 'DELETE /0', 'DELETE /1', 'PUT /0/0', 'PUT /1/0', 'POST /bs',
        ]);
        assert.ok(events.some((e) => e.event === 'step' && e.step === 'discover /' && e.code === code));
      });
    }

    it('still fails the session when the device does not answer the discover at all', async () => {
      device.setHandler(() => {});
      const ended = nextEvent(bs, 'session', 8000, (e) => e.event === 'finished' || e.event === 'failed');
      await device.request(serverPeer, { method: 'POST', path: '/bs', query: ['ep=bs-dev'] });
      const end = await ended;
      assert.deepStrictEqual([end.event, end.step], ['failed', 'discover /']);
    });

    it('answers the Bootstrap-Request of an endpoint without a configuration with 4.00', async () => {
      const failed = nextEvent(bs, 'session', 2000);
      const res = await device.request(serverPeer, { method: 'POST', path: '/bs', query: ['ep=stranger'] });
      assert.strictEqual(res.code, '4.00');
      assert.match(res.payload.toString(), /no bootstrap configuration for stranger/);
      const e = await failed;
      assert.deepStrictEqual([e.event, e.step, e.code], ['failed', 'request', '4.00']);
    });
  });

  describe('H. active cancel of a composite observation', () => {
    it('sends FETCH with Observe 1, the same token, path list and content format', async () => {
      const values = [
        { path: { objectId: 3, instanceId: 0, resourceId: 9 }, value: 80 },
        { path: { objectId: 3303, instanceId: 0, resourceId: 5700 }, value: 21.5 },
      ];
      const seen = answering(device, (req) => ({ code: '2.05', contentFormat: 110, payload: encodeRecords('senml-json', values, { basePath: { objectId: 0 } }) }));
      await register(device, ['ep=c', 'lwm2m=1.1'], '</>;ct=110,</3/0>,</3303/0>');
      const started = await server.observeComposite('c', ['/3/0/9', '/3303/0/5700']);
      assert.deepStrictEqual(started.value, { '/3/0/9': 80, '/3303/0/5700': 21.5 });
      await server.cancelObservation('c', ['/3/0/9', '/3303/0/5700'], { active: true });
      assert.strictEqual(seen.length, 2);
      const [start, cancel] = seen;
      assert.deepStrictEqual([start.method, start.observe], ['FETCH', 0]);
      assert.deepStrictEqual([cancel.method, cancel.observe, cancel.pathSegments], ['FETCH', 1, []]);
      assert.strictEqual(cancel.token.toString('hex'), start.token.toString('hex'));
      assert.strictEqual(cancel.token.toString('hex'), started.observationId);
      assert.deepStrictEqual([cancel.contentFormat, cancel.accept], [110, 110]);
      assert.deepStrictEqual(cancel.payload, start.payload);
      assert.deepStrictEqual(JSON.parse(cancel.payload.toString()), [{ n: '/3/0/9' }, { n: '/3303/0/5700' }]);
      assert.strictEqual(server.listObservations('c').length, 0);
    });

    it('still cancels a single-path observation with GET and Observe 1', async () => {
      const seen = answering(device, () => ({ code: '2.05', contentFormat: 0, payload: Buffer.from('20') }));
      await register(device, ['ep=g', 'lwm2m=1.1'], '</3303/0>');
      await server.observe('g', '/3303/0/5700');
      await server.cancelObservation('g', '/3303/0/5700', { active: true });
      assert.deepStrictEqual(seen.map((r) => [r.method, r.observe, r.pathSegments.join('/')]), [['GET', 0, '3303/0/5700'], ['GET', 1, '3303/0/5700']]);
      assert.strictEqual(seen[1].token.toString('hex'), seen[0].token.toString('hex'));
    });
  });

  describe('I. write-attributes checks', () => {
    let seen;
    beforeEach(async () => {
      seen = answering(device, () => ({ code: '2.04' }));
      await register(device, ['ep=w', 'lwm2m=1.1'], '</3/0>,</3303/0>,</31024/0>');
    });

    it('refuses inconsistent or misplaced attributes before sending anything', async () => {
      const cases = [
        ['/3303/0/5700', { pmin: 60, pmax: 10 }, /pmin \(60\) must not be greater than pmax \(10\)/],
        ['/3303/0/5700', { epmin: 5, epmax: 1 }, /epmin \(5\) must not be greater than epmax \(1\)/],
        ['/3303/0/5700', { lt: 30, gt: 20 }, /lt \(30\) must be less than gt \(20\)/],
        ['/3303/0/5700', { lt: 20, gt: 20 }, /lt \(20\) must be less than gt \(20\)/],
        ['/3303/0/5700', { lt: 10, gt: 20, st: 5 }, /lt \+ 2·st/],
        ['/3303/0/5700', { pmin: -1 }, /pmin must not be negative/],
        ['/3303/0/5700', { st: -0.5 }, /st must not be negative/],
        ['/3303/0/5700', { epmax: -3 }, /epmax must not be negative/],
        ['/3303/0/5700', { pmax: 1.5 }, /whole number/],
        ['/3303/0/5700', { pmin: '10' }, /pmin must be a number or null/],
        ['/3/0/0', { gt: 5 }, /numeric resources only, and this one is string/],
        ['/3303/0/5701', { st: 1 }, /numeric resources only/],
        ['/3303/0', { lt: 1 }, /not to an object or instance/],
        ['/3303/0/5700', {}, /at least one of/],
      ];
      for (const [path, attrs, reason] of cases) {
        await assert.rejects(server.writeAttributes('w', path, attrs), (err) => err instanceof Lwm2mError && reason.test(err.message), `${path} ${JSON.stringify(attrs)}`);
      }
      assert.strictEqual(seen.length, 0, 'nothing was sent');
    });

    it('sends consistent attributes, negative thresholds, and bare keys for null (remove)', async () => {
      await server.writeAttributes('w', '/3303/0/5700', { pmin: 10, pmax: 60, lt: -5, gt: 30, st: 2 });
      await server.writeAttributes('w', '/3303/0/5700', { pmin: null, gt: null, pmax: 30 });
      await server.writeAttributes('w', '/3303/0', { pmin: 5, pmax: 5 });
      await server.writeAttributes('w', '/31024/0/5', { gt: 1 }); // type unknown to the registry
      await server.writeAttributes('w', '/3/0/0', { gt: null }); // removing is fine anywhere
      assert.deepStrictEqual(seen.map((r) => [r.method, r.pathSegments.join('/'), r.query]), [
        ['PUT', '3303/0/5700', ['pmin=10', 'pmax=60', 'gt=30', 'lt=-5', 'st=2']],
        ['PUT', '3303/0/5700', ['pmin', 'pmax=30', 'gt']],
        ['PUT', '3303/0', ['pmin=5', 'pmax=5']],
        ['PUT', '31024/0/5', ['gt=1']],
        ['PUT', '3/0/0', ['gt']],
      ]);
    });
  });

  describe('J. Send with time stamps', () => {
    it('emits every time-stamped record of a Send, each with its time', async () => {
      await register(device, ['ep=t', 'lwm2m=1.1'], '</3303/0>');
      const sent = nextEvent(server, 'send');
      const payload = Buffer.from(JSON.stringify([
        { bn: '/3303/0/5700', bt: 1700000000, v: 20 }, { t: 60, v: 21 }, { t: 120, v: 22 },
      ]));
      const res = await device.request(serverPeer, { method: 'POST', path: '/dp', contentFormat: 110, payload });
      assert.strictEqual(res.code, '2.04');
      const event = await sent;
      assert.deepStrictEqual(event.records.map((r) => [r.value, r.time]), [[20, 1700000000], [21, 1700000060], [22, 1700000120]]);
      assert.deepStrictEqual(event.value, { '/3303/0/5700': 22 });
      assert.strictEqual(event.format, 'senml-json');
    });
  });
});
