// The native CPU backend: the Backend interface (../backend.ts) on the C++/OpenMP kernels of the
// mmgpt_native addon (native/, built by `npm run build:native`).
//
// Buffers are plain Float32Array / Int32Array, exactly like the reference backend (backends/js.ts),
// so tensors can move between the two freely; the addon reads and writes their memory in place.
// The addon checks every argument itself (types, lengths, index ranges) and throws TypeError /
// RangeError with a clear message, so this file is a thin adapter.
//
// Buffers are recycled by the engine's pool (tensor.ts), not here.
//
// Notable choices: the addon is looked up relative to the package root (the nearest directory
// above this file holding package.json), so it is found both from src/ (ts-node) and from the
// compiled dist/src/engine/backends/. `loadCpuBackend` never throws: it returns the backend or
// the reason it is unavailable (registry.ts decides whether that is a warning or an error).
// MMGPT_NATIVE_ADDON=<path> loads the addon from another path (a missing one makes the native
// backends unavailable: the registry's tests simulate a machine without a compiler so).
// MMGPT_SIMD=avx512|avx2|baseline forces a kernel build (default: the best the CPU supports);
// MMGPT_MATMUL=bf16 runs the matmuls on AMX tiles with bfloat16 operands (float32 sums), where the
// processor has them (default fp32; setCpuMatmulPrecision afterwards; native/src/gemm_amx.cc);
// OMP_NUM_THREADS sets the thread count at load, setCpuThreads afterwards; GOMP_SPINCOUNT
// defaults to 3000 (see loadNativeAddon) unless it or OMP_WAIT_POLICY is set.

import * as fs from 'fs';
import * as path from 'path';
import { findProjectRoot } from '../../paths';

import type {
  AdamParams,
  AdamTensors,
  Backend,
  Buf,
  Conv2dGeometry,
  DType,
  HostSampler,
  KernelMethods,
  MatmulParams,
} from '../backend';

/** The kernels whose Backend form takes a parameter object; the addons take its fields in order. */
type ParameterObjectKernel = 'matmul' | 'im2col' | 'col2im' | 'adam' | 'adamMulti';

/**
 * The kernels that both native backends export with one signature: the cpu addon on host arrays,
 * the `cuda` object (cuda.ts) on device handles. Every kernel but five has the Backend's own
 * signature; those five take the fields of MatmulParams, Conv2dGeometry, AdamParams and
 * AdamTensors as positional arguments.
 */
export interface NativeKernels extends Omit<KernelMethods, ParameterObjectKernel> {
  matmul(
    a: Buf,
    b: Buf,
    c: Buf,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    strideC: number,
    alpha: number,
    accumulate: boolean,
    /** MatmulParams.bias, null when absent. */
    bias: Buf | null,
  ): void;
  /** geometry: n, c, h, w, kh, kw, stride, pad, ho, wo. */
  im2col(x: Buf, cols: Buf, ...geometry: number[]): void;
  col2im(cols: Buf, x: Buf, ...geometry: number[]): void;
  adam(
    p: Buf,
    g: Buf,
    m: Buf,
    v: Buf,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    decoupled: boolean,
    step: number,
    gradScale: number,
  ): void;
  adamMulti(
    params: Buf[],
    grads: Buf[],
    m: Buf[],
    v: Buf[],
    sizes: number[],
    weightDecays: number[],
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    decoupled: boolean,
    step: number,
    clipNorm: number,
    normOut: Buf,
  ): void;
}

/** What mmgpt_native exports (native/src/addon.cc); buffers are Float32Array / Int32Array. */
export interface NativeAddon extends NativeKernels {
  /** The sampler's per-row arithmetic (native/src/sampling.cc). */
  sampling: HostSampler;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  /** The kernel build in use: 'avx512', 'avx2' or 'baseline'. */
  simdPath(): string;
  /** The kernel builds this processor can run, fastest first. */
  availableSimdPaths(): string[];
  setSimdPath(path: string): void;
  /** The matmuls' precision: 'fp32', or 'bf16' (bfloat16 operands on AMX tiles). */
  matmulPrecision(): string;
  /** The precisions this processor can run: 'fp32', and 'bf16' where it has AMX-BF16. */
  availableMatmulPrecisions(): string[];
  setMatmulPrecision(precision: string): void;
  info(): {
    simd: string;
    threads: number;
    matmul: string;
    maxThreads: number;
    gemmTile: [number, number];
    openmp: number;
    compiler?: string;
  };
}

