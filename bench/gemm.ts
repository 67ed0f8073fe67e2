// GEMM micro-benchmark of the native cpu backend: GFLOP/s for the original recipe's matmul shapes
// (batch 32 x T 58 = 1856 rows, the weight gradients also at T 57 = 1824 rows; d_model 128, 4
// heads of 32, vocab ~1058), for every SIMD build this processor can run (avx512 / avx2 /
// baseline) and thread count. Numbers, never pass/fail.
//
// Usage: node dist/bench/gemm.js [--threads 1,2] [--simd avx512,avx2,baseline] [--json]
//        [--min-ms 300] [--peer path/to/other/mmgpt_native.node] [--only dW] [--cold]
// Each cell is the median over repeated calls (after a warm-up) of 2*batch*m*n*k / time;
// `best` is the fastest call; `per-CPU-s` divides by the process's CPU time instead (with 1
// thread it is unaffected by other processes on a busy machine; with more it also counts the
// OpenMP threads' spinning). --json prints one JSON line with every cell at the end.
// --peer loads a second build of the addon (e.g. a copy of another commit's) and times every
// cell on both, alternating short rounds so that both see the same machine load; it prints the
// peer's median, best and per-CPU-s rates and the ratios ours / peer (per-CPU-s counts the CPU
// time the process used, spinning at barriers included: the least load-sensitive of the three). --only keeps the shapes whose name contains a word.
// --cold writes a 384 MiB buffer before every timed call (outside its time), so that the
// operands come from memory, as the weight gradients' activations do in the training step
// (written by the forward long before); the default times them warm, in the caches.

import { MatmulParams } from '../src/engine/backend';
import { nativeKernelMethods } from '../src/engine/backends/cpu';
import {
  cacheEvictor,
  loadPeerAddon,
  nativeAddonOrExit,
  randomArray,
  rates,
  timeAlternating,
} from './gemm_timing';

interface Shape {
  name: string;
  p: MatmulParams;
}

function shape(
  name: string,
  batch: number,
  m: number,
  k: number,
  n: number,
  transA = false,
  transB = false,
): Shape {
  return {
    name,
    p: {
      batch,
      m,
      n,
      k,
      transA,
      transB,
      strideA: m * k,
      strideB: k * n,
      strideC: m * n,
      alpha: 1,
      accumulate: false,
    },
  };
}

const SHAPES: Shape[] = [
  shape('qkv   [1856x128]@[128x384]', 1, 1856, 128, 384),
  shape('fc    [1856x128]@[128x512]', 1, 1856, 128, 512),
  shape('proj  [1856x512]@[512x128]', 1, 1856, 512, 128),
  shape('head  [1856x128]@[128x1058]', 1, 1856, 128, 1058),
  shape('dX    [1856x384]@[384x128]^T', 1, 1856, 384, 128, false, true),
  shape('dW    [1856x128]^T@[1856x384]', 1, 128, 1856, 384, true, false),
  shape('dW    [1856x128]^T@[1856x512]', 1, 128, 1856, 512, true, false),
  shape('dW    [1856x512]^T@[1856x128]', 1, 512, 1856, 128, true, false),
  shape('dW    [1856x128]^T@[1856x1058]', 1, 128, 1856, 1058, true, false),
  // The weight gradients of the training step at batch 32 (32 x T 57 = 1824 rows of depth).
  shape('dW    [1824x512]^T@[1824x128]', 1, 512, 1824, 128, true, false),
  shape('dW    [1824x128]^T@[1824x512]', 1, 128, 1824, 512, true, false),
  shape('dW    [1824x128]^T@[1824x384]', 1, 128, 1824, 384, true, false),
  shape('dW    [1824x128]^T@[1824x1058]', 1, 128, 1824, 1058, true, false),
  shape('dW    [1824x128]^T@[1824x128]', 1, 128, 1824, 128, true, false),
  shape('dX    [1856x512]@[128x512]^T', 1, 1856, 512, 128, false, true),
  shape('dX    [1856x1058]@[128x1058]^T', 1, 1856, 1058, 128, false, true),
  shape('att   128x[58x32]@[32x58]^T', 128, 58, 32, 58, false, true),
  shape('att   128x[58x58]@[58x32]', 128, 58, 58, 32),
  shape('datt  128x[58x58]^T@[58x32]', 128, 58, 58, 32, true, false),
  shape('dec   [1x128]@[128x1058]', 1, 1, 128, 1058),
  shape('decatt 800x[1x32]@[57x32]^T', 800, 1, 32, 57, false, true),
  shape('decatt 800x[1x57]@[57x32]', 800, 1, 57, 32),
];

function parseList(args: string[], flag: string): string[] | null {
  const i = args.indexOf(flag);
  if (i < 0) return null;
  if (i + 1 >= args.length) throw new Error(`${flag} needs a comma-separated value`);
  return args[i + 1].split(',').filter((s) => s !== '');
}

