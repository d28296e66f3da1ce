'use strict';
// Conformance of the software client (LwM2M 1.1 Core): what it announces at Register, how it retries,
// Discover, Write-Attributes, Execute arguments and value checks on Write. Raw checks use a tiny
// UDP "server" built on coap-packet that plays the LwM2M server and records what the client sends.
const assert = require('assert');
const dgram = require('dgram');
const { parse, generate } = require('coap-packet');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const fs = require('fs');
const os = require('os');
const pathModule = require('path');
const { Bc66Driver, Bc66Emulator, Bc66Lwm2m, startPtyPair } = require('../../dist/bc66');

const uint = (n) => {
  if (n === 0) return Buffer.alloc(0);
  const bytes = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from(bytes);
};
const readUint = (buf) => [...buf].reduce((acc, b) => acc * 256 + b, 0);
const option = (packet, name) => packet.options.filter((o) => o.name === name).map((o) => o.value);

/**
 * A minimal LwM2M server on loopback: `onRequest(packet)` returns the answer ({ code, options, payload })
 * to each request the client sends; `request()` sends a request to the client and resolves with its answer.
 */
class RawServer {
  constructor(onRequest) {
    this.onRequest = onRequest;
    this.requests = [];
    this.pending = new Map();
    this.nextMid = 1;
    this.socket = dgram.createSocket('udp4');
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf, rinfo));
  }

  start() {
    return new Promise((resolve) => this.socket.bind(0, '127.0.0.1', () => resolve(this.socket.address().port)));
  }

  stop() {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  onMessage(buf, rinfo) {
    const packet = parse(buf);
    const key = packet.token.toString('hex');
    if (packet.code.startsWith('2.') || packet.code.startsWith('4.') || packet.code.startsWith('5.')) {
      const waiter = this.pending.get(key);
      if (waiter) {
        this.pending.delete(key);
        waiter(packet);
      }
      return;
    }
    if (packet.ack || packet.reset) return;
    this.client = rinfo;
    const path = option(packet, 'Uri-Path').map((v) => v.toString()).join('/');
    this.requests.push({ at: Date.now(), packet, path });
    const answer = this.onRequest(packet, path) ?? { code: '2.04' };
    this.socket.send(generate({
      messageId: packet.messageId, token: packet.token, ack: true, code: answer.code,
      options: answer.options ?? [], payload: answer.payload ?? Buffer.alloc(0),
    }), rinfo.port, rinfo.address);
  }

  /** Sends a confirmable request to the client; resolves with its (piggybacked) answer. */
  request(method, path, { query = [], accept, contentFormat, payload } = {}) {
    const token = Buffer.from([0xa0, this.nextMid & 0xff, (this.nextMid >> 8) & 0xff, 0x5a]);
    const options = [
      ...path.split('/').filter(Boolean).map((s) => ({ name: 'Uri-Path', value: Buffer.from(s) })),
      ...(contentFormat !== undefined ? [{ name: 'Content-Format', value: uint(contentFormat) }] : []),
      ...query.map((q) => ({ name: 'Uri-Query', value: Buffer.from(q) })),
      ...(accept !== undefined ? [{ name: 'Accept', value: uint(accept) }] : []),
    ];
    const message = generate({ messageId: this.nextMid++, token, confirmable: true, code: method, options, payload: payload ?? Buffer.alloc(0) });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} ${path}`)), 3000);
      this.pending.set(token.toString('hex'), (p) => {
        clearTimeout(timer);
        resolve(p);
      });
      this.socket.send(message, this.client.port, this.client.address);
    });
  }
}

/** Answers Register with 2.01 /rd/1, and Update/Deregister with 2.04/2.02. */
const acceptingServer = () => new RawServer((packet, path) => {
  if (packet.code === '0.02' && path === 'rd') return { code: '2.01', options: [{ name: 'Location-Path', value: Buffer.from('rd') }, { name: 'Location-Path', value: Buffer.from('1') }] };
  if (packet.code === '0.04') return { code: '2.02' };
  return { code: '2.04' };
});

describe('software client conformance', function () {
  this.timeout(15000);
  const started = [];
  afterEach(async () => {
    for (const s of started.splice(0).reverse()) await s.stop().catch(() => {});
  });

  async function rawSetup(clientOptions = {}) {
    const raw = acceptingServer();
    const port = await raw.start();
    started.push(raw);
    const client = new Lwm2mClient({ endpoint: 'conf', server: { host: '127.0.0.1', port }, lifetime: 60, localAddress: '127.0.0.1', ...clientOptions });
    client.on('warning', () => {});
    started.push(client);
    return { raw, client };
  }

  describe('16a: content format announced at Register', () => {
    const rootLink = (raw) => {
      const reg = raw.requests.find((r) => r.path === 'rd');
      return reg.packet.payload.toString().split(',')[0];
    };

    it('announces one ct on </> chosen by the LwM2M version, or the configured one, or none', async () => {
      const cases = [
        [{}, '</>;rt="oma.lwm2m";ct=110'],
        [{ lwm2mVersion: '1.2' }, '</>;rt="oma.lwm2m";ct=110'],
        [{ lwm2mVersion: '1.0' }, '</>;rt="oma.lwm2m"'],
        [{ advertisedFormat: 112 }, '</>;rt="oma.lwm2m";ct=112'],
        [{ advertisedFormat: 11542, lwm2mVersion: '1.0' }, '</>;rt="oma.lwm2m";ct=11542'],
        [{ advertisedFormat: null }, '</>;rt="oma.lwm2m"'],
      ];
      for (const [opts, expected] of cases) {
        const { raw, client } = await rawSetup(opts);
        await client.start();
        assert.strictEqual(rootLink(raw), expected, JSON.stringify(opts));
        await client.stop();
      }
      assert.throws(() => new Lwm2mClient({ endpoint: 'x', server: { host: '127.0.0.1', port: 5683 }, advertisedFormat: 9999 }), /advertisedFormat/);
    });

    it('still answers in every format it supports when the server asks with Accept', async () => {
      const { raw, client } = await rawSetup();
      await client.start();
      for (const accept of [110, 112, 11542, 11543, 11544]) {
        const answer = await raw.request('GET', '/3/0', { accept });
        assert.strictEqual(answer.code, '2.05', `Accept ${accept}`);
        assert.strictEqual(readUint(option(answer, 'Content-Format')[0]), accept);
      }
      const text = await raw.request('GET', '/3/0/0', { accept: 0 });
      assert.deepStrictEqual([text.code, text.payload.toString()], ['2.05', 'node-red-contrib-lwm2m-kit']);
    });

    it('registers with this package\'s server, which negotiates SenML JSON from the announcement', async () => {
      const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 2000 });
      server.on('warning', () => {});
      await server.start();
      started.push(server);
      const client = new Lwm2mClient({ endpoint: 'conf', server: { host: '127.0.0.1', port: server.address().port }, localAddress: '127.0.0.1' });
      client.on('warning', () => {});
      started.push(client);
      await client.start();
      assert.deepStrictEqual(server.getRegistration('conf').supportedFormats, [110]);
      assert.deepStrictEqual((await server.read('conf', '/3/0')).value[0], 'node-red-contrib-lwm2m-kit');
    });
  });

  describe('16b: registration retries', () => {
    it('backs off exponentially with jitter up to the configured maximum, and registers once the server accepts', async function () {
      this.timeout(10000);
      let refuse = true;
      const raw = new RawServer((packet, path) => {
        if (path !== 'rd') return { code: '2.04' };
        if (refuse) return { code: '4.00' };
        return { code: '2.01', options: [{ name: 'Location-Path', value: Buffer.from('rd') }, { name: 'Location-Path', value: Buffer.from('7') }] };
      });
      const port = await raw.start();
      started.push(raw);
      const client = new Lwm2mClient({ endpoint: 'retry', server: { host: '127.0.0.1', port }, localAddress: '127.0.0.1', retryDelayMs: [100, 800] });
      client.on('warning', () => {});
      started.push(client);
      await assert.rejects(client.start(), /registration refused: 4.00/);
      await new Promise((r) => setTimeout(r, 3600));
      const times = raw.requests.filter((r) => r.path === 'rd').map((r) => r.at);
      const gaps = times.slice(1).map((t, i) => t - times[i]);
      // bases 100, 200, 400, 800, 800…, each wait within ±25 % of its base and never above 800 (+ timer slack)
      assert.ok(gaps.length >= 5 && gaps.length <= 8, `gaps ${gaps}`);
      [100, 200, 400, 800].forEach((base, i) => {
        assert.ok(gaps[i] >= base * 0.75 - 5 && gaps[i] <= Math.min(base * 1.25, 800) + 40, `gap ${i} is ${gaps[i]} ms, base ${base} (gaps ${gaps})`);
      });
      for (let i = 1; i < 4; i++) assert.ok(gaps[i] > gaps[i - 1], `gaps grow: ${gaps}`);
      for (const g of gaps.slice(4)) assert.ok(g >= 600 - 5 && g <= 840, `capped at 800 ms: ${gaps}`);
      // the server accepts: the next retry registers
      refuse = false;
      await new Promise((resolve) => client.once('registered', resolve));
      assert.strictEqual(client.registrationLocation, '/rd/7');
    });
  });

  describe('17: Discover', () => {
    async function realSetup() {
      const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 2000 });
      server.on('warning', () => {});
      await server.start();
      started.push(server);
      const client = new Lwm2mClient({ endpoint: 'disc', server: { host: '127.0.0.1', port: server.address().port }, localAddress: '127.0.0.1' });
      client.on('warning', () => {});
      started.push(client);
      return { server, client };
    }
    const uris = (links) => links.map((l) => l.uri);
    const link = (links, uri) => links.find((l) => l.uri === uri);

    it('lists the resources the emulator declared (AT+QLWADDOBJ), and shows attributes written to them', async function () {
      this.timeout(20000);
      const dir = fs.mkdtempSync(pathModule.join(os.tmpdir(), 'conf-emu-'));
      const pty = await startPtyPair(pathModule.join(dir, 'modem'), pathModule.join(dir, 'host'));
      const emulator = new Bc66Emulator({ path: pty.a, imei: '866425030022222', localAddress: '127.0.0.1' });
      emulator.on('warning', () => {});
      await emulator.start();
      const driver = new Bc66Driver({ path: pty.b, commandTimeoutMs: 3000 });
      await driver.open();
      const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 2000 });
      server.on('warning', () => {});
      await server.start();
      started.push({ stop: async () => { await driver.close(); await emulator.stop(); await pty.stop(); await server.stop(); fs.rmSync(dir, { recursive: true, force: true }); } });
      const device = new Bc66Lwm2m(driver, {
        serverHost: '127.0.0.1', serverPort: server.address().port, mode: 'direct', lifetime: 120, security: 'nosec',
        objects: [{ objectId: 3303, instanceId: 0, resources: [5700, 5701, 5605] }], autoRegister: false, networkPollMs: 50,
      });
      device.on('warning', () => {});
      await device.start();
      const registered = new Promise((resolve) => server.once('register', resolve));
      await device.register();
      await registered;
      const ep = 'urn:imei:866425030022222';
      const instance = await server.discover(ep, '/3303/0');
      assert.deepStrictEqual(uris(instance.links), ['/3303/0', '/3303/0/5605', '/3303/0/5700', '/3303/0/5701']);
      const object = await server.discover(ep, '/3303');
      assert.deepStrictEqual(uris(object.links), ['/3303', '/3303/0', '/3303/0/5605', '/3303/0/5700', '/3303/0/5701']);
      assert.strictEqual((await server.writeAttributes(ep, '/3303/0/5700', { pmin: 5, gt: 30 })).code, '2.04');
      const resource = await server.discover(ep, '/3303/0/5700');
      assert.deepStrictEqual(resource.links, [{ uri: '/3303/0/5700', params: { pmin: '5', gt: '30' } }]);
      assert.deepStrictEqual(link((await server.discover(ep, '/3303/0')).links, '/3303/0/5700').params, { pmin: '5', gt: '30' });
      // something the device does not have: 4.04 for both
      await assert.rejects(server.writeAttributes(ep, '/3303/0/5601', { pmin: 1 }), (e) => e.code === '4.04');
      await assert.rejects(server.discover(ep, '/3303/0/5601'), (e) => e.code === '4.04');
    });

    it('shows dim, the executable resources it implements, and attributes inherited on a resource', async () => {
      const { server, client } = await realSetup();
      client.setInstance(3303, 0, { 5700: 20 });
      await client.start();
      const device = await server.discover('disc', '/3/0');
      assert.ok(uris(device.links).includes('/3/0/4'), 'Reboot is listed');
      assert.deepStrictEqual(link(device.links, '/3/0/11').params, { dim: '1' });
      assert.ok(uris((await server.discover('disc', '/1/0')).links).includes('/1/0/8'), 'Registration Update Trigger is listed');
      assert.strictEqual((await server.writeAttributes('disc', '/3303', { pmin: 10 })).code, '2.04');
      assert.strictEqual((await server.writeAttributes('disc', '/3303/0', { pmax: 60 })).code, '2.04');
      assert.strictEqual((await server.writeAttributes('disc', '/3303/0/5700', { gt: 50 })).code, '2.04');
      assert.deepStrictEqual((await server.discover('disc', '/3303/0/5700')).links, [{ uri: '/3303/0/5700', params: { pmin: '10', pmax: '60', gt: '50' } }]);
      const object = (await server.discover('disc', '/3303')).links;
      assert.deepStrictEqual([link(object, '/3303').params, link(object, '/3303/0').params, link(object, '/3303/0/5700').params],
        [{ ver: '1.1', pmin: '10' }, { pmax: '60' }, { gt: '50' }]);
    });
  });

  describe('20: Write-Attributes, Execute arguments and values on the client', () => {
    const put = (raw, path, ...query) => raw.request('PUT', path, { query }).then((a) => a.code);
    const discover = (raw, path) => raw.request('GET', path, { accept: 40 }).then((a) => a.payload.toString());

    it('refuses inconsistent attributes, thresholds on non-numeric targets and bad numbers with 4.00', async () => {
      const { raw, client } = await rawSetup();
      client.setInstance(3303, 0, { 5700: 20, 5750: 'lab' });
      await client.start();
      const refused = [
        ['/3303/0/5700', 'pmin=10', 'pmax=5'],
        ['/3303/0/5700', 'epmin=10', 'epmax=5'],
        ['/3303/0/5700', 'lt=10', 'gt=5'],
        ['/3303/0/5700', 'lt=10', 'gt=10'],
        ['/3303/0/5700', 'lt=10', 'gt=20', 'st=5'], // lt + 2·st must stay below gt
        ['/3303/0/5750', 'gt=5'], // a string resource
        ['/3303/0', 'st=1'], // not a resource
        ['/3303', 'lt=1'],
        ['/3303/0/5700', 'pmin=-1'],
        ['/3303/0/5700', 'pmin=abc'],
        ['/3303/0/5700', 'pmin=0x10'],
        ['/3303/0/5700', 'st=-1'],
        ['/3303/0/5700', 'foo=1'],
      ];
      for (const [path, ...query] of refused) assert.strictEqual(await put(raw, path, ...query), '4.00', `${path}?${query.join('&')}`);
      assert.strictEqual(await discover(raw, '/3303/0/5700'), '</3303/0/5700>', 'nothing of the refused writes was kept');
      assert.strictEqual(await put(raw, '/3303/0/5700', 'lt=10', 'gt=20', 'st=4.5', 'pmin=2', 'pmax=2'), '2.04');
      assert.strictEqual(await put(raw, '/3303/0/5700', 'gt=-3'), '4.00', 'the combination with the stored lt is checked too');
      assert.strictEqual(await discover(raw, '/3303/0/5700'), '</3303/0/5700>;pmin=2;pmax=2;gt=20;lt=10;st=4.5');
    });

    it('removes an attribute given without a value', async () => {
      const { raw, client } = await rawSetup();
      client.setInstance(3303, 0, { 5700: 20 });
      await client.start();
      assert.strictEqual(await put(raw, '/3303/0/5700', 'pmin=10', 'pmax=60', 'gt=30'), '2.04');
      assert.strictEqual(await put(raw, '/3303/0/5700', 'pmax', 'gt'), '2.04');
      assert.strictEqual(await discover(raw, '/3303/0/5700'), '</3303/0/5700>;pmin=10');
      assert.strictEqual(await put(raw, '/3303/0/5700', 'pmax=5'), '4.00', 'pmin 10 is still there');
      assert.strictEqual(await put(raw, '/3303/0/5700', 'pmin'), '2.04');
      assert.strictEqual(await discover(raw, '/3303/0/5700'), '</3303/0/5700>');
    });

    it('checks the syntax of Execute arguments (Core §5.4.5) and hands them over parsed', async () => {
      const { raw, client } = await rawSetup();
      client.setInstance(3303, 0, { 5700: 20 });
      const seen = [];
      client.setHandlers({ execute: async (path, args, parsed) => { seen.push([args, parsed]); return '2.04'; } });
      await client.start();
      const exec = (args) => raw.request('POST', '/3303/0/5605', { payload: Buffer.from(args), contentFormat: args ? 0 : undefined }).then((a) => a.code);
      for (const bad of ['now', '10', '0=x', "0='x", "0='a b'", '0,', ',0', "0='x'1", '0;1']) assert.strictEqual(await exec(bad), '4.00', bad);
      assert.deepStrictEqual(seen, [], 'bad arguments never reach the handler');
      assert.strictEqual(await exec("0='x',1"), '2.04');
      assert.strictEqual(await exec("5='a,b=c',9=''"), '2.04');
      assert.strictEqual(await exec(''), '2.04');
      assert.deepStrictEqual(seen, [
        ["0='x',1", [{ digit: 0, value: 'x' }, { digit: 1 }]],
        ["5='a,b=c',9=''", [{ digit: 5, value: 'a,b=c' }, { digit: 9, value: '' }]],
        ['', []],
      ]);
      const emitted = new Promise((resolve) => client.once('execute', (...a) => resolve(a)));
      assert.strictEqual(await exec('3'), '2.04');
      assert.deepStrictEqual(await emitted, ['/3303/0/5605', '3', [{ digit: 3 }]]);
    });

    it('refuses a non-integer written to an Integer resource, in text and in SenML', async () => {
      const { raw, client } = await rawSetup();
      await client.start();
      const write = (format, payload) => raw.request('PUT', '/1/0/1', { contentFormat: format, payload: Buffer.from(payload) }).then((a) => a.code);
      assert.strictEqual(await write(0, '12.5'), '4.00');
      assert.strictEqual(await write(110, '[{"bn":"/1/0/1","v":12.5}]'), '4.00');
      assert.strictEqual(client.getValue('/1/0/1'), 60, 'the lifetime is unchanged');
      assert.strictEqual(await write(0, '120'), '2.04');
      assert.strictEqual(client.getValue('/1/0/1'), 120);
    });
  });
});