export interface CpuBackendInfo {
  /** The kernel build in use ('avx512' | 'avx2' | 'baseline'). */
  simd: string;
  /** Every build this processor supports, fastest first. */
  availableSimd: string[];
  /** The matmuls' precision ('fp32' | 'bf16') and every one this processor can run. */
  matmul: string;
  availableMatmul: string[];
  /** OpenMP threads the kernels use, and the processors OpenMP sees. */
  threads: number;
  maxThreads: number;
  /** GEMM register tile [rows, columns] of the active build. */
  gemmTile: [number, number];
  /** Where the addon was loaded from. */
  addonPath: string;
}

const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'mmgpt_native.node');
/** GOMP_SPINCOUNT used when the user sets neither it nor OMP_WAIT_POLICY (~0.1 ms of spinning). */
const DEFAULT_SPIN_COUNT = 3000;

let loaded: { addon: NativeAddon; addonPath: string } | { error: string } | null = null;

/** $MMGPT_NATIVE_ADDON, else the addon's place under the project root. */
function addonLocation(): string | { error: string } {
  const override = process.env.MMGPT_NATIVE_ADDON;
  if (override !== undefined && override !== '') return path.resolve(override);
  const root = findProjectRoot();
  if (root === null) {
    return {
      error: `no mmgpt package.json found above ${__dirname}, so native/ cannot be located`,
    };
  }
  return path.join(root, ADDON_RELATIVE_PATH);
}

/** Loads mmgpt_native once; returns it with its path, or the reason it cannot be loaded. */
export function loadNativeAddon(): { addon: NativeAddon; addonPath: string } | { error: string } {
  if (loaded !== null) return loaded;
  const addonPath = addonLocation();
  if (typeof addonPath !== 'string') {
    loaded = addonPath;
    return loaded;
  }
  if (!fs.existsSync(addonPath)) {
    loaded = { error: `the native addon is not built (${addonPath} is missing)` };
    return loaded;
  }
  // libgomp reads its environment when the addon loads it. Unless told otherwise, idle OpenMP
  // threads spin for ~0.1 ms (not libgomp's default ~10 ms here) before sleeping: enough to stay
  // hot between the kernels of a training step, little enough not to steal a busy 2-core
  // machine's time from other processes (where the default made 2 threads 10-50x slower).
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = String(DEFAULT_SPIN_COUNT);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(addonPath) as NativeAddon;
    const simd = process.env.MMGPT_SIMD;
    if (simd !== undefined && simd !== '') addon.setSimdPath(simd);
    const precision = process.env.MMGPT_MATMUL;
    if (precision !== undefined && precision !== '') addon.setMatmulPrecision(precision);
    loaded = { addon, addonPath };
  } catch (e) {
    loaded = { error: `loading ${addonPath} failed: ${(e as Error).message}` };
  }
  return loaded;
}

function requireAddon(): NativeAddon {
  const l = loadNativeAddon();
  if ('error' in l) throw new Error(`cpu backend unavailable: ${l.error}`);
  return l.addon;
}

/** The active kernel build and thread count, or the reason the addon is unavailable. */
export function cpuBackendInfo(): CpuBackendInfo | { error: string } {
  const l = loadNativeAddon();
  if ('error' in l) return l;
  const info = l.addon.info();
  return {
    simd: info.simd,
    availableSimd: l.addon.availableSimdPaths(),
    matmul: info.matmul,
    availableMatmul: l.addon.availableMatmulPrecisions(),
    threads: info.threads,
    maxThreads: info.maxThreads,
    gemmTile: info.gemmTile,
    addonPath: l.addonPath,
  };
}

/** Sets the number of OpenMP threads the cpu kernels use (>= 1). */
export function setCpuThreads(n: number): void {
  requireAddon().setNumThreads(n);
}

/**
 * Forces a kernel build ('avx512' | 'avx2' | 'baseline'); throws if the CPU lacks it. For a
 * notebook or script that compares builds in one process (MMGPT_SIMD does it for a whole run).
 * @public
 */
export function setCpuSimdPath(simd: string): void {
  requireAddon().setSimdPath(simd);
}

/** The cpu backend's matmul precisions (MMGPT_MATMUL, setCpuMatmulPrecision). */
export const MATMUL_PRECISIONS = ['fp32', 'bf16'] as const;
export type MatmulPrecision = (typeof MATMUL_PRECISIONS)[number];

