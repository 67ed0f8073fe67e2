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

import {
  AdamParams,
  AdamTensors,
  Backend,
  BinaryOp,
  Buf,
  Conv2dGeometry,
  DType,
  MatmulParams,
  UnaryOp,
  dropoutUniform,
} from '../backend';

type AnyArray = Float32Array | Int32Array;

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

// ---- buffer checks ------------------------------------------------------------------------

function f32(buf: Buf, name: string, minLength: number): Float32Array {
  if (!(buf instanceof Float32Array)) {
    throw new Error(`js backend: ${name} must be a Float32Array, got ${describe(buf)}`);
  }
  checkLength(buf, name, minLength);
  return buf;
}

function i32(buf: Buf, name: string, minLength: number): Int32Array {
  if (!(buf instanceof Int32Array)) {
    throw new Error(`js backend: ${name} must be an Int32Array, got ${describe(buf)}`);
  }
  checkLength(buf, name, minLength);
  return buf;
}

function anyArray(buf: Buf, name: string, minLength: number): AnyArray {
  if (!(buf instanceof Float32Array) && !(buf instanceof Int32Array)) {
    throw new Error(
      `js backend: ${name} must be a Float32Array or Int32Array, got ${describe(buf)}`,
    );
  }
  checkLength(buf, name, minLength);
  return buf;
}

function checkLength(arr: AnyArray, name: string, minLength: number): void {
  if (arr.length < minLength) {
    throw new Error(
      `js backend: ${name} has ${arr.length} elements but the kernel needs at least ${minLength}`,
    );
  }
}

function describe(buf: Buf): string {
  return buf === null || buf === undefined ? String(buf) : buf.constructor.name;
}

function checkDtype(arr: AnyArray, dtype: DType, name: string): void {
  const actual: DType = arr instanceof Float32Array ? 'float32' : 'int32';
  if (actual !== dtype) {
    throw new Error(`js backend: ${name} holds ${actual} but dtype '${dtype}' was given`);
  }
}

/** 1 + the largest element offset reached by `shape` with `strides` (0 for an empty shape). */
function spanOf(shape: readonly number[], strides: readonly number[]): number {
  let last = 0;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 0) return 0;
    last += (shape[d] - 1) * strides[d];
  }
  return last + 1;
}

function product(shape: readonly number[]): number {
  let size = 1;
  for (const s of shape) size *= s;
  return size;
}

// ---- elementwise --------------------------------------------------------------------------

function binaryApply(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case 'add':
      return x + y;
    case 'sub':
      return x - y;
    case 'mul':
      return x * y;
    case 'div':
      return x / y;
  }
}

function unaryForward(op: UnaryOp, x: number): number {
  switch (op) {
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'tanh':
      return Math.tanh(x);
    case 'relu':
      return x > 0 ? x : 0;
    case 'gelu':
      return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)));
    case 'neg':
      return -x;
    case 'sqrt':
      return Math.sqrt(x);
    case 'square':
      return x * x;
  }
}

/** f'(x) * gy, given x and y = f(x). */
function unaryGrad(op: UnaryOp, x: number, y: number, gy: number): number {
  switch (op) {
    case 'exp':
      return gy * y;
    case 'log':
      return gy / x;
    case 'tanh':
      return gy * (1 - y * y);
    case 'relu':
      return x > 0 ? gy : 0;
    case 'gelu': {
      const x2 = x * x;
      const t = Math.tanh(GELU_C * (x + GELU_A * x2 * x));
      const dInner = GELU_C * (1 + 3 * GELU_A * x2);
      return gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dInner);
    }
    case 'neg':
      return -gy;
    case 'sqrt':
      return (gy * 0.5) / y;
    case 'square':
      return 2 * x * gy;
  }
}

// ---- the backend ----------------------------------------------------------------------------

