'use strict';
// `npm run bench`: every benchmark with its baseline in the same run, one table each; the tables
// also go to bench/out/latest.md. Sizes can be cut down for a quick run: BENCH_QUICK=1.
const fs = require('fs');
const os = require('os');
const path = require('path');

async function main() {
  const quick = process.env.BENCH_QUICK === '1';
  const started = new Date();
  const parts = [];
  const header = `Run ${started.toISOString()} on ${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; command: npm run bench${quick ? ' (BENCH_QUICK=1)' : ''}`;
  console.log(header);
  parts.push((await require('./registration').main(quick ? [10000] : [10000, 50000, 100000])).text);
  parts.push((await require('./read-fanout').main(10000)).text);
  parts.push((await require('./notifications').main(1000, quick ? 3 : 5)).text);
  parts.push((await require('./bc66-path').main(2000)).text);
  parts.push((await require('./dtls').main(quick ? 2 : 4)).text);
  parts.push((await require('./device-browser').main(quick ? 10000 : 100000)).text);
  parts.push((await require('./redis-store').main(quick ? 5000 : 20000)).text);
  fs.mkdirSync(path.join(__dirname, 'out'), { recursive: true });
  fs.writeFileSync(path.join(__dirname, 'out', 'latest.md'), `${header}\n${parts.join('\n')}\n`);
  console.log(`\nwritten to bench/out/latest.md in ${Math.round((Date.now() - started.getTime()) / 1000)} s`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
