'use strict';
// The device browser's runtime side in a real Node-RED (a child process with adminAuth): routes
// guarded by lwm2m.read / lwm2m.write, answers in JSON for bad input, bounded pages, and live
// updates through the editor's comms WebSocket that a registration storm cannot flood.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const bcrypt = require('bcryptjs');
const WebSocket = require('ws');
const { Lwm2mClient } = require('../../dist/lwm2m/client');
const { freeUdpPort, freeTcpPort, delay } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');


describe('device browser routes and live updates (Node-RED with adminAuth)', function () {
  this.timeout(60000);
  let red;
  let dir;
  let base;
  let lwm2mPort;
  const clients = [];
  const tokens = {};
  const output = [];

  async function http(method, url, { token, body } = {}) {
    const res = await fetch(base + url, {
      method,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json };
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-admin-'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'node-red-contrib-lwm2m-kit'), 'dir');
    const uiPort = await freeTcpPort();
    lwm2mPort = await freeUdpPort();
    base = `http://127.0.0.1:${uiPort}/`;
    const hash = bcrypt.hashSync('secret-pass', 4);
    fs.writeFileSync(path.join(dir, 'settings.js'), `module.exports = {
  uiPort: ${uiPort}, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,
  adminAuth: { type: 'credentials', users: [
    { username: 'admin', password: ${JSON.stringify(hash)}, permissions: '*' },
    { username: 'viewer', password: ${JSON.stringify(hash)}, permissions: 'read' },
  ] },
  editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } },
  telemetry: { enabled: false, updateNotification: false },
  logging: { console: { level: 'warn' } },
};`);
    fs.writeFileSync(path.join(dir, 'flows.json'), JSON.stringify([
      { id: 't1', type: 'tab', label: 'admin' },
      { id: 'srv', type: 'lwm2m-server', name: 'test server', address: '127.0.0.1', port: lwm2mPort, securePort: '', timeout: 3, bootstrap: true },
      { id: 'reg', z: 't1', type: 'lwm2m-register', server: 'srv', wires: [[]] },
    ]));
    red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', dir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    red.stdout.on('data', (c) => output.push(c.toString()));
    red.stderr.on('data', (c) => output.push(c.toString()));
    for (let i = 0; ; i++) {
      const { status } = await http('GET', 'lwm2m/servers').catch(() => ({ status: 0 }));
      if (status === 401) break;
      if (i > 200) throw new Error(`Node-RED did not start:\n${output.join('')}`);
      await delay(100);
    }
    for (const user of ['admin', 'viewer']) {
      const res = await fetch(`${base}auth/token`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: user === 'admin' ? '*' : 'read', username: user, password: 'secret-pass' }),
      });
      tokens[user] = (await res.json()).access_token;
      assert.ok(tokens[user], `a token for ${user}`);
    }
    const client = new Lwm2mClient({ endpoint: 'browser-dev-1', server: { host: '127.0.0.1', port: lwm2mPort }, lifetime: 300, localAddress: '127.0.0.1' });
    client.on('warning', () => {});
    client.setInstance(3303, 0, { 5700: 21.5, 5701: 'Cel', 5750: 'lab' });
    clients.push(client);
    await client.start();
  });

  after(async () => {
    for (const c of clients.splice(0)) await c.stop().catch(() => {});
    if (red && red.exitCode === null) {
      const exited = new Promise((resolve) => red.once('exit', resolve));
      red.kill('SIGINT');
      await Promise.race([exited, delay(5000)]);
      if (red.exitCode === null) red.kill('SIGKILL');
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses every route without a login', async () => {
    for (const [method, url] of [['GET', 'lwm2m/servers'], ['GET', 'lwm2m/servers/srv/devices'], ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/read'], ['GET', 'lwm2m/model']]) {
      assert.strictEqual((await http(method, url, { body: method === 'POST' ? { path: '/3/0/0' } : undefined })).status, 401, `${method} ${url}`);
    }
  });

  it('lets a read-only user list, read and observe, but not write or execute', async () => {
    const token = tokens.viewer;
    const servers = await http('GET', 'lwm2m/servers', { token });
    assert.strictEqual(servers.status, 200);
    assert.deepStrictEqual(servers.json.map((s) => [s.id, s.name, s.running, s.devices, s.port]), [['srv', 'test server', true, 1, lwm2mPort]]);
    const page = await http('GET', 'lwm2m/servers/srv/devices', { token });
    assert.deepStrictEqual(page.json.devices.map((d) => d.endpoint), ['browser-dev-1']);
    const device = await http('GET', 'lwm2m/servers/srv/devices/browser-dev-1', { token });
    assert.deepStrictEqual(device.json.objects.find((o) => o.id === 3303), { id: 3303, name: 'Temperature', instances: [0] });
    const read = await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/read', { token, body: { path: '/3303/0/5700' } });
    assert.deepStrictEqual(read.json, { code: '2.05', format: read.json.format, value: 21.5 });
    assert.strictEqual((await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/write', { token, body: { path: '/3303/0/5750', value: 'x' } })).status, 401);
    assert.strictEqual((await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/execute', { token, body: { path: '/3303/0/5605' } })).status, 401);
    assert.strictEqual(clients[0].getValue('/3303/0/5750'), 'lab', 'nothing written');
  });

  it('lets an admin write (typed by the model) and execute', async () => {
    const token = tokens.admin;
    const write = await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/write', { token, body: { path: '/3303/0/5750', value: 'greenhouse' } });
    assert.strictEqual(write.status, 200, JSON.stringify(write.json));
    assert.strictEqual(clients[0].getValue('/3303/0/5750'), 'greenhouse');
    // Registration Update Trigger: the device answers 2.04 and sends an Update
    const updated = new Promise((resolve) => clients[0].once('updated', resolve));
    const execute = await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/execute', { token, body: { path: '/1/0/8' } });
    assert.deepStrictEqual(execute.json, { code: '2.04' });
    await Promise.race([updated, delay(3000).then(() => assert.fail('no Update after the trigger'))]);
    const model = await http('GET', 'lwm2m/model/3303?server=srv', { token });
    assert.deepStrictEqual(model.json.resources.find((r) => r.id === 5700), { id: 5700, name: 'Sensor Value', operations: 'R', type: 'float', multiple: false, mandatory: true });
  });

  it('answers bad input with a JSON error, never a crash', async () => {
    const token = tokens.admin;
    const cases = [
      ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/read', { path: '/99999999/0' }, 400],
      ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/read', { path: 42 }, 400],
      ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/read', undefined, 400],
      ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/write', { path: '/3303/0/5700' }, 400],
      ['POST', 'lwm2m/servers/srv/devices/nobody/read', { path: '/3/0/0' }, 400],
      ['POST', 'lwm2m/servers/srv/devices/browser-dev-1/read', { path: '/3/0/77' }, 502],
      ['GET', 'lwm2m/servers/nope/devices', undefined, 404],
      ['GET', 'lwm2m/servers/srv/devices/nobody', undefined, 404],
      ['GET', 'lwm2m/model/70000', undefined, 404],
    ];
    for (const [method, url, body, status] of cases) {
      const res = await http(method, url, { token, body });
      assert.strictEqual(res.status, status, `${method} ${url} ${JSON.stringify(body)}: ${JSON.stringify(res.json)}`);
      assert.strictEqual(typeof res.json.error, 'string');
    }
    const page = await http('GET', 'lwm2m/servers/srv/devices?limit=100000&offset=-5&filter=', { token });
    assert.strictEqual(page.json.offset, 0);
    assert.strictEqual((await http('GET', 'lwm2m/servers', { token })).status, 200, 'still running');
  });

  it('sends live updates through comms, throttled: 300 registrations are a few messages, notifications at most 4 a second', async () => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}comms`);
    const messages = [];
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    let authenticated;
    const authOk = new Promise((resolve) => { authenticated = resolve; });
    ws.on('message', (data) => {
      for (const m of [].concat(JSON.parse(data.toString()))) {
        if (m.auth === 'ok') authenticated();
        if (m.topic && m.topic.startsWith('lwm2m/')) messages.push({ at: Date.now(), ...m });
      }
    });
    ws.send(JSON.stringify({ auth: tokens.viewer }));
    await authOk;
    ws.send(JSON.stringify({ subscribe: 'lwm2m/#' }));
    await delay(100);
    const started = Date.now();
    const storm = [];
    for (let i = 0; i < 300; i++) {
      const c = new Lwm2mClient({ endpoint: `storm-${i}`, server: { host: '127.0.0.1', port: lwm2mPort }, lifetime: 300, localAddress: '127.0.0.1', autoUpdate: false });
      c.on('warning', () => {});
      storm.push(c);
      clients.push(c);
    }
    await Promise.all(storm.map((c) => c.start()));
    // the last change reaches the editor within a second or so, however loaded the machine is
    const last = () => messages.filter((m) => m.topic === 'lwm2m/devices/srv').pop();
    for (let i = 0; i < 100 && !(last() && last().data.count === 301); i++) await delay(50);
    const listMessages = messages.filter((m) => m.topic === 'lwm2m/devices/srv');
    const seconds = (Date.now() - started) / 1000;
    assert.ok(listMessages.length >= 1 && listMessages.length <= Math.ceil(seconds) + 1, `${listMessages.length} list messages in ${seconds.toFixed(1)} s`);
    assert.strictEqual(listMessages[listMessages.length - 1].data.count, 301);

    // an observation from the browser: a device changing its value 50 times a second
    const observe = await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/observe', { token: tokens.viewer, body: { path: '/3303/0/5700' } });
    assert.deepStrictEqual(observe.json, { code: '2.05', value: 21.5 });
    const from = Date.now();
    for (let i = 0; i < 100; i++) {
      clients[0].setValue('/3303/0/5700', 30 + i);
      await delay(20);
    }
    await delay(600);
    const notes = messages.filter((m) => m.topic === 'lwm2m/notify/srv' && m.at >= from);
    const span = (Date.now() - from) / 1000;
    assert.ok(notes.length >= 2 && notes.length <= Math.ceil(span * 4) + 1, `${notes.length} notifications in ${span.toFixed(1)} s`);
    assert.deepStrictEqual(notes[notes.length - 1].data.value, 129, 'the latest value always arrives');
    assert.strictEqual((await http('POST', 'lwm2m/servers/srv/devices/browser-dev-1/cancel', { token: tokens.viewer, body: { path: '/3303/0/5700' } })).status, 200);
    ws.close();
  });
});
