// Broadcasting arithmetic (add, sub, mul, div and the gradient rule of broadcasting), affine maths,
// the unary functions and the reductions sum and mean.

import type { BinaryOp, UnaryOp } from '../backend';
import type { Tensor } from '../tensor';
import { around, fmt, normAxis, record, requireFloat, sameBackend, uninit } from './common';
import { reshape } from './layout';

// ---- broadcasting arithmetic ----------------------------------------------------------------

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides of `shape` read as if broadcast to `outShape` (0 on broadcast axes). */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const r = outShape.length;
  const strides = new Array<number>(r).fill(0);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = r - shape.length + i;
    strides[d] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

/** Sums g (of a broadcast shape) down to `shape`: the gradient rule of broadcasting. */
export function sumToShape(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length && g.shape.every((s, i) => s === shape[i])) return g;
  const r = g.rank;
  const padded = [...new Array<number>(r - shape.length).fill(1), ...shape];
  let cur = g;
  for (let d = 0; d < r; d++) {
    if (padded[d] === 1 && cur.shape[d] !== 1) {
      const [outer, n, inner] = around(cur.shape, d);
      const s = [...cur.shape];
      s[d] = 1;
      const next = uninit(s, 'float32', g.backend);
      g.backend.sumAxis(cur.buf, next.buf, outer, n, inner, false);
      if (cur !== g) cur.dispose();
      cur = next;
    }
  }
  const out = cur.shareStorage(shape);
  if (cur !== g) cur.dispose();
  return out;
}

export function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, outShape: readonly number[]): Tensor {
  const out = uninit(outShape, 'float32', a.backend);
  const shape = outShape.length === 0 ? [1] : outShape;
  const as = outShape.length === 0 ? [0] : broadcastStrides(a.shape, outShape);
  const bs = outShape.length === 0 ? [0] : broadcastStrides(b.shape, outShape);
  a.backend.binary(op, a.buf, b.buf, out.buf, shape, as, bs);
  return out;
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  requireFloat(op, a, b);
  sameBackend(op, a, b);
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const out = binaryRaw(op, a, b, outShape);
  return record(out, op, [a, b], (g) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    const needA = a.requiresGrad;
    const needB = b.requiresGrad;
    if (op === 'add' || op === 'sub') {
      if (needA) ga = g;
      if (needB) gb = op === 'add' ? g : scale(g, -1);
    } else if (op === 'mul') {
      if (needA) ga = binaryRaw('mul', g, b, g.shape);
      if (needB) gb = binaryRaw('mul', g, a, g.shape);
    } else {
      if (needA) ga = binaryRaw('div', g, b, g.shape);
      if (needB) {
        const t = binaryRaw('mul', g, out, g.shape); // g * a / b
        gb = binaryRaw('div', t, b, g.shape);
        t.dispose();
        g.backend.affine(gb.buf, gb.buf, gb.size, -1, 0);
      }
    }
    const ra = ga === null ? null : reduceOwned(ga, a.shape, g);
    const rb = gb === null ? null : reduceOwned(gb, b.shape, g);
    return [ra, rb];
  });
}

/** sumToShape that frees its input when the input is a temporary (not the incoming gradient). */
function reduceOwned(t: Tensor, shape: readonly number[], incoming: Tensor): Tensor {
  const r = sumToShape(t, shape);
  if (r !== t && t !== incoming) t.dispose();
  return r;
}

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);

/** alpha * x + beta. */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  requireFloat('affine', x);
  const out = uninit(x.shape, 'float32', x.backend);
  x.backend.affine(x.buf, out.buf, x.size, alpha, beta);
  return record(out, 'affine', [x], (g) => [scale(g, alpha)]);
}

export const scale = (x: Tensor, s: number): Tensor => affine(x, s, 0);
export const addScalar = (x: Tensor, s: number): Tensor => affine(x, 1, s);

// ---- unary -----------------------------------------------------------------------------------

function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(op, x);
  const out = uninit(x.shape, 'float32', x.backend);
  x.backend.unary(op, x.buf, out.buf, x.size);
  return record(out, op, [x], (g) => {
    const gx = uninit(x.shape, 'float32', x.backend);
    x.backend.unaryBackward(op, x.buf, out.buf, g.buf, gx.buf, x.size);
    return [gx];
  });
}

export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** GeLU, tanh approximation (GPT-2 "gelu_new"). */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const neg = (x: Tensor): Tensor => unary('neg', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const square = (x: Tensor): Tensor => unary('square', x);

// ---- reductions ------------------------------------------------------------------------------

/** Sum over one axis (or all elements when axis is undefined). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  requireFloat('sum', x);
  if (axis === undefined) return sum(reshape(x, [x.size]), 0, false);
  const ax = normAxis('sum', axis, x.rank);
  const [outer, n, inner] = around(x.shape, ax);
  const outShape = keepDim
    ? x.shape.map((s, i) => (i === ax ? 1 : s))
    : x.shape.filter((_, i) => i !== ax);
  const out = uninit(outShape, 'float32', x.backend);
  x.backend.sumAxis(x.buf, out.buf, outer, n, inner, false);
  return record(out, 'sum', [x], (g) => {
    const gx = uninit(x.shape, 'float32', x.backend);
    x.backend.broadcastAxis(g.buf, gx.buf, outer, n, inner);
    return [gx];
  });
}

/** Mean over one axis (or all elements). */
export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis('mean', axis, x.rank)];
  return scale(sum(x, axis, keepDim), 1 / n);
}
