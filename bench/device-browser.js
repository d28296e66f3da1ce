'use strict';
// 6. The editor's device browser at 100k devices: a real Node-RED (child process) whose lwm2m-server
// loads 100,000 saved registrations; each route timed over HTTP, sequentially, beside the cheapest
// route of the same app (the server list) as the baseline: what is left is the work of the page.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { table, fmt } = require('./lib/table');
const { freeTcpPort, freeUdpPort } = require('../test/helpers');

const ROOT = path.join(__dirname, '..');


function savedRegistrations(n) {
  const now = Date.now();
  const out = [];
  for (let i = 0; i < n; i++) {
    out.push({
      endpoint: `urn:imei:86${String(i).padStart(13, '0')}`, lifetime: 86400, lwm2mVersion: '1.1', binding: 'U', queueMode: i % 10 === 0,
      id: `bench${String(i).padStart(7, '0')}`, rootPath: '/', objectLinks: '</1/0>,</3/0>,</3303/0>',
      objects: [{ objectId: 1, instanceId: 0 }, { objectId: 3, instanceId: 0 }, { objectId: 3303, instanceId: 0 }], supportedFormats: [112],
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 5683,
      registeredAt: new Date(now).toISOString(), updatedAt: new Date(now).toISOString(), expiresAt: new Date(now + 86400000).toISOString(),
    });
  }
  return out;
}

async function timed(url, rounds) {
  const times = [];
  let body;
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const res = await fetch(url);
    body = await res.json();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p95: times[Math.floor(times.length * 0.95)], body };
}

async function main(n = 100000, rounds = 40) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-browser-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'node-red-contrib-lwm2m-kit'), 'dir');
  const uiPort = await freeTcpPort();
  fs.writeFileSync(path.join(dir, 'settings.js'), `module.exports = { uiPort: ${uiPort}, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,
    editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } }, telemetry: { enabled: false, updateNotification: false }, logging: { console: { level: 'warn' } } };`);
  fs.writeFileSync(path.join(dir, 'flows.json'), JSON.stringify([
    { id: 't1', type: 'tab', label: 'bench' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port: await freeUdpPort(), securePort: '', persist: true, maxRegistrations: n + 1 },
    { id: 'reg', z: 't1', type: 'lwm2m-register', server: 'srv', wires: [[]] },
  ]));
  fs.writeFileSync(path.join(dir, 'lwm2m-registrations-srv.json'), JSON.stringify(savedRegistrations(n)));
  const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', dir], { cwd: dir, stdio: 'ignore' });
  const base = `http://127.0.0.1:${uiPort}/lwm2m/`;
  try {
    for (let i = 0; ; i++) {
      const servers = await fetch(`${base}servers`).then((r) => r.json(), () => []);
      if (servers[0] && servers[0].devices === n) break;
      if (i > 600) throw new Error('Node-RED did not load the registrations');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const cases = [
      ['server list (baseline)', 'servers'],
      ['first page, 50 devices', 'servers/srv/devices?offset=0&limit=50'],
      ['last page, 50 devices', `servers/srv/devices?offset=${n - 50}&limit=50`],
      ['filter: one match (endpoint)', `servers/srv/devices?filter=${String(n - 1).padStart(13, '0')}`],
      ['filter: address ".1" (most match)', 'servers/srv/devices?filter=.1'],
      ['endpoint completion, 20', 'servers/srv/endpoints?q=urn:imei:860'],
      ['one device with its objects', `servers/srv/devices/${encodeURIComponent(`urn:imei:86${String(n / 2).padStart(13, '0')}`)}`],
    ];
    const rows = [];
    let baseline;
    for (const [label, url] of cases) {
      const r = await timed(base + url, rounds);
      baseline ??= r.median;
      const matched = r.body && r.body.matched !== undefined ? `${r.body.matched} of ${r.body.total}` : '';
      rows.push([label, fmt(r.median, 2), fmt(r.p95, 2), fmt(Math.max(0, r.median - baseline), 2), matched]);
    }
    const text = table(`Device browser routes at ${n.toLocaleString('en')} registrations (real Node-RED over HTTP, ${rounds} sequential requests each)`,
      ['route', 'median ms', 'p95 ms', 'median − baseline ms', 'matched'], rows);
    return { text };
  } finally {
    red.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 500));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

module.exports = { main };
if (require.main === module) main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
