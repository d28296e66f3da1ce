'use strict';
// Two Node-RED instances (child processes) whose lwm2m-server nodes keep their registrations in a
// real redis-server, behind a real nginx UDP load balancer with source-address affinity (`hash
// $remote_addr consistent`, as the README's how-to): 1,000 software clients, each on a loopback
// address of its own, register through the balancer; a flow on each instance reads devices that
// registered through the other; one instance is killed: no registration is lost, the survivor's
// flow keeps reading, the devices that talked to the dead one reach the survivor at their next
// Update and their observations start again there; the killed instance comes back with every
// registration. Skipped when redis-server or nginx (with its stream module) is not installed.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { delay, freeTcpPort, freeUdpPort } = require('../helpers');
const { hasRedis, startRedis } = require('./redis-server');

const ROOT = path.join(__dirname, '..', '..');
const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const DEVICES = Number(process.env.FLEET_DEVICES || 1000);

function hasNginx() {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    return fs.existsSync(STREAM_MODULE);
  } catch {
    return false;
  }
}


/** A device's own loopback address: 127.1.x.y (Linux answers on all of 127.0.0.0/8). */
function addressOf(i) {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function flow(name, port, redisUrl) {
  return [
    { id: 't1', type: 'tab', label: name },
    { id: 'srv', type: 'lwm2m-server', name, address: '127.0.0.1', port, securePort: '', timeout: 5, store: 'redis', redisUrl, redisPrefix: 'e2e:', instanceId: name },
    { id: 'in-read', z: 't1', type: 'http in', url: '/read', method: 'get', wires: [['to-read']] },
    { id: 'to-read', z: 't1', type: 'function', func: 'msg.endpoint = msg.req.query.ep; msg.path = msg.req.query.path; return msg;', outputs: 1, wires: [['read']] },
    { id: 'read', z: 't1', type: 'lwm2m-read', role: 'server', server: 'srv', endpoint: '', path: '', format: 'auto', wires: [['reply']] },
    { id: 'catcher', z: 't1', type: 'catch', scope: ['read'], uncaught: false, wires: [['failed']] },
    { id: 'failed', z: 't1', type: 'function', func: 'msg.statusCode = 502; msg.payload = { error: msg.error.message, code: msg.code }; return msg;', outputs: 1, wires: [['reply']] },
    { id: 'reply', z: 't1', type: 'http response', statusCode: '', wires: [] },
    { id: 'obs', z: 't1', type: 'lwm2m-observe', role: 'server', server: 'srv', endpoint: '', path: '', format: 'auto', autoObserve: true, autoPaths: '/3303/0/5700', wires: [['note']] },
    { id: 'note', z: 't1', type: 'function', func: "if (msg.topic === 'notify') { const n = flow.get('notes') || {}; n[msg.endpoint] = msg.payload; flow.set('notes', n); } return null;", outputs: 1, wires: [[]] },
    { id: 'in-notes', z: 't1', type: 'http in', url: '/notes', method: 'get', wires: [['notes']] },
    { id: 'notes', z: 't1', type: 'function', func: "msg.payload = flow.get('notes') || {}; return msg;", outputs: 1, wires: [['reply']] },
  ];
}

class Instance {
  constructor(name, dir, redisUrl) {
    this.name = name;
    this.dir = path.join(dir, name);
    this.redisUrl = redisUrl;
    this.output = [];
  }

  async start() {
    if (!this.uiPort) {
      this.uiPort = await freeTcpPort();
      this.port = await freeUdpPort();
      fs.mkdirSync(path.join(this.dir, 'node_modules'), { recursive: true });
      fs.symlinkSync(ROOT, path.join(this.dir, 'node_modules', 'node-red-contrib-lwm2m-kit'), 'dir');
      fs.writeFileSync(path.join(this.dir, 'settings.js'), `module.exports = { uiPort: ${this.uiPort}, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,
        editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } }, telemetry: { enabled: false, updateNotification: false }, logging: { console: { level: 'warn' } } };`);
      fs.writeFileSync(path.join(this.dir, 'flows.json'), JSON.stringify(flow(this.name, this.port, this.redisUrl)));
    }
    this.process = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', this.dir], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout.on('data', (c) => this.output.push(c.toString()));
    this.process.stderr.on('data', (c) => this.output.push(c.toString()));
    for (let i = 0; ; i++) {
      const servers = await this.get('lwm2m/servers').catch(() => null);
      if (servers && servers[0] && servers[0].running) return servers[0];
      if (i > 300) throw new Error(`${this.name} did not start:\n${this.output.join('')}`);
      await delay(100);
    }
  }

  async get(url) {
    const res = await fetch(`http://127.0.0.1:${this.uiPort}/${url}`);
    return res.json();
  }

  /** A read through this instance's flow (http in → lwm2m-read → http response). */
  async read(endpoint, p) {
    const res = await fetch(`http://127.0.0.1:${this.uiPort}/read?ep=${encodeURIComponent(endpoint)}&path=${encodeURIComponent(p)}`, { signal: AbortSignal.timeout(30000) });
    return { status: res.status, body: await res.json() };
  }

  async devices() {
    const servers = await this.get('lwm2m/servers');
    return servers[0].devices;
  }

  /** Every device with the instance it talks to. */
  async owners() {
    const out = new Map();
    for (let offset = 0; ; offset += 200) {
      const page = await this.get(`lwm2m/servers/srv/devices?offset=${offset}&limit=200`);
      for (const d of page.devices) out.set(d.endpoint, d.instance);
      if (offset + 200 >= page.matched) return out;
    }
  }

  kill() {
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill('SIGKILL');
    return exited;
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill('SIGINT');
    await Promise.race([exited, delay(5000)]);
    if (this.process.exitCode === null) await this.kill();
  }
}

describe('a fleet: two Node-RED instances, Redis, and an nginx UDP load balancer', function () {
  this.timeout(180000);
  let redis;
  let dir;
  let nginx;
  let lbPort;
  const instances = {};
  const clients = [];

  before(async function () {
    if (!hasRedis() || !hasNginx()) {
      console.log('      (skipped: needs redis-server and nginx with its stream module; apt-get install redis-server nginx libnginx-mod-stream)');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-fleet-'));
    redis = await startRedis();
    instances.a = new Instance('node-a', dir, redis.url);
    instances.b = new Instance('node-b', dir, redis.url);
    await Promise.all([instances.a.start(), instances.b.start()]);
    lbPort = await freeUdpPort();
    // one worker, no daemon, everything in the test's directory
    fs.writeFileSync(path.join(dir, 'nginx.conf'), `load_module ${STREAM_MODULE};
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 8192; }
stream {
  upstream lwm2m {
    hash $remote_addr consistent;
    server 127.0.0.1:${instances.a.port} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:${instances.b.port} max_fails=1 fail_timeout=30s;
  }
  server {
    listen 127.0.0.1:${lbPort} udp;
    proxy_pass lwm2m;
    proxy_timeout 300s;
  }
}
`);
    nginx = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
    await delay(500);
    assert.strictEqual(nginx.exitCode, null, `nginx did not start: ${fs.existsSync(path.join(dir, 'nginx-error.log')) ? fs.readFileSync(path.join(dir, 'nginx-error.log'), 'utf8') : ''}`);
  });

  after(async () => {
    for (const c of clients.splice(0)) await c.stop({ deregister: false }).catch(() => {});
    await Promise.all(Object.values(instances).map((i) => i.stop()));
    if (nginx && nginx.exitCode === null) nginx.kill('SIGTERM');
    if (redis) await redis.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`registers ${DEVICES.toLocaleString('en')} devices through the balancer; both instances know all of them`, async () => {
    for (let i = 0; i < DEVICES; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, DEVICES - i) }, async (_, j) => {
        const n = i + j;
        const client = new Lwm2mClient({ endpoint: `fleet-${n}`, server: { host: '127.0.0.1', port: lbPort }, lifetime: 600, localAddress: addressOf(n), autoUpdate: false, requestTimeoutMs: 45000 });
        client.on('warning', () => {});
        client.setInstance(3303, 0, { 5700: n, 5701: 'Cel' });
        clients.push(client);
        await client.start();
      }));
    }
    for (let i = 0; i < 100 && ((await instances.a.devices()) < DEVICES || (await instances.b.devices()) < DEVICES); i++) await delay(100);
    assert.strictEqual(await instances.a.devices(), DEVICES);
    assert.strictEqual(await instances.b.devices(), DEVICES);
    const owners = await instances.a.owners();
    const counts = { 'node-a': 0, 'node-b': 0 };
    for (const owner of owners.values()) counts[owner]++;
    assert.ok(counts['node-a'] > DEVICES / 10 && counts['node-b'] > DEVICES / 10, `the balancer spread them: ${JSON.stringify(counts)}`);
  });

  it('reads, from a flow on each instance, devices that registered through the other', async () => {
    const owners = await instances.a.owners();
    const ofA = [...owners].filter(([, o]) => o === 'node-a').slice(0, 10).map(([e]) => e);
    const ofB = [...owners].filter(([, o]) => o === 'node-b').slice(0, 10).map(([e]) => e);
    for (const [instance, endpoints] of [[instances.a, ofB], [instances.b, ofA]]) {
      for (const ep of endpoints) {
        const r = await instance.read(ep, '/3303/0/5700');
        assert.strictEqual(r.status, 200, `${instance.name} reads ${ep}: ${JSON.stringify(r.body)}`);
        assert.strictEqual(r.body, Number(ep.slice('fleet-'.length)));
      }
    }
  });

  it('loses no registration when an instance is killed; the survivor takes over its devices\' observations at their next notification, and the devices at their next Update', async () => {
    const owners = await instances.a.owners();
    const ofA = [...owners].filter(([, o]) => o === 'node-a').map(([e]) => e);
    await instances.a.kill();
    assert.strictEqual(await instances.b.devices(), DEVICES, 'every registration still known');
    // the survivor's flow: its own devices as before; a device of the dead one, a clear error
    const ofB = [...owners].find(([, o]) => o === 'node-b')[0];
    assert.strictEqual((await instances.b.read(ofB, '/3303/0/5700')).status, 200);
    const stranded = await instances.b.read(ofA[0], '/3303/0/5700');
    assert.strictEqual(stranded.status, 502);
    // (down once its liveness mark lapses; until then the forwarded request times out)
    assert.match(stranded.body.error, /instance node-a(, which is down| did not answer)/);
    assert.match((await instances.b.read(ofA[1], '/3303/0/5700')).body.error, /node-a, which is down/, 'and then fails at once');
    // five of the dead instance's devices notify a new value: the balancer sends them to the
    // survivor, which takes their observations over (its flow's observe node, the same node as on
    // the dead one) and the devices with them, before any Update
    const notifying = ofA.slice(20, 25);
    let heard = {};
    for (let round = 0; round < 40; round++) {
      for (const ep of notifying) if (heard[ep] !== 2000 + round - 1) clients[Number(ep.slice(6))].setValue('/3303/0/5700', 2000 + round);
      await delay(500);
      heard = await instances.b.get('notes');
      if (notifying.every((ep) => typeof heard[ep] === 'number' && heard[ep] >= 2000)) break;
    }
    for (const ep of notifying) assert.ok(heard[ep] >= 2000, `${ep}'s notification reached node-b's flow: ${JSON.stringify(heard)}`);
    const taken = await instances.b.owners();
    for (const ep of notifying) {
      assert.strictEqual(taken.get(ep), 'node-b', `${ep} talks to node-b now`);
      assert.strictEqual((await instances.b.read(ep, '/3303/0/5700')).status, 200);
    }
    // 20 of the dead instance's devices send their Update: the balancer moves them to the survivor
    const moving = ofA.slice(0, 20);
    // (clients[n] is fleet-n: each was pushed before its first await)
    await Promise.all(moving.map((ep) => clients[Number(ep.slice(6))].update())).catch((err) => {
      if (process.env.FLEET_DEBUG) console.log(fs.readFileSync(path.join(dir, 'nginx-error.log'), 'utf8').split('\n').slice(-40).join('\n'), instances.b.output.join(''));
      throw err;
    });
    const after = await instances.b.owners();
    for (const ep of moving) assert.strictEqual(after.get(ep), 'node-b', `${ep} talks to node-b now`);
    for (const ep of moving.slice(0, 5)) {
      const r = await instances.b.read(ep, '/3303/0/5700');
      assert.strictEqual(r.status, 200, JSON.stringify(r.body));
    }
    // the survivor's auto-observe took them over: a new value is a notification in its flow
    await delay(500);
    for (const ep of moving.slice(0, 5)) clients[Number(ep.slice(6))].setValue('/3303/0/5700', 1000 + Number(ep.slice(6)));
    let notes = {};
    for (let i = 0; i < 50; i++) {
      notes = await instances.b.get('notes');
      if (moving.slice(0, 5).every((ep) => notes[ep] === 1000 + Number(ep.slice(6)))) break;
      await delay(100);
    }
    for (const ep of moving.slice(0, 5)) assert.strictEqual(notes[ep], 1000 + Number(ep.slice(6)), `${ep} notified node-b`);
  });

  it('brings the killed instance back with every registration, reading through the survivor', async () => {
    await instances.a.start();
    assert.strictEqual(await instances.a.devices(), DEVICES);
    const owners = await instances.a.owners();
    const ofB = [...owners].filter(([, o]) => o === 'node-b').slice(0, 5).map(([e]) => e);
    for (const ep of ofB) {
      const r = await instances.a.read(ep, '/3303/0/5700');
      assert.strictEqual(r.status, 200, `${ep}: ${JSON.stringify(r.body)}`);
    }
  });
});
