// Finite-difference gradient checking shared by the engine tests.
//
// The scalar checked is L = sum(out * R) with a fixed random R, so every output element
// contributes with a different weight. Central differences with step h on float32 data have
// truncation error O(h^2) and rounding error ~1e-7 |L| / h; the tolerances below cover both.

import assert from 'node:assert/strict';
import { Tensor, tidy, noGrad } from '../../src/engine/tensor';
import * as F from '../../src/engine/ops';

/** A tiny deterministic LCG for test data. */
export class TestRng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  uniform(): number {
    this.s = (Math.imul(this.s, 1664525) + 1013904223) >>> 0;
    return this.s / 4294967296;
  }
  array(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.uniform();
    return a;
  }
  ints(n: number, max: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(this.uniform() * max);
    return a;
  }
}

export interface GradInput {
  shape: number[];
  data: Float32Array;
  /** Skip checking this input's gradient. */
  noGrad?: boolean;
}

/**
 * Checks d/dx sum(fn(x) * R) against central differences for every input element.
 * Returns the largest error found, relative to max(1, |analytic|).
 */
export function gradCheck(
  name: string,
  fn: (xs: Tensor[]) => Tensor,
  inputs: GradInput[],
  opts: { h?: number; tol?: number; seed?: number } = {},
): number {
  const h = opts.h ?? 1e-2;
  const tol = opts.tol ?? 2e-2;
  const rng = new TestRng(opts.seed ?? 7);
  // Analytic gradients.
  let weights: Float32Array | null = null;
  const analytic = tidy(() => {
    const xs = inputs.map((inp) => {
      const t = F.tensor(inp.data.slice(), inp.shape);
      t.requiresGrad = !inp.noGrad;
      return t;
    });
    const out = fn(xs);
    weights = rng.array(out.size);
    const loss = F.sum(F.mul(out, F.tensor(weights, out.shape)));
    loss.backward();
    const grads = xs.map((x) => (x.grad ? x.grad.toFloat32Array() : null));
    xs.forEach((x) => x.dispose());
    return grads;
  });
  const evalLoss = (datas: Float32Array[]): number =>
    noGrad(() =>
      tidy(() => {
        const xs = inputs.map((inp, i) => F.tensor(datas[i], inp.shape));
        const out = fn(xs).toFloat32Array();
        let s = 0;
        for (let i = 0; i < out.length; i++) s += out[i] * weights![i];
        return s;
      }),
    );
  let worst = 0;
  inputs.forEach((inp, i) => {
    if (inp.noGrad) return;
    const g = analytic[i];
    assert.ok(g, `${name}: input ${i} got no gradient`);
    for (let j = 0; j < inp.data.length; j++) {
      const datas = inputs.map((x) => x.data.slice());
      datas[i][j] = inp.data[j] + h;
      const lp = evalLoss(datas);
      datas[i][j] = inp.data[j] - h;
      const lm = evalLoss(datas);
      const numeric = (lp - lm) / (2 * h);
      const err = Math.abs(numeric - g[j]) / Math.max(1, Math.abs(g[j]));
      worst = Math.max(worst, err);
      assert.ok(
        err <= tol,
        `${name}: d/dx${i}[${j}] analytic ${g[j]} vs numeric ${numeric} (err ${err.toExponential(2)})`,
      );
    }
  });
  return worst;
}
