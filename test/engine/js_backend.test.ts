// Kernel-level tests of the reference (js) backend: every Backend method against a
// hand-computed value, a slow obvious loop, or finite differences of the kernel's own forward.
//
// Notable choices: random inputs come from the tiny seeded LCG of backend_helpers.ts, so every run
// sees the same numbers; sizes are tiny so the whole file runs in well under a second. Finite-difference
// checks perturb float32 inputs and call the float32 kernels, so their tolerances are ~1e-3.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MatmulParams, UnaryOp, dropoutUniform } from '../../src/engine/backend';
import { createJsBackend, jsBackend } from '../../src/engine/backends/js';
import { convGeometry } from '../../src/engine/ops/conv';
import { batchedMatmulParams, f32, i32, makeRng, matmulParams, randArray } from './backend_helpers';

const be = jsBackend;

// ---- helpers ------------------------------------------------------------------------------------

/** |actual - expected| <= tol * max(1, |expected|) per element (any NaN fails). */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const scale = Math.max(1, Math.abs(expected[i]));
    assert.ok(
      err <= tol * scale,
      `${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (tol ${tol})`,
    );
  }
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// ---- memory -------------------------------------------------------------------------------------

test('alloc is zeroed, upload copies, download returns a copy of the prefix', () => {
  const zeros = f32(be.alloc(5, 'float32'));
  assert.deepEqual(Array.from(zeros), [0, 0, 0, 0, 0]);
  assert.ok(be.alloc(3, 'int32') instanceof Int32Array);

  const host = new Float32Array([1, 2, 3, 4]);
  const buf = f32(be.upload(host));
  host[0] = 99;
  assert.equal(buf[0], 1, 'upload must copy');

  const down = be.download(buf, 3, 'float32');
  assert.deepEqual(Array.from(down), [1, 2, 3]);
  down[1] = -5;
  assert.equal(buf[1], 2, 'download must copy');
  assert.throws(() => be.download(buf, 2, 'int32'), /int32/);

  be.free(buf);
  be.sync();
  assert.equal(createJsBackend().name, 'js');
});

test('fill works for both dtypes and only touches [0, n)', () => {
  const f = f32(be.alloc(4, 'float32'));
  be.fill(f, 3, 2.5);
  assert.deepEqual(Array.from(f), [2.5, 2.5, 2.5, 0]);
  const ints = i32(be.alloc(3, 'int32'));
  be.fill(ints, 3, -7);
  assert.deepEqual(Array.from(ints), [-7, -7, -7]);
});

// ---- elementwise --------------------------------------------------------------------------------

test('copyBlock copies and accumulates a middle block (concat/split pattern), both dtypes', () => {
  // src [2, 3, 2] -> dst [2, 4, 2], copy src axis rows 1..2 into dst axis rows 2..3.
  const src = new Float32Array(12).map((_, i) => i + 1);
  const dst = f32(be.alloc(16, 'float32'));
  be.copyBlock(src, dst, 2, 3, 1, 4, 2, 2, 2, false);
  // prettier-ignore
  assert.deepEqual(Array.from(dst), [
    0, 0, 0, 0, 3, 4, 5, 6,
    0, 0, 0, 0, 9, 10, 11, 12,
  ]);
  be.copyBlock(src, dst, 2, 3, 1, 4, 2, 2, 2, true);
  assert.deepEqual(Array.from(dst.subarray(4, 8)), [6, 8, 10, 12]);

  const srcInt = new Int32Array([1, 2, 3, 4, 5, 6]); // [2, 3, 1]
  const dstInt = i32(be.alloc(4, 'int32')); // [2, 2, 1]
  be.copyBlock(srcInt, dstInt, 2, 3, 0, 2, 0, 2, 1, false);
  assert.deepEqual(Array.from(dstInt), [1, 2, 4, 5]);
  assert.throws(() => be.copyBlock(srcInt, dstInt, 2, 3, 0, 2, 0, 2, 1, true), /Float32Array/);
});

