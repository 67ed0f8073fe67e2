// Tensor creation (tensor, zeros, full, ones, clone, detach) and layout ops (reshape, permute,
// transpose, slice, concat, split, and the KV cache's in-place writeInto), each with its gradient.

import type { DType } from '../backend';
import { Tensor, empty, fromData } from '../tensor';
import { getBackend } from '../registry';
import { around, fmt, normAxis, prod, record, sameBackend, uninit } from './common';

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
