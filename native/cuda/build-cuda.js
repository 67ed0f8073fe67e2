#!/usr/bin/env node
// Compiles the CUDA kernels (native/cuda/*.cu) with nvcc into one static library that
// binding.gyp links into the mmgpt_native addon (the gyp action of target mmgpt_cuda_kernels).
//
//   node cuda/build-cuda.js --nvcc <path> --out <libmmgpt_cuda.a> file.cu...
//
// Flags: -O3 -std=c++17, position-independent host code (-fPIC: the objects end up in a shared
// object), no fast math (the kernels rely on IEEE division and sqrt), SASS for each architecture
// in MMGPT_CUDA_ARCHS (default "80,90": A100 and H100) plus PTX of the last one so newer GPUs can
// JIT it. The files compile in parallel (MMGPT_CUDA_JOBS, default: the number of processors),
// since node-gyp runs make serially. Prints the wall time so CI logs show what CUDA costs.
// If nvcc fails (an unsupported host compiler, a broken toolkit) the CUDA part must not take the
// CPU addon down with it: unless MMGPT_CUDA=1, the library is built from stub.cc instead (host
// compiler only), whose cuda backend reports "built without CUDA kernels: nvcc failed ...".

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');

function parseArgs(argv) {
  const opts = { nvcc: null, out: null, sources: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nvcc') opts.nvcc = argv[++i];
    else if (argv[i] === '--out') opts.out = argv[++i];
    else opts.sources.push(argv[i]);
  }
  if (!opts.nvcc || !opts.out || opts.sources.length === 0) {
    throw new Error('usage: build-cuda.js --nvcc <path> --out <lib.a> file.cu...');
  }
  return opts;
}

function archFlags() {
  const raw = process.env.MMGPT_CUDA_ARCHS || '80,90';
  const archs = raw
    .split(/[,; ]+/)
    .filter((a) => a !== '')
    .map((a) => a.replace(/^sm_/, ''));
  if (archs.length === 0 || archs.some((a) => !/^\d+[a-z]?$/.test(a))) {
    throw new Error(`MMGPT_CUDA_ARCHS must list compute capabilities like "80,90", got '${raw}'`);
  }
  const flags = [];
  for (const a of archs) flags.push('-gencode', `arch=compute_${a},code=sm_${a}`);
  const ptx = archs[archs.length - 1];
  flags.push('-gencode', `arch=compute_${ptx},code=compute_${ptx}`);
  const names = archs
    .map((a) => `sm_${a}`)
    .concat([`compute_${ptx}`])
    .join(' ');
  return { flags, names };
}

/** Runs a command, echoing its output; rejects with the command line and its stderr. */
function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        const e = new Error(`${path.basename(cmd)} failed (${signal || code}): ${stderr.trim()}`);
        reject(e);
      }
    });
  });
}

/** The library from stub.cc: links like the real one, reports `reason` at run time. */
function buildStub(reason, objDir, out) {
  const cudaDir = __dirname;
  const text = reason.replace(/\s+/g, ' ').slice(0, 600);
  fs.writeFileSync(
    path.join(objDir, 'stub_reason.h'),
    `#define MMGPT_CUDA_STUB_REASON ${JSON.stringify(`built without CUDA kernels: ${text}`)}\n`,
  );
  const obj = path.join(objDir, 'stub.o');
  const cxx = process.env.CXX || 'c++';
  execFileSync(
    cxx,
    [
      '-std=c++17',
      '-O2',
      '-fPIC',
      '-I',
      objDir,
      '-I',
      cudaDir,
      '-c',
      path.join(cudaDir, 'stub.cc'),
      '-o',
      obj,
    ],
    { stdio: 'inherit' },
  );
  fs.rmSync(out, { force: true });
  execFileSync('ar', ['rcs', out, obj], { stdio: 'inherit' });
}

async function main() {
  const t0 = Date.now();
  const opts = parseArgs(process.argv.slice(2));
  const { flags: gencode, names } = archFlags();
  const outDir = path.dirname(path.resolve(opts.out));
  const objDir = path.join(outDir, 'obj');
  fs.mkdirSync(objDir, { recursive: true });
  const jobs = Math.max(1, Number(process.env.MMGPT_CUDA_JOBS) || os.cpus().length);
  const common = [
    '-O3',
    '-std=c++17',
    '--compiler-options',
    '-fPIC,-O3,-Wall,-Wno-unknown-pragmas',
    ...gencode,
    `-DMMGPT_CUDA_ARCHS="${names}"`,
    '-I',
    path.dirname(path.resolve(opts.sources[0])),
  ];
  const objects = opts.sources.map((src) =>
    path.join(objDir, path.basename(src).replace(/\.cu$/, '.o')),
  );
  // A small work queue: `jobs` nvcc processes at a time.
  let next = 0;
  const worker = async () => {
    while (next < opts.sources.length) {
      const i = next++;
      const started = Date.now();
      await run(opts.nvcc, [...common, '-c', opts.sources[i], '-o', objects[i]]);
      process.stdout.write(
        `  nvcc ${path.basename(opts.sources[i])}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(jobs, opts.sources.length) }, worker));
  } catch (e) {
    if (process.env.MMGPT_CUDA === '1') throw e;
    process.stderr.write(
      `\nbuild-cuda.js: WARNING: ${e.message.split('\n')[0]}\n` +
        '  Building the addon without CUDA kernels (the cpu backend is unaffected); set\n' +
        '  MMGPT_CUDA=1 to make this an error, or MMGPT_CUDA=0 to skip CUDA quietly.\n\n',
    );
    buildStub(`nvcc failed: ${e.message}`, objDir, opts.out);
    return;
  }
  fs.rmSync(opts.out, { force: true });
  execFileSync('ar', ['rcs', opts.out, ...objects], { stdio: 'inherit' });
  process.stdout.write(
    `  CUDA kernels (${names}) built in ${((Date.now() - t0) / 1000).toFixed(1)} s with ` +
      `${Math.min(jobs, opts.sources.length)} parallel nvcc job(s) -> ${opts.out}\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`build-cuda.js: ${e.message}\n`);
  process.exit(1);
});