test('binary broadcasts by stride 0 for every op', () => {
  const a = new Float32Array([1, 2]); // [2, 1]
  const b = new Float32Array([10, 20, 40]); // [1, 3]
  const out = f32(be.alloc(6, 'float32'));
  const cases: Array<['add' | 'sub' | 'mul' | 'div', (x: number, y: number) => number]> = [
    ['add', (x, y) => x + y],
    ['sub', (x, y) => x - y],
    ['mul', (x, y) => x * y],
    ['div', (x, y) => x / y],
  ];
  for (const [op, f] of cases) {
    be.binary(op, a, b, out, [2, 3], [1, 0], [0, 1]);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(f(a[i], b[j]));
    assertClose(out, Float32Array.from(expected), 1e-7, `binary ${op}`);
  }
});

test('binary on rank 3 with a transposed (non-contiguous) operand matches a naive loop', () => {
  const rng = makeRng(1);
  const shape = [2, 3, 4];
  const a = randArray(rng, 24); // stored [4, 3, 2], read transposed
  const b = randArray(rng, 3); // broadcast along axes 0 and 2
  const aStrides = [1, 2, 6];
  const bStrides = [0, 1, 0];
  const out = f32(be.alloc(24, 'float32'));
  be.binary('mul', a, b, out, shape, aStrides, bStrides);
  let o = 0;
  for (let i = 0; i < 2; i++)
    for (let j = 0; j < 3; j++)
      for (let k = 0; k < 4; k++, o++) {
        assert.equal(out[o], Math.fround(a[i + 2 * j + 6 * k] * b[j]));
      }
});

test('unary forward values by hand', () => {
  const x = new Float32Array([-2, -0.5, 0, 0.5, 2]);
  const out = f32(be.alloc(5, 'float32'));
  const refs: Record<UnaryOp, (v: number) => number> = {
    exp: Math.exp,
    log: Math.log,
    tanh: Math.tanh,
    relu: (v) => Math.max(0, v),
    gelu: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    neg: (v) => -v,
    sqrt: Math.sqrt,
    square: (v) => v * v,
  };
  for (const op of Object.keys(refs) as UnaryOp[]) {
    be.unary(op, x, out, 5);
    const expected = Float32Array.from(x, refs[op]);
    for (let i = 0; i < 5; i++) {
      if (Number.isNaN(expected[i])) assert.ok(Number.isNaN(out[i]), `${op}(${x[i]}) NaN`);
      else assert.equal(out[i], expected[i], `${op}(${x[i]})`);
    }
  }
  // GPT-2 gelu_new at 1: 0.8411920...
  be.unary('gelu', new Float32Array([1]), out, 1);
  assert.ok(Math.abs(out[0] - 0.841192) < 1e-6);
});

test('unaryBackward matches central finite differences for every op', () => {
  const rng = makeRng(2);
  const n = 16;
  const ops: UnaryOp[] = ['exp', 'log', 'tanh', 'relu', 'gelu', 'neg', 'sqrt', 'square'];
  const h = 1e-2;
  for (const op of ops) {
    const positive = op === 'log' || op === 'sqrt';
    const x = randArray(rng, n, positive ? 0.5 : -2, 2);
    if (op === 'relu') for (let i = 0; i < n; i++) if (Math.abs(x[i]) < 0.1) x[i] = 0.5;
    const gy = randArray(rng, n);
    const y = f32(be.alloc(n, 'float32'));
    be.unary(op, x, y, n);
    const gx = f32(be.alloc(n, 'float32'));
    be.unaryBackward(op, x, y, gy, gx, n);

    const xPlus = Float32Array.from(x, (v) => v + h);
    const xMinus = Float32Array.from(x, (v) => v - h);
    const yPlus = f32(be.alloc(n, 'float32'));
    const yMinus = f32(be.alloc(n, 'float32'));
    be.unary(op, xPlus, yPlus, n);
    be.unary(op, xMinus, yMinus, n);
    const numeric = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      numeric[i] = (gy[i] * (yPlus[i] - yMinus[i])) / (xPlus[i] - xMinus[i]);
    }
    assertClose(gx, numeric, 2e-3, `unaryBackward ${op}`);
  }
});

