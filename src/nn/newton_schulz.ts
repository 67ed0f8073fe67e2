// The quintic Newton-Schulz iteration of Muon (muon.ts) on a batch of matrices, composed from
// backend kernels on buffers kept across steps: no allocation per step but two k-element
// uploads when it normalises its input, no separate scale or add pass over the matrices.
//
// With n the short side of X [rows, cols], G its [n, n] Gram matrix (X X^T for a wide X, X^T X
// for a tall one) and P = a I + b G + c G^2, a step is X <- P X (wide) or X <- X P (tall), the
// iteration on X / ||X||_F of the speedrun records (coefficients 3.4445, -4.7750, 2.0315).
// Two ways to run it, the cheaper in multiply-adds chosen per shape:
// - in X's space: each step recomputes G from X (2 n^2 l + n^3 multiply-adds, l the long side);
// - in G's space (Gram Newton-Schulz): P is a polynomial in G, so the next Gram matrix is
//   P G P = G P P^T, and X is multiplied once, at the end, by Q = P_last ... P_first
//   (2 n^2 l in all, plus about 3.3 n^3 a step): 1.8x fewer for l = 4n.
// The two agree in exact arithmetic. In float32, G's space carries the small singular values'
// amplification (about 12x a step) in G rather than in X, and G is re-symmetrised each step:
// against a float64 reference its results are a few times further off than X's space (see
// test/nn/muon.test.ts), far inside the iteration's own spread of the singular values
// (0.7 - 1.2) and the bfloat16 the speedrun records run it in.
//
// Symmetric products (G^2 = G^T G, P^2 = P^T P, the Gram matrix itself) are products of one
// operand with its own transpose: the cpu backend computes their upper triangle and mirrors it.
// The scalars ride on the kernels: c on G^2's matmul alpha, b and a I on two axpys, the caller's
// step size on the last product's alpha, and (normalise) each slice's 1 / ||X||_F, taken from
// the trace of its Gram matrix, on G and on the matrix applied to X.

import type { Backend } from '../engine/backend';
import type { Tensor } from '../engine/tensor';
import { empty, fromData, keep } from '../engine/tensor';
import * as F from '../engine/ops';

/** The quintic Newton-Schulz coefficients and step count of the speedrun records. */
const NS_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;
const NS_STEPS = 5;

/** A kept float32 tensor of `shape` on `backend` (zero-filled). */
const kept = (shape: number[], backend: Backend): Tensor => keep(empty(shape, 'float32', backend));

/** One batched product of the iteration: op(A) [m, k] @ op(B) [k, n] per item. */
interface Product {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Elements per item of A, B and C. */
  strides: [number, number, number];
}

/** The iteration on `slices` matrices of [rows, cols], with its buffers. */
export class NewtonSchulz {
  /** The input, [slices, rows, cols]; run() overwrites it. */
  readonly input: Tensor;
  private readonly output: Tensor; // [slices, rows, cols]
  private readonly squares: Tensor[]; // five [slices, n, n] work buffers
  private readonly identity: Tensor; // [slices, n, n]: the a I of the polynomial
  private readonly one: Tensor; // [1]: reads the Gram matrices' diagonals out
  private readonly wide: boolean;
  private readonly n: number;
  private readonly inGramSpace: boolean;

  constructor(
    readonly slices: number,
    readonly rows: number,
    readonly cols: number,
    readonly backend: Backend,
    private readonly steps: number = NS_STEPS,
  ) {
    if (!(Number.isInteger(steps) && steps >= 1))
      throw new Error(`newtonSchulz: steps must be an integer >= 1, got ${steps}`);
    const n = Math.min(rows, cols);
    const long = Math.max(rows, cols);
    this.n = n;
    this.wide = rows <= cols;
    const xSpace = steps * (2 * n * n * long + n ** 3);
    const gramSpace = 2 * n * n * long + (4 * steps - 3) * n ** 3;
    this.inGramSpace = gramSpace < xSpace;
    this.input = kept([slices, rows, cols], backend);
    this.output = kept([slices, rows, cols], backend);
    this.squares = [0, 1, 2, 3, 4].map(() => kept([slices, n, n], backend));
    const eye = new Float32Array(slices * n * n);
    for (let s = 0; s < slices; s++) for (let i = 0; i < n; i++) eye[(s * n + i) * n + i] = 1;
    this.identity = keep(fromData(eye, [slices, n, n], backend));
    this.one = keep(fromData(new Float32Array([1]), [1], backend));
  }