/**
 * The cpu matmuls' precision: 'fp32' (default) or 'bf16', bfloat16 operands summed in float32 on
 * AMX tiles (about 3x the float32 GEMM's rate on the model's forward products, a relative error
 * of about 2^-8). Throws where the processor lacks AMX-BF16 (MMGPT_MATMUL=bf16 sets it for a run).
 * @public
 */
export function setCpuMatmulPrecision(precision: MatmulPrecision): void {
  requireAddon().setMatmulPrecision(precision);
}

function checkedSize(size: number): number {
  if (!Number.isInteger(size) || size < 0) {
    throw new Error(`cpu backend: alloc size must be a non-negative integer, got ${size}`);
  }
  return size;
}

function hostArray(buf: Buf, what: string): Float32Array | Int32Array {
  if (buf instanceof Float32Array || buf instanceof Int32Array) return buf;
  throw new Error(`cpu backend: ${what} must be a Float32Array or Int32Array`);
}

function makeCpuBackend(nat: NativeAddon): Backend {
  const kernels = nativeKernelMethods(nat);
  return {
    name: 'cpu',

    // ---- memory: ordinary typed arrays ---------------------------------------------------
    alloc(size: number, dtype: DType): Buf {
      checkedSize(size);
      return dtype === 'float32' ? new Float32Array(size) : new Int32Array(size);
    },
    free(): void {
      // Typed arrays go to the garbage collector; the engine's buffer pool (tensor.ts) already
      // recycles the buffers of intermediates, so few reach this point.
    },
    upload(data: Float32Array | Int32Array): Buf {
      return data.slice();
    },
    download(buf: Buf, size: number, dtype: DType): Float32Array | Int32Array {
      const arr = hostArray(buf, 'download buffer');
      const actual: DType = arr instanceof Float32Array ? 'float32' : 'int32';
      if (actual !== dtype) {
        throw new Error(
          `cpu backend: download buffer holds ${actual} but dtype '${dtype}' was given`,
        );
      }
      if (arr.length < size) {
        throw new Error(`cpu backend: download of ${size} elements from a buffer of ${arr.length}`);
      }
      return arr.slice(0, size);
    },
    sync(): void {
      // Synchronous backend.
    },

    // ---- kernels: straight to the addon (shared with the cuda backend) -----------------------
    ...kernels,
    matmul(a: Buf, b: Buf, c: Buf, p: MatmulParams): void {
      // A float32 product asked for under the bf16 setting: float32 for this call only.
      if (p.fullPrecision !== true || nat.matmulPrecision() === 'fp32') {
        kernels.matmul(a, b, c, p);
        return;
      }
      nat.setMatmulPrecision('fp32');
      try {
        kernels.matmul(a, b, c, p);
      } finally {
        nat.setMatmulPrecision('bf16');
      }
    },
  };
}

/**
 * The kernel half of a Backend over an addon's kernels (`NativeKernels`): straight calls, with
 * the parameter objects of matmul, im2col/col2im and adam spread into positional arguments.
 * cpu.ts and cuda.ts both build their backends on it.
 */
