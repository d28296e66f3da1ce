#!/usr/bin/env node
// `npm start`: Node-RED from this repository's own dependencies, with a user directory inside the
// repository (.node-red/, git-ignored), this package loaded and the demo flow deployed; then a few
// simulated devices: software LwM2M clients that register directly, one that bootstraps first, and two
// BC66 modems played by the emulator behind pseudo-terminal pairs (one direct, one bootstrapping).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const root = path.join(__dirname, '..');
// LWM2M_DEMO_DIR: where the demo keeps its Node-RED user directory and pseudo-terminals, and runs
// Node-RED from (the flows name the modems .pty/host); the repository itself unless the tests say
const base = process.env.LWM2M_DEMO_DIR || root;
const userDir = path.join(base, '.node-red');
const ptyDir = path.join(base, '.pty');
// the demo is the example flows together on ONE lwm2m-server: the first file's. Each example has a
// server of its own (own id, own ports) so that it can be imported alone or beside the others;
// mergeExamples() drops the others' servers and points what used them at the demo's (below).
// examples/dashboard-chart.json is left out: it needs @flowfuse/node-red-dashboard, no dependency here.
const DEMO_FLOWS = ['demo-server-and-devices.json', 'bc66-temperature-device.json', 'bootstrap-bc66-device.json'];
const port = Number(process.env.PORT || 1880);
// the demo editor has no login: it listens on this machine only unless HOST says otherwise
const host = process.env.HOST || '127.0.0.1';
const serverPort = 5683;

function prepareUserDir() {
  fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });
  const link = path.join(userDir, 'node_modules', 'node-red-contrib-lwm2m-kit');
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  fs.writeFileSync(path.join(userDir, 'settings.js'), `module.exports = {
  uiPort: ${port},
  uiHost: ${JSON.stringify(host)},
  flowFile: 'flows.json',
  credentialSecret: 'lwm2m-kit-demo',
  // no palette catalogue: the demo reaches no other host
  editorTheme: { projects: { enabled: false }, tours: false, palette: { catalogues: [] } },
  // a demo: no consent prompt, nothing sent anywhere
  telemetry: { enabled: false, updateNotification: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`);
  const flows = path.join(userDir, 'flows.json');
  // a flow the user changed in the editor is kept; delete .node-red/flows.json to get the demo back
  if (!fs.existsSync(flows)) fs.writeFileSync(flows, JSON.stringify(demoFlows(), null, 2));
}

/** The demo's flows: the DEMO_FLOWS examples merged onto the first one's lwm2m-server. */
function demoFlows() {
  return mergeExamples(DEMO_FLOWS.map((file) => JSON.parse(fs.readFileSync(path.join(root, 'examples', file), 'utf8'))));
}

/**
 * Merges example flows (arrays of nodes) into one flow with ONE lwm2m-server: the first example's
 * (it must have exactly one). Every other example's lwm2m-server nodes are dropped, and:
 * - every field of any node that holds a dropped server's id (the flow nodes' and the bootstrap
 *   configurations' `server`, or any other field that selects a server) is given the kept server's id;
 * - where a dropped server was reached by address rather than by id, its ports become the kept
 *   server's (NoSec port → port, DTLS securePort → securePort), in that example's own nodes only:
 *   coap:// and coaps:// URIs in any string (a bootstrap configuration's server URIs, URIs in its
 *   extra writes), and the port fields of PORT_FIELDS (an lwm2m-bc66 modem's serverPort). A port that
 *   is none of the dropped server's (a device pointed at another server) is left alone.
 * Node ids must be unique across the examples: a duplicate is an error, not silently replaced.
 */
function mergeExamples(examples) {
  const servers = (nodes) => nodes.filter((n) => n.type === 'lwm2m-server');
  const [primary, ...others] = examples;
  const kept = servers(primary);
  if (kept.length !== 1) throw new Error(`the first example must have exactly one lwm2m-server (it has ${kept.length})`);
  const target = kept[0];
  const renamed = new Map(); // dropped server id → kept server id
  const merged = [...primary];
  for (const nodes of others) {
    const ports = new Map(); // dropped server's port → the kept server's
    for (const s of servers(nodes)) {
      renamed.set(s.id, target.id);
      if (s.port !== undefined && s.port !== '') ports.set(Number(s.port), Number(target.port));
      if (s.securePort !== undefined && s.securePort !== '' && target.securePort !== undefined && target.securePort !== '') {
        ports.set(Number(s.securePort), Number(target.securePort));
      }
    }
    for (const node of nodes) {
      if (node.type === 'lwm2m-server') continue;
      merged.push(retargetPorts(node, ports));
    }
  }
  const seen = new Set();
  for (const node of merged) {
    if (seen.has(node.id)) throw new Error(`node id ${node.id} is in more than one example`);
    seen.add(node.id);
  }
  return merged.map((node) => replaceIds(node, renamed));
}

/** Fields holding the UDP port of an LwM2M server as a bare number, by node type. */
const PORT_FIELDS = { 'lwm2m-bc66': ['serverPort'] };

/**
 * A copy of `node` that reaches an LwM2M server at the ports `ports` maps (Map: old port → new
 * port): in its coap(s):// URIs and its PORT_FIELDS. Ports `ports` does not have are kept.
 */
function retargetPorts(node, ports) {
  const copy = retargetUris(structuredClone(node), ports);
  for (const field of PORT_FIELDS[copy.type] ?? []) {
    if (copy[field] !== undefined && copy[field] !== '' && ports.has(Number(copy[field]))) copy[field] = ports.get(Number(copy[field]));
  }
  return copy;
}

