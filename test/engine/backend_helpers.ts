// Helpers shared by the backend test suites (backends, backends_fused, js_backend, cpu_backend,
// cuda_backend): seeded random data, sentinel-padded outputs, per-element tolerance checks,
// running one kernel on the reference backend and on a native one with the same inputs, and the
// matmul check with its error bound.

import assert from 'node:assert/strict';

import type { Backend, DType, MatmulParams } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import { getBackend, setBackend } from '../../src/engine/registry';

/** A 32-bit LCG (Numerical Recipes constants) giving uniforms in [lo, hi). */
export function makeRng(seed: number): (lo?: number, hi?: number) => number {
  let state = seed >>> 0;
  return (lo = -1, hi = 1) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * state) / 4294967296;
  };
}

export type Rng = ReturnType<typeof makeRng>;

export function randArray(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng(lo, hi);
  return out;
}

export function randInts(rng: Rng, n: number, lo: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng(lo, hi));
  return out;
}

/** One unit in the last place of a float32 in [1, 2). */
export const ULP = 2 ** -23;

/** An output buffer of n elements plus 19 sentinels (7.5) that no kernel may overwrite. */
export function padded(n: number): Float32Array {
  return new Float32Array(n + 19).fill(7.5);
}

/**
 * |actual - expected| <= rel * max(|expected|, floor) per element; NaN and infinities must match
 * exactly. rel = 0 demands bit-identical values (-0 and 0 counted equal).
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rel: number,
  what: string,
  floor = 1e-30,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) {
        assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
      }
      continue;
    }
    const tol = rel * Math.max(Math.abs(e), floor);
    if (!(Math.abs(a - e) <= tol)) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e} (diff ${Math.abs(a - e)}, tol ${tol})`);
    }
  }
}

export type HostArray = Float32Array | Int32Array;

export function dtypeOf(a: HostArray): DType {
  return a instanceof Float32Array ? 'float32' : 'int32';
}

/**
 * Runs `kernel` with the js backend on host copies of `inputs` and with `be` on uploaded
 * copies, then downloads every buffer of `be` (whole, sentinels included).
 */
export function runBoth<T extends HostArray[]>(
  be: Backend,
  inputs: T,
  kernel: (b: Backend, bufs: T) => void,
): { js: T; be: T } {
  const jsBufs = inputs.map((b) => b.slice()) as T;
  kernel(jsBackend, jsBufs);
  const dev = inputs.map((b) => be.upload(b));
  kernel(be, dev as unknown as T);
  const back = inputs.map((b, i) => be.download(dev[i], b.length, dtypeOf(b))) as T;
  dev.forEach((b) => be.free(b));
  return { js: jsBufs, be: back };
}

/** buf as the Float32Array it must be (a host backend's buffer). */
export function f32(buf: object): Float32Array {
  assert.ok(buf instanceof Float32Array);
  return buf;
}

/** buf as the Int32Array it must be (a host backend's buffer). */
export function i32(buf: object): Int32Array {
  assert.ok(buf instanceof Int32Array);
  return buf;
}

/** Row-major strides of `shape`, with the axes in `broadcast` set to 0. */
export function stridesOf(shape: number[], broadcast: number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = broadcast.includes(d) ? 0 : s;
    if (!broadcast.includes(d)) s *= shape[d];
  }
  return strides;
}

/** |alpha| * |op(A)| @ |op(B)| (+ |C0| if accumulating): the scale that bounds float32 summation error. */
function matmulScale(
  a: Float32Array,
  b: Float32Array,
  c0: Float32Array,
  p: MatmulParams,
): Float32Array {
  const c = p.accumulate ? c0.map(Math.abs) : new Float32Array(c0.length);
  jsBackend.matmul(a.map(Math.abs), b.map(Math.abs), c, {
    ...p,
    alpha: Math.abs(p.alpha),
    accumulate: true,
  });
  return c;
}

/**
 * Runs one matmul on random operands with `be` and the reference; every element of C within
 * tolFactor * sqrt(k + 1) * its magnitude scale (matmulScale), the 19 sentinels after C untouched.
 * With `oneOperand`, A and B are one buffer (p's B layout must read the same elements). With
 * `bias`, a random bias row goes in p.bias: its magnitude joins the scale, plus one rounding of
 * the add (an ulp of the result). Returns C as `be` computed it.
 */
