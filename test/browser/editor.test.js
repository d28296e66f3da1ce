'use strict';
// The editor in a real headless Chromium (Debian's chromium, driven by playwright-core) against the
// demo exactly as `npm start` runs it (Node-RED, simulated devices, two emulated BC66 modems): the
// LwM2M sidebar lists the demo devices, Read shows a manufacturer, Observe shows changing values, a
// Full deploy leaves the list intact, the read dialog offers the registered endpoints, and the
// demo's BC66 temperatures reach the server. Screenshots go to test-artifacts/ (git-ignored).
//
// Skipped, with a line saying why, when Chromium is not installed or the demo's LwM2M ports
// (UDP 5683/5684) are taken (a running `npm start`).
const assert = require('assert');
const dgram = require('dgram');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { freeTcpPort } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const BC66_IMEI = '866425030012345';

function udpFree(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, () => s.close(() => resolve(true)));
  });
}


describe('the editor in Chromium (demo, sidebar, dialogs)', function () {
  this.timeout(120000);
  let demo;
  let demoDir;
  let browser;
  let page;
  let base;
  let startedAt;
  const log = [];

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`      (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium, or set CHROMIUM_PATH)`);
      this.skip();
    }
    if (!(await udpFree(5683)) || !(await udpFree(5684))) {
      console.log('      (skipped: UDP 5683/5684 are taken, probably by a running `npm start`)');
      this.skip();
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    demoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-demo-'));
    const port = await freeTcpPort();
    base = `http://127.0.0.1:${port}/`;
    startedAt = Date.now();
    demo = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start-demo.js')], {
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LWM2M_DEMO_DIR: demoDir },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not start:\n${log.join('')}`)), 60000);
      const onData = (chunk) => {
        log.push(chunk.toString());
        if (/Demo running/.test(chunk.toString())) {
          clearTimeout(timer);
          resolve();
        }
      };
      demo.stdout.on('data', onData);
      demo.stderr.on('data', (chunk) => log.push(chunk.toString()));
      demo.once('exit', (code) => reject(new Error(`the demo exited (${code}):\n${log.join('')}`)));
    });
    await ready;
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (err) => log.push(`page error: ${err.message}\n`));
    await page.goto(base);
    await page.waitForSelector('#red-ui-palette-container', { timeout: 60000 });
  });

  after(async () => {
    if (browser) await browser.close();
    if (demo && demo.exitCode === null) {
      const exited = new Promise((resolve) => demo.once('exit', resolve));
      process.kill(-demo.pid, 'SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10000))]);
      if (demo.exitCode === null) process.kill(-demo.pid, 'SIGKILL');
    }
    if (demoDir) fs.rmSync(demoDir, { recursive: true, force: true });
  });

  afterEach(async function () {
    if (page && this.currentTest) {
      const name = this.currentTest.title.replace(/[^a-z0-9]+/gi, '-').toLowerCase().slice(0, 60);
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) }).catch(() => {});
    }
  });

  const row = (endpoint) => `.lwm2m-browser-row[data-endpoint="${endpoint}"]`;
  const resource = (p) => `.lwm2m-browser-resource[data-path="${p}"]`;

  async function openSidebar() {
    await page.evaluate(() => RED.sidebar.show('lwm2m'));
    await page.waitForSelector('.lwm2m-browser-server');
  }

  async function listedEndpoints() {
    return page.$$eval('.lwm2m-browser-row', (rows) => rows.map((r) => r.getAttribute('data-endpoint')));
  }

  async function waitFor(condition, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
      const value = await condition();
      if (value) return value;
      if (Date.now() > end) throw new Error(`${what} within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  it('lists the demo devices in the LwM2M sidebar', async () => {
    await openSidebar();
    const endpoints = await waitFor(async () => {
      const list = await listedEndpoints();
      return list.length >= 7 && list;
    }, 30000, 'seven devices listed');
    for (const ep of ['urn:dev:demo-sensor-1', 'urn:dev:demo-sensor-2', 'urn:dev:demo-sensor-3', 'urn:dev:demo-bs-1', 'urn:dev:demo-psk-1', `urn:imei:${BC66_IMEI}`]) {
      assert.ok(endpoints.includes(ep), `${ep} listed (${endpoints})`);
    }
    // the filter narrows the list through the runtime
    await page.fill('.lwm2m-browser-filter', 'psk');
    await waitFor(async () => (await listedEndpoints()).join() === 'urn:dev:demo-psk-1', 5000, 'the filter keeps only demo-psk-1');
    await page.fill('.lwm2m-browser-filter', '');
    await waitFor(async () => (await listedEndpoints()).length >= 7, 5000, 'the whole list back');
  });

  it('reads the manufacturer /3/0/0 of a device', async () => {
    await page.click(row('urn:dev:demo-sensor-1'));
    await page.click('.lwm2m-browser-object[data-object="3"] > summary');
    await page.click(`${resource('/3/0/0')} .lwm2m-op-read`);
    const value = await waitFor(async () => (await page.textContent(`${resource('/3/0/0')} .lwm2m-browser-value`)).trim(), 10000, 'a manufacturer shown');
    assert.strictEqual(value, 'node-red-contrib-lwm2m-kit');
  });

  it('reads an object the model does not know, by instance', async () => {
    await page.click('.lwm2m-browser-object[data-object="32769"] > summary');
    await page.click('.lwm2m-browser-object[data-object="32769"] .lwm2m-browser-instance a');
    await page.waitForSelector(`${resource('/32769/0/1')} .lwm2m-browser-value`);
    assert.strictEqual((await page.textContent(`${resource('/32769/0/0')} .lwm2m-browser-value`)).trim(), 'demo firmware flags');
    assert.strictEqual((await page.textContent(`${resource('/32769/0/1')} .lwm2m-browser-value`)).trim(), '7');
  });

  it('observes a temperature and shows changing values with a chart', async () => {
    await page.click('.lwm2m-browser-object[data-object="3303"] > summary');
    await page.click(`${resource('/3303/0/5700')} .lwm2m-op-observe`);
    const seen = new Set();
    await waitFor(async () => {
      seen.add((await page.textContent(`${resource('/3303/0/5700')} .lwm2m-browser-value`)).trim());
      seen.delete('');
      return seen.size >= 2;
    }, 30000, 'two different temperatures (the demo changes them every 5 s)');
    for (const v of seen) assert.match(v, /^-?\d+(\.\d+)?( \S+)?$/);
    const points = await page.getAttribute(`${resource('/3303/0/5700')} .lwm2m-browser-chart polyline`, 'points');
    assert.ok(points && points.split(' ').length >= 2, 'the chart has points');
  });

  it('keeps every device over a Full deploy', async () => {
    const before = await page.evaluate(() => $.getJSON('lwm2m/servers').then((s) => s[0].devices));
    assert.ok(before >= 7);
    const status = await page.evaluate(async () => {
      const flows = await $.ajax({ url: 'flows', headers: { 'Node-RED-API-Version': 'v2' } });
      const res = await fetch('flows', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify({ flows: flows.flows, rev: flows.rev }),
      });
      return res.status;
    });
    assert.strictEqual(status, 200);
    await page.waitForTimeout(1000);
    const after = await page.evaluate(() => $.getJSON('lwm2m/servers').then((s) => s[0].devices));
    assert.strictEqual(after, before, 'no registration lost');
    // the flows were deployed from outside this editor: it loads them afresh, as a user would
    await page.reload();
    await page.waitForSelector('#red-ui-palette-container', { timeout: 60000 });
    await page.waitForFunction(() => RED.workspaces.active() && RED.nodes.workspace(RED.workspaces.active()));
    await openSidebar();
    await waitFor(async () => (await listedEndpoints()).length === before, 10000, 'the sidebar lists them all again');
  });

  it('offers the registered endpoints in the read dialog', async () => {
    await page.evaluate(() => {
      let read;
      RED.nodes.eachNode((n) => { if (!read && n.type === 'lwm2m-read') read = n; });
      RED.editor.edit(read);
    });
    await page.waitForSelector('#node-input-endpoint');
    assert.strictEqual(await page.inputValue('#node-input-role'), 'server');
    assert.ok(!(await page.isVisible('#node-input-modem')), 'the BC66 selector is hidden for the server role');
    await page.click('#node-input-endpoint');
    await page.fill('#node-input-endpoint', '');
    await page.type('#node-input-endpoint', 'demo-sensor', { delay: 20 });
    await page.waitForSelector('.red-ui-autoComplete-container', { timeout: 10000 });
    // (each key asks the runtime; the list settles on the answer for the whole text)
    const expected = ['urn:dev:demo-sensor-1', 'urn:dev:demo-sensor-2', 'urn:dev:demo-sensor-3'];
    const offered = () => page.$$eval('.red-ui-autoComplete-container li', (items) => [...new Set(items.map((i) => i.textContent.trim()))].sort());
    await waitFor(async () => JSON.stringify(await offered()) === JSON.stringify(expected), 5000, 'the registered demo-sensor endpoints offered').catch(() => {});
    assert.deepStrictEqual(await offered(), expected);
    await page.screenshot({ path: path.join(ARTIFACTS, 'read-dialog-endpoints.png') });
    await page.keyboard.press('Escape');
    await page.click('#node-dialog-cancel');
    // the tray has closed before the next dialog opens
    await page.waitForFunction(() => RED.editor.getEditStack().length === 0 && $('.red-ui-tray').length === 0);
  });

  it('chooses the only server for a new node, and shows only the role\'s fields', async () => {
    const serverId = await page.evaluate(() => {
      const z = RED.workspaces.active();
      RED.view.importNodes([{ id: 'browser-new-read', type: 'lwm2m-read', z, x: 300, y: 800, wires: [[]] }]);
      let server;
      RED.nodes.eachConfig((n) => { if (n.type === 'lwm2m-server') server = n.id; });
      RED.editor.edit(RED.nodes.node('browser-new-read'));
      return server;
    });
    await page.waitForSelector('#node-input-role');
    await page.waitForTimeout(300);
    assert.strictEqual(await page.inputValue('#node-input-server'), serverId);
    assert.strictEqual(await page.inputValue('#node-input-role'), 'server');
    await page.selectOption('#node-input-role', 'device');
    assert.ok(!(await page.isVisible('#node-input-endpoint')), 'the server role\'s fields hide');
    assert.ok(await page.isVisible('#node-input-answer'), 'the device role\'s show');
    await page.screenshot({ path: path.join(ARTIFACTS, 'new-read-node-device-role.png') });
    await page.click('#node-dialog-cancel');
    await page.waitForFunction(() => RED.editor.getEditStack().length === 0 && $('.red-ui-tray').length === 0);
  });

  it('gets the BC66 modem\'s temperature to the server within 30 s of the start', async () => {
    const ep = encodeURIComponent(`urn:imei:${BC66_IMEI}`);
    const observed = await waitFor(() => page.evaluate((e) => $.getJSON(`lwm2m/servers/demo-server/devices/${e}`).then((d) => d.observations.includes('/3303/0/5700'), () => false), ep),
      Math.max(1000, 30000 - (Date.now() - startedAt)), 'the BC66 temperature observed');
    assert.ok(observed);
    const read = await page.evaluate((e) => $.ajax({ url: `lwm2m/servers/demo-server/devices/${e}/read`, method: 'POST', contentType: 'application/json', data: JSON.stringify({ path: '/3303/0/5700' }) }), ep);
    assert.strictEqual(typeof read.value, 'number');
  });

  it('shows the editor in Traditional Chinese', async () => {
    await page.evaluate(() => localStorage.setItem('editor-language', 'zh-TW'));
    await page.reload();
    await page.waitForSelector('#red-ui-palette-container', { timeout: 60000 });
    await openSidebar();
    await waitFor(async () => (await listedEndpoints()).length >= 7, 10000, 'devices listed');
    assert.strictEqual((await page.textContent('.lwm2m-browser-devices th')).trim(), '端點');
    await page.evaluate(() => localStorage.removeItem('editor-language'));
  });
});