test('affine (in place), axpy and sumSquares', () => {
  const x = new Float32Array([1, -2, 3]);
  be.affine(x, x, 3, 2, 0.5);
  assert.deepEqual(Array.from(x), [2.5, -3.5, 6.5]);
  const y = new Float32Array([1, 1, 1]);
  be.axpy(new Float32Array([1, 2, 3]), y, 3, -1);
  assert.deepEqual(Array.from(y), [0, -1, -2]);
  assert.equal(be.sumSquares(new Float32Array([1, 2, 3, 100]), 3), 14);
  // float64 accumulation: 1e4 copies of 0.1f squared.
  const tenths = new Float32Array(10000).fill(0.1);
  const expected = 10000 * Math.fround(0.1) * Math.fround(0.1);
  assert.ok(Math.abs(be.sumSquares(tenths, 10000) - expected) < 1e-9);
});

// ---- reductions and layout ------------------------------------------------------------------------

test('sumAxis reduces the middle axis (with and without accumulate); broadcastAxis inverts its shape', () => {
  const x = new Float32Array(12).map((_, i) => i); // [2, 3, 2]
  const out = f32(be.alloc(4, 'float32'));
  be.sumAxis(x, out, 2, 3, 2, false);
  assert.deepEqual(Array.from(out), [0 + 2 + 4, 1 + 3 + 5, 6 + 8 + 10, 7 + 9 + 11]);
  be.sumAxis(x, out, 2, 3, 2, true);
  assert.deepEqual(Array.from(out), [12, 18, 48, 54]);

  const wide = f32(be.alloc(12, 'float32'));
  be.broadcastAxis(new Float32Array([1, 2, 3, 4]), wide, 2, 3, 2);
  assert.deepEqual(Array.from(wide), [1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4]);
});

test('permute of a 3-D array matches the index definition, for both dtypes', () => {
  const shape = [2, 3, 4];
  const perm = [2, 0, 1]; // out is [4, 2, 3]
  const x = new Float32Array(24).map((_, i) => i);
  const out = f32(be.alloc(24, 'float32'));
  be.permute(x, out, shape, perm, 'float32');
  for (let i0 = 0; i0 < 4; i0++)
    for (let i1 = 0; i1 < 2; i1++)
      for (let i2 = 0; i2 < 3; i2++) {
        // j_{perm[d]} = i_d: j2 = i0, j0 = i1, j1 = i2
        const src = i1 * 12 + i2 * 4 + i0;
        assert.equal(out[(i0 * 2 + i1) * 3 + i2], x[src]);
      }
  const xInt = Int32Array.from(x);
  const outInt = i32(be.alloc(24, 'int32'));
  be.permute(xInt, outInt, shape, perm, 'int32');
  assert.deepEqual(Array.from(outInt), Array.from(out));
  // 2-D transpose by hand.
  const t = f32(be.alloc(6, 'float32'));
  be.permute(new Float32Array([1, 2, 3, 4, 5, 6]), t, [2, 3], [1, 0], 'float32');
  assert.deepEqual(Array.from(t), [1, 4, 2, 5, 3, 6]);
  assert.throws(() => be.permute(x, out, shape, [0, 0, 1], 'float32'), /permutation/);
});

// ---- linear algebra -------------------------------------------------------------------------------

/** The slow obvious matmul: C = alpha * op(A) @ op(B) (+ C), float64 sums. */
function naiveMatmul(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  p: MatmulParams,
): Float32Array {
  const out = Float32Array.from(c);
  for (let bi = 0; bi < p.batch; bi++)
    for (let i = 0; i < p.m; i++)
      for (let j = 0; j < p.n; j++) {
        let s = 0;
        for (let kk = 0; kk < p.k; kk++) {
          const av = p.transA ? a[bi * p.strideA + kk * p.m + i] : a[bi * p.strideA + i * p.k + kk];
          const bv = p.transB ? b[bi * p.strideB + j * p.k + kk] : b[bi * p.strideB + kk * p.n + j];
          s += av * bv;
        }
        const ci = bi * p.strideC + i * p.n + j;
        out[ci] = p.alpha * s + (p.accumulate ? c[ci] : 0);
      }
  return out;
}

