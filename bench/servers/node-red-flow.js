'use strict';
// The system under test through Node-RED: an embedded Node-RED runtime (as `node-red` runs it,
// without the test helper's spies) loading this package's nodes, with a flow of an lwm2m-server and
// either an lwm2m-observe node that auto-observes on registration (flow "observe"), or an
// lwm2m-register and an lwm2m-read node (flow "register"), each wired to a tiny node counting its
// messages. It also counts the status messages nodes send towards the editor.
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { serve } = require('./harness');

const COUNTER_JS = `module.exports = function (RED) {
  function BenchCounter(config) {
    RED.nodes.createNode(this, config);
    this.on('input', (msg, send, done) => {
      if (msg.topic === 'notify') process.benchNotifications = (process.benchNotifications || 0) + 1;
      else if (msg.topic === 'register') process.benchRegistrations = (process.benchRegistrations || 0) + 1;
      else if (msg.benchRead) process.benchReadDone(msg);
      done();
    });
  }
  RED.nodes.registerType('bench-counter', BenchCounter);
};
`;
const COUNTER_HTML = `<script type="text/javascript">RED.nodes.registerType('bench-counter', { category: 'function', defaults: {}, inputs: 1, outputs: 0 });</script>`;

serve(async (options) => {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lwm2m-bench-red-'));
  const counterDir = path.join(userDir, 'counter');
  fs.mkdirSync(counterDir);
  fs.writeFileSync(path.join(counterDir, 'bench-counter.js'), COUNTER_JS);
  fs.writeFileSync(path.join(counterDir, 'bench-counter.html'), COUNTER_HTML);
  const flow = (options && options.flow) || 'observe';
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify([
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port: (options && options.port) || 0, timeout: 20, maxRegistrations: 1000000 },
    ...(flow === 'observe'
      ? [{ id: 'obs', z: 'f1', type: 'lwm2m-observe', server: 'srv', autoObserve: true, autoPaths: options.paths.join(','), wires: [['count']] }]
      : [{ id: 'reg', z: 'f1', type: 'lwm2m-register', server: 'srv', wires: [['count']] },
        { id: 'read', z: 'f1', type: 'lwm2m-read', server: 'srv', path: '/3/0', format: 'senml-cbor', wires: [['count']] },
        { id: 'catcher', z: 'f1', type: 'catch', scope: ['read'], uncaught: false, wires: [['count']] }]),
    { id: 'count', z: 'f1', type: 'bench-counter', wires: [] },
  ]));
  // status messages towards the editor (the runtime's node-status events)
  let statusMessages = 0;
  require('@node-red/util').events.on('node-status', () => { statusMessages++; });
  const RED = require('node-red');
  RED.init(http.createServer(), {
    userDir,
    flowFile: 'flows.json',
    nodesDir: [path.join(__dirname, '..', '..', 'nodes'), counterDir],
    httpAdminRoot: false,
    httpNodeRoot: false,
    logging: { console: { level: 'warn' } },
    editorTheme: { projects: { enabled: false } },
  });
  await RED.start();
  for (let i = 0; i < 200 && !RED.nodes.getNode('srv'); i++) await new Promise((r) => setTimeout(r, 25));
  const srv = RED.nodes.getNode('srv');
  for (let i = 0; i < 200 && !srv.server.running; i++) await new Promise((r) => setTimeout(r, 10));
  return {
    port: srv.server.address().port,
    count: () => srv.server.registrationCount,
    close: async () => {
      await RED.stop();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
    commands: {
      async flowCounts() {
        return { registrations: process.benchRegistrations || 0, statusMessages };
      },
      // reads issued from the flow: one message per registered device into lwm2m-read, `window` in flight
      async readAll({ window }) {
        const read = RED.nodes.getNode('read');
        const endpoints = srv.server.listRegistrations().map((r) => r.endpoint);
        let next = 0;
        let ok = 0;
        const statusBefore = statusMessages;
        const started = process.hrtime.bigint();
        await new Promise((resolve) => {
          let outstanding = 0;
          const pump = () => {
            while (outstanding < window && next < endpoints.length) {
              outstanding++;
              read.receive({ benchRead: true, endpoint: endpoints[next++] });
            }
            if (outstanding === 0) resolve();
          };
          process.benchReadDone = (msg) => {
            outstanding--;
            if (!msg.error) ok++;
            pump();
          };
          pump();
        });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        return { total: endpoints.length, ok, seconds, statusMessages: statusMessages - statusBefore };
      },
      async countNotifications({ seconds }) {
        const before = process.benchNotifications || 0;
        const t0 = Date.now();
        await new Promise((r) => setTimeout(r, seconds * 1000));
        return { notifications: (process.benchNotifications || 0) - before, seconds: (Date.now() - t0) / 1000 };
      },
    },
  };
});
