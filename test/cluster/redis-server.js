'use strict';
// A real redis-server (Debian's redis-server; .ci/run installs it) on a loopback port of its own,
// with no persistence, for the cluster tests; null when the binary is absent (the tests skip).
const { spawn, execFileSync } = require('child_process');
const { freeTcpPort } = require('../helpers');

function hasRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}


async function startRedis(port, { password } = {}) {
  port ??= await freeTcpPort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...(password ? ['--requirepass', password] : [])];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stdout.on('data', (c) => log.push(c.toString()));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${log.join('')}`)), 10000);
    const check = (c) => {
      if (/Ready to accept connections/.test(c.toString())) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${log.join('')}`)));
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

module.exports = { hasRedis, startRedis };
