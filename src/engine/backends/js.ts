// The plain-TypeScript reference backend: every kernel of the Backend interface (backend.ts)
// as obvious loops over Float32Array / Int32Array.
//
// This backend is the oracle the native CPU and CUDA backends are tested against, so it
// favours being plainly right over being fast (llm.c keeps a slow reference for the same reason):
// - every reduction (matmul dot products, sums, layerNorm mean/variance, softmax and
//   log-sum-exp sums, sumSquares, col2im scatter, nearestCode distances, layerNorm gw/gb)
//   accumulates in float64 (JS numbers) and is rounded to float32 once, on store;
// - elementwise maths is done in float64 and rounded once on store;
// - buffers are checked (type and length) on entry, so an engine bug shows up as a clear Error
//   here rather than as a silent NaN read past the end of a typed array.
// It is still loop-efficient (no per-element allocation, i-k-j matmul with a float64 row
// accumulator) because tests train tiny models on it.
//
// Choices where the interface leaves room (see backend.ts for the contract itself):
// - softmax: a row whose every column is masked (possible only when n < causalTq) is all zeros.
// - relu(NaN) = 0 and relu'(x) = 0 for x <= 0 (incl. NaN).
// - crossEntropy throws on a target >= v; gather and scatterAdd throw on an index out of range.
// - adam uses the float64 values of the new m and v (before their float32 rounding) for the
//   parameter update; nearestCode compares distances in float64 (lowest index on exact ties).
//
// The kernels live in js/ by concept (elementwise, layout and linear algebra, normalisation and
// losses, optimiser; js/checks.ts holds the buffer checks); this file assembles the backend.

import type { Backend, Buf, DType } from '../backend';
import { attentionKernels } from './js/attention';
import { anyArray, checkDtype } from './js/checks';
import { elementwiseKernels } from './js/elementwise';
import { layoutKernels } from './js/layout';
import { normKernels } from './js/norm';
import { optimiserKernels } from './js/optim';

export function createJsBackend(): Backend {
  return {
    name: 'js',

    // ---- memory --------------------------------------------------------------------------
    alloc(size: number, dtype: DType): Buf {
      if (!Number.isInteger(size) || size < 0) {
        throw new Error(`js backend: alloc size must be a non-negative integer, got ${size}`);
      }
      return dtype === 'float32' ? new Float32Array(size) : new Int32Array(size);
    },

    free(_buf: Buf): void {
      // Garbage collected.
    },

    upload(data: Float32Array | Int32Array): Buf {
      return data.slice();
    },

    download(buf: Buf, size: number, dtype: DType): Float32Array | Int32Array {
      const arr = anyArray(buf, 'download buffer', size);
      checkDtype(arr, dtype, 'download buffer');
      return arr.slice(0, size);
    },

    sync(): void {
      // Synchronous backend.
    },

    // ---- kernels -------------------------------------------------------------------------
    ...elementwiseKernels,
    ...layoutKernels,
    ...normKernels,
    ...attentionKernels,
    ...optimiserKernels,
  };
}

/** The shared reference backend instance (stateless, so one is enough). */
export const jsBackend: Backend = createJsBackend();