export function checkMatmul(
  be: Backend,
  rng: Rng,
  p: MatmulParams,
  tolFactor: number,
  what: string,
  oneOperand = false,
  bias: Float32Array | null = null,
): Float32Array {
  const aLen = (p.batch - 1) * p.strideA + p.m * p.k;
  const bLen = (p.batch - 1) * p.strideB + p.k * p.n;
  const cLen = (p.batch - 1) * p.strideC + p.m * p.n;
  assert.ok(!oneOperand || aLen === bLen, `${what}: one operand needs A and B of one length`);
  const a = randArray(rng, aLen);
  const b = oneOperand ? a : randArray(rng, bLen);
  const c0 = randArray(rng, cLen + 19); // 19 sentinels past the end must stay untouched
  // The operands, C, and the bias row when there is one (MatmulParams.bias).
  const inputs: Float32Array[] = oneOperand ? [a, c0] : [a, b, c0];
  const r = runBoth(be, bias ? [...inputs, bias] : inputs, (bk, bufs) => {
    const q = bias ? { ...p, bias: bufs[inputs.length] } : p;
    bk.matmul(bufs[0], bufs[oneOperand ? 0 : 1], bufs[inputs.length - 1], q);
  });
  const [got, want] = [r.be[inputs.length - 1], r.js[inputs.length - 1]];
  let scale: Float32Array;
  if (p.strideC === 0 && p.batch > 1) {
    // Sequential semantics over the batch: bound each element by the sum of every item's scale.
    scale = new Float32Array(c0.length);
    for (let bi = 0; bi < p.batch; bi++) {
      const s = matmulScale(
        a.subarray(bi * p.strideA, bi * p.strideA + p.m * p.k),
        b.subarray(bi * p.strideB, bi * p.strideB + p.k * p.n),
        c0,
        { ...p, batch: 1 },
      );
      for (let i = 0; i < cLen; i++) scale[i] += s[i];
    }
  } else {
    scale = matmulScale(a, b, c0, p);
  }
  const bound = tolFactor * Math.sqrt(p.k + 1);
  for (let i = 0; i < cLen; i++) {
    // With a bias (added once per item; strideC = 0: once per item into one C): its size in the
    // scale, and the add's own rounding.
    const items = p.strideC === 0 ? p.batch : 1;
    const col = (p.strideC > 0 ? i % p.strideC : i) % p.n;
    const tol = bias
      ? bound * (scale[i] + items * Math.abs(bias[col])) + items * ULP * Math.abs(want[i]) + 1e-30
      : bound * scale[i] + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.fail(`${what}: C[${i}] = ${got[i]}, expected ${want[i]} (tol ${tol})`);
    }
  }
  for (let i = cLen; i < c0.length; i++) {
    if (got[i] !== c0[i]) assert.fail(`${what}: wrote past the end of C (element ${i})`);
  }
  return got;
}

/** MatmulParams from the fields that matter; the others: batch 1, no transposes, strides 0, alpha 1, overwrite. */
export function matmulParams(
  p: Partial<MatmulParams> & Pick<MatmulParams, 'm' | 'n' | 'k'>,
): MatmulParams {
  return {
    batch: 1,
    transA: false,
    transB: false,
    strideA: 0,
    strideB: 0,
    strideC: 0,
    alpha: 1,
    accumulate: false,
    ...p,
  };
}

/**
 * The MatmulParams of `batch` contiguous products C_i = alpha * op(A_i) @ op(B_i) (+ C_i), with
 * one operand shared by every item (stride 0) when `broadcast` names it.
 */
export function batchedMatmulParams(
  p: Pick<MatmulParams, 'batch' | 'm' | 'n' | 'k' | 'transA' | 'transB' | 'alpha' | 'accumulate'>,
  broadcast: 'none' | 'A' | 'B',
): MatmulParams {
  const { m, n, k } = p;
  return {
    ...p,
    strideA: broadcast === 'A' ? 0 : m * k,
    strideB: broadcast === 'B' ? 0 : k * n,
    strideC: m * n,
  };
}

/** Runs fn on the cuda backend, then restores the previous one. */
export function onCuda<T>(fn: () => T): T {
  const previous = getBackend().name;
  setBackend('cuda');
  try {
    return fn();
  } finally {
    setBackend(previous);
  }
}
