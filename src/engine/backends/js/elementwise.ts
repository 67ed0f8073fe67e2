// The reference backend's elementwise kernels: fill, copyBlock, broadcasting binary ops, unary
// maths and its derivatives, affine/axpy/sumSquares, the dropout mask and the fused bias + GeLU.
// Maths in float64 (JS numbers), rounded to float32 once on store.

import type { Backend, BinaryOp, UnaryOp } from '../../backend';
import { dropoutUniform } from '../../backend';
import { anyArray, f32, product, spanOf } from './checks';

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

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

type ElementwiseKernel =
  | 'fill'
  | 'copyBlock'
  | 'binary'
  | 'unary'
  | 'unaryBackward'
  | 'affine'
  | 'axpy'
  | 'sumSquares'
  | 'dropoutMask'
  | 'biasGelu'
  | 'biasGeluBackward';

export const elementwiseKernels: Pick<Backend, ElementwiseKernel> = {
  fill(out, n, value) {
    anyArray(out, 'fill out', n).fill(value, 0, n);
  },

  copyBlock(src, dst, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, accumulate) {
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

  binary(op, a, b, out, shape, aStrides, bStrides) {
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

  unary(op, x, out, n) {
    const xv = f32(x, 'unary x', n);
    const ov = f32(out, 'unary out', n);
    for (let i = 0; i < n; i++) ov[i] = unaryForward(op, xv[i]);
  },

  unaryBackward(op, x, y, gy, gx, n) {
    const xv = f32(x, 'unaryBackward x', n);
    const yv = f32(y, 'unaryBackward y', n);
    const gyv = f32(gy, 'unaryBackward gy', n);
    const gxv = f32(gx, 'unaryBackward gx', n);
    for (let i = 0; i < n; i++) gxv[i] = unaryGrad(op, xv[i], yv[i], gyv[i]);
  },

  affine(x, out, n, alpha, beta) {
    const xv = f32(x, 'affine x', n);
    const ov = f32(out, 'affine out', n);
    for (let i = 0; i < n; i++) ov[i] = alpha * xv[i] + beta;
  },

  axpy(x, y, n, alpha) {
    const xv = f32(x, 'axpy x', n);
    const yv = f32(y, 'axpy y', n);
    for (let i = 0; i < n; i++) yv[i] += alpha * xv[i];
  },

  sumSquares(x, n) {
    const xv = f32(x, 'sumSquares x', n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += xv[i] * xv[i];
    return sum;
  },

  dropoutMask(out, n, p, seed) {
    const ov = f32(out, 'dropoutMask out', n);
    const keep = 1 / (1 - p);
    for (let i = 0; i < n; i++) ov[i] = dropoutUniform(seed, i) >= p ? keep : 0;
  },

  biasGelu(x, bias, out, rows, n) {
    const xv = f32(x, 'biasGelu x', rows * n);
    const bv = f32(bias, 'biasGelu bias', n);
    const ov = f32(out, 'biasGelu out', rows * n);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        ov[r * n + j] = unaryForward('gelu', Math.fround(xv[r * n + j] + bv[j]));
      }
    }
  },

  biasGeluBackward(x, bias, gy, gx, gBias, rows, n) {
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
};