test('matmul matches a naive triple loop: transposes, batch broadcast, alpha, accumulate', () => {
  const rng = makeRng(3);
  const m = 3;
  const n = 5;
  const k = 4;
  const batch = 3;
  for (const transA of [false, true])
    for (const transB of [false, true])
      for (const broadcast of ['none', 'A', 'B'] as const)
        for (const accumulate of [false, true]) {
          const alpha = accumulate ? 0.5 : 1;
          const p = batchedMatmulParams(
            { batch, m, n, k, transA, transB, alpha, accumulate },
            broadcast,
          );
          const a = randArray(rng, broadcast === 'A' ? m * k : batch * m * k);
          const b = randArray(rng, broadcast === 'B' ? k * n : batch * k * n);
          const c = randArray(rng, batch * m * n);
          const expected = naiveMatmul(a, b, c, p);
          be.matmul(a, b, c, p);
          assertClose(
            c,
            expected,
            1e-6,
            `matmul tA=${transA} tB=${transB} bc=${broadcast} acc=${accumulate}`,
          );
        }
});

test('matmul by hand: [2,3] @ [3,2]', () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const b = new Float32Array([7, 8, 9, 10, 11, 12]);
  const c = f32(be.alloc(4, 'float32'));
  const p = matmulParams({ m: 2, n: 2, k: 3 });
  be.matmul(a, b, c, p);
  assert.deepEqual(Array.from(c), [58, 64, 139, 154]);
});

// ---- embeddings -----------------------------------------------------------------------------------

test('gather copies rows and throws naming the bad index and the vocab size', () => {
  const table = new Float32Array([0, 1, 10, 11, 20, 21]); // [3, 2]
  const out = f32(be.alloc(6, 'float32'));
  be.gather(table, new Int32Array([2, 0, 2]), out, 3, 2, 3);
  assert.deepEqual(Array.from(out), [20, 21, 0, 1, 20, 21]);
  assert.throws(() => be.gather(table, new Int32Array([1, 3]), out, 2, 2, 3), /index 3.*size 3/);
  assert.throws(() => be.gather(table, new Int32Array([-1]), out, 1, 2, 3), /index -1.*size 3/);
});

test('scatterAdd accumulates repeated indices', () => {
  const gTable = f32(be.alloc(6, 'float32')); // [3, 2]
  const g = new Float32Array([1, 2, 3, 4, 5, 6]); // [3, 2]
  be.scatterAdd(g, new Int32Array([2, 0, 2]), gTable, 3, 2);
  assert.deepEqual(Array.from(gTable), [3, 4, 0, 0, 6, 8]);
  assert.throws(() => be.scatterAdd(g, new Int32Array([3, 0, 0]), gTable, 3, 2), /index 3/);
});

// ---- layer norm -----------------------------------------------------------------------------------

test('layerNorm output has mean 0 and variance 1 per row; w and b apply affinely', () => {
  const rng = makeRng(4);
  const rows = 3;
  const d = 16;
  const x = randArray(rng, rows * d, -3, 5);
  const ones = new Float32Array(d).fill(1);
  const zeros = new Float32Array(d);
  const out = f32(be.alloc(rows * d, 'float32'));
  const mean = f32(be.alloc(rows, 'float32'));
  const rstd = f32(be.alloc(rows, 'float32'));
  be.layerNorm(x, ones, zeros, out, mean, rstd, rows, d, 1e-5);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * d, (r + 1) * d);
    const mu = row.reduce((s, v) => s + v, 0) / d;
    const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / d;
    assert.ok(Math.abs(mu) < 1e-6, `row ${r} mean ${mu}`);
    assert.ok(Math.abs(variance - 1) < 1e-3, `row ${r} var ${variance}`);
    const xRow = x.subarray(r * d, (r + 1) * d);
    const xMean = xRow.reduce((s, v) => s + v, 0) / d;
    assert.ok(Math.abs(mean[r] - xMean) < 1e-6);
  }
  const w = randArray(rng, d);
  const b = randArray(rng, d);
  const out2 = f32(be.alloc(rows * d, 'float32'));
  be.layerNorm(x, w, b, out2, mean, rstd, rows, d, 1e-5);
  for (let i = 0; i < rows * d; i++) {
    assert.ok(Math.abs(out2[i] - (out[i] * w[i % d] + b[i % d])) < 1e-5);
  }
});

