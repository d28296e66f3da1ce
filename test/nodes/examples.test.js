'use strict';
// The example flows (examples/*.json): node ids unique across all of them, each with an lwm2m-server
// of its own on ports of its own (so they import alone and together), their devices and bootstrap
// configurations pointing at those ports; each one alone and all together run in a Node-RED runtime
// with the BC66 emulator behind real ptys, without an error from our nodes, and their modems
// register with their own example's server; and the demo `npm start` deploys (start-demo.js merges
// them) has one lwm2m-server that everything references. Everything binds to loopback: the servers'
// addresses and ports are swapped for 127.0.0.1 and free ports (and the devices re-pointed) here.
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const helper = require('node-red-node-test-helper');
const { Bc66Emulator, startPtyPair } = require('../../dist/bc66');
const { DEMO_FLOWS, demoFlows, mergeExamples, retargetPorts } = require('../../scripts/start-demo');
const { freeUdpPort, delay } = require('../helpers');

helper.init(require.resolve('node-red'));

/**
 * The helper registers its own catch/status/complete module once per node of that type in the
 * flow, and a type registered twice is an error (the examples together have two catch nodes): while
 * these tests run, once per load (each load has a new node API). Undone after them: the helper is
 * shared by every test file.
 */
function registerCoreNodesOnce() {
  const saved = { ...helper._nodeModules };
  for (const [type, load] of Object.entries(saved)) {
    const loaded = new WeakSet();
    helper._nodeModules[type] = (red) => {
      if (loaded.has(red)) return undefined;
      loaded.add(red);
      return load(red);
    };
  }
  return () => Object.assign(helper._nodeModules, saved);
}

const EXAMPLES_DIR = path.join(__dirname, '..', '..', 'examples');
const FILES = fs.readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json')).sort();
const DASHBOARD = 'dashboard-chart.json';
const read = (file) => JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8'));

const OUR_TYPES = ['lwm2m-server', 'lwm2m-bc66', 'lwm2m-register', 'lwm2m-read', 'lwm2m-write', 'lwm2m-execute', 'lwm2m-observe', 'lwm2m-bootstrap-config'];
// (catch: the helper loads its own)
const CORE = ['common/20-inject', 'common/21-debug', 'common/90-comment', 'function/10-switch', 'function/15-change'];
const NODES = [
  ...OUR_TYPES.map((t) => require(`../../nodes/${t}.js`)),
  ...CORE.map((m) => require(`@node-red/nodes/core/${m}.js`)),
];
let dashboardDir = null;
try {
  dashboardDir = path.dirname(require.resolve('@flowfuse/node-red-dashboard/package.json'));
} catch {
  // not installed (it is no dependency): the dashboard example is checked as JSON only
}
const DASHBOARD_NODES = ['config/ui_base', 'config/ui_page', 'config/ui_theme', 'config/ui_group', 'widgets/ui_chart'];

/** The emulated BC66 behind each serial port the examples name, as in start-demo.js. */
const MODEMS = { '.pty/host': '866425030012345', '.pty/bs-host': '866425030054321' };

/** Fields that hold another node's id. */
const REF_FIELDS = ['z', 'server', 'modem', 'ui', 'page', 'group', 'theme'];

function danglingReferences(nodes) {
  const ids = new Set(nodes.map((n) => n.id));
  const missing = [];
  for (const n of nodes) {
    for (const f of REF_FIELDS) if (typeof n[f] === 'string' && n[f] !== '' && !ids.has(n[f])) missing.push(`${n.id}.${f} → ${n[f]}`);
    for (const target of (n.wires ?? []).flat()) if (!ids.has(target)) missing.push(`${n.id}.wires → ${target}`);
    if (Array.isArray(n.scope)) for (const target of n.scope) if (!ids.has(target)) missing.push(`${n.id}.scope → ${target}`);
  }
  return missing;
}

