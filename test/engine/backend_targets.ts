// The backends the parametrised backend suite (backends.test.ts, backends_fused.test.ts) runs on
// besides the reference, in one table: how each loads, the configurations it runs every kernel
// in, the smaller sizes of the CUDA emulator, and the per-backend tolerances against the
// reference backend.
//
// cpu: every SIMD build this processor can run (avx512 / avx2 / baseline), and the default build
// with 1 thread as well as the default count (the kernels split work differently). cuda: on a
// device, or with MMGPT_CUDA_ADDON=native/build/cuda-emu/mmgpt_cuda_emu.node on the CPU emulator
// of its kernels (every CUDA thread a fiber: slow, so the largest cases shrink). wasm: the cpu
// kernels compiled to WebAssembly SIMD128 (native/build-wasm/mmgpt_kernels.wasm), one thread. A
// backend that does not load is skipped with its reason, except wasm in CI (CI set, or
// MMGPT_REQUIRE_WASM=1): it is required there (its tests run and fail with the reason).
//
// Tolerances (relative to max(|expected|, floor), per element), cpu / cuda, where they differ:
// - unary: exp and tanh 1e-6 / 1 ulp (the cpu's float32 polynomial exp, <= 2 ulp, where the
//   reference uses float64 Math.exp; the device's float64 exp, tanh and log); log 2 ulp (libm
//   logf) / 1 ulp; gelu 2e-6 / 1 ulp, absolute below 1 (the cpu's float32 exp of a float32
//   argument u: its rounding is amplified by |2u|); relu, neg, sqrt, square exact on both;
// - unaryBackward: gelu 2e-6 / 1 ulp (absolute below 1); exp, log, tanh exact (float64 like the
//   reference) / 1 ulp; relu, neg, sqrt, square exact on both;
// - softmax and crossEntropy probabilities: 2e-6, absolute below 1e-6 / 1 ulp (the cpu's float32
//   exp of the float32 difference x - max, whose rounding the float64 reference does not have,
//   and a denominator summed in 2 x 16 float32 lanes); crossEntropy losses 1e-6 (floor 1e-3) /
//   1 ulp (floor 1e-6);
// - matmul: float32 accumulation, |C - C_ref| <= f * sqrt(k + 1) * (|alpha| sum_p |a_ip b_pj|
//   + |C_prev| if accumulating) with f = 2e-7 / 4e-7 (~3.4 / ~7 ulp * sqrt(k) of that scale);
// - crossEntropyMean gradient: 2e-6 (floor 1e-6 / count) / 4 ulp: the cpu's float32 exp of a
//   float32 difference (as its crossEntropy), the device's float64 exp; its losses and mean loss
//   1e-6 / 4 ulp (float64 sums in another order);
// - biasGelu and its gx: 2e-6 / 1 ulp, absolute below 1 (as the unary gelu);
// - attention and its backward: 2e-5 / 2e-5 (floor 0.1): float32 sums of up to 64 terms where the
//   reference sums in float64, through a softmax (the cpu's float32 exp, the device's float64).
// wasm (the cpu kernels' baseline arithmetic: float32 polynomial exp without AVX-512's scalef,
// plain multiply + add, musl's logf), as tight as its kernels pass: exp, tanh and log 1 ulp;
// gelu 5e-7 and its gradient 2e-6 (absolute below 1; biasGelu likewise 2e-6); softmax and
// cross-entropy probabilities 1e-6 (absolute below 1e-6), cross-entropy losses 2.5e-7 (floor
// 1e-3); matmul f = 1e-7 (~1.7 ulp * sqrt(k)); crossEntropyMean gradient 1e-6, losses and mean
// loss 2.5e-7; attention as the cpu's, 2e-5 (the same kernel source).
// The tolerances every backend shares are stated in the suites' headers.

import type { Backend, Buf, UnaryOp } from '../../src/engine/backend';
import { loadCpuBackend, loadNativeAddon } from '../../src/engine/backends/cpu';
import { cudaBackendInfo, loadCudaBackend } from '../../src/engine/backends/cuda';
import { loadWasmBackend } from '../../src/engine/backends/wasm_node';
import { ULP } from './backend_helpers';