function main(): void {
  const args = process.argv.slice(2);
  const nat = nativeAddonOrExit('gemm');
  const peerArg = parseList(args, '--peer');
  const peerNat = peerArg ? loadPeerAddon(peerArg[0]) : null;
  const only = parseList(args, '--only');
  const shapes = only ? SHAPES.filter((s) => only.some((w) => s.name.includes(w))) : SHAPES;
  const defaultThreads = nat.getNumThreads();
  const threadList = (parseList(args, '--threads') ?? [...new Set(['1', String(defaultThreads)])])
    .map(Number)
    .filter((t) => Number.isInteger(t) && t >= 1);
  const simdList = parseList(args, '--simd') ?? nat.availableSimdPaths();
  const minMsArg = parseList(args, '--min-ms');
  const minMs = minMsArg ? Number(minMsArg[0]) : 300;
  const json = args.includes('--json');
  const evict = cacheEvictor(args.includes('--cold'));

  const info = nat.info();
  console.log(
    `mmgpt_native: simd paths ${nat.availableSimdPaths().join(', ')}; default threads ${defaultThreads}; ` +
      `processors ${info.maxThreads}; compiler ${info.compiler ?? '?'}` +
      (peerArg ? `; peer ${peerArg[0]}` : '') +
      (evict ? '; cold operands (caches evicted before each call)' : ''),
  );
  const results: {
    shape: string;
    simd: string;
    threads: number;
    gflops: number;
    bestGflops: number;
    msPerCall: number;
    cpuGflops: number;
    peerGflops?: number;
    peerBestGflops?: number;
    peerCpuGflops?: number;
  }[] = [];
  const originalSimd = nat.simdPath();
  for (const simd of simdList) {
    nat.setSimdPath(simd);
    peerNat?.setSimdPath(simd);
    for (const threads of threadList) {
      nat.setNumThreads(threads);
      peerNat?.setNumThreads(threads);
      const { matmul } = nativeKernelMethods(nat);
      const peerMatmul = peerNat ? nativeKernelMethods(peerNat).matmul : null;
      const tile = nat.info().gemmTile;
      console.log(`\n${simd} (tile ${tile[0]}x${tile[1]}), ${threads} thread(s)`);
      console.log(
        '  shape                              GFLOP/s   best   ms/call  per-CPU-s' +
          (peerNat ? '    peer  ratio  peer-best  ratio  peer-per-CPU-s  ratio' : ''),
      );
      for (const { name, p } of shapes) {
        const a = randomArray((p.batch - 1) * p.strideA + p.m * p.k, 1);
        const b = randomArray((p.batch - 1) * p.strideB + p.k * p.n, 2);
        const c = new Float32Array((p.batch - 1) * p.strideC + p.m * p.n);
        const run = (): void => matmul(a, b, c, p);
        const peerRun = peerMatmul ? (): void => peerMatmul(a, b, c, p) : null;
        const [ours, peer] = timeAlternating(peerRun ? [run, peerRun] : [run], minMs, evict);
        const flops = 2 * p.batch * p.m * p.n * p.k;
        const own = rates(flops, ours);
        const other = peer ? rates(flops, peer) : null;
        const row = {
          shape: name.replace(/\s+/g, ' '),
          simd,
          threads,
          ...own,
          msPerCall: (flops / own.gflops) * 1e-6,
          ...(other
            ? {
                peerGflops: other.gflops,
                peerBestGflops: other.bestGflops,
                peerCpuGflops: other.cpuGflops,
              }
            : {}),
        };
        results.push(row);
        const peerCols =
          row.peerGflops !== undefined &&
          row.peerBestGflops !== undefined &&
          row.peerCpuGflops !== undefined
            ? ` ${row.peerGflops.toFixed(1).padStart(7)} ${(row.gflops / row.peerGflops).toFixed(2).padStart(6)}` +
              ` ${row.peerBestGflops.toFixed(1).padStart(10)} ${(row.bestGflops / row.peerBestGflops).toFixed(2).padStart(6)}` +
              ` ${row.peerCpuGflops.toFixed(1).padStart(15)} ${(row.cpuGflops / row.peerCpuGflops).toFixed(2).padStart(6)}`
            : '';
        console.log(
          `  ${name.padEnd(34)} ${row.gflops.toFixed(1).padStart(7)} ${row.bestGflops.toFixed(1).padStart(6)} ${row.msPerCall.toFixed(3).padStart(9)} ${row.cpuGflops.toFixed(1).padStart(10)}${peerCols}`,
        );
      }
    }
  }
  nat.setSimdPath(originalSimd);
  nat.setNumThreads(defaultThreads);
  if (json) console.log(JSON.stringify({ gemm: results }));
}

main();