/** Every coap(s) URI port in the strings of a node, at any depth: [scheme, port]. */
function uriPorts(node) {
  const found = [];
  const walk = (v) => {
    if (typeof v === 'string') for (const m of v.matchAll(/(coaps?):\/\/(?:\[[^\]]*\]|[^/:\s[\]"]+):(\d+)/g)) found.push([m[1], Number(m[2])]);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(node);
  return found;
}

/** The server's ports, and every modem port and URI port of the nodes: each where the server listens. */
function assertPointsAt(nodes, server, where) {
  for (const n of nodes) {
    if (n.type === 'lwm2m-bc66') {
      const expected = n.security === 'psk' ? Number(server.securePort) : Number(server.port);
      assert.strictEqual(Number(n.serverPort), expected, `${where}: modem ${n.id} uses port ${n.serverPort}, its server listens on ${expected}`);
    }
    for (const [scheme, port] of uriPorts(n)) {
      const expected = scheme === 'coaps' ? Number(server.securePort) : Number(server.port);
      assert.strictEqual(port, expected, `${where}: ${n.id} has a ${scheme} URI with port ${port}, its server listens on ${expected}`);
    }
  }
}

describe('example flows', function () {
  this.timeout(20000);
  const examples = Object.fromEntries(FILES.map((f) => [f, read(f)]));

  describe('as JSON', () => {
    it('has the demo files and the dashboard example', () => {
      for (const f of [...DEMO_FLOWS, DASHBOARD]) assert.ok(FILES.includes(f), `examples/${f}`);
      assert.ok(!DEMO_FLOWS.includes(DASHBOARD), 'the demo leaves the dashboard example out');
    });

    it('gives every node (tabs and config nodes too) an id unique across all examples', () => {
      const where = new Map();
      for (const [file, nodes] of Object.entries(examples)) {
        for (const n of nodes) {
          assert.ok(typeof n.id === 'string' && n.id, `${file}: a node without id`);
          assert.ok(!where.has(n.id), `id ${n.id} is in ${where.get(n.id)} and ${file}`);
          where.set(n.id, file);
        }
      }
    });

    it('gives each example one lwm2m-server with ports no other example uses', () => {
      const owner = new Map();
      for (const [file, nodes] of Object.entries(examples)) {
        const servers = nodes.filter((n) => n.type === 'lwm2m-server');
        assert.strictEqual(servers.length, 1, `${file}: lwm2m-server nodes`);
        for (const port of [servers[0].port, servers[0].securePort]) {
          assert.ok(Number.isInteger(Number(port)) && Number(port) > 0, `${file}: port ${port}`);
          assert.ok(!owner.has(Number(port)), `UDP ${port} is used by ${owner.get(Number(port))} and ${file}`);
          owner.set(Number(port), file);
        }
      }
      const demo = examples['demo-server-and-devices.json'].find((n) => n.type === 'lwm2m-server');
      assert.deepStrictEqual([Number(demo.port), Number(demo.securePort)], [5683, 5684], 'the demo server is where start-demo.js\'s devices go');
    });

    it('points each example\'s flow nodes, modems and bootstrap configurations at its own server', () => {
      for (const [file, nodes] of Object.entries(examples)) {
        const server = nodes.find((n) => n.type === 'lwm2m-server');
        assert.deepStrictEqual(danglingReferences(nodes), [], `${file} imported alone`);
        for (const n of nodes) {
          if (typeof n.server === 'string' && n.server) assert.strictEqual(n.server, server.id, `${file}: ${n.id}.server`);
          if (n.type === 'lwm2m-bootstrap-config') assert.ok(server.bootstrap, `${file}: ${n.id} needs the bootstrap interface of ${server.id}`);
        }
        assertPointsAt(nodes, server, file);
      }
    });

    it('dashboard example: observes urn:dev:demo-sensor-1 /3303/0/5700 into a ui-chart', () => {
      const nodes = examples[DASHBOARD];
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const observe = nodes.filter((n) => n.type === 'lwm2m-observe');
      assert.strictEqual(observe.length, 1);
      assert.strictEqual(observe[0].endpoint, 'urn:dev:demo-sensor-1');
      assert.ok(observe[0].path === '/3303/0/5700' || observe[0].autoPaths === '/3303/0/5700');
      const targets = observe[0].wires.flat().map((id) => byId.get(id));
      const chart = targets.find((n) => n && n.type === 'ui-chart');
      assert.ok(chart, 'the observe node is wired to a ui-chart');
      const group = byId.get(chart.group);
      assert.strictEqual(group?.type, 'ui-group');
      const page = byId.get(group.page);
      assert.strictEqual(page?.type, 'ui-page');
      assert.strictEqual(byId.get(page.ui)?.type, 'ui-base');
      assert.strictEqual(byId.get(page.theme)?.type, 'ui-theme');
      const comment = nodes.find((n) => n.type === 'comment' && /@flowfuse\/node-red-dashboard/.test(`${n.name} ${n.info}`));
      assert.ok(comment, 'a comment node states the prerequisite');
    });
  });

  describe('the demo flows (start-demo.js)', () => {
    const merged = demoFlows();
    const sources = DEMO_FLOWS.map(read);

    it('has exactly one lwm2m-server, the demo\'s on 5683/5684, and every node of the demo examples', () => {
      const servers = merged.filter((n) => n.type === 'lwm2m-server');
      assert.deepStrictEqual(servers.map((s) => [s.id, Number(s.port), Number(s.securePort)]), [['demo-server', 5683, 5684]]);
      const expected = sources.flat().filter((n) => n.type !== 'lwm2m-server' || n.id === 'demo-server').map((n) => n.id).sort();
      assert.deepStrictEqual(merged.map((n) => n.id).sort(), expected);
      assert.ok(!merged.some((n) => n.id.startsWith('dash-')), 'no dashboard nodes');
    });

    it('leaves no dangling reference and points modems and bootstrap URIs at the demo server', () => {
      assert.deepStrictEqual(danglingReferences(merged), []);
      const dropped = new Set(sources.flat().filter((n) => n.type === 'lwm2m-server' && n.id !== 'demo-server').map((n) => n.id));
      assert.ok(dropped.size >= 2);
      const stale = [];
      const walk = (v, where) => {
        if (typeof v === 'string' && dropped.has(v)) stale.push(where);
        else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${where}[${i}]`));
        else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${where}.${k}`);
      };
      merged.forEach((n) => walk(n, n.id));
      assert.deepStrictEqual(stale, [], 'fields still naming a dropped server');
      for (const n of merged) if (typeof n.server === 'string' && n.server) assert.strictEqual(n.server, 'demo-server', `${n.id}.server`);
      assertPointsAt(merged, merged.find((n) => n.type === 'lwm2m-server'), 'demo');
      assert.strictEqual(merged.filter((n) => n.type === 'lwm2m-bc66').length, 2);
    });

    it('merges generically: any field naming a dropped server, its ports in URIs and modem ports', () => {
      const flows = mergeExamples([
        [{ id: 'a', type: 'lwm2m-server', port: 1000, securePort: 1001 }],
        [{ id: 'b', type: 'lwm2m-server', port: 2000, securePort: 2001 },
          { id: 'm', type: 'lwm2m-bc66', serverPort: 2001, security: 'psk' },
          { id: 'elsewhere', type: 'lwm2m-bc66', serverPort: 5683 },
          { id: 'c', type: 'lwm2m-bootstrap-config', server: 'b', servers: [{ uri: 'coap://[::1]:2000' }, { uri: 'coaps://10.0.0.1:2001' }, { uri: 'coap://h:3000' }], extraWrites: '{"/0/1/0": "coap://h:2000"}' },
          { id: 'x', type: 'some-node', selects: { server: 'b' } }],
      ]);
      const byId = Object.fromEntries(flows.map((n) => [n.id, n]));
      assert.deepStrictEqual(flows.map((n) => n.id), ['a', 'm', 'elsewhere', 'c', 'x']);
      assert.strictEqual(byId.m.serverPort, 1001);
      assert.strictEqual(byId.elsewhere.serverPort, 5683);
      assert.strictEqual(byId.c.server, 'a');
      assert.deepStrictEqual(byId.c.servers.map((s) => s.uri), ['coap://[::1]:1000', 'coaps://10.0.0.1:1001', 'coap://h:3000']);
      assert.strictEqual(byId.c.extraWrites, '{"/0/1/0": "coap://h:1000"}');
      assert.deepStrictEqual(byId.x.selects, { server: 'a' });
      assert.throws(() => mergeExamples([[{ id: 'a', type: 'lwm2m-server' }], [{ id: 'a', type: 'tab' }]]), /more than one example/);
      assert.throws(() => mergeExamples([[{ id: 't', type: 'tab' }]]), /exactly one lwm2m-server/);
    });
  });

  describe('in a Node-RED runtime', () => {
    let dir;
    let restoreCoreNodes;
    const modems = {};

    before(async () => {
      restoreCoreNodes = registerCoreNodesOnce();
      await helper.startServer();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-examples-'));
    });
    after(async () => {
      restoreCoreNodes();
      await helper.stopServer();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(async () => {
      for (const [serial, imei] of Object.entries(MODEMS)) {
        const name = path.basename(serial);
        const pty = await startPtyPair(path.join(dir, `${name}-modem`), path.join(dir, name));
        const emulator = new Bc66Emulator({ path: pty.a, imei, localAddress: '127.0.0.1' });
        emulator.on('warning', () => {});
        await emulator.start();
        modems[serial] = { pty, emulator, endpoint: `urn:imei:${imei}` };
      }
    });
    afterEach(async () => {
      await helper.unload();
      for (const serial of Object.keys(modems)) {
        await modems[serial].emulator.stop();
        await modems[serial].pty.stop();
        delete modems[serial];
      }
    });

    /**
     * An example as the test runs it: its server on 127.0.0.1 and free ports, its devices and
     * bootstrap configurations re-pointed there (the way start-demo.js re-points them), its modems on
     * this test's ptys, nothing printed on the console by its debug nodes.
     */
    async function onLoopback(nodes) {
      const ports = new Map();
      const out = [];
      for (const n of nodes) {
        if (n.type !== 'lwm2m-server') continue;
        ports.set(Number(n.port), await freeUdpPort());
        ports.set(Number(n.securePort), await freeUdpPort());
      }
      for (const n of nodes) {
        const copy = retargetPorts(n, ports);
        if (copy.type === 'lwm2m-server') Object.assign(copy, { address: '127.0.0.1', port: ports.get(Number(n.port)), securePort: ports.get(Number(n.securePort)) });
        if (copy.type === 'lwm2m-bc66') {
          assert.ok(modems[copy.serialPort], `no emulator for ${copy.serialPort}`);
          copy.serialPort = modems[copy.serialPort].pty.b;
        }
        if (copy.type === 'debug') copy.console = false;
        out.push(copy);
      }
      return out;
    }

    /** Which modem registers with which server node, for the examples in `files`. */
    function expectedRegistrations(files) {
      const expected = [];
      for (const file of files) {
        const nodes = examples[file];
        const server = nodes.find((n) => n.type === 'lwm2m-server');
        for (const m of nodes.filter((n) => n.type === 'lwm2m-bc66')) expected.push([server.id, m.serialPort]);
      }
      return expected;
    }

    async function run(files) {
      const flow = [];
      for (const file of files) flow.push(...(await onLoopback(examples[file])));
      const nodes = [...NODES];
      if (files.includes(DASHBOARD)) nodes.push(...DASHBOARD_NODES.map((m) => require(path.join(dashboardDir, 'nodes', `${m}.js`))));
      await helper.load(nodes, flow);
      for (const n of flow) assert.ok(helper.getNode(n.id) || n.type === 'tab', `${n.id} (${n.type}) is running`);
      // each modem registers with its own example's server (bootstrapping first in bootstrap mode)
      const pending = expectedRegistrations(files);
      for (let i = 0; i < 200 && pending.length; i++) {
        await delay(25);
        for (const [serverId, serial] of [...pending]) {
          if (helper.getNode(serverId).server.listRegistrations().some((r) => r.endpoint === modems[serial].endpoint)) pending.splice(pending.indexOf(pending.find((p) => p[1] === serial)), 1);
        }
      }
      assert.deepStrictEqual(pending, [], 'modems not registered with their example\'s server');
      await delay(200); // what the first messages after registration do
      const errors = helper.log().args.map((a) => a[0])
        .filter((e) => e && e.level <= helper.log().ERROR && (OUR_TYPES.includes(e.type) || /^lwm2m-/.test(e.type ?? '')));
      // a modem may register before its flow has set the value a server auto-observes: the device
      // answers 4.04, the node reports it, and the retry 5 s later must find the value
      const retried = errors.filter((e) => /^auto-observe: (\S+) (\S+): device answered 4\.04$/.test(e.msg));
      for (const e of retried) {
        const [, endpoint, observed] = /^auto-observe: (\S+) (\S+):/.exec(e.msg);
        const srv = flow.filter((n) => n.type === 'lwm2m-server').map((n) => helper.getNode(n.id).server).find((x) => x.getRegistration(endpoint));
        for (let i = 0; i < 100 && !srv.isObserving(endpoint, observed); i++) await delay(100);
        assert.ok(srv.isObserving(endpoint, observed), `${endpoint} ${observed}: the auto-observation was tried again and started`);
      }
      const problems = errors.filter((e) => !retried.includes(e)).map((e) => `${e.type} ${e.id}: ${e.msg}`);
      assert.deepStrictEqual(problems, [], 'errors from our nodes');
      if (process.env.SHOW_LOG) console.log(helper.log().args.map((a) => a[0]).filter((e) => e && e.level <= 40).map((e) => `${e.level} ${e.type} ${e.id}: ${e.msg}`).join('\n'));
    }

    const runnable = FILES.filter((f) => f !== DASHBOARD || dashboardDir);
    for (const file of runnable) {
      it(`runs ${file} alone`, () => run([file]));
    }
    it(`runs ${runnable.length === FILES.length ? 'all the examples' : 'all the examples but the dashboard one (no @flowfuse/node-red-dashboard)'} together`, () => run(runnable));
  });
});