export function nativeKernelMethods(nat: NativeKernels): KernelMethods {
  return {
    fill: (out, n, value) => nat.fill(out, n, value),
    copyBlock: (src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, acc) =>
      nat.copyBlock(src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, acc),
    binary: (op, a, b, out, shape, aStrides, bStrides) =>
      nat.binary(op, a, b, out, shape, aStrides, bStrides),
    unary: (op, x, out, n) => nat.unary(op, x, out, n),
    unaryBackward: (op, x, y, gy, gx, n) => nat.unaryBackward(op, x, y, gy, gx, n),
    affine: (x, out, n, alpha, beta) => nat.affine(x, out, n, alpha, beta),
    axpy: (x, y, n, alpha) => nat.axpy(x, y, n, alpha),
    sumSquares: (x, n) => nat.sumSquares(x, n),
    sumAxis: (x, out, outer, axis, inner, accumulate) =>
      nat.sumAxis(x, out, outer, axis, inner, accumulate),
    broadcastAxis: (x, out, outer, axis, inner) => nat.broadcastAxis(x, out, outer, axis, inner),
    permute: (x, out, shape, perm, dtype) => nat.permute(x, out, shape, perm, dtype),
    matmul: (a: Buf, b: Buf, c: Buf, p: MatmulParams) =>
      nat.matmul(
        a,
        b,
        c,
        p.batch,
        p.m,
        p.n,
        p.k,
        p.transA,
        p.transB,
        p.strideA,
        p.strideB,
        p.strideC,
        p.alpha,
        p.accumulate,
        p.bias ?? null,
      ),
    gather: (table, idx, out, rows, d, vocab) => nat.gather(table, idx, out, rows, d, vocab),
    scatterAdd: (g, idx, gTable, rows, d) => nat.scatterAdd(g, idx, gTable, rows, d),
    layerNorm: (x, w, b, out, mean, rstd, rows, d, eps) =>
      nat.layerNorm(x, w, b, out, mean, rstd, rows, d, eps),
    layerNormBackward: (x, w, mean, rstd, gy, gx, gw, gb, rows, d) =>
      nat.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, d),
    softmax: (x, out, rows, n, causalTq) => nat.softmax(x, out, rows, n, causalTq),
    softmaxBackward: (y, gy, gx, rows, n) => nat.softmaxBackward(y, gy, gx, rows, n),
    crossEntropy: (logits, targets, probs, losses, rows, v) =>
      nat.crossEntropy(logits, targets, probs, losses, rows, v),
    crossEntropyBackward: (probs, targets, gLoss, gLogits, rows, v) =>
      nat.crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v),
    dropoutMask: (out, n, p, seed) => nat.dropoutMask(out, n, p, seed),
    im2col: (x: Buf, cols: Buf, g: Conv2dGeometry) =>
      nat.im2col(x, cols, g.n, g.c, g.h, g.w, g.kh, g.kw, g.stride, g.pad, g.ho, g.wo),
    col2im: (cols: Buf, x: Buf, g: Conv2dGeometry) =>
      nat.col2im(cols, x, g.n, g.c, g.h, g.w, g.kh, g.kw, g.stride, g.pad, g.ho, g.wo),
    nearestCode: (z, codebook, idx, dist, rows, k, d) =>
      nat.nearestCode(z, codebook, idx, dist, rows, k, d),
    adam: (p: Buf, g: Buf, m: Buf, v: Buf, n: number, a: AdamParams) =>
      nat.adam(
        p,
        g,
        m,
        v,
        n,
        a.lr,
        a.beta1,
        a.beta2,
        a.eps,
        a.weightDecay,
        a.decoupled,
        a.step,
        a.gradScale,
      ),
    crossEntropyMean: (logits, targets, losses, loss, gLogits, rows, v) =>
      nat.crossEntropyMean(logits, targets, losses, loss, gLogits, rows, v),
    biasGelu: (x, bias, out, rows, n) => nat.biasGelu(x, bias, out, rows, n),
    biasGeluBackward: (x, bias, gy, gx, gBias, rows, n) =>
      nat.biasGeluBackward(x, bias, gy, gx, gBias, rows, n),
    addLayerNorm: (x, r, w, b, h, out, mean, rstd, rows, d, eps) =>
      nat.addLayerNorm(x, r, w, b, h, out, mean, rstd, rows, d, eps),
    attention: (qkv, out, probs, batch, t, heads, headSize, scale) =>
      nat.attention(qkv, out, probs, batch, t, heads, headSize, scale),
    attentionBackward: (qkv, probs, gy, gQkv, batch, t, heads, headSize, scale) =>
      nat.attentionBackward(qkv, probs, gy, gQkv, batch, t, heads, headSize, scale),
    adamMulti: (t: AdamTensors, a: AdamParams, clipNorm: number, normOut: Buf) =>
      nat.adamMulti(
        t.params,
        t.grads,
        t.m,
        t.v,
        t.sizes,
        t.weightDecays,
        a.lr,
        a.beta1,
        a.beta2,
        a.eps,
        a.decoupled,
        a.step,
        clipNorm,
        normOut,
      ),
  };
}

let backend: Backend | null = null;

/**
 * The addon's host sampler, or null where the addon does not load (the registry's hostSampler,
 * which requires this module lazily and calls this by name).
 * @public
 */
export function loadHostSampler(): HostSampler | null {
  const l = loadNativeAddon();
  return 'error' in l || l.addon.sampling === undefined ? null : l.addon.sampling;
}

/** The cpu backend, or the reason it is unavailable (addon not built, failed to load, ...). */
export function loadCpuBackend(): Backend | { error: string } {
  if (backend !== null) return backend;
  const l = loadNativeAddon();
  if ('error' in l) return l;
  backend = makeCpuBackend(l.addon);
  return backend;
}
