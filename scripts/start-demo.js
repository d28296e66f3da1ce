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
const userDir = path.join(root, '.node-red');
const ptyDir = path.join(root, '.pty');
// the demo is the example flows together; they share the server config node (same id)
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
  editorTheme: { projects: { enabled: false }, tours: false },
  // a demo: no consent prompt, nothing sent anywhere
  telemetry: { enabled: false, updateNotification: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`);
  const flows = path.join(userDir, 'flows.json');
  // a flow the user changed in the editor is kept; delete .node-red/flows.json to get the demo back
  if (!fs.existsSync(flows)) {
    const byId = new Map();
    for (const file of DEMO_FLOWS) {
      for (const node of JSON.parse(fs.readFileSync(path.join(root, 'examples', file), 'utf8'))) byId.set(node.id, node);
    }
    fs.writeFileSync(flows, JSON.stringify([...byId.values()], null, 2));
  }
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
    cwd: root,
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

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
