// Batched matrix product with broadcasting of a 2-D operand and an optional bias row added in the
// product's store (a Linear layer in one kernel), and its gradient products (each folded into one
// large GEMM where the layout allows).

import type { MatmulParams } from '../backend';
import { isGradEnabled, type Tensor } from '../tensor';
import { sumToShape } from './arithmetic';
import { fmt, prod, record, requireFloat, sameBackend, uninit } from './common';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  /**
   * [n], added to every row of the product by the backend's matmul itself (MatmulParams.bias):
   * the values of `add(matmul(a, b), bias)` without a second pass over the output. Its gradient
   * is that of the add: the output gradient summed down to [n].
   */
  bias?: Tensor;
}

/**
 * Batched matrix product. a: [..., m, k] (or [..., k, m] with transA), b: [..., k, n]
 * (or [..., n, k] with transB). The batch dims must be equal, or one operand is 2-D and is
 * broadcast over the other's batch. Output: [...batch, m, n] (+ opts.bias [n] on every row).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const bias = opts.bias;
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
  if (bias !== undefined) {
    requireFloat('matmul', bias);
    sameBackend('matmul', a, bias);
    if (bias.rank !== 1 || bias.size !== n) {
      throw new Error(
        `matmul: a product with ${n} columns needs a bias [${n}], got ${fmt(bias.shape)}`,
      );
    }
  }
  const batchShape = batchA.length >= batchB.length ? batchA : batchB;
  const batch = prod(batchShape);
  const outShape = [...batchShape, m, n];
  const out =
    batchB.length === 0 && !transA
      ? // [batch*m, k] @ [k, n]: one large GEMM instead of many small ones.
        product(a, b, outShape, { ...SINGLE, m: batch * m, n, k: ka, transA, transB }, bias)
      : product(
          a,
          b,
          outShape,
          {
            batch,
            m,
            n,
            k: ka,
            transA,
            transB,
            strideA: batchA.length === 0 ? 0 : m * ka,
            strideB: batchB.length === 0 ? 0 : ka * n,
            strideC: m * n,
          },
          bias,
        );
  const inputs = bias === undefined ? [a, b] : [a, b, bias];
  return record(out, 'matmul', inputs, (g) => {
    // g: [...batch, m, n]
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = g @ op(B)^T, laid out like A (transposed back when transA).
      ga = transA
        ? matmulGrad(b, g, transB, true, batchB.length === 0, false, batch, a.shape)
        : matmulGrad(g, b, false, !transB, false, batchB.length === 0, batch, a.shape);
    }
    if (b.requiresGrad) {
      // dB = op(A)^T @ g, laid out like B.
      gb = transB
        ? matmulGrad(g, a, true, transA, false, batchA.length === 0, batch, b.shape)
        : matmulGrad(a, g, !transA, false, batchA.length === 0, false, batch, b.shape);
    }
    if (bias === undefined) return [ga, gb];
    return [ga, gb, bias.requiresGrad ? sumToShape(g, bias.shape) : null]; // as add's gradient
  });
}

/**
 * matmul(a, b') where b' is the first `rows` rows of each of b's [..., slots, c] matrices (with
 * transB, op(B) = b'^T), read in place: the filled part of a preallocated cache, with no copy of
 * it. a and b have the same batch dims. Records no gradient (inference: refused when a gradient
 * would be needed).
 */
export function matmulLeadingRows(
  a: Tensor,
  b: Tensor,
  rows: number,
  opts: { transB?: boolean } = {},
): Tensor {
  const transB = opts.transB ?? false;
  requireFloat('matmulLeadingRows', a, b);
  sameBackend('matmulLeadingRows', a, b);
  if (isGradEnabled() && (a.requiresGrad || b.requiresGrad))
    throw new Error('matmulLeadingRows: records no gradient (run it under noGrad)');
  if (a.rank < 2 || b.rank !== a.rank)
    throw new Error(
      `matmulLeadingRows: need two operands of one rank >= 2, got ${fmt(a.shape)} and ${fmt(b.shape)}`,
    );
  const batchShape = a.shape.slice(0, -2);
  const [slots, c] = b.shape.slice(-2) as [number, number];
  const [m, ka] = a.shape.slice(-2) as [number, number];
  const k = transB ? c : rows;
  const n = transB ? rows : c;
  if (
    !batchShape.every((s, i) => s === b.shape[i]) ||
    !(Number.isInteger(rows) && rows >= 1 && rows <= slots) ||
    ka !== k
  ) {
    throw new Error(
      `matmulLeadingRows: ${fmt(a.shape)} and the first ${rows} rows of ${fmt(b.shape)}${transB ? 'ᵀ' : ''} are incompatible`,
    );
  }
  return product(a, b, [...batchShape, m, n], {
    batch: prod(batchShape),
    m,
    n,
    k,
    transA: false,
    transB,
    strideA: m * k,
    strideB: slots * c,
    strideC: m * n,
  });
}

/** The layout fields of a matmul call: every product here has alpha 1 and overwrites C. */
type ProductLayout = Omit<MatmulParams, 'alpha' | 'accumulate' | 'bias'>;

/** The layout fields of one unbatched product (a batch folded into its rows or its depth). */
const SINGLE = { batch: 1, strideA: 0, strideB: 0, strideC: 0 };

/** A new tensor of `shape` holding op(X) @ op(Y) (+ bias) as `layout` describes them. */
function product(
  x: Tensor,
  y: Tensor,
  shape: readonly number[],
  layout: ProductLayout,
  bias?: Tensor,
): Tensor {
  const out = uninit(shape, 'float32', x.backend);
  const params: MatmulParams = { ...layout, alpha: 1, accumulate: false };
  if (bias !== undefined) params.bias = bias.buf;
  x.backend.matmul(x.buf, y.buf, out.buf, params);
  return out;
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
): Tensor {
  const rows = targetShape[targetShape.length - 2];
  const cols = targetShape[targetShape.length - 1];
  const xr = x.shape[x.rank - 2],
    xc = x.shape[x.rank - 1];
  const k = tx ? xr : xc;
  const targetBatched = targetShape.length > 2;
  const yRows = y.shape[y.rank - 2],
    yCols = y.shape[y.rank - 1];
  if (targetBatched && yBroadcast && !tx && !xBroadcast) {
    // Fold the batch into the rows: [batch*rows, k] @ op(Y).
    const layout = { ...SINGLE, m: batch * rows, n: cols, k, transA: false, transB: ty };
    return product(x, y, targetShape, layout);
  }
  if (!targetBatched && batch > 1 && tx && !ty && !xBroadcast && !yBroadcast) {
    // Fold the batch into the reduction: X_flat^T [rows, batch*k] @ Y_flat [batch*k, cols].
    const layout = { ...SINGLE, m: rows, n: cols, k: batch * k, transA: true, transB: false };
    return product(x, y, targetShape, layout);
  }
  const batched: ProductLayout = {
    batch,
    m: rows,
    n: cols,
    k,
    transA: tx,
    transB: ty,
    strideA: xBroadcast ? 0 : xr * xc,
    strideB: yBroadcast ? 0 : yRows * yCols,
    strideC: rows * cols,
  };
  if (targetBatched || batch === 1) return product(x, y, targetShape, batched);
  // Target is a broadcast 2-D operand: sum the per-batch products.
  const tmp = product(x, y, [batch, rows, cols], batched);
  const out = uninit(targetShape, 'float32', x.backend);
  x.backend.sumAxis(tmp.buf, out.buf, 1, batch, rows * cols, false);
  tmp.dispose();
  return out;
}
