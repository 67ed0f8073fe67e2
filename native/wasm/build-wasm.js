#!/usr/bin/env node
// Builds the WebAssembly kernels of the wasm backend: native/build-wasm/mmgpt_kernels.wasm.
//
//   node native/wasm/build-wasm.js [--require]
//
// The CPU kernels (native/src/kernels.inl, through kernels_wasm.cc) and their C entry points
// (exports.cc) are compiled by emscripten's em++ to one standalone module with SIMD128
// (-O3 -msimd128): no emscripten JS glue, loaded with the raw WebAssembly API by
// src/engine/backends/wasm.ts. It exports its memory (growable up to 4 GiB), malloc, calloc, free,
// _initialize and every mmgpt_* function of exports.cc; its only import is
// env.emscripten_notify_memory_growth (the backend stubs it).
//
// em++ is $MMGPT_EMXX, else the first em++ on PATH (Debian/Ubuntu: apt-get install emscripten;
// scripts/setup-wasm.sh installs it where it runs as root). Debian's emscripten needs
// NODE_PATH=/usr/share/nodejs to find acorn: set here when NODE_PATH is unset and that folder
// exists. Without em++ this prints why and exits 0 (the backend is then absent and says so),
// unless --require is given (CI), where it exits 1; a compiler error always exits 1.

'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const here = __dirname; // native/wasm
const nativeDir = path.dirname(here);
const srcDir = path.join(nativeDir, 'src');
const outFile = path.join(nativeDir, 'build-wasm', 'mmgpt_kernels.wasm');

/** The sources the module is built from (setup.sh's stamp hashes the same list). */
const SOURCES = ['kernels_wasm.cc', 'exports.cc'].map((f) => path.join(here, f));

/** em++: $MMGPT_EMXX, else the first em++ on PATH; null when there is none. */
function findEmxx() {
  const override = process.env.MMGPT_EMXX;
  if (override !== undefined && override !== '') return fs.existsSync(override) ? override : null;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'em++');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The exported C functions: every `MMGPT_EXPORT <type> mmgpt_name(` of exports.cc. */
function exportedFunctions() {
  const text = fs.readFileSync(path.join(here, 'exports.cc'), 'utf8');
  const names = [...text.matchAll(/^MMGPT_EXPORT\s+\w+\s+(mmgpt_\w+)\(/gm)].map((m) => m[1]);
  if (names.length === 0) throw new Error('no MMGPT_EXPORT functions found in exports.cc');
  return ['malloc', 'calloc', 'free', ...names].map((n) => `_${n}`);
}

function main() {
  const require_ = process.argv.includes('--require');
  const emxx = findEmxx();
  if (emxx === null) {
    const why =
      process.env.MMGPT_EMXX
        ? `MMGPT_EMXX=${process.env.MMGPT_EMXX} does not exist`
        : 'no em++ on PATH';
    console.error(
      `build-wasm: ${why}, so the wasm backend is not built (install emscripten: ` +
        'apt-get install emscripten, or bash scripts/setup-wasm.sh as root)',
    );
    process.exit(require_ ? 1 : 0);
  }
  const env = { ...process.env };
  if (env.NODE_PATH === undefined && fs.existsSync('/usr/share/nodejs')) {
    env.NODE_PATH = '/usr/share/nodejs';
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  // A temporary name ending in .wasm: em++ picks what it writes (module or JS glue) by the suffix.
  const tmp = outFile.replace(/\.wasm$/, '.tmp.wasm');
  const args = [
    '-O3',
    '-msimd128',
    // Post-MVP features every engine with SIMD128 has: memory.copy/fill for memcpy/memset,
    // float-to-int conversions without trap checks, sign-extension instructions.
    '-mbulk-memory',
    '-mnontrapping-fptoint',
    '-msign-ext',
    '-std=gnu++17',
    '-fno-math-errno',
    '-fno-exceptions',
    // `#pragma omp simd` loops vectorised as in the x86 builds (no OpenMP runtime: omp.h here).
    '-fopenmp-simd',
    '-Wall',
    '-Wno-unknown-pragmas',
    '-Wno-unused-variable',
    // omp.h of this folder first: the one-thread OpenMP API kernels.inl includes.
    '-I',
    here,
    '-I',
    srcDir,
    ...SOURCES,
    '-sSTANDALONE_WASM',
    '--no-entry',
    `-sEXPORTED_FUNCTIONS=${exportedFunctions().join(',')}`,
    '-sALLOW_MEMORY_GROWTH=1',
    '-sINITIAL_MEMORY=16777216',
    '-sMAXIMUM_MEMORY=4294967296',
    '-sTOTAL_STACK=1048576',
    '-o',
    tmp,
  ];
  const started = Date.now();
  try {
    execFileSync(emxx, args, { stdio: 'inherit', env });
  } catch (e) {
    console.error(`build-wasm: ${emxx} failed: ${e.message}`);
    process.exit(1);
  }
  fs.renameSync(tmp, outFile);
  const kb = (fs.statSync(outFile).size / 1024).toFixed(0);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`build-wasm: ${path.relative(process.cwd(), outFile)} (${kb} KiB, ${seconds} s)`);
}

main();
