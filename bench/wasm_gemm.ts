// GEMM rate of the wasm backend (the cpu kernels compiled to WebAssembly SIMD128, one thread) on
// the original recipe's large matmul shapes (batch 32 x 57 input positions = 1824 rows, d_model
// 128, MLP 512, vocab 1058; forward, input-gradient and weight-gradient forms), next to the
// native cpu backend's rate on one thread in the same process. Numbers, never pass/fail.
//
// Usage: node dist/bench/wasm_gemm.js [--min-ms 300] [--json]
// Each cell is the median over repeated calls (after a warm-up) of 2*m*n*k / time, the two
// backends measured in turns, shape by shape; `per-CPU-s` divides by the process's CPU time
// instead (one thread: unaffected by other processes on a busy machine). --json prints one JSON
// line with every cell at the end.

import type { Backend, MatmulParams } from '../src/engine/backend';
import { cpuBackendInfo, loadCpuBackend, setCpuThreads } from '../src/engine/backends/cpu';
import { wasmGemmTile } from '../src/engine/backends/wasm';
import { loadWasmBackend } from '../src/engine/backends/wasm_node';
import { numberFlag } from './run_backend';

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
];

function randomArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 4294967296 - 0.5;
  }
  return out;
}

interface Rate {
  gflops: number;
  cpuGflops: number;
}

/** Median and per-CPU-second rate of one product on one backend. */
function rate(be: Backend, p: MatmulParams, minMs: number): Rate {
  const a = be.upload(randomArray(p.m * p.k, 1));
  const b = be.upload(randomArray(p.k * p.n, 2));
  const c = be.alloc(p.m * p.n, 'float32');
  const run = (): void => be.matmul(a, b, c, p);
  for (let i = 0; i < 3; i++) run(); // warm-up: page faults, packing buffers, JIT tiers
  const times: number[] = [];
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  while (times.length < 5 || (performance.now() - start < minMs && times.length < 10000)) {
    const t0 = performance.now();
    run();
    times.push((performance.now() - t0) / 1e3);
  }
  const cpu = process.cpuUsage(cpuStart);
  for (const buf of [a, b, c]) be.free(buf);
  times.sort((x, y) => x - y);
  const flops = 2 * p.m * p.n * p.k;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    gflops: flops / times[Math.floor(times.length / 2)] / 1e9,
    cpuGflops: (flops * times.length) / cpuSeconds / 1e9,
  };
}

function main(): void {
  const args = process.argv.slice(2);
  const minMs = numberFlag(args, '--min-ms') ?? 300;
  const wasm = loadWasmBackend();
  if ('error' in wasm) {
    console.error(`bench/wasm_gemm: wasm backend unavailable: ${wasm.error}`);
    process.exit(1);
  }
  const cpu = loadCpuBackend();
  const info = cpuBackendInfo();
  const cpuLabel = 'error' in info ? null : `cpu ${info.simd} 1t`;
  if ('error' in cpu || 'error' in info)
    console.log(`cpu backend unavailable: ${'error' in cpu ? cpu.error : ''}`);
  else setCpuThreads(1);
  const tile = wasmGemmTile(wasm) ?? [0, 0];
  console.log(
    `wasm (simd128, tile ${tile[0]}x${tile[1]}, 1 thread)` + (cpuLabel ? ` vs ${cpuLabel}` : ''),
  );
  console.log(
    '  shape                               wasm GFLOP/s  per-CPU-s' +
      (cpuLabel ? `  ${cpuLabel.padStart(14)}  per-CPU-s  wasm/cpu` : ''),
  );
  const results: { shape: string; backend: string; gflops: number; cpuGflops: number }[] = [];
  for (const { name, p } of SHAPES) {
    const w = rate(wasm, p, minMs);
    results.push({ shape: name.replace(/\s+/g, ' '), backend: 'wasm', ...w });
    let line = `  ${name.padEnd(34)} ${w.gflops.toFixed(1).padStart(13)} ${w.cpuGflops.toFixed(1).padStart(10)}`;
    if (cpuLabel && !('error' in cpu)) {
      const c = rate(cpu, p, minMs);
      results.push({ shape: name.replace(/\s+/g, ' '), backend: cpuLabel, ...c });
      line += ` ${c.gflops.toFixed(1).padStart(15)} ${c.cpuGflops.toFixed(1).padStart(10)} ${(w.cpuGflops / c.cpuGflops).toFixed(2).padStart(9)}`;
    }
    console.log(line);
  }
  if (!('error' in info)) setCpuThreads(info.threads);
  if (args.includes('--json')) console.log(JSON.stringify({ gemm: results }));
}

main();
