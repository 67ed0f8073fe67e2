// Helpers shared by the backend test suites (cpu_backend, cuda_backend, native_backends): seeded
// random data, sentinel-padded outputs, per-element tolerance checks, and running one kernel on
// the reference backend and on a native one with the same inputs.

import assert from 'node:assert/strict';

import type { Backend, DType } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';

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
