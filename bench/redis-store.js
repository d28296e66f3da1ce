'use strict';
// 7. Registration storm with the Redis store beside the memory store, in the same run: the same
// fleet registers with an Lwm2mServer that keeps registrations in its memory, then with one that
// writes each through a real redis-server (started here on a loopback port, no persistence) before
// it answers — the Lua script, the pub/sub event — and with a second instance following the events.
const { storm } = require('./registration');
const { ChildServer } = require('./lib/child-server');
const { table, fmt } = require('./lib/table');
const { hasRedis, startRedis } = require('../test/cluster/redis-server');

async function main(n = 20000) {
  if (!hasRedis()) {
    const text = table('Registration storm: Redis store beside the memory store', ['store', 'result'], [['redis', 'skipped: no redis-server (apt-get install redis-server)']]);
    return { text };
  }
  const redis = await startRedis();
  try {
    const rows = [];
    const memory = await storm('lwm2m-kit', n);
    rows.push(['memory (one instance)', fmt(memory.ok), fmt(memory.failed), fmt(memory.rate), '100%']);
    const shared = await storm('lwm2m-kit', n, { serverOptions: { redis: { url: redis.url, prefix: 'bench1:', instanceId: 'bench-a' } } });
    rows.push(['Redis (one instance)', fmt(shared.ok), fmt(shared.failed), fmt(shared.rate), fmt((shared.rate / memory.rate) * 100) + '%']);
    // a second instance following every event: what the fleet's replication costs the writer
    const follower = new ChildServer('lwm2m-kit');
    await follower.start({ redis: { url: redis.url, prefix: 'bench2:', instanceId: 'bench-b' } });
    const fleet = await storm('lwm2m-kit', n, { serverOptions: { redis: { url: redis.url, prefix: 'bench2:', instanceId: 'bench-c' } } });
    const replicated = (await follower.stats()).count;
    await follower.close();
    rows.push([`Redis, a second instance following (${fmt(replicated)} replicated)`, fmt(fleet.ok), fmt(fleet.failed), fmt(fleet.rate), fmt((fleet.rate / memory.rate) * 100) + '%']);
    const text = table(`Registration storm with the Redis store beside the memory store (${fmt(n)} devices, 64 sockets, 1,024 in flight)`,
      ['store', 'ok', 'failed', 'registrations/s', 'vs memory'], rows);
    return { text };
  } finally {
    await redis.stop();
  }
}

module.exports = { main };
if (require.main === module) main(Number(process.argv[2]) || 20000).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
