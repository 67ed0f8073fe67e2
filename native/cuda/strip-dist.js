#!/usr/bin/env node
// Copies the compiled JavaScript of dist/ for gpu-check.sh's payload without its comments (a
// quarter of its bytes, and most of what the payload's xz'd JavaScript weighs): esbuild re-prints
// each file as it is (CommonJS stays CommonJS, names and line breaks stay; no bundling, no
// minification), legal comments dropped too. Source maps and type declarations stay behind.
//
//   node native/cuda/strip-dist.js SRC_DIR OUT_DIR     (e.g. dist /tmp/stage/dist)
//
// Prints the bytes before and after. Runs on the development machine only (esbuild is a
// dependency of the project).

'use strict';

const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');

function main() {
  const [src, out] = process.argv.slice(2);
  if (!src || !out) {
    console.error('usage: node native/cuda/strip-dist.js SRC_DIR OUT_DIR');
    process.exit(2);
  }
  let before = 0;
  let after = 0;
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.name.endsWith('.js')) {
        const text = fs.readFileSync(file, 'utf8');
        const options = { loader: 'js', legalComments: 'none', charset: 'utf8' };
        const code = esbuild.transformSync(text, options).code;
        const target = path.join(out, path.relative(src, file));
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, code);
        before += text.length;
        after += code.length;
      }
    }
  };
  walk(src);
  console.log(`dist without comments: ${before} -> ${after} bytes of JavaScript`);
}

main();
