'use strict';
// 1. Registration storm and 4. memory per registered device.
// N clients (default 10k, 50k, 100k) register (CON POST /rd, link-format with 6 objects) with each
// server kind; registrations/s per decile show whether the store slows down as it grows.
const { Fleet } = require('./lib/fleet');
const { ChildServer } = require('./lib/child-server');
const { table, fmt } = require('./lib/table');

// node-red: this package's lwm2m-server with an lwm2m-register node feeding a counter, in a real
// Node-RED runtime (bench/servers/node-red-flow.js, flow "register")
const KINDS = (process.env.BENCH_KINDS || 'bare-responder,coap-minimal,lwm2m-kit,node-red').split(',');

async function storm(kind, n, { sockets = 64, window = 1024, skip = 0, serverOptions } = {}) {
  const server = new ChildServer(kind === 'node-red' ? 'node-red-flow' : kind);
  const target = await server.start(kind === 'node-red' ? { flow: 'register' } : serverOptions);
  const before = await server.stats();
  const flowBefore = kind === 'node-red' ? await server.run('flowCounts') : undefined;
  const fleet = new Fleet({ target, sockets, window, deadlineMs: 300000 });
  await fleet.open();
  const decile = Math.ceil(n / 10);
  const decileRates = [];
  let ok = 0;
  let failed = 0;
  let mark = process.hrtime.bigint();
  const started = mark;
  let doneCount = 0;
  let afterSkip;
  await fleet.pump(n, (i) => fleet.register(i, `bench-${i}`), (i, res) => {
    if (res && res.code === '2.01') ok++; else failed++;
    doneCount++;
    if (doneCount === skip) afterSkip = process.hrtime.bigint();
    if (doneCount % decile === 0 || doneCount === n) {
      const now = process.hrtime.bigint();
      const count = doneCount % decile === 0 ? decile : doneCount % decile;
      decileRates.push(count / (Number(now - mark) / 1e9));
      mark = now;
    }
  });
  const ended = process.hrtime.bigint();
  const seconds = Number(ended - started) / 1e9;
  const rateAfterSkip = afterSkip ? (n - skip) / (Number(ended - afterSkip) / 1e9) : undefined;
  fleet.close();
  // events the flow received, and status messages towards the editor while it ran
  const flow = flowBefore && await server.run('flowCounts');
  const flowEvents = flow && flow.registrations - flowBefore.registrations;
  const statusPerSecond = flow && (flow.statusMessages - flowBefore.statusMessages) / seconds;
  const after = await server.stats();
  const steady = kind === 'lwm2m-kit' ? await server.run('steadyHeap') : undefined;
  await server.close();
  return {
    kind, n, ok, failed, seconds, rate: ok / seconds, decileRates, rateAfterSkip, flowEvents, statusPerSecond,
    bytesPerDevice: (after.heapUsed - before.heapUsed) / Math.max(1, after.count),
    steadyBytesPerDevice: steady === undefined ? undefined : (steady - before.heapUsed) / Math.max(1, after.count),
    rssPerDevice: (after.rss - before.rss) / Math.max(1, after.count),
    stored: after.count,
  };
}

async function main(sizes) {
  const results = [];
  for (const n of sizes) {
    for (const kind of KINDS) {
      const r = await storm(kind, n);
      results.push(r);
      process.stderr.write(`registration ${kind} n=${n}: ${fmt(r.rate)}/s ok=${r.ok} failed=${r.failed}\n`);
    }
  }
  const rows = results.map((r) => {
    const first = r.decileRates[0];
    const worst = Math.min(...r.decileRates);
    // the first decile includes JIT warm-up, so it is also compared with the median decile
    const median = [...r.decileRates].sort((a, b) => a - b)[Math.floor(r.decileRates.length / 2)];
    return [r.kind, fmt(r.n), fmt(r.ok), fmt(r.failed), fmt(r.rate), r.decileRates.map((d) => fmt(d / 1000, 1)).join(' '),
      fmt((worst / first) * 100) + '%', fmt((worst / median) * 100) + '%'];
  });
  const t1 = table('Registration storm (registrations/s; deciles in thousands/s)', ['server', 'N', 'ok', 'failed', 'reg/s overall', 'per decile (k/s)', 'worst decile vs first', 'worst vs median'], rows);
  // few sockets, few requests in flight: per-message cost dominates, as with real devices behind NATs
  const narrow = [];
  const narrowN = sizes[0] >= 20000 ? 40000 : 20000;
  for (const kind of KINDS.filter((k) => k !== 'coap-minimal')) {
    const r = await storm(kind, narrowN, { sockets: 8, window: 64, skip: 5000 });
    narrow.push(r);
    process.stderr.write(`registration (8 sockets, 64 in flight) ${kind} n=${narrowN}: ${fmt(r.rateAfterSkip)}/s after 5k\n`);
  }
  const bare = narrow.find((r) => r.kind === 'bare-responder');
  const t3 = table(`Registration storm from 8 sockets, 64 in flight, ${fmt(narrowN)} devices (rate once 5k are registered)`,
    ['server', 'ok', 'failed', 'reg/s after 5k', 'vs bare responder'],
    narrow.map((r) => [r.kind, fmt(r.ok), fmt(r.failed), fmt(r.rateAfterSkip), bare ? fmt((r.rateAfterSkip / bare.rateAfterSkip) * 100) + '%' : '']));
  const flowRows = [...results, ...narrow].filter((r) => r.kind === 'node-red').map((r) => [fmt(r.n), r.rateAfterSkip ? '8 sockets, 64 in flight' : '64 sockets, 1024 in flight',
    fmt(r.flowEvents), fmt(r.rate), fmt(r.statusPerSecond, 1)]);
  const t4 = table('Registration storm through a Node-RED flow (lwm2m-server → lwm2m-register → counter): events the flow received',
    ['devices', 'load', 'register events in the flow', 'events/s overall', 'status messages/s to the editor (all nodes)'], flowRows);
  const memRows = results.filter((r) => r.kind === 'lwm2m-kit').map((r) => [r.kind, fmt(r.stored), fmt(r.steadyBytesPerDevice), fmt(r.bytesPerDevice), fmt(r.rssPerDevice)]);
  const t2 = table('Memory per registered device (after GC)', ['server', 'devices stored', 'heap B/device, registrations only', 'heap B/device incl. CoAP dedupe cache (~247 s)', 'RSS B/device'], memRows);
  return { results, narrow, text: [t1, t3, t4, t2].join('\n') };
}

module.exports = { main, storm };
if (require.main === module) {
  const sizes = process.argv.slice(2).map(Number).filter(Boolean);
  main(sizes.length ? sizes : [10000, 50000, 100000]).catch((e) => { console.error(e); process.exit(1); });
}