/** Every coap(s)://host:port in a string field (at any depth) with its port mapped by `ports`. */
function retargetUris(value, ports) {
  if (typeof value === 'string') {
    return value.replace(/(coaps?:\/\/(?:\[[^\]]*\]|[^/:\s[\]"]+)):(\d+)/g, (all, head, port) => (ports.has(Number(port)) ? `${head}:${ports.get(Number(port))}` : all));
  }
  if (Array.isArray(value)) return value.map((v) => retargetUris(v, ports));
  if (value && typeof value === 'object') {
    for (const key of Object.keys(value)) value[key] = retargetUris(value[key], ports);
  }
  return value;
}

/** A node whose fields (at any depth, its own id aside) that hold a renamed id hold the new one. */
function replaceIds(node, renamed) {
  const walk = (v) => {
    if (typeof v === 'string') return renamed.get(v) ?? v;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  const { id, ...rest } = node;
  return { id, ...walk(rest) };
}

/** Two emulated BC66 modems behind pty pairs; the demo flows' lwm2m-bc66 nodes open the host ends. */
async function startModems() {
  const { Bc66Emulator, startPtyPair } = require('../dist/bc66');
  fs.mkdirSync(ptyDir, { recursive: true });
  const stops = [];
  for (const [name, imei] of [['', '866425030012345'], ['bs-', '866425030054321']]) {
    const pty = await startPtyPair(path.join(ptyDir, `${name}modem`), path.join(ptyDir, `${name}host`));
    const emulator = new Bc66Emulator({ path: pty.a, imei, localAddress: '127.0.0.1' });
    emulator.on('warning', (err) => console.log(`[bc66 emulator ${imei}] ${err.message}`));
    await emulator.start();
    stops.push(async () => {
      await emulator.stop();
      await pty.stop();
    });
  }
  return async () => {
    for (const stop of stops) await stop();
  };
}

async function startDevices() {
  const { Lwm2mClient } = require('../dist/lwm2m/client');

  const clients = [];
  for (let i = 1; i <= 3; i++) {
    const client = new Lwm2mClient({
      endpoint: `urn:dev:demo-sensor-${i}`,
      server: { host: '127.0.0.1', port: serverPort },
      lifetime: 60,
      localAddress: '127.0.0.1',
    });
    client.setInstance(3303, 0, { 5700: 20 + i, 5701: 'Cel', 5601: 20 + i, 5602: 20 + i });
    client.setInstance(3304, 0, { 5700: 40 + i, 5701: '%RH' });
    // a vendor object the object model does not know (the device browser reads it by instance)
    if (i === 1) client.setInstance(32769, 0, { 0: 'demo firmware flags', 1: 7 });
    client.on('warning', (err) => console.log(`[demo-sensor-${i}] ${err.message}`));
    clients.push(client);
  }
  // one device that knows only the bootstrap server (the demo flow's lwm2m-bootstrap-config answers it)
  const bootstrapped = new Lwm2mClient({
    endpoint: 'urn:dev:demo-bs-1', bootstrap: { host: '127.0.0.1', port: serverPort }, localAddress: '127.0.0.1',
  });
  bootstrapped.setInstance(3303, 0, { 5700: 18, 5701: 'Cel' });
  bootstrapped.on('warning', (err) => console.log(`[demo-bs-1] ${err.message}`));
  clients.push(bootstrapped);
  // one PSK device: the bootstrap server gives it an identity and a fresh key for coaps://…:5684,
  // and it registers over DTLS with them (no key is typed anywhere)
  const secure = new Lwm2mClient({
    endpoint: 'urn:dev:demo-psk-1', bootstrap: { host: '127.0.0.1', port: serverPort }, localAddress: '127.0.0.1',
  });
  secure.setInstance(3303, 0, { 5700: 17, 5701: 'Cel' });
  secure.on('warning', (err) => console.log(`[demo-psk-1] ${err.message}`));
  clients.push(secure);
  // devices start once Node-RED has had time to bind the LwM2M port; they retry registration anyway
  for (const client of clients) await client.start().catch((err) => console.log(`[demo] ${err.message}`));
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    clients.forEach((client, i) => {
      const temperature = Math.round((21 + i + 2 * Math.sin((tick + 3 * i) / 5)) * 10) / 10;
      client.setValue('/3303/0/5700', temperature);
      client.setValue('/3304/0/5700', Math.round((45 + 5 * Math.cos(tick / 7 + i)) * 10) / 10);
    });
  }, 5000);
  return async () => {
    clearInterval(timer);
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
  };
}

async function main() {
  prepareUserDir();
  // the modems exist before Node-RED opens their serial ports
  const stopModems = await startModems();
  const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir, '--port', String(port)], {
    cwd: base,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stopDevices = null;
  let stopping = false;
  red.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    if (!stopDevices && /Started flows/.test(chunk.toString())) {
      stopDevices = startDevices().then((stop) => {
        console.log(`\nDemo running: open http://${host === '0.0.0.0' || host === '::' ? 'localhost' : host}:${port} — simulated devices register with the LwM2M server on UDP ${serverPort} (coap) and 5684 (coaps, one PSK device).`);
        console.log('Press Ctrl+C to stop.\n');
        return stop;
      }, (err) => {
        console.error(`demo devices failed to start: ${err.stack || err}`);
        return async () => {};
      });
    }
  });
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    if (stopDevices) await (await stopDevices)();
    await stopModems();
    red.kill('SIGINT');
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  red.on('exit', (code) => process.exit(code || 0));
}

module.exports = { DEMO_FLOWS, demoFlows, mergeExamples, retargetPorts };

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