  /**
   * The iteration on the first k slices of `input`, each slice first divided by its Frobenius
   * norm (+ 1e-7) when `normalise`; returns the buffer holding the result times alpha.
   */
  run(k: number, alpha: number, normalise: boolean): Tensor {
    const [g, gNext] = this.squares as [Tensor, Tensor];
    this.gram(this.input, g, k);
    if (!normalise) return this.iterate(k, alpha, g, gNext, null);
    const [inverse, inverseSquare] = this.inverseNorms(g, k);
    try {
      this.scaleSlices(g, inverseSquare, gNext, k); // the Gram matrix of X / ||X||_F
      return this.iterate(k, alpha, gNext, g, inverse);
    } finally {
      inverse.dispose();
      inverseSquare.dispose();
    }
  }

  /**
   * From X's Gram matrix `gram` (`free`: a spare [slices, n, n] buffer), the iteration; `scale`
   * ([k] or null) divides X's slices first, applied to what multiplies X.
   */
  private iterate(
    k: number,
    alpha: number,
    gram: Tensor,
    free: Tensor,
    scale: Tensor | null,
  ): Tensor {
    if (!this.inGramSpace) return this.iterateInXSpace(k, alpha, gram, scale);
    const square = this.square();
    let [g, gNext] = [gram, free];
    let [p, spare, q] = this.squares.slice(2) as [Tensor, Tensor, Tensor];
    for (let i = 0; i < this.steps; i++) {
      this.polynomial(g, p, k); // P_i
      if (i < this.steps - 1) {
        // G <- P G P = G P^T P (P commutes with G and is symmetric), kept symmetric
        this.product(p, p, spare, k, { ...square, transA: true });
        this.product(g, spare, gNext, k, square, 0.5);
        this.symmetrise(gNext, g, k);
      }
      if (i === 0) {
        [q, p] = [p, q]; // Q = P_0
      } else {
        this.product(p, q, spare, k, square); // Q <- P_i Q
        [q, spare] = [spare, q];
      }
    }
    if (scale !== null) {
      this.scaleSlices(q, scale, spare, k);
      q = spare;
    }
    // Q X for a wide X; a tall one's steps multiply on the right: X P_first ... P_last = X Q^T
    this.applyTo(q, this.input, this.output, k, alpha, !this.wide);
    return this.output;
  }

  private iterateInXSpace(k: number, alpha: number, gram: Tensor, scale: Tensor | null): Tensor {
    const [p, spare] = this.squares.slice(2) as [Tensor, Tensor];
    let x = this.input;
    let next = this.output;
    for (let i = 0; i < this.steps; i++) {
      if (i > 0) this.gram(x, gram, k);
      this.polynomial(gram, p, k);
      let applied = p;
      if (i === 0 && scale !== null) {
        this.scaleSlices(p, scale, spare, k); // P_0 (X / ||X||) = (P_0 / ||X||) X
        applied = spare;
      }
      this.applyTo(applied, x, next, k, i === this.steps - 1 ? alpha : 1, false); // P X or X P
      [x, next] = [next, x];
    }
    return x;
  }

  /** C = alpha op(A) op(B) for the first k items. */
  private product(a: Tensor, b: Tensor, c: Tensor, k: number, p: Product, alpha = 1): void {
    const [strideA, strideB, strideC] = p.strides;
    this.backend.matmul(a.buf, b.buf, c.buf, {
      batch: k,
      m: p.m,
      n: p.n,
      k: p.k,
      transA: p.transA ?? false,
      transB: p.transB ?? false,
      strideA,
      strideB,
      strideC,
      alpha,
      accumulate: false,
    });
  }

  /** The [n, n] @ [n, n] products. */
  private square(): Product {
    const { n } = this;
    return { m: n, n, k: n, strides: [n * n, n * n, n * n] };
  }

  /** G = X X^T (wide) or X^T X (tall): [k, n, n]. */
  private gram(x: Tensor, g: Tensor, k: number): void {
    const { n, rows, cols, wide } = this;
    const size = rows * cols;
    const depth = wide ? cols : rows;
    const layout: Product = {
      m: n,
      n,
      k: depth,
      transA: !wide,
      transB: wide,
      strides: [size, size, n * n],
    };
    this.product(x, x, g, k, layout);
  }