export function createJsBackend(): Backend {
  const backend: Backend = {
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

    // ---- elementwise ---------------------------------------------------------------------
    fill(out: Buf, n: number, value: number): void {
      anyArray(out, 'fill out', n).fill(value, 0, n);
    },

    copyBlock(
      src: Buf,
      dst: Buf,
      outer: number,
      srcAxis: number,
      srcOffset: number,
      dstAxis: number,
      dstOffset: number,
      count: number,
      inner: number,
      accumulate: boolean,
    ): void {
      if (srcOffset + count > srcAxis || dstOffset + count > dstAxis) {
        throw new Error(
          `js backend: copyBlock range out of bounds (src ${srcOffset}+${count} of ${srcAxis}, ` +
            `dst ${dstOffset}+${count} of ${dstAxis})`,
        );
      }
      const block = count * inner; // elements copied per outer index (contiguous in both)
      if (accumulate) {
        const s = f32(src, 'copyBlock src', outer * srcAxis * inner);
        const d = f32(dst, 'copyBlock dst', outer * dstAxis * inner);
        for (let o = 0; o < outer; o++) {
          const sBase = (o * srcAxis + srcOffset) * inner;
          const dBase = (o * dstAxis + dstOffset) * inner;
          for (let e = 0; e < block; e++) d[dBase + e] += s[sBase + e];
        }
        return;
      }
      const s = anyArray(src, 'copyBlock src', outer * srcAxis * inner);
      const d = anyArray(dst, 'copyBlock dst', outer * dstAxis * inner);
      if (s.constructor !== d.constructor) {
        throw new Error('js backend: copyBlock src and dst must have the same dtype');
      }
      for (let o = 0; o < outer; o++) {
        const sBase = (o * srcAxis + srcOffset) * inner;
        const dBase = (o * dstAxis + dstOffset) * inner;
        d.set(s.subarray(sBase, sBase + block), dBase);
      }
    },

    binary(
      op: BinaryOp,
      a: Buf,
      b: Buf,
      out: Buf,
      shape: readonly number[],
      aStrides: readonly number[],
      bStrides: readonly number[],
    ): void {
      const rank = shape.length;
      if (rank < 1 || aStrides.length !== rank || bStrides.length !== rank) {
        throw new Error(
          `js backend: binary needs shape and strides of one rank >= 1, got ` +
            `[${shape}] / [${aStrides}] / [${bStrides}]`,
        );
      }
      const size = product(shape);
      const av = f32(a, 'binary a', spanOf(shape, aStrides));
      const bv = f32(b, 'binary b', spanOf(shape, bStrides));
      const ov = f32(out, 'binary out', size);
      if (size === 0) return;
      // Odometer over all axes but the last; the last axis is the inner loop.
      const last = rank - 1;
      const innerLen = shape[last];
      const aStep = aStrides[last];
      const bStep = bStrides[last];
      const index = new Array<number>(rank).fill(0);
      let ia = 0;
      let ib = 0;
      for (let o = 0; o < size; o += innerLen) {
        for (let j = 0; j < innerLen; j++) {
          ov[o + j] = binaryApply(op, av[ia + j * aStep], bv[ib + j * bStep]);
        }
        // Advance the outer multi-index (axes last-1 .. 0), keeping ia/ib in step.
        for (let d = last - 1; d >= 0; d--) {
          index[d]++;
          ia += aStrides[d];
          ib += bStrides[d];
          if (index[d] < shape[d]) break;
          ia -= shape[d] * aStrides[d];
          ib -= shape[d] * bStrides[d];
          index[d] = 0;
        }
      }
    },

    unary(op: UnaryOp, x: Buf, out: Buf, n: number): void {
      const xv = f32(x, 'unary x', n);
      const ov = f32(out, 'unary out', n);
      for (let i = 0; i < n; i++) ov[i] = unaryForward(op, xv[i]);
    },

    unaryBackward(op: UnaryOp, x: Buf, y: Buf, gy: Buf, gx: Buf, n: number): void {
      const xv = f32(x, 'unaryBackward x', n);
      const yv = f32(y, 'unaryBackward y', n);
      const gyv = f32(gy, 'unaryBackward gy', n);
      const gxv = f32(gx, 'unaryBackward gx', n);
      for (let i = 0; i < n; i++) gxv[i] = unaryGrad(op, xv[i], yv[i], gyv[i]);
    },

    affine(x: Buf, out: Buf, n: number, alpha: number, beta: number): void {
      const xv = f32(x, 'affine x', n);
      const ov = f32(out, 'affine out', n);
      for (let i = 0; i < n; i++) ov[i] = alpha * xv[i] + beta;
    },

    axpy(x: Buf, y: Buf, n: number, alpha: number): void {
      const xv = f32(x, 'axpy x', n);
      const yv = f32(y, 'axpy y', n);
      for (let i = 0; i < n; i++) yv[i] += alpha * xv[i];
    },

    sumSquares(x: Buf, n: number): number {
      const xv = f32(x, 'sumSquares x', n);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += xv[i] * xv[i];
      return sum;
    },

    // ---- reductions and layout -----------------------------------------------------------
    sumAxis(
      x: Buf,
      out: Buf,
      outer: number,
      axis: number,
      inner: number,
      accumulate: boolean,
    ): void {
      const xv = f32(x, 'sumAxis x', outer * axis * inner);
      const ov = f32(out, 'sumAxis out', outer * inner);
      const acc = new Float64Array(inner); // one float64 sum per (o, i)
      for (let o = 0; o < outer; o++) {
        acc.fill(0);
        for (let j = 0; j < axis; j++) {
          const base = (o * axis + j) * inner;
          for (let i = 0; i < inner; i++) acc[i] += xv[base + i];
        }
        const outBase = o * inner;
        for (let i = 0; i < inner; i++) {
          ov[outBase + i] = accumulate ? ov[outBase + i] + acc[i] : acc[i];
        }
      }
    },

    broadcastAxis(x: Buf, out: Buf, outer: number, axis: number, inner: number): void {
      const xv = f32(x, 'broadcastAxis x', outer * inner);
      const ov = f32(out, 'broadcastAxis out', outer * axis * inner);
      for (let o = 0; o < outer; o++) {
        const row = xv.subarray(o * inner, (o + 1) * inner);
        for (let j = 0; j < axis; j++) ov.set(row, (o * axis + j) * inner);
      }
    },

    permute(
      x: Buf,
      out: Buf,
      shape: readonly number[],
      perm: readonly number[],
      dtype: DType,
    ): void {
      const rank = shape.length;
      const seen = new Array<boolean>(rank).fill(false);
      for (const p of perm) {
        if (!Number.isInteger(p) || p < 0 || p >= rank || seen[p]) {
          throw new Error(
            `js backend: permute perm [${perm}] is not a permutation of 0..${rank - 1}`,
          );
        }
        seen[p] = true;
      }
      if (perm.length !== rank) {
        throw new Error(`js backend: permute perm [${perm}] does not match shape [${shape}]`);
      }
      const size = product(shape);
      const xv = anyArray(x, 'permute x', size);
      const ov = anyArray(out, 'permute out', size);
      checkDtype(xv, dtype, 'permute x');
      checkDtype(ov, dtype, 'permute out');
      if (size === 0) return;
      if (rank === 0) {
        ov[0] = xv[0];
        return;
      }
      // Row-major strides of x, then for each output axis d the x-stride it walks: xStrides[perm[d]].
      const xStrides = new Array<number>(rank);
      let stride = 1;
      for (let d = rank - 1; d >= 0; d--) {
        xStrides[d] = stride;
        stride *= shape[d];
      }
      const outShape = perm.map((p) => shape[p]);
      const walk = perm.map((p) => xStrides[p]);
      const last = rank - 1;
      const innerLen = outShape[last];
      const innerStep = walk[last];
      const index = new Array<number>(rank).fill(0);
      let src = 0;
      for (let o = 0; o < size; o += innerLen) {
        for (let j = 0; j < innerLen; j++) ov[o + j] = xv[src + j * innerStep];
        for (let d = last - 1; d >= 0; d--) {
          index[d]++;
          src += walk[d];
          if (index[d] < outShape[d]) break;
          src -= outShape[d] * walk[d];
          index[d] = 0;
        }
      }
    },

    // ---- linear algebra --------------------------------------------------------------------
    matmul(a: Buf, b: Buf, c: Buf, p: MatmulParams): void {
      const { batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, accumulate } = p;
      if (batch === 0 || m === 0 || n === 0) return;
      const av = f32(a, 'matmul A', (batch - 1) * strideA + m * k);
      const bv = f32(b, 'matmul B', (batch - 1) * strideB + k * n);
      const cv = f32(c, 'matmul C', (batch - 1) * strideC + m * n);
      const aRow = new Float64Array(k); // row i of op(A)
      const acc = new Float64Array(n); // row i of op(A) @ op(B), float64
      for (let bi = 0; bi < batch; bi++) {
        const aBase = bi * strideA;
        const bBase = bi * strideB;
        const cBase = bi * strideC;
        for (let i = 0; i < m; i++) {
          // op(A)[i, kk] = transA ? A[kk, i] (A is [k, m]) : A[i, kk] (A is [m, k])
          if (transA) {
            for (let kk = 0; kk < k; kk++) aRow[kk] = av[aBase + kk * m + i];
          } else {
            for (let kk = 0; kk < k; kk++) aRow[kk] = av[aBase + i * k + kk];
          }
          if (transB) {
            // op(B)[kk, j] = B[j, kk] (B is [n, k]): a contiguous dot product per j.
            for (let j = 0; j < n; j++) {
              const bRow = bBase + j * k;
              let sum = 0;
              for (let kk = 0; kk < k; kk++) sum += aRow[kk] * bv[bRow + kk];
              acc[j] = sum;
            }
          } else {
            // op(B)[kk, j] = B[kk, j] (B is [k, n]): i-k-j order, same summation order over kk.
            acc.fill(0);
            for (let kk = 0; kk < k; kk++) {
              const aik = aRow[kk];
              const bRow = bBase + kk * n;
              for (let j = 0; j < n; j++) acc[j] += aik * bv[bRow + j];
            }
          }
          const cRow = cBase + i * n;
          if (accumulate) {
            for (let j = 0; j < n; j++) cv[cRow + j] = alpha * acc[j] + cv[cRow + j];
          } else {
            for (let j = 0; j < n; j++) cv[cRow + j] = alpha * acc[j];
          }
        }
      }
    },

    // ---- embeddings ------------------------------------------------------------------------
    gather(table: Buf, idx: Buf, out: Buf, rows: number, d: number, vocab: number): void {
      const tv = f32(table, 'gather table', vocab * d);
      const iv = i32(idx, 'gather idx', rows);
      const ov = f32(out, 'gather out', rows * d);
      for (let r = 0; r < rows; r++) {
        const token = iv[r];
        if (token < 0 || token >= vocab) {
          throw new Error(
            `gather: index ${token} at row ${r} is out of range for a vocabulary of size ${vocab} ` +
              `(accepted: 0..${vocab - 1})`,
          );
        }
        ov.set(tv.subarray(token * d, (token + 1) * d), r * d);
      }
    },

    scatterAdd(g: Buf, idx: Buf, gTable: Buf, rows: number, d: number): void {
      const gv = f32(g, 'scatterAdd g', rows * d);
      const iv = i32(idx, 'scatterAdd idx', rows);
      const tv = f32(gTable, 'scatterAdd gTable', 0);
      const vocab = d > 0 ? Math.floor(tv.length / d) : 0;
      for (let r = 0; r < rows; r++) {
        const token = iv[r];
        if (token < 0 || token >= vocab) {
          throw new Error(
            `scatterAdd: index ${token} at row ${r} is out of range for a table of ${vocab} rows`,
          );
        }
        const tBase = token * d;
        const gBase = r * d;
        for (let j = 0; j < d; j++) tv[tBase + j] += gv[gBase + j];
      }
    },

    // ---- fused normalisation and attention pieces -----------------------------------------
    layerNorm(
      x: Buf,
      w: Buf,
      b: Buf,
      out: Buf,
      mean: Buf,
      rstd: Buf,
      rows: number,
      d: number,
      eps: number,
    ): void {
      const xv = f32(x, 'layerNorm x', rows * d);
      const wv = f32(w, 'layerNorm w', d);
      const bv = f32(b, 'layerNorm b', d);
      const ov = f32(out, 'layerNorm out', rows * d);
      const meanv = f32(mean, 'layerNorm mean', rows);
      const rstdv = f32(rstd, 'layerNorm rstd', rows);
      for (let r = 0; r < rows; r++) {
        const base = r * d;
        let sum = 0;
        for (let j = 0; j < d; j++) sum += xv[base + j];
        const mu = sum / d;
        let sq = 0; // two-pass variance, float64
        for (let j = 0; j < d; j++) {
          const diff = xv[base + j] - mu;
          sq += diff * diff;
        }
        const rs = 1 / Math.sqrt(sq / d + eps);
        for (let j = 0; j < d; j++) ov[base + j] = (xv[base + j] - mu) * rs * wv[j] + bv[j];
        meanv[r] = mu;
        rstdv[r] = rs;
      }
    },

    layerNormBackward(
      x: Buf,
      w: Buf,
      mean: Buf,
      rstd: Buf,
      gy: Buf,
      gx: Buf,
      gw: Buf,
      gb: Buf,
      rows: number,
      d: number,
    ): void {
      const xv = f32(x, 'layerNormBackward x', rows * d);
      const wv = f32(w, 'layerNormBackward w', d);
      const meanv = f32(mean, 'layerNormBackward mean', rows);
      const rstdv = f32(rstd, 'layerNormBackward rstd', rows);
      const gyv = f32(gy, 'layerNormBackward gy', rows * d);
      const gxv = f32(gx, 'layerNormBackward gx', rows * d);
      const gwv = f32(gw, 'layerNormBackward gw', d);
      const gbv = f32(gb, 'layerNormBackward gb', d);
      // gw/gb sums over rows in float64, added to the float32 buffers once at the end.
      const gwAcc = new Float64Array(d);
      const gbAcc = new Float64Array(d);
      for (let r = 0; r < rows; r++) {
        const base = r * d;
        const mu = meanv[r];
        const rs = rstdv[r];
        // xhat = (x - mean) * rstd; dxhat = gy * w;
        // gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
        let sumDxhat = 0;
        let sumDxhatXhat = 0;
        for (let j = 0; j < d; j++) {
          const xhat = (xv[base + j] - mu) * rs;
          const g = gyv[base + j];
          const dxhat = g * wv[j];
          sumDxhat += dxhat;
          sumDxhatXhat += dxhat * xhat;
          gwAcc[j] += g * xhat;
          gbAcc[j] += g;
        }
        const meanDxhat = sumDxhat / d;
        const meanDxhatXhat = sumDxhatXhat / d;
        for (let j = 0; j < d; j++) {
          const xhat = (xv[base + j] - mu) * rs;
          const dxhat = gyv[base + j] * wv[j];
          gxv[base + j] = rs * (dxhat - meanDxhat - xhat * meanDxhatXhat);
        }
      }
      for (let j = 0; j < d; j++) {
        gwv[j] = gwAcc[j];
        gbv[j] = gbAcc[j];
      }
    },

    softmax(x: Buf, out: Buf, rows: number, n: number, causalTq: number): void {
      const xv = f32(x, 'softmax x', rows * n);
      const ov = f32(out, 'softmax out', rows * n);
      for (let r = 0; r < rows; r++) {
        const base = r * n;
        // Columns [0, visible) are kept; the rest are masked to exactly 0.
        const visible =
          causalTq > 0 ? Math.max(0, Math.min(n, (r % causalTq) + (n - causalTq) + 1)) : n;
        let max = -Infinity;
        for (let j = 0; j < visible; j++) if (xv[base + j] > max) max = xv[base + j];
        let sum = 0;
        for (let j = 0; j < visible; j++) sum += Math.exp(xv[base + j] - max);
        const inv = visible > 0 ? 1 / sum : 0;
        for (let j = 0; j < visible; j++) ov[base + j] = Math.exp(xv[base + j] - max) * inv;
        for (let j = visible; j < n; j++) ov[base + j] = 0;
      }
    },

    softmaxBackward(y: Buf, gy: Buf, gx: Buf, rows: number, n: number): void {
      const yv = f32(y, 'softmaxBackward y', rows * n);
      const gyv = f32(gy, 'softmaxBackward gy', rows * n);
      const gxv = f32(gx, 'softmaxBackward gx', rows * n);
      for (let r = 0; r < rows; r++) {
        const base = r * n;
        let dot = 0;
        for (let j = 0; j < n; j++) dot += gyv[base + j] * yv[base + j];
        for (let j = 0; j < n; j++) gxv[base + j] = yv[base + j] * (gyv[base + j] - dot);
      }
    },

    crossEntropy(
      logits: Buf,
      targets: Buf,
      probs: Buf,
      losses: Buf,
      rows: number,
      v: number,
    ): void {
      const lv = f32(logits, 'crossEntropy logits', rows * v);
      const tv = i32(targets, 'crossEntropy targets', rows);
      const pv = f32(probs, 'crossEntropy probs', rows * v);
      const lossv = f32(losses, 'crossEntropy losses', rows);
      for (let r = 0; r < rows; r++) {
        const base = r * v;
        const target = tv[r];
        if (target >= v) {
          throw new Error(
            `crossEntropy: target ${target} at row ${r} is out of range for ${v} classes ` +
              `(accepted: 0..${v - 1}, or negative to ignore)`,
          );
        }
        let max = -Infinity;
        for (let j = 0; j < v; j++) if (lv[base + j] > max) max = lv[base + j];
        let sum = 0;
        for (let j = 0; j < v; j++) sum += Math.exp(lv[base + j] - max);
        const inv = 1 / sum;
        for (let j = 0; j < v; j++) pv[base + j] = Math.exp(lv[base + j] - max) * inv;
        // -log softmax[target] = log(sum exp(l - max)) + max - l[target]
        lossv[r] = target < 0 ? 0 : Math.log(sum) + max - lv[base + target];
      }
    },

    crossEntropyBackward(
      probs: Buf,
      targets: Buf,
      gLoss: Buf,
      gLogits: Buf,
      rows: number,
      v: number,
    ): void {
      const pv = f32(probs, 'crossEntropyBackward probs', rows * v);
      const tv = i32(targets, 'crossEntropyBackward targets', rows);
      const glv = f32(gLoss, 'crossEntropyBackward gLoss', rows);
      const gv = f32(gLogits, 'crossEntropyBackward gLogits', rows * v);
      for (let r = 0; r < rows; r++) {
        const base = r * v;
        const target = tv[r];
        if (target < 0) {
          gv.fill(0, base, base + v);
          continue;
        }
        if (target >= v) {
          throw new Error(
            `crossEntropyBackward: target ${target} at row ${r} is out of range for ${v} classes`,
          );
        }
        const g = glv[r];
        for (let j = 0; j < v; j++) gv[base + j] = g * (pv[base + j] - (j === target ? 1 : 0));
      }
    },

    // ---- randomness --------------------------------------------------------------------------
    dropoutMask(out: Buf, n: number, p: number, seed: number): void {
      const ov = f32(out, 'dropoutMask out', n);
      const keep = 1 / (1 - p);
      for (let i = 0; i < n; i++) ov[i] = dropoutUniform(seed, i) >= p ? keep : 0;
    },

    // ---- convolution -------------------------------------------------------------------------
    im2col(x: Buf, cols: Buf, g: Conv2dGeometry): void {
      const { n, c, h, w, kh, kw, stride, pad, ho, wo } = g;
      const xv = f32(x, 'im2col x', n * c * h * w);
      const cv = f32(cols, 'im2col cols', n * c * kh * kw * ho * wo);
      const colLen = ho * wo;
      let row = 0; // global row of cols: (img * c + ci) * kh * kw + ky * kw + kx
      for (let img = 0; img < n; img++) {
        for (let ci = 0; ci < c; ci++) {
          const plane = (img * c + ci) * h * w;
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++, row++) {
              const colBase = row * colLen;
              for (let oy = 0; oy < ho; oy++) {
                const iy = oy * stride - pad + ky;
                const rowOut = colBase + oy * wo;
                if (iy < 0 || iy >= h) {
                  cv.fill(0, rowOut, rowOut + wo);
                  continue;
                }
                const xRow = plane + iy * w;
                for (let ox = 0; ox < wo; ox++) {
                  const ix = ox * stride - pad + kx;
                  cv[rowOut + ox] = ix >= 0 && ix < w ? xv[xRow + ix] : 0;
                }
              }
            }
          }
        }
      }
    },

    col2im(cols: Buf, x: Buf, g: Conv2dGeometry): void {
      const { n, c, h, w, kh, kw, stride, pad, ho, wo } = g;
      const cv = f32(cols, 'col2im cols', n * c * kh * kw * ho * wo);
      const xv = f32(x, 'col2im x', n * c * h * w);
      const colLen = ho * wo;
      const imageSize = c * h * w;
      const acc = new Float64Array(imageSize); // one image's scatter, float64
      let row = 0;
      for (let img = 0; img < n; img++) {
        acc.fill(0);
        for (let ci = 0; ci < c; ci++) {
          const plane = ci * h * w;
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++, row++) {
              const colBase = row * colLen;
              for (let oy = 0; oy < ho; oy++) {
                const iy = oy * stride - pad + ky;
                if (iy < 0 || iy >= h) continue;
                const xRow = plane + iy * w;
                const colRow = colBase + oy * wo;
                for (let ox = 0; ox < wo; ox++) {
                  const ix = ox * stride - pad + kx;
                  if (ix >= 0 && ix < w) acc[xRow + ix] += cv[colRow + ox];
                }
              }
            }
          }
        }
        const xBase = img * imageSize;
        for (let e = 0; e < imageSize; e++) xv[xBase + e] += acc[e];
      }
    },

    // ---- vector quantisation -------------------------------------------------------------------
    nearestCode(
      z: Buf,
      codebook: Buf,
      idx: Buf,
      dist: Buf,
      rows: number,
      k: number,
      d: number,
    ): void {
      const zv = f32(z, 'nearestCode z', rows * d);
      const cbv = f32(codebook, 'nearestCode codebook', k * d);
      const iv = i32(idx, 'nearestCode idx', rows);
      const dv = f32(dist, 'nearestCode dist', rows);
      if (k < 1) throw new Error(`nearestCode: the codebook needs at least one row, got k = ${k}`);
      for (let r = 0; r < rows; r++) {
        const zBase = r * d;
        let best = 0;
        let bestDist = Infinity;
        for (let code = 0; code < k; code++) {
          const cBase = code * d;
          let sq = 0;
          for (let j = 0; j < d; j++) {
            const diff = zv[zBase + j] - cbv[cBase + j];
            sq += diff * diff;
          }
          if (sq < bestDist) {
            bestDist = sq;
            best = code;
          }
        }
        iv[r] = best;
        dv[r] = bestDist;
      }
    },

    // ---- optimiser -------------------------------------------------------------------------------
    adam(p: Buf, g: Buf, m: Buf, v: Buf, n: number, params: AdamParams): void {
      const pv = f32(p, 'adam p', n);
      const gv = f32(g, 'adam g', n);
      const mv = f32(m, 'adam m', n);
      const vv = f32(v, 'adam v', n);
      const { lr, beta1, beta2, eps, weightDecay, decoupled, step, gradScale } = params;
      if (!(step >= 1)) throw new Error(`adam: step is 1-based, got ${step}`);
      const bias1 = 1 - Math.pow(beta1, step);
      const bias2 = 1 - Math.pow(beta2, step);
      for (let i = 0; i < n; i++) {
        const param = pv[i];
        const grad = gradScale * gv[i] + (decoupled ? 0 : weightDecay * param);
        const mNew = beta1 * mv[i] + (1 - beta1) * grad;
        const vNew = beta2 * vv[i] + (1 - beta2) * grad * grad;
        mv[i] = mNew;
        vv[i] = vNew;
        const mHat = mNew / bias1;
        const vHat = vNew / bias2;
        pv[i] =
          param - lr * (mHat / (Math.sqrt(vHat) + eps) + (decoupled ? weightDecay * param : 0));
      }
    },

    // ---- fused training-step kernels: the unfused chains, written out -------------------------
    crossEntropyMean(
      logits: Buf,
      targets: Buf,
      losses: Buf,
      loss: Buf,
      gLogits: Buf,
      rows: number,
      v: number,
    ): void {
      const tv = i32(targets, 'crossEntropyMean targets', rows);
      const gv = f32(gLogits, 'crossEntropyMean gLogits', rows * v);
      const lossv = f32(losses, 'crossEntropyMean losses', rows);
      const meanv = f32(loss, 'crossEntropyMean loss', 1);
      // The forward writes the softmax into gLogits, then it becomes the gradient in place.
      backend.crossEntropy(logits, targets, gLogits, losses, rows, v);
      let count = 0;
      for (let r = 0; r < rows; r++) if (tv[r] >= 0) count++;
      count = Math.max(count, 1);
      const s = Math.fround(1 / count);
      let total = 0;
      for (let r = 0; r < rows; r++) {
        total += lossv[r];
        const base = r * v;
        const target = tv[r];
        if (target < 0) {
          gv.fill(0, base, base + v);
          continue;
        }
        for (let j = 0; j < v; j++) gv[base + j] = s * (gv[base + j] - (j === target ? 1 : 0));
      }
      meanv[0] = total / count;
    },

    biasGelu(x: Buf, bias: Buf, out: Buf, rows: number, n: number): void {
      const xv = f32(x, 'biasGelu x', rows * n);
      const bv = f32(bias, 'biasGelu bias', n);
      const ov = f32(out, 'biasGelu out', rows * n);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < n; j++) {
          ov[r * n + j] = unaryForward('gelu', Math.fround(xv[r * n + j] + bv[j]));
        }
      }
    },

    biasGeluBackward(x: Buf, bias: Buf, gy: Buf, gx: Buf, gBias: Buf, rows: number, n: number) {
      const xv = f32(x, 'biasGeluBackward x', rows * n);
      const bv = f32(bias, 'biasGeluBackward bias', n);
      const gyv = f32(gy, 'biasGeluBackward gy', rows * n);
      const gxv = f32(gx, 'biasGeluBackward gx', rows * n);
      const gbv = f32(gBias, 'biasGeluBackward gBias', n);
      const acc = new Float64Array(n);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < n; j++) {
          const i = r * n + j;
          gxv[i] = unaryGrad('gelu', Math.fround(xv[i] + bv[j]), 0, gyv[i]);
          acc[j] += gxv[i];
        }
      }
      gbv.set(acc);
    },

    addLayerNorm(
      x: Buf,
      r: Buf,
      w: Buf,
      b: Buf,
      h: Buf,
      out: Buf,
      mean: Buf,
      rstd: Buf,
      rows: number,
      d: number,
      eps: number,
    ): void {
      const xv = f32(x, 'addLayerNorm x', rows * d);
      const rv = f32(r, 'addLayerNorm r', rows * d);
      const hv = f32(h, 'addLayerNorm h', rows * d);
      for (let i = 0; i < rows * d; i++) hv[i] = xv[i] + rv[i];
      backend.layerNorm(h, w, b, out, mean, rstd, rows, d, eps);
    },

    adamMulti(t: AdamTensors, params: AdamParams, clipNorm: number, normOut: Buf): void {
      const count = t.params.length;
      for (const list of [t.grads, t.m, t.v, t.sizes, t.weightDecays]) {
        if (list.length !== count)
          throw new Error(`adamMulti: ${count} parameters but a list of ${list.length}`);
      }
      const nv = f32(normOut, 'adamMulti normOut', 1);
      let gradScale = 1;
      if (clipNorm > 0) {
        let sum = 0;
        for (let i = 0; i < count; i++) sum += backend.sumSquares(t.grads[i], t.sizes[i]);
        const norm = Math.sqrt(sum);
        nv[0] = norm;
        if (norm > clipNorm) gradScale = clipNorm / (norm + 1e-6);
      } else {
        nv[0] = 0;
      }
      for (let i = 0; i < count; i++) {
        backend.adam(t.params[i], t.grads[i], t.m[i], t.v[i], t.sizes[i], {
          ...params,
          weightDecay: t.weightDecays[i],
          gradScale,
        });
      }
    },
  };
  return backend;
}

/** The shared reference backend instance (stateless, so one is enough). */
export const jsBackend: Backend = createJsBackend();
