#!/usr/bin/env node
// Builds the CUDA-emulator test addon: native/build/cuda-emu/mmgpt_cuda_emu.node.
//
//   node native/cuda/emu/build-emu.js        (from the repository root; needs g++ only)
//
// The kernels of native/cuda/*.cu are compiled by g++ as C++ against the emulator header
// (cuda_runtime.h in this folder), after one textual rewrite: `kernel<<<grid, block, smem,
// stream>>>(args)` becomes `::emu::launch(kernel, "kernel", grid, block, smem, stream)(args)`
// (line numbers are kept, so compiler messages point at the .cu lines). addon_cuda.cc is compiled
// unchanged with MMGPT_WITH_CUDA, so the JS side sees exactly the real addon's `cuda` object.
// test/engine/backends*.test.ts and cuda_backend.test.ts run against it with MMGPT_CUDA_ADDON=<this addon> (slow: every CUDA
// thread is a fiber). Never part of the shipped addon.

'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const here = __dirname; // native/cuda/emu
const cudaDir = path.dirname(here); // native/cuda
const nativeDir = path.dirname(cudaDir); // native
const outDir = path.join(nativeDir, 'build', 'cuda-emu');
const srcOut = path.join(outDir, 'src');

function nodeIncludeDir() {
  const candidates = [
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  for (const c of candidates) if (fs.existsSync(path.join(c, 'node_api.h'))) return c;
  throw new Error(`node_api.h not found (tried ${candidates.join(', ')})`);
}

function rewriteLaunches(source) {
  return source
    .replace(/\b([A-Za-z_]\w*(?:<[\w:, ]+>)?)<<</g, (_, k) => `::emu::launch(${k}, "${k}", `)
    .replace(/>>>\(/g, ')(');
}

function main() {
  fs.mkdirSync(srcOut, { recursive: true });
  const addonApi = path.dirname(
    require.resolve('node-addon-api/package.json', { paths: [nativeDir] }),
  );
  const flags = [
    '-std=c++17',
    '-O2',
    '-g',
    '-fPIC',
    '-fno-strict-aliasing',
    '-Wall',
    '-Wno-unknown-pragmas',
    '-Wno-unused-variable',
    '-DMMGPT_CUDA_ARCHS="emulated"',
    '-I',
    here,
    '-I',
    cudaDir,
  ];
  const objects = [];
  const cuFiles = fs.readdirSync(cudaDir).filter((f) => f.endsWith('.cu'));
  for (const f of cuFiles) {
    const original = path.join(cudaDir, f);
    const out = path.join(srcOut, f.replace(/\.cu$/, '.cc'));
    fs.writeFileSync(
      out,
      `#line 1 "${original}"\n` + rewriteLaunches(fs.readFileSync(original, 'utf8')),
    );
    const obj = out.replace(/\.cc$/, '.o');
    execFileSync('g++', [...flags, '-c', out, '-o', obj], { stdio: 'inherit' });
    objects.push(obj);
  }
  const napiFlags = [
    ...flags,
    '-DMMGPT_WITH_CUDA=1',
    '-DNAPI_VERSION=8',
    '-DNAPI_CPP_EXCEPTIONS',
    '-fexceptions',
    '-I',
    nodeIncludeDir(),
    '-I',
    addonApi,
  ];
  for (const f of [path.join(cudaDir, 'addon_cuda.cc'), path.join(here, 'emu_main.cc')]) {
    const obj = path.join(srcOut, path.basename(f).replace(/\.cc$/, '.o'));
    execFileSync('g++', [...napiFlags, '-c', f, '-o', obj], { stdio: 'inherit' });
    objects.push(obj);
  }
  const target = path.join(outDir, 'mmgpt_cuda_emu.node');
  execFileSync('g++', ['-shared', '-o', target, ...objects], { stdio: 'inherit' });
  process.stdout.write(`built ${target}\n`);
}

main();