/** A per-element bound: |actual - expected| <= rel * max(|expected|, floor). */
export interface Bound {
  rel: number;
  floor: number;
}

export interface Tolerances {
  /** unary and unaryBackward, per op (floor 1 for gelu, 1e-30 for the others). */
  unary: Record<UnaryOp, number>;
  unaryBackward: Record<UnaryOp, number>;
  softmax: Bound;
  crossEntropyProbs: Bound;
  crossEntropyLosses: Bound;
  /** The factor f of the matmul bound f * sqrt(k + 1) * scale. */
  matmul: number;
  crossEntropyMeanGrad: number;
  crossEntropyMeanLoss: number;
  biasGelu: number;
  attention: number;
}

export interface BackendTarget {
  name: 'cpu' | 'cuda' | 'wasm';
  backend: Backend | { error: string };
  /** Why the backend is skipped here, or false when it loads. */
  skip: string | false;
  /** Runs fn once per configuration (cpu: each SIMD build, then 1 thread; cuda, wasm: once). */
  forEachConfig: (fn: (cfg: string) => void) => void;
  /** Runs fn once per kernel build (cpu: each SIMD build at the default thread count). */
  forEachSimd: (fn: (cfg: string) => void) => void;
  /** True on the CUDA emulator, where the largest cases shrink. */
  emulated: boolean;
  tol: Tolerances;
  /** A buffer of another kind that the backend refuses, and the TypeError it gives for it as x. */
  foreignBuffer: () => Buf;
  foreignMessage: RegExp;
  /** The error for a float32 buffer passed as gather's idx. */
  idxMessage: RegExp;
}

/** The backend of a target that loads (tests of a skipped target never call it). */
export function backendOf(target: BackendTarget): Backend {
  if ('error' in target.backend) throw new Error(target.backend.error);
  return target.backend;
}

/** `full` where the target runs at full speed, `small` on the CUDA emulator. */
export function sized(target: BackendTarget, full: number, small: number): number {
  return target.emulated ? small : full;
}

/** Every SIMD build with the default thread count, then the default build with 1 thread. */
function forEachCpuConfig(fn: (cfg: string) => void): void {
  const loaded = loadNativeAddon();
  if ('error' in loaded) return;
  const addon = loaded.addon;
  const originalSimd = addon.simdPath();
  const originalThreads = addon.getNumThreads();
  const configs: [string, number][] = addon
    .availableSimdPaths()
    .map((simd): [string, number] => [simd, originalThreads]);
  if (originalThreads > 1) configs.push([originalSimd, 1]);
  try {
    for (const [simd, threads] of configs) {
      addon.setSimdPath(simd);
      addon.setNumThreads(threads);
      fn(`${simd}/${threads}t`);
    }
  } finally {
    addon.setSimdPath(originalSimd);
    addon.setNumThreads(originalThreads);
  }
}

/** Every SIMD build (and the default build restored afterwards). */
function forEachCpuSimd(fn: (cfg: string) => void): void {
  const loaded = loadNativeAddon();
  if ('error' in loaded) return;
  const addon = loaded.addon;
  const original = addon.simdPath();
  try {
    for (const simd of addon.availableSimdPaths()) {
      addon.setSimdPath(simd);
      fn(simd);
    }
  } finally {
    addon.setSimdPath(original);
  }
}

const once = (fn: (cfg: string) => void): void => fn('device');
const oneThread = (fn: (cfg: string) => void): void => fn('simd128/1t');

function skipReason(name: string, backend: Backend | { error: string }): string | false {
  return 'error' in backend ? `${name} backend unavailable: ${backend.error}` : false;
}

/**
 * Like skipReason, but never skipped where the backend is required (CI set, or
 * MMGPT_REQUIRE_WASM=1, as scripts/setup-wasm.sh decides): there its tests run and fail.
 */
function requiredSkipReason(name: string, backend: Backend | { error: string }): string | false {
  const ci = process.env.CI ?? '';
  const required = !['', '0', 'false'].includes(ci) || process.env.MMGPT_REQUIRE_WASM === '1';
  return required ? false : skipReason(name, backend);
}

