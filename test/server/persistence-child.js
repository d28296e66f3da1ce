'use strict';
// A server with a registration file, for persistence-hardening.test.js to kill with SIGKILL.
const { Lwm2mServer } = require('../../dist/lwm2m/server');

(async () => {
  const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', persistenceFile: process.argv[2] });
  server.on('warning', () => {});
  await server.start();
  process.send(server.address().port);
})();
