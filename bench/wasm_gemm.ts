// GEMM rate of the wasm backend (the cpu kernels compiled to WebAssembly SIMD128, one thread) on
// the original recipe's large matmul shapes (batch 32 x 57 input positions = 1824 rows, d_model
// 128, MLP 512, vocab 1058; forward, input-gradient and weight-gradient forms), next to another
// build of the module (--peer) and the native cpu backend on one thread, all in the same process
// in alternating rounds (gemm_timing.ts). Numbers, never pass/fail.
//
// Usage: node dist/bench/wasm_gemm.js [--min-ms 300] [--peer other/mmgpt_kernels.wasm] [--no-cpu]
//        [--only dW,head] [--json]
// Columns: wasm GFLOP/s (median call) and per CPU second of the process (one thread: unaffected
// by other processes on a busy machine, the column to compare); with --peer, the peer module's
// per-CPU-s rate and ours / peer; then the cpu backend's per-CPU-s rate and wasm / cpu. --only
// keeps the shapes whose name contains one of the words. --json prints one JSON line with every
// cell at the end.

import * as fs from 'fs';
import * as path from 'path';
import type { Backend, MatmulParams } from '../src/engine/backend';
import { cpuBackendInfo, loadCpuBackend, setCpuThreads } from '../src/engine/backends/cpu';
import { createWasmBackendSync, wasmGemmTile } from '../src/engine/backends/wasm';
import { loadWasmBackend } from '../src/engine/backends/wasm_node';
import { randomArray, rates, timeAlternating } from './gemm_timing';
import type { Rates } from './gemm_timing';
import { flagValue, numberFlag } from './run_backend';

interface Shape {
  name: string;
  p: MatmulParams;
}

function shape(
  name: string,
  m: number,
  k: number,
  n: number,
  transA = false,
  transB = false,
): Shape {
  const p = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, strideC: 0 };
  return { name, p: { ...p, alpha: 1, accumulate: false } };
}

const SHAPES: Shape[] = [
  shape('fc     [1824x128]@[128x512]', 1824, 128, 512),
  shape('proj   [1824x512]@[512x128]', 1824, 512, 128),
  shape('head   [1824x128]@[128x1058]', 1824, 128, 1058),
  shape('qkv    [1824x128]@[128x384]', 1824, 128, 384),
  shape('dX fc  [1824x512]@[128x512]^T', 1824, 512, 128, false, true),
  shape('dX head [1824x1058]@[128x1058]^T', 1824, 1058, 128, false, true),
  shape('dW fc  [1824x128]^T@[1824x512]', 128, 1824, 512, true, false),
  shape('dW proj [1824x512]^T@[1824x128]', 512, 1824, 128, true, false),
  shape('dW head [1824x128]^T@[1824x1058]', 128, 1824, 1058, true, false),
  shape('dW qkv [1824x128]^T@[1824x384]', 128, 1824, 384, true, false),
];

/** A backend under test and its label in the table. */
interface Variant {
  label: string;
  backend: Backend;
}

/** Times one product on every variant, alternating; frees the operands. */
function measure(variants: readonly Variant[], p: MatmulParams, minMs: number): Rates[] {
  const a = randomArray(p.m * p.k, 1);
  const b = randomArray(p.k * p.n, 2);
  const calls = variants.map(({ backend }) => {
    const bufs = [backend.upload(a), backend.upload(b), backend.alloc(p.m * p.n, 'float32')];
    return { backend, bufs, run: (): void => backend.matmul(bufs[0], bufs[1], bufs[2], p) };
  });
  const timings = timeAlternating(
    calls.map((c) => c.run),
    minMs,
  );
  for (const { backend, bufs } of calls) for (const buf of bufs) backend.free(buf);
  return timings.map((t) => rates(2 * p.m * p.n * p.k, t));
}

function loadPeer(file: string): Backend {
  const resolved = path.resolve(file);
  try {
    return createWasmBackendSync(fs.readFileSync(resolved));
  } catch (e) {
    console.error(`bench/wasm_gemm: peer module ${resolved}: ${(e as Error).message}`);
    process.exit(1);
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const minMs = numberFlag(args, '--min-ms') ?? 300;
  const peerFile = flagValue(args, '--peer');
  const only = flagValue(args, '--only')
    ?.split(',')
    .filter((w) => w !== '');
  const wasm = loadWasmBackend();
  if ('error' in wasm) {
    console.error(`bench/wasm_gemm: wasm backend unavailable: ${wasm.error}`);
    process.exit(1);
  }
  const variants: Variant[] = [{ label: 'wasm', backend: wasm }];
  if (peerFile !== undefined) variants.push({ label: 'peer', backend: loadPeer(peerFile) });
  const info = cpuBackendInfo();
  let cpuLabel: string | null = null;
  if (!args.includes('--no-cpu')) {
    const cpu = loadCpuBackend();
    if ('error' in cpu || 'error' in info) {
      console.log(`cpu backend unavailable: ${'error' in cpu ? cpu.error : ''}`);
    } else {
      setCpuThreads(1);
      cpuLabel = `cpu ${info.simd} 1t`;
      variants.push({ label: cpuLabel, backend: cpu });
    }
  }
  const tile = wasmGemmTile(wasm) ?? [0, 0];
  console.log(
    `wasm (simd128, tile ${tile[0]}x${tile[1]}, 1 thread)` +
      (peerFile !== undefined ? ` vs peer ${peerFile}` : '') +
      (cpuLabel ? ` vs ${cpuLabel}` : ''),
  );
  // One column pair per other variant: its per-CPU-s rate and wasm / it.
  const columns = variants.slice(1).map((v) => {
    const head = `${v.label} per-CPU-s`;
    return { head, width: head.length + 2, ratio: `wasm/${v.label.split(' ')[0]}` };
  });
  console.log(
    `  ${'shape'.padEnd(34)} ${'wasm GFLOP/s'.padStart(13)} ${'per-CPU-s'.padStart(10)}` +
      columns.map((c) => `${c.head.padStart(c.width)} ${c.ratio.padStart(10)}`).join(''),
  );
  const results: { shape: string; backend: string; gflops: number; cpuGflops: number }[] = [];
  const shapes = only ? SHAPES.filter((s) => only.some((w) => s.name.includes(w))) : SHAPES;
  for (const { name, p } of shapes) {
    const measured = measure(variants, p, minMs);
    const [w] = measured;
    variants.forEach((v, i) =>
      results.push({
        shape: name.replace(/\s+/g, ' '),
        backend: v.label,
        gflops: measured[i].gflops,
        cpuGflops: measured[i].cpuGflops,
      }),
    );
    console.log(
      `  ${name.padEnd(34)} ${w.gflops.toFixed(1).padStart(13)} ${w.cpuGflops.toFixed(1).padStart(10)}` +
        columns
          .map((c, i) => {
            const r = measured[i + 1];
            return `${r.cpuGflops.toFixed(1).padStart(c.width)} ${(w.cpuGflops / r.cpuGflops).toFixed(2).padStart(10)}`;
          })
          .join(''),
    );
  }
  if (cpuLabel && !('error' in info)) setCpuThreads(info.threads);
  if (args.includes('--json')) console.log(JSON.stringify({ gemm: results }));
}

main();