test('layerNormBackward matches finite differences for x, w and b (and writes gw, gb)', () => {
  const rng = makeRng(5);
  const rows = 2;
  const d = 6;
  const eps = 1e-5;
  const x = randArray(rng, rows * d, -2, 2);
  const w = randArray(rng, d, 0.5, 1.5);
  const b = randArray(rng, d);
  const gy = randArray(rng, rows * d); // loss = sum(out * gy)

  const loss = (xs: Float32Array, ws: Float32Array, bs: Float32Array): number => {
    const out = f32(be.alloc(rows * d, 'float32'));
    be.layerNorm(
      xs,
      ws,
      bs,
      out,
      be.alloc(rows, 'float32'),
      be.alloc(rows, 'float32'),
      rows,
      d,
      eps,
    );
    return dot(out, gy);
  };
  const numericGrad = (which: 'x' | 'w' | 'b'): Float64Array => {
    const base = which === 'x' ? x : which === 'w' ? w : b;
    const grad = new Float64Array(base.length);
    const h = 1e-2;
    for (let i = 0; i < base.length; i++) {
      const plus = Float32Array.from(base);
      const minus = Float32Array.from(base);
      plus[i] += h;
      minus[i] -= h;
      const pick = (arr: Float32Array): number =>
        loss(which === 'x' ? arr : x, which === 'w' ? arr : w, which === 'b' ? arr : b);
      grad[i] = (pick(plus) - pick(minus)) / (plus[i] - minus[i]);
    }
    return grad;
  };

  const out = f32(be.alloc(rows * d, 'float32'));
  const mean = f32(be.alloc(rows, 'float32'));
  const rstd = f32(be.alloc(rows, 'float32'));
  be.layerNorm(x, w, b, out, mean, rstd, rows, d, eps);
  const gx = f32(be.alloc(rows * d, 'float32'));
  const gw = new Float32Array(d).fill(1); // pre-filled: the kernel must overwrite
  const gb = new Float32Array(d).fill(1);
  be.layerNormBackward(x, w, mean, rstd, gy, gx, gw, gb, rows, d);
  assertClose(gx, numericGrad('x'), 2e-3, 'gx');
  assertClose(gw, numericGrad('w'), 2e-3, 'gw');
  assertClose(gb, numericGrad('b'), 2e-3, 'gb');
});

// ---- softmax and cross-entropy ----------------------------------------------------------------------

test('softmax rows sum to 1 and match a naive softmax; large logits are stable', () => {
  const x = new Float32Array([1, 2, 3, 1000, 1001, 1002]);
  const out = f32(be.alloc(6, 'float32'));
  be.softmax(x, out, 2, 3, 0);
  const z = Math.exp(-2) + Math.exp(-1) + 1;
  const expected = [Math.exp(-2) / z, Math.exp(-1) / z, 1 / z];
  assertClose(out, Float32Array.from([...expected, ...expected]), 1e-6, 'softmax');
});

test('causal softmax zeroes exactly the future columns, also with a cached prefix (n > tq)', () => {
  const rng = makeRng(6);
  for (const [tq, n] of [
    [3, 3],
    [2, 5],
  ]) {
    const rows = 2 * tq; // two heads
    const x = randArray(rng, rows * n, -3, 3);
    const out = f32(be.alloc(rows * n, 'float32'));
    be.softmax(x, out, rows, n, tq);
    for (let r = 0; r < rows; r++) {
      const q = r % tq;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const p = out[r * n + j];
        if (j > q + (n - tq)) assert.equal(p, 0, `row ${r} col ${j} must be masked`);
        else assert.ok(p > 0, `row ${r} col ${j} must be visible`);
        sum += p;
      }
      assert.ok(Math.abs(sum - 1) < 1e-6);
    }
  }
  // By hand: 2x2 causal with equal logits -> [1, 0], [0.5, 0.5].
  const out = f32(be.alloc(4, 'float32'));
  be.softmax(new Float32Array(4), out, 2, 2, 2);
  assert.deepEqual(Array.from(out), [1, 0, 0.5, 0.5]);
});

