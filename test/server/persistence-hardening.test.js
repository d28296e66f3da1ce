'use strict';
// The registration file against damage and crashes: wrongly typed, out-of-range and duplicate
// entries are skipped with one warning saying how many and why (and never written back); a server
// process killed with SIGKILL at random moments under a stream of registrations always leaves a
// valid file holding what was registered more than the save delay before the kill.
const assert = require('assert');
const { fork } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Lwm2mServer } = require('../../dist/lwm2m/server');
const { CoapTransport } = require('../../dist/lwm2m/coap/transport');
const { nextEvent, delay } = require('../helpers');

const SAVE_DELAY_MS = 1000; // RegistrationFile's debounce

describe('registration persistence against damage and crashes', function () {
  this.timeout(30000);
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-persist-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function entry(overrides = {}) {
    const now = Date.now();
    return {
      id: `id-${Math.random().toString(36).slice(2, 10)}`, endpoint: 'ok-1', lifetime: 600, lwm2mVersion: '1.1', binding: 'U', queueMode: false,
      rootPath: '/', objectLinks: '</1/0>,</3/0>', objects: [{ objectId: 1, instanceId: 0 }, { objectId: 3, instanceId: 0 }], supportedFormats: [],
      address: '127.0.0.1', port: 40000, registeredAt: new Date(now).toISOString(), updatedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 600000).toISOString(), ...overrides,
    };
  }

  it('skips malformed and duplicate entries with one warning, and does not write them back', async () => {
    const file = path.join(dir, 'regs.json');
    const good = entry({ endpoint: 'good' });
    fs.writeFileSync(file, JSON.stringify([
      good,
      entry({ endpoint: 'bad-objects', objects: 'x' }),
      entry({ endpoint: 'bad-port', port: 'abc' }),
      entry({ endpoint: 'big-port', port: 70000 }),
      entry({ endpoint: 'nan-lifetime', lifetime: null }),
      entry({ endpoint: 'bad-date', expiresAt: 'soon' }),
      entry({ endpoint: 'good' }), // duplicate endpoint
      { ...entry({ endpoint: 'dup-id' }), id: good.id },
      'a string',
      null,
    ]));
    const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', persistenceFile: file });
    const warnings = [];
    server.on('warning', (err) => warnings.push(err.message));
    await server.start();
    try {
      assert.deepStrictEqual(server.listRegistrations().map((r) => r.endpoint), ['good']);
      assert.strictEqual(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0], /9 saved registrations skipped/);
      assert.match(warnings[0], /bad objects/);
      assert.match(warnings[0], /duplicate endpoint/);
      assert.match(warnings[0], /duplicate id/);
      assert.match(warnings[0], /bad address or port/);
    } finally {
      await server.stop();
    }
    const written = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepStrictEqual(written.map((r) => r.endpoint), ['good'], 'only the good entry is written back');
  });

  it('leaves a valid file after every SIGKILL, holding what was registered a save delay before it', async () => {
    const file = path.join(dir, 'killed.json');
    const device = new CoapTransport({ address: '127.0.0.1', requestTimeoutMs: 500 });
    await device.open();
    let n = 0;
    try {
      for (let round = 0; round < 4; round++) {
        const child = fork(path.join(__dirname, 'persistence-child.js'), [file], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        const port = await new Promise((resolve, reject) => {
          child.once('message', resolve);
          child.once('exit', (code) => reject(new Error(`server child exited with ${code}`)));
        });
        const registeredAt = new Map();
        const until = Date.now() + SAVE_DELAY_MS + 300 + Math.floor(Math.random() * 700);
        while (Date.now() < until) {
          const ep = `dev-${n++}`;
          const res = await device.request({ address: '127.0.0.1', port }, { method: 'POST', path: '/rd', query: [`ep=${ep}`, 'lt=600'], contentFormat: 40, payload: Buffer.from('</1/0>,</3/0>') })
            .catch(() => undefined);
          if (res && res.code === '2.01') registeredAt.set(ep, Date.now());
          await delay(5);
        }
        const killedAt = Date.now();
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
        const saved = JSON.parse(fs.readFileSync(file, 'utf8')); // throws if the file is not whole
        assert.ok(Array.isArray(saved));
        const names = new Set(saved.map((r) => r.endpoint));
        const due = [...registeredAt].filter(([, at]) => killedAt - at > SAVE_DELAY_MS + 200).map(([ep]) => ep);
        assert.ok(due.length > 0, 'registrations old enough to have been saved');
        for (const ep of due) assert.ok(names.has(ep), `round ${round}: ${ep}, registered ${killedAt - registeredAt.get(ep)} ms before the kill, was lost`);
      }
    } finally {
      await device.close();
    }
  });
});
