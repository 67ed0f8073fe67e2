// What the kernel benchmarks (gemm.ts and norm_kernels.ts: the cpu addon; wasm_gemm.ts: the wasm
// module) share: seeded operands, the timing of one call on several variants (builds, backends)
// in alternating rounds, so that every variant sees the same machine load, the eviction of the
// operands from the caches (--cold), and loading the addon and a peer build of it. Numbers, never
// pass/fail.
//
// Three rates per variant: the median call, the fastest call, and per CPU second (the calls'
// flops over the CPU time the process used while timing them: with one thread, unaffected by
// other processes on a busy machine; with more, it also counts OpenMP threads spinning).

import * as path from 'path';
import { loadNativeAddon } from '../src/engine/backends/cpu';
import type { NativeAddon } from '../src/engine/backends/cpu';

/** n values in [-0.5, 0.5) from a 32-bit LCG seeded with `seed`. */
export function randomArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 4294967296 - 0.5;
  }
  return out;
}

/** The calls' wall times (seconds) and the process CPU time spent in them. */
export interface Timing {
  times: number[];
  cpuSeconds: number;
}

/**
 * Times every function of `runs` for about minMs each, after a warm-up of 3 calls each (page
 * faults, packing buffers, thread pools, JIT tiers): one round when there is one, else 10
 * rounds of minMs/10 each, taking turns. `before`, when given, runs before every timed call,
 * outside its wall and CPU times (e.g. evicting the operands from the caches).
 */
export function timeAlternating(
  runs: readonly (() => void)[],
  minMs: number,
  before?: () => void,
): Timing[] {
  const timings: Timing[] = runs.map(() => ({ times: [], cpuSeconds: 0 }));
  for (let i = 0; i < 3; i++) for (const run of runs) run();
  const round = (run: () => void, into: Timing, ms: number): void => {
    const start = process.hrtime.bigint();
    let calls = 0;
    while (calls < 3 || (Number(process.hrtime.bigint() - start) / 1e6 < ms && calls < 1000)) {
      before?.();
      const cpuStart = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      run();
      into.times.push(Number(process.hrtime.bigint() - t0) / 1e9);
      const cpu = process.cpuUsage(cpuStart);
      into.cpuSeconds += (cpu.user + cpu.system) / 1e6;
      calls++;
    }
  };
  const rounds = runs.length > 1 ? 10 : 1;
  for (let r = 0; r < rounds; r++) {
    runs.forEach((run, i) => round(run, timings[i], minMs / rounds));
  }
  return timings;
}

export function median(times: readonly number[]): number {
  const sorted = [...times].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

/** GFLOP/s of a timing of calls of `flops` each: median call, fastest call, per CPU second. */
export interface Rates {
  gflops: number;
  bestGflops: number;
  cpuGflops: number;
}

export function rates(flops: number, t: Timing): Rates {
  return {
    gflops: flops / median(t.times) / 1e9,
    bestGflops: flops / Math.min(...t.times) / 1e9,
    cpuGflops: (flops * t.times.length) / t.cpuSeconds / 1e9,
  };
}

/**
 * With `cold`, a function writing a 384 MiB buffer (a new value each call), for timeAlternating's
 * `before`: the operands of the next call come from memory, as the training step's activations
 * do in its backward; without, undefined (warm operands, in the caches).
 */
export function cacheEvictor(cold: boolean): (() => void) | undefined {
  if (!cold) return undefined;
  const scrub = new Float32Array(96 << 20);
  let calls = 0;
  return () => void scrub.fill(calls++);
}

/** The native addon, or the process exits with the reason and how to build it. */
export function nativeAddonOrExit(tool: string): NativeAddon {
  const loaded = loadNativeAddon();
  if ('error' in loaded) {
    console.error(`bench/${tool}: ${loaded.error}. Build it with: npm run build:native`);
    process.exit(1);
  }
  return loaded.addon;
}

/** Another build of the addon (e.g. a copy of another commit's), loaded beside ours. */
export function loadPeerAddon(file: string): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.resolve(file)) as NativeAddon;
}