test('softmaxBackward matches finite differences', () => {
  const rng = makeRng(7);
  const rows = 2;
  const n = 5;
  const x = randArray(rng, rows * n, -2, 2);
  const gy = randArray(rng, rows * n);
  const y = f32(be.alloc(rows * n, 'float32'));
  be.softmax(x, y, rows, n, 0);
  const gx = f32(be.alloc(rows * n, 'float32'));
  be.softmaxBackward(y, gy, gx, rows, n);
  const numeric = new Float64Array(rows * n);
  const h = 1e-2;
  const tmp = f32(be.alloc(rows * n, 'float32'));
  for (let i = 0; i < rows * n; i++) {
    const plus = Float32Array.from(x);
    const minus = Float32Array.from(x);
    plus[i] += h;
    minus[i] -= h;
    be.softmax(plus, tmp, rows, n, 0);
    const lp = dot(tmp, gy);
    be.softmax(minus, tmp, rows, n, 0);
    const lm = dot(tmp, gy);
    numeric[i] = (lp - lm) / (plus[i] - minus[i]);
  }
  assertClose(gx, numeric, 2e-3, 'softmaxBackward');
});

test('crossEntropy: loss by hand, ignore index gives 0 loss and 0 gradient, probs still written', () => {
  const logits = new Float32Array([0, 0, Math.log(2), 1000, 0, 0]); // [2, 3]
  const targets = new Int32Array([2, -1]);
  const probs = f32(be.alloc(6, 'float32'));
  const losses = f32(be.alloc(2, 'float32'));
  be.crossEntropy(logits, targets, probs, losses, 2, 3);
  // Row 0: softmax = [1/4, 1/4, 1/2]; loss = log 2.
  assertClose(probs, Float32Array.from([0.25, 0.25, 0.5, 1, 0, 0]), 1e-6, 'probs');
  assert.ok(Math.abs(losses[0] - Math.LN2) < 1e-6);
  assert.equal(losses[1], 0);

  const gLogits = new Float32Array(6).fill(7); // must be overwritten
  be.crossEntropyBackward(probs, targets, new Float32Array([2, 5]), gLogits, 2, 3);
  assertClose(gLogits, Float32Array.from([0.5, 0.5, -1, 0, 0, 0]), 1e-6, 'gLogits');

  // Stable on huge logits, and the loss equals -log(probs[target]).
  const big = new Float32Array([1000, 990, 980]);
  be.crossEntropy(big, new Int32Array([1]), probs, losses, 1, 3);
  assert.ok(Number.isFinite(losses[0]));
  assert.ok(Math.abs(losses[0] - -Math.log(probs[1])) < 1e-4);
  assert.throws(() => be.crossEntropy(big, new Int32Array([3]), probs, losses, 1, 3), /target 3/);
});

test('crossEntropyBackward matches finite differences of crossEntropy', () => {
  const rng = makeRng(8);
  const rows = 3;
  const v = 4;
  const logits = randArray(rng, rows * v, -2, 2);
  const targets = new Int32Array([1, -1, 3]);
  const gLoss = new Float32Array([1, 1, 0.5]);
  const probs = f32(be.alloc(rows * v, 'float32'));
  const losses = f32(be.alloc(rows, 'float32'));
  be.crossEntropy(logits, targets, probs, losses, rows, v);
  const gLogits = f32(be.alloc(rows * v, 'float32'));
  be.crossEntropyBackward(probs, targets, gLoss, gLogits, rows, v);
  const numeric = new Float64Array(rows * v);
  const h = 1e-2;
  for (let i = 0; i < rows * v; i++) {
    const plus = Float32Array.from(logits);
    const minus = Float32Array.from(logits);
    plus[i] += h;
    minus[i] -= h;
    be.crossEntropy(plus, targets, probs, losses, rows, v);
    const lp = dot(losses, gLoss);
    be.crossEntropy(minus, targets, probs, losses, rows, v);
    const lm = dot(losses, gLoss);
    numeric[i] = (lp - lm) / (plus[i] - minus[i]);
  }
  assertClose(gLogits, numeric, 2e-3, 'crossEntropyBackward');
});

// ---- randomness -----------------------------------------------------------------------------------

test('dropoutMask: values are 0 or 1/(1-p), mean about 1, deterministic per seed, uses dropoutUniform', () => {
  const n = 20000;
  const p = 0.25;
  const mask = f32(be.alloc(n, 'float32'));
  be.dropoutMask(mask, n, p, 1234);
  const keep = Math.fround(1 / (1 - p));
  let sum = 0;
  for (let i = 0; i < n; i++) {
    assert.ok(mask[i] === 0 || mask[i] === keep);
    assert.equal(mask[i] !== 0, dropoutUniform(1234, i) >= p);
    sum += mask[i];
  }
  assert.ok(Math.abs(sum / n - 1) < 0.03, `mean ${sum / n}`);

  const again = f32(be.alloc(n, 'float32'));
  be.dropoutMask(again, n, p, 1234);
  assert.deepEqual(again, mask);
  be.dropoutMask(again, n, p, 1235);
  assert.notDeepEqual(again, mask);

  be.dropoutMask(again, 10, 0, 1);
  assert.deepEqual(Array.from(again.subarray(0, 10)), new Array(10).fill(1));
});

