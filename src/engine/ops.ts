// Differentiable operations on Tensors: each one checks shapes, calls a backend kernel for the
// forward pass and records a backward rule that calls backend kernels for the gradients.
//
// The op set is the one the models need (see issue 2): matmul, broadcasting arithmetic,
// unary maths, reductions, layout ops, embedding, LayerNorm, softmax, cross-entropy, dropout,
// im2col/col2im (from which conv2d and its transpose are composed) and codebook search.
// Shape errors name the op and the shapes involved.

import type { Backend, BinaryOp, Conv2dGeometry, DType, UnaryOp } from './backend';
import { convOutSize } from './backend';
import { Tensor, Node, empty, fromData, isGradEnabled, isUnitSeed, checkSameShape } from './tensor';
import { getBackend } from './registry';

// ---- helpers ---------------------------------------------------------------------------------

/** An output buffer that the kernel overwrites completely (no zero-fill). */
const uninit = (shape: readonly number[], dtype: DType, backend: Backend): Tensor =>
  empty(shape, dtype, backend, false);

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;
const prod = (xs: readonly number[]): number => xs.reduce((p, s) => p * s, 1);

/** Attaches an autodiff node to `out` if any input requires grad and grad mode is on. */
function record(out: Tensor, op: string, inputs: Tensor[], backward: Node['backward']): Tensor {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

function requireFloat(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32')
      throw new Error(`${op}: expected a float32 tensor, got ${t.describe()}`);
  }
}

function sameBackend(op: string, ...ts: Tensor[]): void {
  const b = ts[0].backend;
  for (const t of ts) {
    if (t.backend !== b)
      throw new Error(`${op}: tensors live on different backends (${b.name}, ${t.backend.name})`);
  }
}

function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** [outer, axis, inner] view of a shape around one axis. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [prod(shape.slice(0, axis)), shape[axis], prod(shape.slice(axis + 1))];
}

// ---- creation --------------------------------------------------------------------------------

export function tensor(
  data: ArrayLike<number> | Float32Array | Int32Array,
  shape?: readonly number[],
  dtype: DType = 'float32',
): Tensor {
  const arr =
    data instanceof Float32Array || data instanceof Int32Array
      ? data
      : dtype === 'int32'
        ? Int32Array.from(data as ArrayLike<number>)
        : Float32Array.from(data as ArrayLike<number>);
  return fromData(arr, shape ?? [arr.length]);
}

export function zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  return empty(shape, dtype);
}

export function full(shape: readonly number[], value: number, dtype: DType = 'float32'): Tensor {
  const t = uninit(shape, dtype, getBackend());
  t.backend.fill(t.buf, t.size, value);
  return t;
}

export function ones(shape: readonly number[]): Tensor {
  return full(shape, 1);
}

/** A copy that is not connected to the graph. */
export function clone(x: Tensor): Tensor {
  const out = uninit(x.shape, x.dtype, x.backend);
  x.backend.copyBlock(x.buf, out.buf, 1, 1, 0, 1, 0, 1, x.size, false);
  return out;
}

/** A view of x that shares its data but stops gradients. */
export function detach(x: Tensor): Tensor {
  return x.shareStorage(x.shape);
}

// ---- layout ----------------------------------------------------------------------------------

/** Same data, new shape (one dimension may be -1). Shares storage. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((s) => s !== -1);
  const inferred = shape.length - known.length;
  if (inferred > 1) throw new Error(`reshape: more than one -1 in ${fmt(shape)}`);
  const newShape = shape.map((s) => (s === -1 ? x.size / prod(known) : s));
  if (prod(newShape) !== x.size || newShape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw new Error(`reshape: cannot view ${fmt(x.shape)} (${x.size} elements) as ${fmt(shape)}`);
  }
  const out = x.shareStorage(newShape);
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

/** Reorders axes: out.shape[d] = x.shape[perm[d]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const r = x.rank;
  if (perm.length !== r || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new Error(`permute: ${fmt(perm)} is not a permutation of the axes of ${fmt(x.shape)}`);
  }
  const outShape = perm.map((p) => x.shape[p]);
  const out = uninit(outShape, x.dtype, x.backend);
  x.backend.permute(x.buf, out.buf, x.shape, perm, x.dtype);
  const inverse = new Array<number>(r);
  perm.forEach((p, d) => (inverse[p] = d));
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** Swaps two axes. */
export function transpose(x: Tensor, a: number, b: number): Tensor {
  const perm = x.shape.map((_, i) => i);
  const ia = normAxis('transpose', a, x.rank);
  const ib = normAxis('transpose', b, x.rank);
  perm[ia] = ib;
  perm[ib] = ia;
  return permute(x, perm);
}

