// The quintic Newton-Schulz iteration of Muon (muon.ts) on a batch of matrices, composed from
// backend kernels on buffers kept across steps: no allocation per step but two small uploads
// (the slices' norms) when it normalises its input, no separate scale or add pass over the
// matrices.
//
// With n the short side of X [rows, cols], G its [n, n] Gram matrix (X X^T for a wide X, X^T X
// for a tall one) and P = a I + b G + c G^2, a step is X <- P X (wide) or X <- X P (tall), the
// iteration on X / ||X||_F of the speedrun records (coefficients 3.4445, -4.7750, 2.0315).
// Two ways to run it, the cheaper in multiply-adds chosen per shape:
// - in X's space: each step recomputes G from X (2 n^2 l + n^3 multiply-adds, l the long side);
// - in G's space (Gram Newton-Schulz): P is a polynomial in G, so the next Gram matrix is
//   P G P = G P P^T, and X is multiplied once, at the end, by Q = P_last ... P_first
//   (2 n^2 l in all, plus about 3.3 n^3 a step): 1.8x fewer for l = 4n.
// In G's space, matrices of several shapes with one short side share a batch (Muon's blocks: the
// attention's [128, 384] and the MLP's [128, 512] and [512, 128]): past their Gram matrices,
// each product, axpy and pass runs once on all their [n, n] slices.
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

/** One shape of a batch: `slices` matrices of [rows, cols]. */
export interface BatchShape {
  slices: number;
  rows: number;
  cols: number;
}

/** True when the iteration on a [rows, cols] matrix takes fewer multiply-adds in G's space. */
export function prefersGramSpace(rows: number, cols: number, steps: number = NS_STEPS): boolean {
  const n = Math.min(rows, cols);
  const long = Math.max(rows, cols);
  const xSpace = steps * (2 * n * n * long + n ** 3);
  const gramSpace = 2 * n * n * long + (4 * steps - 3) * n ** 3;
  return gramSpace < xSpace;
}

/** The matrices of one shape: their buffers and where their slices sit in the batch's. */
interface Part extends BatchShape {
  /** The index of the part's first slice among the batch's [n, n] slices. */
  first: number;
  wide: boolean;
  input: Tensor; // [slices, rows, cols]
  output: Tensor; // [slices, rows, cols]
}

/**
 * The iteration on a batch of matrices whose short side is one n, with its buffers. Several
 * shapes share one batch in G's space: each shape's Gram matrices are computed apart, and from
 * there on every product and axpy runs once on all the batch's [n, n] slices.
 */
export class NewtonSchulz {
  /** Each shape's input, [slices, rows, cols]; run() may overwrite it. */
  readonly inputs: Tensor[];
  private readonly parts: Part[];
  private readonly slices: number; // of all the shapes
  private readonly n: number;
  private readonly inGramSpace: boolean;
  private readonly squares: Tensor[]; // five [slices, n, n] work buffers
  private readonly identity: Tensor; // [slices, n, n]: the a I of the polynomial
  private readonly one: Tensor; // [1]: reads the Gram matrices' diagonals out

  constructor(
    shapes: readonly BatchShape[],
    readonly backend: Backend,
    private readonly steps: number = NS_STEPS,
  ) {
    if (!(Number.isInteger(steps) && steps >= 1))
      throw new Error(`newtonSchulz: steps must be an integer >= 1, got ${steps}`);
    const n = Math.min(shapes[0]!.rows, shapes[0]!.cols);
    if (shapes.some((s) => Math.min(s.rows, s.cols) !== n))
      throw new Error('newtonSchulz: the shapes of one batch must share their short side');
    this.inGramSpace = shapes.every((s) => prefersGramSpace(s.rows, s.cols, steps));
    if (!this.inGramSpace && shapes.length > 1)
      throw new Error("newtonSchulz: a batch in X's space holds one shape");
    this.n = n;
    let first = 0;
    this.parts = shapes.map((s) => {
      const part = {
        ...s,
        first,
        wide: s.rows <= s.cols,
        input: kept([s.slices, s.rows, s.cols], backend),
        output: kept([s.slices, s.rows, s.cols], backend),
      };
      first += s.slices;
      return part;
    });
    this.slices = first;
    this.inputs = this.parts.map((part) => part.input);
    this.squares = [0, 1, 2, 3, 4].map(() => kept([first, n, n], backend));
    const eye = new Float32Array(first * n * n);
    for (let s = 0; s < first; s++) for (let i = 0; i < n; i++) eye[(s * n + i) * n + i] = 1;
    this.identity = keep(fromData(eye, [first, n, n], backend));
    this.one = keep(fromData(new Float32Array([1]), [1], backend));
  }