// ---- convolution ----------------------------------------------------------------------------------

test('im2col by hand: 3x3 image, 2x2 kernel, stride 1, pad 0; and padding zeros', () => {
  const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const g = convGeometry(1, 1, 3, 3, 2, 1, 0);
  const cols = f32(be.alloc(4 * 4, 'float32'));
  be.im2col(x, cols, g);
  // prettier-ignore
  assert.deepEqual(Array.from(cols), [
    1, 2, 4, 5, // ky=0 kx=0
    2, 3, 5, 6, // ky=0 kx=1
    4, 5, 7, 8, // ky=1 kx=0
    5, 6, 8, 9, // ky=1 kx=1
  ]);
  // 2x2 image, 3x3 kernel, pad 1, stride 2 -> 1x1 output centred on pixel (0,0).
  const gp = convGeometry(1, 1, 2, 2, 3, 2, 1);
  assert.equal(gp.ho * gp.wo, 1);
  const colsPad = new Float32Array(9).fill(-1); // must be fully overwritten
  be.im2col(new Float32Array([1, 2, 3, 4]), colsPad, gp);
  assert.deepEqual(Array.from(colsPad), [0, 0, 0, 0, 1, 2, 0, 3, 4]);
});

test('col2im is the adjoint of im2col: <col2im(c), x> == <c, im2col(x)>', () => {
  const rng = makeRng(9);
  for (const [k, stride, pad] of [
    [3, 1, 1],
    [4, 2, 1],
    [2, 2, 0],
    [3, 2, 0],
  ]) {
    const g = convGeometry(2, 3, 6, 5, k, stride, pad);
    const xSize = g.n * g.c * g.h * g.w;
    const colSize = g.n * g.c * g.kh * g.kw * g.ho * g.wo;
    const x = randArray(rng, xSize);
    const c = randArray(rng, colSize);
    const colsOfX = f32(be.alloc(colSize, 'float32'));
    be.im2col(x, colsOfX, g);
    const xOfC = f32(be.alloc(xSize, 'float32'));
    be.col2im(c, xOfC, g);
    const lhs = dot(xOfC, x);
    const rhs = dot(c, colsOfX);
    assert.ok(
      Math.abs(lhs - rhs) < 1e-4 * Math.max(1, Math.abs(rhs)),
      `k${k} s${stride} p${pad}: ${lhs} vs ${rhs}`,
    );
  }
  // col2im accumulates into x.
  const g = convGeometry(1, 1, 2, 2, 1, 1, 0);
  const x = new Float32Array([1, 1, 1, 1]);
  be.col2im(new Float32Array([1, 2, 3, 4]), x, g);
  assert.deepEqual(Array.from(x), [2, 3, 4, 5]);
});

// ---- vector quantisation ----------------------------------------------------------------------------

test('nearestCode picks the closest row, lowest index on ties, and reports squared distance', () => {
  // prettier-ignore
  const codebook = new Float32Array([
    1, 0, // 0
    0, 1, // 1
    1, 0, // 2 (duplicate of 0)
    -1, 0, // 3
  ]);
  // prettier-ignore
  const z = new Float32Array([
    0.9, 0.1, // nearest 0 (tie with 2)
    0, 0, // equidistant to 0, 1, 2, 3 -> 0
    -2, 0, // nearest 3, distance 1
    0.2, 0.9, // nearest 1
  ]);
  const idx = i32(be.alloc(4, 'int32'));
  const dist = f32(be.alloc(4, 'float32'));
  be.nearestCode(z, codebook, idx, dist, 4, 4, 2);
  assert.deepEqual(Array.from(idx), [0, 0, 3, 1]);
  const sq = (a: number, b: number, c: number, d: number): number => (a - c) ** 2 + (b - d) ** 2;
  const f = Math.fround;
  assertClose(
    dist,
    Float32Array.from([sq(f(0.9), f(0.1), 1, 0), 1, 1, sq(f(0.2), f(0.9), 0, 1)]),
    1e-7,
    'dist',
  );
});

