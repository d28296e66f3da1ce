'use strict';
// The system under test through Node-RED: a real runtime (node-red-node-test-helper) with an
// lwm2m-server, an lwm2m-observe node that auto-observes on registration, and a node counting the
// messages that come out of it.
const helper = require('node-red-node-test-helper');
const { serve } = require('./harness');
const path = require('path');

const nodes = ['lwm2m-server', 'lwm2m-observe'].map((t) => require(path.join(__dirname, '..', '..', 'nodes', `${t}.js`)));

serve(async (options) => {
  helper.init(require.resolve('node-red'));
  await helper.startServer();
  const port = options.port;
  await helper.load(nodes, [
    { id: 'f1', type: 'tab' },
    { id: 'srv', type: 'lwm2m-server', address: '127.0.0.1', port, timeout: 20 },
    { id: 'obs', z: 'f1', type: 'lwm2m-observe', server: 'srv', autoObserve: true, autoPaths: options.paths.join(','), wires: [['count']] },
    { id: 'count', z: 'f1', type: 'helper' },
  ]);
  let messages = 0;
  let observing = 0;
  helper.getNode('count').on('input', (msg) => {
    if (msg.topic === 'notify') messages++;
    else if (msg.topic === 'observe') observing++;
  });
  const srv = helper.getNode('srv');
  for (let i = 0; i < 200 && !srv.server.running; i++) await new Promise((r) => setTimeout(r, 10));
  return {
    port: srv.server.address().port,
    count: () => srv.server.listRegistrations().length,
    close: async () => { await helper.unload(); await helper.stopServer(); },
    commands: {
      async observations() { return { observations: observing }; },
      async countNotifications({ seconds }) {
        const before = messages;
        const t0 = Date.now();
        await new Promise((r) => setTimeout(r, seconds * 1000));
        return { notifications: messages - before, seconds: (Date.now() - t0) / 1000 };
      },
    },
  };
});
