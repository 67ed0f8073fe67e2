#!/usr/bin/env node
// Entry point of the `mmgpt` command: runs the compiled CLI (npm run build makes dist/).
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'dist', 'src', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('mmgpt: the TypeScript sources are not built yet; run `npm run build` (or scripts/setup.sh) first.');
  process.exit(1);
}
require(cli)
  .main(process.argv.slice(2))
  .then((code) => process.exit(code));
