'use strict';
// Child-process side of a benchmark server: started with fork(), it reports its port, then answers
// { cmd: 'stats' } (registrations, heap, RSS after a GC), { cmd: 'run', name, args } and { cmd: 'close' }.
function serve(start) {
  let handle = null;
  process.on('message', async (m) => {
    try {
      if (m.cmd === 'start') {
        handle = await start(m.options);
        process.send({ ok: true, port: handle.port });
      } else if (m.cmd === 'stats') {
        if (global.gc) { global.gc(); global.gc(); }
        const mem = process.memoryUsage();
        process.send({ ok: true, count: handle.count(), heapUsed: mem.heapUsed, rss: mem.rss });
      } else if (m.cmd === 'run') {
        const result = await handle.commands[m.name](m.args);
        process.send({ ok: true, result });
      } else if (m.cmd === 'close') {
        await handle.close();
        process.send({ ok: true });
        process.exit(0);
      }
    } catch (err) {
      process.send({ ok: false, error: String(err && err.stack || err) });
    }
  });
  // never outlive the benchmark that started us
  process.on('disconnect', () => process.exit(0));
}

module.exports = { serve };
