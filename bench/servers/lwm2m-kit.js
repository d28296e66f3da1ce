'use strict';
// The system under test: this package's Lwm2mServer (core only, no Node-RED).
const { Lwm2mServer, RedisStore } = require('../../dist/lwm2m/server');
const { serve } = require('./harness');

serve(async (options) => {
  // { redis: { url, prefix, instanceId } }: registrations written through a shared Redis store
  const { redis, ...rest } = options || {};
  const shared = redis ? new RedisStore(redis) : undefined;
  if (shared) shared.on('error', () => {});
  const server = new Lwm2mServer({ port: 0, address: '127.0.0.1', requestTimeoutMs: 20000, ...rest, shared });
  server.on('warning', () => {});
  let notified = 0;
  server.on('notify', () => { notified++; });
  await server.start();
  const commands = {
    // DTLS benchmarks: PSK credentials for `n` devices (identity dev-<i>, endpoint dev-<i>), one shared key
    async addCredentials({ n, key }) {
      for (let i = 0; i < n; i++) server.security.set({ endpoint: `dev-${i}`, identity: `dev-${i}`, key: Buffer.from(key, 'hex') });
      return server.secureAddress().port;
    },
    // CPU time this process used so far (µs): what one handshake costs the server, whatever the clients can drive
    async cpu() {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
    async nosecPort() {
      return server.address().port;
    },
    // heap per established DTLS session: heap now against `before`, divided by the sessions open
    async sessionHeap() {
      if (global.gc) { global.gc(); global.gc(); }
      const m = process.memoryUsage();
      return { heapUsed: m.heapUsed, external: m.external, sessions: server.secureTransport?.options?.channel?.sessionCount ?? 0 };
    },
    // heap without the message layer's duplicate-detection cache (answers kept ~247 s)
    async steadyHeap() {
      server.transport.layer?.dedup.clear();
      if (global.gc) { global.gc(); global.gc(); }
      return process.memoryUsage().heapUsed;
    },
    // observe `paths` on every registered device; count decoded notifications for `seconds`
    async observeAll({ paths, window }) {
      const endpoints = server.listRegistrations().map((r) => r.endpoint);
      let next = 0;
      let failed = 0;
      const jobs = endpoints.flatMap((ep) => paths.map((p) => [ep, p]));
      const worker = async () => {
        while (next < jobs.length) {
          const [ep, p] = jobs[next++];
          await server.observe(ep, p).catch(() => { failed++; });
        }
      };
      await Promise.all(Array.from({ length: window }, worker));
      notified = 0;
      return { observations: jobs.length - failed, failed };
    },
    async countNotifications({ seconds }) {
      const before = notified;
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      return { notifications: notified - before, seconds: (Date.now() - t0) / 1000 };
    },
    // read fan-out: read `path` from every registered endpoint, `window` at a time
    async readAll({ path, format, window }) {
      const endpoints = server.listRegistrations().map((r) => r.endpoint);
      const latencies = [];
      let ok = 0;
      let next = 0;
      const started = process.hrtime.bigint();
      const worker = async () => {
        while (next < endpoints.length) {
          const ep = endpoints[next++];
          const t0 = process.hrtime.bigint();
          try {
            await server.read(ep, path, { format });
            ok++;
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          } catch { /* counted as not ok */ }
        }
      };
      await Promise.all(Array.from({ length: window }, worker));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      latencies.sort((a, b) => a - b);
      const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN;
      return { total: endpoints.length, ok, seconds, p50: pct(0.5), p99: pct(0.99) };
    },
  };
  return {
    port: server.address().port,
    count: () => server.listRegistrations().length,
    close: () => server.stop(),
    commands,
    server,
  };
});
