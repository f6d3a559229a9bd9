#!/usr/bin/env node
'use strict';
// The `collectivekv` command: a thin launcher for the bundled CLI (built by `npm run build`).
const path = require('path');
const fs = require('fs');

const cli = path.join(__dirname, '..', 'dist', 'cli.cjs');
if (!fs.existsSync(cli)) {
  console.error(`collectivekv: ${cli} is missing; run \`npm run build\` first.`);
  process.exit(1);
}
require(cli)
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; })
  .catch((err) => {
    console.error(`collectivekv: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  });