const EXACT_UNARY = { relu: 0, neg: 0, sqrt: 0, square: 0 };

const cpuBackend = loadCpuBackend();
const cudaBackend = loadCudaBackend();
const cudaInfo = cudaBackendInfo();
const wasmBackend = loadWasmBackend();

export const TARGETS: BackendTarget[] = [
  {
    name: 'cpu',
    backend: cpuBackend,
    skip: skipReason('cpu', cpuBackend),
    forEachConfig: forEachCpuConfig,
    forEachSimd: forEachCpuSimd,
    emulated: false,
    tol: {
      unary: { exp: 1e-6, log: 2 * ULP, tanh: 1e-6, gelu: 2e-6, ...EXACT_UNARY },
      unaryBackward: { exp: 0, log: 0, tanh: 0, gelu: 2e-6, ...EXACT_UNARY },
      softmax: { rel: 2e-6, floor: 1e-6 },
      crossEntropyProbs: { rel: 2e-6, floor: 1e-6 },
      crossEntropyLosses: { rel: 1e-6, floor: 1e-3 },
      matmul: 2e-7,
      crossEntropyMeanGrad: 2e-6,
      crossEntropyMeanLoss: 1e-6,
      biasGelu: 2e-6,
      attention: 2e-5,
    },
    foreignBuffer: () => new Float64Array(4),
    foreignMessage: /x must be a Float32Array, got a Float64Array/,
    idxMessage: /idx must be an Int32Array/,
  },
  {
    name: 'cuda',
    backend: cudaBackend,
    skip: skipReason('cuda', cudaBackend),
    forEachConfig: once,
    forEachSimd: once,
    emulated: !('error' in cudaInfo) && cudaInfo.emulated,
    tol: {
      unary: { exp: ULP, log: ULP, tanh: ULP, gelu: ULP, ...EXACT_UNARY },
      unaryBackward: { exp: ULP, log: ULP, tanh: ULP, gelu: ULP, ...EXACT_UNARY },
      softmax: { rel: ULP, floor: 1e-30 },
      crossEntropyProbs: { rel: ULP, floor: 1e-30 },
      crossEntropyLosses: { rel: ULP, floor: 1e-6 },
      matmul: 4e-7,
      crossEntropyMeanGrad: 4 * ULP,
      crossEntropyMeanLoss: 4 * ULP,
      biasGelu: ULP,
      attention: 2e-5,
    },
    foreignBuffer: () => new Float32Array(4),
    foreignMessage: /x must be a cuda buffer, got a Float32Array/,
    idxMessage: /idx must hold int32/,
  },
  {
    name: 'wasm',
    backend: wasmBackend,
    skip: requiredSkipReason('wasm', wasmBackend),
    forEachConfig: oneThread,
    forEachSimd: oneThread,
    emulated: false,
    tol: {
      unary: { exp: ULP, log: ULP, tanh: ULP, gelu: 5e-7, ...EXACT_UNARY },
      unaryBackward: { exp: 0, log: 0, tanh: 0, gelu: 2e-6, ...EXACT_UNARY },
      softmax: { rel: 1e-6, floor: 1e-6 },
      crossEntropyProbs: { rel: 1e-6, floor: 1e-6 },
      crossEntropyLosses: { rel: 2.5e-7, floor: 1e-3 },
      matmul: 1e-7,
      crossEntropyMeanGrad: 1e-6,
      crossEntropyMeanLoss: 2.5e-7,
      biasGelu: 2e-6,
      attention: 2e-5,
    },
    foreignBuffer: () => new Float32Array(4),
    foreignMessage: /x must be a wasm buffer, got a Float32Array/,
    idxMessage: /idx must hold int32/,
  },
];

/** The target of one backend (for the tests of what only that backend has). */
export function targetOf(name: BackendTarget['name']): BackendTarget {
  const target = TARGETS.find((t) => t.name === name);
  if (target === undefined) throw new Error(`no backend target '${name}'`);
  return target;
}