  /** P = c G^T G + b G + a I (= a I + b G + c G^2, G symmetric): [k, n, n]. */
  private polynomial(g: Tensor, p: Tensor, k: number): void {
    const [a, b, c] = NS_COEFFICIENTS;
    const count = k * this.n * this.n;
    this.product(g, g, p, k, { ...this.square(), transA: true }, c);
    this.backend.axpy(g.buf, p.buf, count, b);
    this.backend.axpy(this.identity.buf, p.buf, count, a);
  }

  /** out = alpha op(S) X (wide) or alpha X op(S) (tall), S [n, n], op(S) = S^T if transS. */
  private applyTo(
    s: Tensor,
    x: Tensor,
    out: Tensor,
    k: number,
    alpha: number,
    transS: boolean,
  ): void {
    const { n, rows, cols } = this;
    const size = rows * cols;
    if (this.wide) {
      const layout: Product = {
        m: rows,
        n: cols,
        k: rows,
        transA: transS,
        strides: [n * n, size, size],
      };
      this.product(s, x, out, k, layout, alpha);
    } else {
      const layout: Product = {
        m: rows,
        n: cols,
        k: cols,
        transB: transS,
        strides: [size, n * n, size],
      };
      this.product(x, s, out, k, layout, alpha);
    }
  }

  /**
   * From the Gram matrices of the first k slices, 1 / (||X_i||_F + 1e-7) and its square ([k]
   * each, new tensors): ||X_i||_F^2 is the trace of G_i, summed in float64 on the host.
   */
  private inverseNorms(g: Tensor, k: number): [Tensor, Tensor] {
    const { n } = this;
    const diagonal = empty([k, n], 'float32', this.backend, false);
    // diagonal[i, j] = G[i, j, j] * 1: G's elements (n + 1) apart
    this.backend.binary('mul', g.buf, this.one.buf, diagonal.buf, [k, n], [n * n, n + 1], [0, 0]);
    const values = diagonal.toFloat32Array();
    diagonal.dispose();
    const inverse = new Float32Array(k);
    const inverseSquare = new Float32Array(k);
    for (let i = 0; i < k; i++) {
      let trace = 0;
      for (let j = 0; j < n; j++) trace += values[i * n + j]!;
      const s = 1 / (Math.sqrt(Math.max(trace, 0)) + 1e-7);
      inverse[i] = s;
      inverseSquare[i] = s * s;
    }
    return [fromData(inverse, [k], this.backend), fromData(inverseSquare, [k], this.backend)];
  }

  /**
   * out = h + h^T for the first k slices of h [k, n, n] (h = G / 2): exactly symmetric, as G^T G
   * = G^2 and P^T P = P^2 need; the product G P^T P alone rounds its two triangles apart, and
   * that asymmetry, amplified with the small singular values, measured 10 to 50x the error.
   */
  private symmetrise(h: Tensor, out: Tensor, k: number): void {
    const { n } = this;
    const shape = [k, n, n];
    this.backend.binary('add', h.buf, h.buf, out.buf, shape, [n * n, n, 1], [n * n, 1, n]);
  }

  /** out[i] = m[i] * s[i] for the first k slices of m [k, n, n], s [k]. */
  private scaleSlices(m: Tensor, s: Tensor, out: Tensor, k: number): void {
    const square = this.n * this.n;
    this.backend.binary('mul', m.buf, s.buf, out.buf, [k, square], [square, 1], [1, 0]);
  }

  dispose(): void {
    [this.input, this.output, ...this.squares, this.identity, this.one].forEach((t) => t.dispose());
  }
}

/**
 * X ([k, r, c] or [r, c], either side the longer) pushed towards the nearest semi-orthogonal
 * matrix (U V^T of its SVD): the quintic Newton-Schulz iteration, slice by slice, on X as given
 * (normalise: false, the caller has divided each slice by its Frobenius norm) or on X / ||X||_F.
 */
export function newtonSchulz(x: Tensor, steps: number = NS_STEPS, normalise = false): Tensor {
  const [k, rows, cols] = x.rank === 2 ? [1, x.shape[0]!, x.shape[1]!] : x.shape;
  const ns = new NewtonSchulz(k!, rows!, cols!, x.backend, steps);
  try {
    x.backend.copyBlock(x.buf, ns.input.buf, 1, 1, 0, 1, 0, 1, x.size, false);
    return F.reshape(F.clone(ns.run(k!, 1, normalise)), x.shape);
  } finally {
    ns.dispose();
  }
}