  /**
   * The iteration on every slice, each first divided by its Frobenius norm (+ 1e-7) when
   * `normalise`; returns each shape's result ([slices, rows, cols]) times its alpha.
   */
  run(alphas: readonly number[], normalise: boolean): Tensor[] {
    const [g, gNext] = this.squares as [Tensor, Tensor];
    this.grams(g, gNext);
    if (!normalise) return this.iterate(alphas, g, gNext, null);
    const [inverse, inverseSquare] = this.inverseNorms(g);
    try {
      this.scaleSlices(g, inverseSquare, gNext); // the Gram matrices of X / ||X||_F
      return this.iterate(alphas, gNext, g, inverse);
    } finally {
      inverse.dispose();
      inverseSquare.dispose();
    }
  }

  /** Every slice's Gram matrix into g ([slices, n, n]), through `scratch` for several shapes. */
  private grams(g: Tensor, scratch: Tensor): void {
    const square = this.n * this.n;
    for (const part of this.parts) {
      if (this.parts.length === 1) {
        this.gram(part, part.input, g);
        continue;
      }
      this.gram(part, part.input, scratch);
      const { slices, first } = part;
      this.backend.copyBlock(
        scratch.buf,
        g.buf,
        1,
        slices,
        0,
        this.slices,
        first,
        slices,
        square,
        false,
      );
    }
  }

  /**
   * From X's Gram matrices `gram` (`free`: a spare [slices, n, n] buffer), the iteration; `scale`
   * ([slices] or null) divides X's slices first, applied to what multiplies X.
   */
  private iterate(
    alphas: readonly number[],
    gram: Tensor,
    free: Tensor,
    scale: Tensor | null,
  ): Tensor[] {
    if (!this.inGramSpace) return [this.iterateInXSpace(alphas[0]!, gram, scale)];
    const square = this.square();
    let [g, gNext] = [gram, free];
    let [p, spare, q] = this.squares.slice(2) as [Tensor, Tensor, Tensor];
    for (let i = 0; i < this.steps; i++) {
      this.polynomial(g, p); // P_i
      if (i < this.steps - 1) {
        // G <- P G P = G P^T P (P commutes with G and is symmetric), kept symmetric
        this.product(p, p, spare, { ...square, transA: true });
        this.product(g, spare, gNext, square, 0.5);
        this.symmetrise(gNext, g);
      }
      if (i === 0) {
        [q, p] = [p, q]; // Q = P_0
      } else {
        this.product(p, q, spare, square); // Q <- P_i Q
        [q, spare] = [spare, q];
      }
    }
    if (scale !== null) {
      this.scaleSlices(q, scale, p);
      [q, p] = [p, q];
    }
    // Q X for a wide X; a tall one's steps multiply on the right: X P_first ... P_last = X Q^T
    return this.parts.map((part, j) => {
      let qs = q;
      if (this.parts.length > 1) {
        const { slices, first } = part;
        this.backend.copyBlock(
          q.buf,
          p.buf,
          1,
          this.slices,
          first,
          slices,
          0,
          slices,
          square.m * square.m,
          false,
        );
        qs = p;
      }
      this.applyTo(part, qs, part.input, part.output, alphas[j]!, !part.wide);
      return part.output;
    });
  }

  private iterateInXSpace(alpha: number, gram: Tensor, scale: Tensor | null): Tensor {
    const part = this.parts[0]!;
    const [p, spare] = this.squares.slice(2) as [Tensor, Tensor];
    let x = part.input;
    let next = part.output;
    for (let i = 0; i < this.steps; i++) {
      if (i > 0) this.gram(part, x, gram);
      this.polynomial(gram, p);
      let applied = p;
      if (i === 0 && scale !== null) {
        this.scaleSlices(p, scale, spare); // P_0 (X / ||X||) = (P_0 / ||X||) X
        applied = spare;
      }
      this.applyTo(part, applied, x, next, i === this.steps - 1 ? alpha : 1, false); // P X or X P
      [x, next] = [next, x];
    }
    return x;
  }

  /** C = alpha op(A) op(B) for every item of the batch (slices of a part when `part`). */
  private product(a: Tensor, b: Tensor, c: Tensor, p: Product, alpha = 1, part?: Part): void {
    const [strideA, strideB, strideC] = p.strides;
    this.backend.matmul(a.buf, b.buf, c.buf, {
      batch: part?.slices ?? this.slices,
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
      fullPrecision: true, // the polynomial amplifies rounding: never bfloat16 operands
    });
  }

  /** The [n, n] @ [n, n] products. */
  private square(): Product {
    const { n } = this;
    return { m: n, n, k: n, strides: [n * n, n * n, n * n] };
  }

  /** G = X X^T (wide) or X^T X (tall) for a part's slices: [slices, n, n]. */
  private gram(part: Part, x: Tensor, g: Tensor): void {
    const { n } = this;
    const size = part.rows * part.cols;
    const layout: Product = {
      m: n,
      n,
      k: part.wide ? part.cols : part.rows,
      transA: !part.wide,
      transB: part.wide,
      strides: [size, size, n * n],
    };
    this.product(x, x, g, layout, 1, part);
  }