// ---- optimiser ------------------------------------------------------------------------------------

test('adam: one and two steps by hand, AdamW (decoupled) and Adam + L2', () => {
  const lr = 0.1;
  const beta1 = 0.9;
  const beta2 = 0.99;
  const eps = 1e-8;
  const wd = 0.5;
  const base = { lr, beta1, beta2, eps, weightDecay: wd, gradScale: 2 };

  // AdamW, step 1: g' = 2*g; mhat = g'; vhat = g'^2; p -= lr * (sign(g') + wd*p) (up to eps).
  const p = new Float32Array([1, -2]);
  const g = new Float32Array([0.5, -0.25]);
  const m = f32(be.alloc(2, 'float32'));
  const v = f32(be.alloc(2, 'float32'));
  be.adam(p, g, m, v, 2, { ...base, decoupled: true, step: 1 });
  const gs = [1, -0.5];
  assertClose(
    m,
    Float32Array.from(gs, (x) => 0.1 * x),
    1e-7,
    'm',
  );
  assertClose(
    v,
    Float32Array.from(gs, (x) => 0.01 * x * x),
    1e-7,
    'v',
  );
  const p1 = [1 - lr * (1 + wd * 1), -2 - lr * (-1 + wd * -2)];
  assertClose(p, Float32Array.from(p1), 1e-6, 'p after AdamW step 1');

  // AdamW, step 2 with the same gradient: mhat and vhat are still g' and g'^2.
  be.adam(p, g, m, v, 2, { ...base, decoupled: true, step: 2 });
  const p2 = [p1[0] - lr * (1 + wd * p1[0]), p1[1] - lr * (-1 + wd * p1[1])];
  assertClose(p, Float32Array.from(p2), 1e-6, 'p after AdamW step 2');

  // Adam + L2, step 1: g' = 2*g + wd*p; the update is lr * sign(g') (no decoupled term).
  const q = new Float32Array([1, -2]);
  const mq = f32(be.alloc(2, 'float32'));
  const vq = f32(be.alloc(2, 'float32'));
  be.adam(q, new Float32Array([0.5, 0.75]), mq, vq, 2, { ...base, decoupled: false, step: 1 });
  // g'_0 = 1 + 0.5 = 1.5 > 0; g'_1 = 1.5 - 1 = 0.5 > 0.
  assertClose(mq, Float32Array.from([0.15, 0.05]), 1e-7, 'm (L2)');
  assertClose(q, Float32Array.from([1 - lr, -2 - lr]), 1e-6, 'p after Adam+L2 step 1');

  // Exact formula with a non-trivial state.
  const pe = new Float32Array([0.3]);
  const me = new Float32Array([0.2]);
  const ve = new Float32Array([0.05]);
  be.adam(pe, new Float32Array([-0.4]), me, ve, 1, {
    lr: 0.01,
    beta1: 0.8,
    beta2: 0.9,
    eps: 1e-3,
    weightDecay: 0.1,
    decoupled: true,
    step: 3,
    gradScale: 1,
  });
  const gp = Math.fround(-0.4);
  const mNew = 0.8 * Math.fround(0.2) + 0.2 * gp;
  const vNew = 0.9 * Math.fround(0.05) + 0.1 * gp * gp;
  const pNew =
    Math.fround(0.3) -
    0.01 *
      (mNew / (1 - 0.8 ** 3) / (Math.sqrt(vNew / (1 - 0.9 ** 3)) + 1e-3) + 0.1 * Math.fround(0.3));
  assert.equal(me[0], Math.fround(mNew));
  assert.equal(ve[0], Math.fround(vNew));
  assert.equal(pe[0], Math.fround(pNew));
});

test('kernels reject buffers of the wrong type or size with a clear message', () => {
  assert.throws(() => be.unary('exp', new Int32Array(3), new Float32Array(3), 3), /Float32Array/);
  assert.throws(() => be.axpy(new Float32Array(2), new Float32Array(3), 3, 1), /needs at least 3/);
});
