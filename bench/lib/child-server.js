'use strict';
// Parent side of bench/servers/harness.js: fork a benchmark server and talk to it over IPC.
const { fork } = require('child_process');
const path = require('path');

class ChildServer {
  constructor(kind) {
    this.kind = kind;
    this.child = fork(path.join(__dirname, '..', 'servers', `${kind}.js`), [], {
      // BENCH_PROFILE=<dir> writes a CPU profile of every server process there (--cpu-prof)
      execArgv: ['--expose-gc', '--max-old-space-size=8192', ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.queue = [];
    this.child.on('message', (m) => {
      const next = this.queue.shift();
      if (!next) return;
      if (m.ok) next.resolve(m);
      else next.reject(new Error(`${kind}: ${m.error}`));
    });
    this.child.on('exit', (code) => {
      for (const q of this.queue.splice(0)) q.reject(new Error(`${kind} exited with ${code}`));
    });
  }

  call(message) {
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.child.send(message);
    });
  }

  async start(options) {
    const m = await this.call({ cmd: 'start', options });
    this.port = m.port;
    return { address: '127.0.0.1', port: m.port };
  }

  stats() { return this.call({ cmd: 'stats' }); }
  async run(name, args) { return (await this.call({ cmd: 'run', name, args })).result; }

  async close() {
    const exited = new Promise((r) => this.child.once('exit', r));
    try {
      await Promise.race([this.call({ cmd: 'close' }).then(() => exited), new Promise((r) => setTimeout(r, 5000))]);
    } finally {
      if (this.child.exitCode === null) this.child.kill();
    }
  }
}

module.exports = { ChildServer };