/** x[..., start:end, ...] along one axis (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis('slice', axis, x.rank);
  const n = x.shape[ax];
  if (!(
    Number.isInteger(start) &&
    Number.isInteger(end) &&
    0 <= start &&
    start <= end &&
    end <= n
  )) {
    throw new Error(`slice: range ${start}:${end} out of bounds for axis ${ax} of ${fmt(x.shape)}`);
  }
  const [outer, , inner] = around(x.shape, ax);
  const outShape = [...x.shape];
  outShape[ax] = end - start;
  const out = uninit(outShape, x.dtype, x.backend);
  x.backend.copyBlock(x.buf, out.buf, outer, n, start, end - start, 0, end - start, inner, false);
  return record(out, 'slice', [x], (g) => {
    const gx = empty(x.shape, 'float32', x.backend);
    x.backend.copyBlock(g.buf, gx.buf, outer, end - start, 0, n, start, end - start, inner, false);
    return [gx];
  });
}

/** Joins tensors along an axis. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error('concat: no tensors');
  sameBackend('concat', ...xs);
  const first = xs[0];
  const ax = normAxis('concat', axis, first.rank);
  for (const t of xs) {
    if (
      t.rank !== first.rank ||
      t.dtype !== first.dtype ||
      t.shape.some((s, i) => i !== ax && s !== first.shape[i])
    ) {
      throw new Error(
        `concat: shapes ${xs.map((t) => fmt(t.shape)).join(', ')} do not match except on axis ${ax}`,
      );
    }
  }
  const total = xs.reduce((s, t) => s + t.shape[ax], 0);
  const outShape = [...first.shape];
  outShape[ax] = total;
  const [outer, , inner] = around(first.shape, ax);
  const out = uninit(outShape, first.dtype, first.backend);
  const offsets: number[] = [];
  let off = 0;
  for (const t of xs) {
    offsets.push(off);
    t.backend.copyBlock(
      t.buf,
      out.buf,
      outer,
      t.shape[ax],
      0,
      total,
      off,
      t.shape[ax],
      inner,
      false,
    );
    off += t.shape[ax];
  }
  return record(out, 'concat', [...xs], (g) =>
    xs.map((t, i) => {
      const gx = uninit(t.shape, 'float32', t.backend);
      t.backend.copyBlock(
        g.buf,
        gx.buf,
        outer,
        total,
        offsets[i],
        t.shape[ax],
        0,
        t.shape[ax],
        inner,
        false,
      );
      return gx;
    }),
  );
}

/** Splits x along an axis into pieces of the given sizes. */
export function split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
  const ax = normAxis('split', axis, x.rank);
  if (sizes.reduce((a, b) => a + b, 0) !== x.shape[ax]) {
    throw new Error(`split: sizes ${fmt(sizes)} do not add up to axis ${ax} of ${fmt(x.shape)}`);
  }
  const out: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    out.push(slice(x, ax, start, start + s));
    start += s;
  }
  return out;
}

/**
 * Writes src into dst[..., offset:offset+n, ...] along an axis, in place and without autodiff
 * (the KV cache's append).
 */
