#!/usr/bin/env node
// CI check of the DDF loader against the real OMA object registry beside the project
// (../shared/lwm2m-registry). Every XML file must load, or be rejected with a DdfError that names
// it; anything else (an unexpected exception, a rejection that does not name the file) fails.
'use strict';
const fs = require('fs');
const path = require('path');
const { ObjectRegistry, DdfError } = require('../dist/lwm2m/model');

async function main() {
  const dir = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'shared', 'lwm2m-registry'));
  if (!fs.existsSync(dir)) {
    console.log(`check-registry: ${dir} not found`);
    process.exit(process.env.CI ? 1 : 0);
  }
  const files = fs.readdirSync(dir).filter((n) => n.toLowerCase().endsWith('.xml'));
  const registry = new ObjectRegistry();
  const report = await registry.loadFolder(dir);
  const rejected = new Set(report.errors.map((e) => e.file));
  const loadedFiles = files.length - rejected.size;
  let bad = 0;
  for (const err of report.errors) {
    const specific = err instanceof DdfError && err.message.startsWith(`${err.file}: `) && files.includes(err.file);
    console.log(`${specific ? 'rejected' : 'UNEXPECTED'}  ${err.message}`);
    if (!specific) bad++;
  }
  console.log(`check-registry: ${files.length} files, ${loadedFiles} loaded (${report.loaded.length} objects, ${registry.ids().length} distinct ids), ${rejected.size} rejected with a specific error, ${bad} unexpected`);
  if (bad > 0 || loadedFiles + rejected.size !== files.length) process.exit(1);
}

main().catch((err) => {
  console.error(`check-registry: ${err.stack || err}`);
  process.exit(1);
});
