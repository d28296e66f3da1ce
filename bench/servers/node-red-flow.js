'use strict';
// The system under test through Node-RED: an embedded Node-RED runtime (as `node-red` runs it,
// without the test helper's spies) loading this package's nodes, with a flow of an lwm2m-server, an
// lwm2m-observe node that auto-observes on registration, and a tiny node counting its messages.
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
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify([
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port: options.port, timeout: 20 },
    { id: 'obs', z: 'f1', type: 'lwm2m-observe', server: 'srv', autoObserve: true, autoPaths: options.paths.join(','), wires: [['count']] },
    { id: 'count', z: 'f1', type: 'bench-counter', wires: [] },
  ]));
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
    count: () => srv.server.listRegistrations().length,
    close: async () => {
      await RED.stop();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
    commands: {
      async countNotifications({ seconds }) {
        const before = process.benchNotifications || 0;
        const t0 = Date.now();
        await new Promise((r) => setTimeout(r, seconds * 1000));
        return { notifications: (process.benchNotifications || 0) - before, seconds: (Date.now() - t0) / 1000 };
      },
    },
  };
});