export function writeInto(dst: Tensor, src: Tensor, axis: number, offset: number): void {
  const ax = normAxis('writeInto', axis, dst.rank);
  const n = src.shape[ax];
  if (
    src.rank !== dst.rank ||
    src.shape.some((s, i) => i !== ax && s !== dst.shape[i]) ||
    offset + n > dst.shape[ax]
  ) {
    throw new Error(
      `writeInto: cannot write ${fmt(src.shape)} into ${fmt(dst.shape)} at ${offset} on axis ${ax}`,
    );
  }
  const [outer, , inner] = around(dst.shape, ax);
  dst.backend.copyBlock(src.buf, dst.buf, outer, n, 0, dst.shape[ax], offset, n, inner, false);
}

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

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, outShape: readonly number[]): Tensor {
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

// ---- matmul ----------------------------------------------------------------------------------

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Batched matrix product. a: [..., m, k] (or [..., k, m] with transA), b: [..., k, n]
 * (or [..., n, k] with transB). The batch dims must be equal, or one operand is 2-D and is
 * broadcast over the other's batch. Output: [...batch, m, n].
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  requireFloat('matmul', a, b);
  sameBackend('matmul', a, b);
  if (a.rank < 2 || b.rank < 2)
    throw new Error(`matmul: need rank >= 2, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const m = transA ? a.shape[a.rank - 1] : a.shape[a.rank - 2];
  const ka = transA ? a.shape[a.rank - 2] : a.shape[a.rank - 1];
  const kb = transB ? b.shape[b.rank - 1] : b.shape[b.rank - 2];
  const n = transB ? b.shape[b.rank - 2] : b.shape[b.rank - 1];
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const sameBatch = batchA.length === batchB.length && batchA.every((s, i) => s === batchB[i]);
  if (ka !== kb || !(sameBatch || batchA.length === 0 || batchB.length === 0)) {
    throw new Error(
      `matmul: shapes ${fmt(a.shape)}${transA ? 'ᵀ' : ''} and ${fmt(b.shape)}${transB ? 'ᵀ' : ''} are incompatible`,
    );
  }
  const batchShape = batchA.length >= batchB.length ? batchA : batchB;
  const batch = prod(batchShape);
  const out = uninit([...batchShape, m, n], 'float32', a.backend);
  if (batchB.length === 0 && !transA) {
    // [batch*m, k] @ [k, n]: one large GEMM instead of many small ones.
    a.backend.matmul(a.buf, b.buf, out.buf, {
      batch: 1,
      m: batch * m,
      n,
      k: ka,
      transA,
      transB,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      alpha: 1,
      accumulate: false,
    });
  } else {
    a.backend.matmul(a.buf, b.buf, out.buf, {
      batch,
      m,
      n,
      k: ka,
      transA,
      transB,
      strideA: batchA.length === 0 ? 0 : m * ka,
      strideB: batchB.length === 0 ? 0 : ka * n,
      strideC: m * n,
      alpha: 1,
      accumulate: false,
    });
  }
  return record(out, 'matmul', [a, b], (g) => {
    // g: [...batch, m, n]
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g @ op(B)^T, laid out like A (transposed back when transA).
      ga = transA
        ? matmulGrad(b, g, transB, true, batchB.length === 0, false, batch, a.shape, 'B')
        : matmulGrad(g, b, false, !transB, false, batchB.length === 0, batch, a.shape, 'A');
    }
    if (b.requiresGrad) {
      // dB = op(A)^T @ g, laid out like B.
      gb = transB
        ? matmulGrad(g, a, true, transA, false, batchA.length === 0, batch, b.shape, 'B2')
        : matmulGrad(a, g, !transA, false, batchA.length === 0, false, batch, b.shape, 'A2');
    }
    return [ga, gb];
  });
}

/**
 * One gradient product X @ Y (with transposes), producing a tensor of `targetShape`. If the
 * target is 2-D but the product is batched (the operand was broadcast), sums over the batch.
 */
function matmulGrad(
  x: Tensor,
  y: Tensor,
  tx: boolean,
  ty: boolean,
  xBroadcast: boolean,
  yBroadcast: boolean,
  batch: number,
  targetShape: readonly number[],
  _tag: string,
): Tensor {
  const rows = targetShape[targetShape.length - 2];
  const cols = targetShape[targetShape.length - 1];
  const xr = x.shape[x.rank - 2],
    xc = x.shape[x.rank - 1];
  const k = tx ? xr : xc;
  const be = x.backend;
  const targetBatched = targetShape.length > 2;
  const yRows = y.shape[y.rank - 2],
    yCols = y.shape[y.rank - 1];
  if (targetBatched && yBroadcast && !tx && !xBroadcast) {
    // Fold the batch into the rows: [batch*rows, k] @ op(Y).
    const out = uninit(targetShape, 'float32', be);
    be.matmul(x.buf, y.buf, out.buf, {
      batch: 1,
      m: batch * rows,
      n: cols,
      k,
      transA: false,
      transB: ty,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      alpha: 1,
      accumulate: false,
    });
    return out;
  }
  if (!targetBatched && batch > 1 && tx && !ty && !xBroadcast && !yBroadcast) {
    // Fold the batch into the reduction: X_flat^T [rows, batch*k] @ Y_flat [batch*k, cols].
    const out = uninit(targetShape, 'float32', be);
    be.matmul(x.buf, y.buf, out.buf, {
      batch: 1,
      m: rows,
      n: cols,
      k: batch * k,
      transA: true,
      transB: false,
      strideA: 0,
      strideB: 0,
      strideC: 0,
      alpha: 1,
      accumulate: false,
    });
    return out;
  }
  if (targetBatched || batch === 1) {
    const out = uninit(targetShape, 'float32', be);
    be.matmul(x.buf, y.buf, out.buf, {
      batch,
      m: rows,
      n: cols,
      k,
      transA: tx,
      transB: ty,
      strideA: xBroadcast ? 0 : xr * xc,
      strideB: yBroadcast ? 0 : yRows * yCols,
      strideC: rows * cols,
      alpha: 1,
      accumulate: false,
    });
    return out;
  }
  // Target is a broadcast 2-D operand: sum the per-batch products.
  const tmp = uninit([batch, rows, cols], 'float32', be);
  be.matmul(x.buf, y.buf, tmp.buf, {
    batch,
    m: rows,
    n: cols,
    k,
    transA: tx,
    transB: ty,
    strideA: xBroadcast ? 0 : xr * xc,
    strideB: yBroadcast ? 0 : yRows * yCols,
    strideC: rows * cols,
    alpha: 1,
    accumulate: false,
  });
  const out = uninit(targetShape, 'float32', be);
  be.sumAxis(tmp.buf, out.buf, 1, batch, rows * cols, false);
  tmp.dispose();
  return out;
}

// ---- embedding -------------------------------------------------------------------------------

/** Rows of `table` [vocab, d] picked by int32 `indices` [...]: output [..., d]. */
export function embedding(table: Tensor, indices: Tensor): Tensor {
  requireFloat('embedding', table);
  if (indices.dtype !== 'int32')
    throw new Error(`embedding: indices must be int32, got ${indices.describe()}`);
  if (table.rank !== 2)
    throw new Error(`embedding: table must be [vocab, d], got ${fmt(table.shape)}`);
  const [vocab, d] = table.shape;
  const rows = indices.size;
  const out = uninit([...indices.shape, d], 'float32', table.backend);
  table.backend.gather(table.buf, indices.buf, out.buf, rows, d, vocab);
  return record(out, 'embedding', [table], (g) => {
    const gt = empty(table.shape, 'float32', table.backend);
    table.backend.scatterAdd(g.buf, indices.buf, gt.buf, rows, d);
    return [gt];
  });
}

// ---- normalisation, softmax, losses -----------------------------------------------------------

/** LayerNorm over the last axis with weight and bias [d]; eps 1e-5 as GPT-2. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const d = layerNormSize('layerNorm', x, weight, bias);
  const rows = x.size / d;
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  const meanT = uninit([rows], 'float32', be);
  const rstdT = uninit([rows], 'float32', be);
  be.layerNorm(x.buf, weight.buf, bias.buf, out.buf, meanT.buf, rstdT.buf, rows, d, eps);
  return recordLayerNorm(out, x, weight, bias, meanT, rstdT);
}

/** Checks LayerNorm's operands: x [..., d] with weight and bias of size d; returns d. */
function layerNormSize(op: string, x: Tensor, weight: Tensor, bias: Tensor): number {
  requireFloat(op, x, weight, bias);
  const d = x.shape[x.rank - 1];
  if (weight.size !== d || bias.size !== d) {
    throw new Error(
      `${op}: input ${fmt(x.shape)} needs weight and bias of size ${d}, got ${fmt(weight.shape)} and ${fmt(bias.shape)}`,
    );
  }
  return d;
}

/** The autodiff node of out = layerNorm(x) with its saved statistics. */
function recordLayerNorm(
  out: Tensor,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  meanT: Tensor,
  rstdT: Tensor,
): Tensor {
  const be = x.backend;
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  return record(out, 'layerNorm', [x, weight, bias], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    const gw = uninit(weight.shape, 'float32', be);
    const gb = uninit(bias.shape, 'float32', be);
    be.layerNormBackward(
      x.buf,
      weight.buf,
      meanT.buf,
      rstdT.buf,
      g.buf,
      gx.buf,
      gw.buf,
      gb.buf,
      rows,
      d,
    );
    return [gx, gw, gb];
  });
}

/**
 * The residual add and the LayerNorm after it, in one kernel: sum = x + r and
 * normed = layerNorm(sum), each with the gradient rule of its unfused op (so the backward is
 * unchanged). x and r have the same shape [..., d].
 */
export function addLayerNorm(
  x: Tensor,
  r: Tensor,
  weight: Tensor,
  bias: Tensor,
  eps = 1e-5,
): { sum: Tensor; normed: Tensor } {
  const d = layerNormSize('addLayerNorm', x, weight, bias);
  requireFloat('addLayerNorm', r);
  sameBackend('addLayerNorm', x, r, weight, bias);
  checkSameShape('addLayerNorm', x, r);
  const rows = x.size / d;
  const be = x.backend;
  const sumT = uninit(x.shape, 'float32', be);
  const out = uninit(x.shape, 'float32', be);
  const meanT = uninit([rows], 'float32', be);
  const rstdT = uninit([rows], 'float32', be);
  be.addLayerNorm(
    x.buf,
    r.buf,
    weight.buf,
    bias.buf,
    sumT.buf,
    out.buf,
    meanT.buf,
    rstdT.buf,
    rows,
    d,
    eps,
  );
  const residual = record(sumT, 'add', [x, r], (g) => [g, g]);
  return { sum: residual, normed: recordLayerNorm(out, residual, weight, bias, meanT, rstdT) };
}

/** gelu(x + bias) for x [..., n] and bias [n] in one kernel (the MLP's first Linear + GeLU). */
export function biasGelu(x: Tensor, bias: Tensor): Tensor {
  requireFloat('biasGelu', x, bias);
  sameBackend('biasGelu', x, bias);
  const n = x.shape[x.rank - 1];
  if (bias.rank !== 1 || bias.size !== n) {
    throw new Error(`biasGelu: input ${fmt(x.shape)} needs a bias [${n}], got ${fmt(bias.shape)}`);
  }
  const rows = x.size / n;
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  be.biasGelu(x.buf, bias.buf, out.buf, rows, n);
  return record(out, 'biasGelu', [x, bias], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    const gb = uninit(bias.shape, 'float32', be);
    be.biasGeluBackward(x.buf, bias.buf, g.buf, gx.buf, gb.buf, rows, n);
    return [gx, gb];
  });
}

/** Softmax over the last axis; `causal` masks key j > query q (+ offset for a KV cache). */
export function softmax(x: Tensor, opts: { causal?: boolean } = {}): Tensor {
  requireFloat('softmax', x);
  const n = x.shape[x.rank - 1];
  const rows = x.size / n;
  const tq = opts.causal ? x.shape[x.rank - 2] : 0;
  if (opts.causal && (x.rank < 2 || tq > n)) {
    throw new Error(`softmax: causal mask needs [..., tq, tk] with tq <= tk, got ${fmt(x.shape)}`);
  }
  const be = x.backend;
  const out = uninit(x.shape, 'float32', be);
  be.softmax(x.buf, out.buf, rows, n, tq);
  return record(out, 'softmax', [x], (g) => {
    const gx = uninit(x.shape, 'float32', be);
    be.softmaxBackward(out.buf, g.buf, gx.buf, rows, n);
    return [gx];
  });
}

/**
 * Softmax cross-entropy of logits [..., v] against int32 targets [...] (negative = ignore).
 * 'none' gives the per-row loss [...]; 'mean' averages over the rows that are not ignored.
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  reduction: 'mean' | 'none' = 'mean',
): Tensor {
  requireFloat('crossEntropy', logits);
  if (targets.dtype !== 'int32')
    throw new Error(`crossEntropy: targets must be int32, got ${targets.describe()}`);
  const v = logits.shape[logits.rank - 1];
  const rows = logits.size / v;
  if (targets.size !== rows || logits.shape.slice(0, -1).some((s, i) => s !== targets.shape[i])) {
    throw new Error(
      `crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(targets.shape)} do not match`,
    );
  }
  const be = logits.backend;
  if (reduction === 'mean') {
    // One fused kernel: the mean loss and its gradient, counted on the backend (no host read).
    const losses = uninit(targets.shape, 'float32', be);
    const loss = uninit([], 'float32', be);
    const gLogits = uninit(logits.shape, 'float32', be);
    be.crossEntropyMean(logits.buf, targets.buf, losses.buf, loss.buf, gLogits.buf, rows, v);
    losses.dispose();
    return record(loss, 'crossEntropy', [logits], (g) => [
      // [..., v]: the gradient of the mean, times g unless g is backward()'s seed 1.
      isUnitSeed(g)
        ? gLogits.shareStorage(gLogits.shape)
        : binaryRaw('mul', gLogits, g, gLogits.shape),
    ]);
  }
  const probs = uninit(logits.shape, 'float32', be);
  const losses = uninit(targets.shape, 'float32', be);
  be.crossEntropy(logits.buf, targets.buf, probs.buf, losses.buf, rows, v);
  const backward = (gLoss: Tensor): Tensor[] => {
    const gl = uninit(logits.shape, 'float32', be);
    be.crossEntropyBackward(probs.buf, targets.buf, gLoss.buf, gl.buf, rows, v);
    return [gl];
  };
  return record(losses, 'crossEntropy', [logits], backward);
}

// ---- dropout ---------------------------------------------------------------------------------

/** Inverted dropout with a counter-based mask from `seed` (identical on every backend). */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  if (p <= 0) return x;
  if (p >= 1) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  const mask = uninit(x.shape, 'float32', x.backend);
  x.backend.dropoutMask(mask.buf, x.size, p, seed >>> 0);
  return mul(x, mask);
}

// ---- convolution -----------------------------------------------------------------------------

function geometry(
  n: number,
  c: number,
  h: number,
  w: number,
  k: number,
  stride: number,
  pad: number,
): Conv2dGeometry {
  const ho = convOutSize(h, k, stride, pad);
  const wo = convOutSize(w, k, stride, pad);
  if (ho <= 0 || wo <= 0)
    throw new Error(
      `conv: a ${k}x${k} kernel (stride ${stride}, pad ${pad}) does not fit ${h}x${w}`,
    );
  return { n, c, h, w, kh: k, kw: k, stride, pad, ho, wo };
}

/** x [n, c, h, w] -> columns [n, c*k*k, ho*wo]. */
export function im2col(x: Tensor, g: Conv2dGeometry): Tensor {
  const out = uninit([g.n, g.c * g.kh * g.kw, g.ho * g.wo], 'float32', x.backend);
  x.backend.im2col(x.buf, out.buf, g);
  return record(out, 'im2col', [x], (gc) => [col2im(gc, g)]);
}

/** columns [n, c*k*k, ho*wo] -> image [n, c, h, w] (summing overlaps). */
export function col2im(cols: Tensor, g: Conv2dGeometry): Tensor {
  const out = empty([g.n, g.c, g.h, g.w], 'float32', cols.backend);
  cols.backend.col2im(cols.buf, out.buf, g);
  return record(out, 'col2im', [cols], (gi) => [im2col(gi, g)]);
}

/** 2-D convolution: x [n, c, h, w], weight [cOut, c, k, k], bias [cOut] -> [n, cOut, ho, wo]. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  stride = 1,
  pad = 0,
): Tensor {
  if (
    x.rank !== 4 ||
    weight.rank !== 4 ||
    weight.shape[1] !== x.shape[1] ||
    weight.shape[2] !== weight.shape[3]
  ) {
    throw new Error(
      `conv2d: input ${fmt(x.shape)} and weight ${fmt(weight.shape)} do not match ([n,c,h,w] and [cOut,c,k,k])`,
    );
  }
  const [n, c, h, w] = x.shape;
  const [cOut, , k] = weight.shape;
  const g = geometry(n, c, h, w, k, stride, pad);
  const cols = im2col(x, g); // [n, c*k*k, ho*wo]
  const w2 = reshape(weight, [cOut, c * k * k]);
  let out = matmul(w2, cols); // [n, cOut, ho*wo]
  if (bias) out = add(out, reshape(bias, [cOut, 1]));
  return reshape(out, [n, cOut, g.ho, g.wo]);
}

/**
 * Transposed 2-D convolution (the adjoint of conv2d): x [n, cIn, h, w], weight [cIn, cOut, k, k]
 * (PyTorch's layout), bias [cOut] -> [n, cOut, (h-1)*stride - 2*pad + k, ...].
 */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  stride = 1,
  pad = 0,
): Tensor {
  if (
    x.rank !== 4 ||
    weight.rank !== 4 ||
    weight.shape[0] !== x.shape[1] ||
    weight.shape[2] !== weight.shape[3]
  ) {
    throw new Error(
      `convTranspose2d: input ${fmt(x.shape)} and weight ${fmt(weight.shape)} do not match ([n,cIn,h,w] and [cIn,cOut,k,k])`,
    );
  }
  const [n, cIn, h, w] = x.shape;
  const [, cOut, k] = weight.shape;
  const hOut = (h - 1) * stride - 2 * pad + k;
  const wOut = (w - 1) * stride - 2 * pad + k;
  const g = geometry(n, cOut, hOut, wOut, k, stride, pad);
  if (g.ho !== h || g.wo !== w)
    throw new Error(`convTranspose2d: geometry mismatch for input ${fmt(x.shape)}`);
  const w2 = reshape(weight, [cIn, cOut * k * k]);
  const x2 = reshape(x, [n, cIn, h * w]);
  const cols = matmul(w2, x2, { transA: true }); // [n, cOut*k*k, h*w]
  let out = col2im(cols, g); // [n, cOut, hOut, wOut]
  if (bias) out = add(out, reshape(bias, [cOut, 1, 1]));
  return out;
}

// ---- vector quantisation ---------------------------------------------------------------------

/** Nearest codebook row for each row of z [rows, d]: int32 indices [rows] and squared distances. */
export function nearestCode(z: Tensor, codebook: Tensor): { indices: Tensor; distances: Tensor } {
  requireFloat('nearestCode', z, codebook);
  const d = z.shape[z.rank - 1];
  if (codebook.rank !== 2 || codebook.shape[1] !== d) {
    throw new Error(
      `nearestCode: z ${fmt(z.shape)} and codebook ${fmt(codebook.shape)} differ in the last dimension`,
    );
  }
  const rows = z.size / d;
  const indices = uninit(z.shape.slice(0, -1), 'int32', z.backend);
  const distances = uninit(z.shape.slice(0, -1), 'float32', z.backend);
  z.backend.nearestCode(
    z.buf,
    codebook.buf,
    indices.buf,
    distances.buf,
    rows,
    codebook.shape[0],
    d,
  );
  return { indices, distances };
}

// ---- misc ------------------------------------------------------------------------------------

/** Sum of squares of all elements, on the host (grad-norm clipping). */
export function sumOfSquares(x: Tensor): number {
  return x.backend.sumSquares(x.buf, x.size);
}

export { checkSameShape, getBackend };