  /** P = c G^T G + b G + a I (= a I + b G + c G^2, G symmetric): [slices, n, n]. */
  private polynomial(g: Tensor, p: Tensor): void {
    const [a, b, c] = NS_COEFFICIENTS;
    const count = this.slices * this.n * this.n;
    this.product(g, g, p, { ...this.square(), transA: true }, c);
    this.backend.axpy(g.buf, p.buf, count, b);
    this.backend.axpy(this.identity.buf, p.buf, count, a);
  }

  /**
   * out = alpha op(S) X (wide) or alpha X op(S) (tall) for a part's slices, S [n, n] (the
   * part's slices from the first), op(S) = S^T if transS.
   */
  private applyTo(
    part: Part,
    s: Tensor,
    x: Tensor,
    out: Tensor,
    alpha: number,
    transS: boolean,
  ): void {
    const { n } = this;
    const { rows, cols } = part;
    const size = rows * cols;
    const layout: Product = part.wide
      ? { m: rows, n: cols, k: rows, transA: transS, strides: [n * n, size, size] }
      : { m: rows, n: cols, k: cols, transB: transS, strides: [size, n * n, size] };
    if (part.wide) this.product(s, x, out, layout, alpha, part);
    else this.product(x, s, out, layout, alpha, part);
  }

  /**
   * From every slice's Gram matrix, 1 / (||X_i||_F + 1e-7) and its square ([slices] each, new
   * tensors): ||X_i||_F^2 is the trace of G_i, summed in float64 on the host.
   */
  private inverseNorms(g: Tensor): [Tensor, Tensor] {
    const { n, slices } = this;
    const diagonal = empty([slices, n], 'float32', this.backend, false);
    // diagonal[i, j] = G[i, j, j] * 1: G's elements (n + 1) apart
    const strides = [n * n, n + 1];
    this.backend.binary('mul', g.buf, this.one.buf, diagonal.buf, [slices, n], strides, [0, 0]);
    const values = diagonal.toFloat32Array();
    diagonal.dispose();
    const inverse = new Float32Array(slices);
    const inverseSquare = new Float32Array(slices);
    for (let i = 0; i < slices; i++) {
      let trace = 0;
      for (let j = 0; j < n; j++) trace += values[i * n + j]!;
      const s = 1 / (Math.sqrt(Math.max(trace, 0)) + 1e-7);
      inverse[i] = s;
      inverseSquare[i] = s * s;
    }
    return [
      fromData(inverse, [slices], this.backend),
      fromData(inverseSquare, [slices], this.backend),
    ];
  }

  /**
   * out = h + h^T for every slice of h [slices, n, n] (h = G / 2): exactly symmetric, as
   * G^T G = G^2 and P^T P = P^2 need; the product G P^T P alone rounds its two triangles apart,
   * and that asymmetry, amplified with the small singular values, measured 10 to 50x the error.
   */
  private symmetrise(h: Tensor, out: Tensor): void {
    const { n } = this;
    const shape = [this.slices, n, n];
    this.backend.binary('add', h.buf, h.buf, out.buf, shape, [n * n, n, 1], [n * n, 1, n]);
  }

  /** out[i] = m[i] * s[i] for every slice of m [slices, n, n], s [slices]. */
  private scaleSlices(m: Tensor, s: Tensor, out: Tensor): void {
    const square = this.n * this.n;
    this.backend.binary('mul', m.buf, s.buf, out.buf, [this.slices, square], [square, 1], [1, 0]);
  }

  dispose(): void {
    for (const part of this.parts) {
      part.input.dispose();
      part.output.dispose();
    }
    [...this.squares, this.identity, this.one].forEach((t) => t.dispose());
  }
}

/**
 * X ([k, r, c] or [r, c], either side the longer) pushed towards the nearest semi-orthogonal
 * matrix (U V^T of its SVD): the quintic Newton-Schulz iteration, slice by slice, on X as given
 * (normalise: false, the caller has divided each slice by its Frobenius norm) or on X / ||X||_F.
 */
export function newtonSchulz(x: Tensor, steps: number = NS_STEPS, normalise = false): Tensor {
  const [slices, rows, cols] = x.rank === 2 ? [1, x.shape[0]!, x.shape[1]!] : x.shape;
  const ns = new NewtonSchulz([{ slices: slices!, rows: rows!, cols: cols! }], x.backend, steps);
  try {
    x.backend.copyBlock(x.buf, ns.inputs[0]!.buf, 1, 1, 0, 1, 0, 1, x.size, false);
    return F.reshape(F.clone(ns.run([1], normalise)[0]!), x.shape);
  } finally {
    ns.dispose();
  }
}
