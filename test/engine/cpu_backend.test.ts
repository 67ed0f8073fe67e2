// The native cpu backend agrees with the reference backend (backends/js.ts), kernel by kernel,
// forward and backward, on random shapes with odd sizes (1, primes, non-multiples of the 4/8/16
// SIMD widths), for every SIMD build this processor can run (avx512 / avx2 / baseline) and
// with 1 thread as well as the default count (the kernels split work differently). Outputs get
// sentinel padding, so a kernel writing past its last element fails. Bad calls throw clear JS
// errors. Runs in ~1-3 s on 2 cores.
//
// im2col, col2im, nearestCode, dropoutMask, adam and the fused training-step kernels are tested
// for every native backend in
// native_backends.test.ts (one suite parametrised by backend).
//
// Tolerances (relative to max(|expected|, floor), per element):
// - exact (0): fill, copyBlock, binary, relu/neg/square/sqrt and their backward, the float64
//   backward of exp/log/tanh, broadcastAxis, permute, gather, scatterAdd, dropoutMask, im2col,
//   col2im, nearestCode indices;
// - 1 ulp (2^-23): kernels that compute in float64 like the reference but may sum in another
//   order or contract a*b+c into an FMA: affine, axpy, sumAxis, layerNorm (+ backward),
//   softmaxBackward, crossEntropyBackward, adam, nearestCode distances;
// - 1e-6: exp and tanh, which use a float32 polynomial exp (<= 2 ulp) where the reference
//   uses float64 Math.exp; 2 ulp: log (libm logf);
// - 2e-6, absolute below 1: gelu and its backward (float32 exp of a float32 argument u: the
//   argument's rounding is amplified by |2u|);
// - 2e-6, absolute below 1e-6: softmax and cross-entropy probabilities (float32 exp of the
//   float32 difference x - max, whose rounding the float64 reference does not have, and a
//   denominator summed in 2 x 16 float32 lanes); losses 1e-6;
// - matmul: float32 accumulation, |C - C_ref| <= 2e-7 * sqrt(k + 1) * (|alpha| sum_p |a_ip b_pj|
//   + |C_prev| if accumulating), i.e. ~3.4 ulp * sqrt(k) of the magnitude scale.
// If the addon is not built every test is skipped with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { Backend, MatmulParams, UnaryOp, BinaryOp } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import {
  cpuBackendInfo,
  loadCpuBackend,
  loadNativeAddon,
  setCpuThreads,
} from '../../src/engine/backends/cpu';
import { assertClose, makeRng, padded, randArray, randInts, runBoth, ULP } from './backend_helpers';
import type { HostArray, Rng } from './backend_helpers';

const loadedBackend = loadCpuBackend();
const skip = 'error' in loadedBackend ? `cpu backend unavailable: ${loadedBackend.error}` : false;
const loadedAddon = loadNativeAddon();
const addon = 'error' in loadedAddon ? null : loadedAddon.addon;
const simdPaths: string[] = addon ? addon.availableSimdPaths() : [];

function cpu(): Backend {
  if ('error' in loadedBackend) throw new Error(loadedBackend.error);
  return loadedBackend;
}

/** Runs fn once per SIMD build (and restores the default build afterwards). */
function forEachSimd(fn: (simd: string) => void): void {
  if (!addon) return;
  const original = addon.simdPath();
  try {
    for (const simd of simdPaths) {
      addon.setSimdPath(simd);
      fn(simd);
    }
  } finally {
    addon.setSimdPath(original);
  }
}

/**
 * Runs fn once per configuration: every SIMD build with the default thread count, then the
 * default build with 1 thread (the kernels split work differently). fn gets a label.
 */
function forEachConfig(fn: (cfg: string) => void): void {
  if (!addon) return;
  const originalSimd = addon.simdPath();
  const originalThreads = addon.getNumThreads();
  const configs: [string, number][] = simdPaths.map((simd) => [simd, originalThreads]);
  if (originalThreads > 1) configs.push([originalSimd, 1]);
  try {
    for (const [simd, threads] of configs) {
      addon.setSimdPath(simd);
      addon.setNumThreads(threads);
      fn(`${simd}/${threads}t`);
    }
  } finally {
    addon.setSimdPath(originalSimd);
    addon.setNumThreads(originalThreads);
  }
}

// ---- helpers ---------------------------------------------------------------------------------

function f32(buf: object): Float32Array {
  assert.ok(buf instanceof Float32Array);
  return buf;
}

function i32(buf: object): Int32Array {
  assert.ok(buf instanceof Int32Array);
  return buf;
}

/** Runs `kernel` on copies of `inputs` with both backends; returns the two sets of buffers. */
function both<T extends HostArray[]>(
  inputs: T,
  kernel: (be: Backend, bufs: T) => void,
): { js: T; cpu: T } {
  const r = runBoth(cpu(), inputs, kernel);
  return { js: r.js, cpu: r.be };
}

const ODD_SIZES = [1, 2, 7, 13, 16, 17, 31, 61, 64, 100, 257];

// ---- memory and elementwise --------------------------------------------------------------------

test('fill and copyBlock match the reference (both dtypes, accumulate)', { skip }, () => {
  const rng = makeRng(1);
  for (const n of ODD_SIZES) {
    const r = both([randArray(rng, n + 3), randInts(rng, n + 3, -50, 50)], (be, [f, i]) => {
      be.fill(f, n, 0.1);
      be.fill(i, n, -7.9);
    });
    assertClose(r.cpu[0], r.js[0], 0, `fill f32 n=${n}`);
    assertClose(r.cpu[1], r.js[1], 0, `fill i32 n=${n}`);
  }
  forEachConfig((cfg) => {
    for (const [outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner] of [
      [1, 5, 1, 7, 3, 4, 1],
      [3, 13, 2, 7, 0, 7, 5],
      [17, 4, 0, 9, 5, 4, 31],
      [2, 600, 17, 700, 3, 583, 129],
    ]) {
      for (const accumulate of [false, true]) {
        const src = randArray(rng, outer * srcAxis * inner);
        const dst = randArray(rng, outer * dstAxis * inner);
        const r = both([src, dst], (be, [s, d]) =>
          be.copyBlock(
            s,
            d,
            outer,
            srcAxis,
            srcOffset,
            dstAxis,
            dstOffset,
            count,
            inner,
            accumulate,
          ),
        );
        assertClose(
          r.cpu[1],
          r.js[1],
          0,
          `copyBlock ${outer}x${count}x${inner} acc=${accumulate} ${cfg}`,
        );
      }
      const srcI = randInts(rng, outer * srcAxis * inner, -9, 9);
      const r = both([srcI, new Int32Array(outer * dstAxis * inner)], (be, [s, d]) =>
        be.copyBlock(s, d, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, false),
      );
      assertClose(r.cpu[1], r.js[1], 0, `copyBlock int32 ${cfg}`);
    }
  });
});

/** Row-major strides of `shape`, with the axes in `broadcast` set to 0. */
function stridesOf(shape: number[], broadcast: number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = broadcast.includes(d) ? 0 : s;
    if (!broadcast.includes(d)) s *= shape[d];
  }
  return strides;
}

test('binary matches the reference exactly: broadcasting, odd shapes, all ops', { skip }, () => {
  const rng = makeRng(2);
  const cases: { shape: number[]; aB: number[]; bB: number[] }[] = [
    { shape: [1], aB: [], bB: [] },
    { shape: [257], aB: [], bB: [] },
    { shape: [13, 7], aB: [], bB: [0] },
    { shape: [13, 7], aB: [1], bB: [] },
    { shape: [3, 1, 31], aB: [], bB: [2] },
    { shape: [2, 5, 3, 17], aB: [1], bB: [0, 3] },
    { shape: [61, 129], aB: [], bB: [0] },
    { shape: [300, 301], aB: [], bB: [] },
  ];
  forEachConfig((cfg) => {
    for (const { shape, aB, bB } of cases) {
      const as = stridesOf(shape, aB);
      const bs = stridesOf(shape, bB);
      const size = shape.reduce((x, y) => x * y, 1);
      const aLen = shape.reduce((acc, s, d) => acc + (s - 1) * as[d], 0) + 1;
      const bLen = shape.reduce((acc, s, d) => acc + (s - 1) * bs[d], 0) + 1;
      const a = randArray(rng, aLen);
      const b = randArray(rng, bLen, 0.5, 2);
      for (const op of ['add', 'sub', 'mul', 'div'] as BinaryOp[]) {
        const r = both([a, b, new Float32Array(size)], (be, [x, y, out]) =>
          be.binary(op, x, y, out, shape, as, bs),
        );
        assertClose(r.cpu[2], r.js[2], 0, `binary ${op} [${shape}] ${cfg}`);
      }
    }
    // A transposed operand (non-unit inner stride).
    const a = randArray(rng, 7 * 5);
    const b = randArray(rng, 7 * 5);
    const r = both([a, b, new Float32Array(35)], (be, [x, y, out]) =>
      be.binary('mul', x, y, out, [7, 5], [5, 1], [1, 7]),
    );
    assertClose(r.cpu[2], r.js[2], 0, 'binary transposed');
  });
});

const UNARY_OPS: UnaryOp[] = ['exp', 'log', 'tanh', 'relu', 'gelu', 'neg', 'sqrt', 'square'];
/** Forward tolerance per op (see the header). */
const UNARY_TOL: Record<UnaryOp, number> = {
  exp: 1e-6,
  log: 2 * ULP,
  tanh: 1e-6,
  relu: 0,
  gelu: 2e-6,
  neg: 0,
  sqrt: 0,
  square: 0,
};

test('unary and unaryBackward match the reference on every SIMD build', { skip }, () => {
  const rng = makeRng(3);
  // Values spanning the polynomial ranges and the saturation regions, plus special values.
  const special = [0, -0, 1e-30, -1e-30, 0.3, -0.62, 0.63, 9, -9, 20, -20, 88, -88, 89, -104, -120];
  special.push(Infinity, -Infinity, NaN);
  forEachSimd((simd) => {
    for (const n of [...ODD_SIZES, 4099]) {
      const x = randArray(rng, n, -6, 6);
      if (n > special.length) x.set(special, n - special.length);
      const gy = randArray(rng, n);
      for (const op of UNARY_OPS) {
        const input = op === 'log' || op === 'sqrt' ? x.map(Math.abs) : x;
        const fwd = both([input, padded(n)], (be, [xi, out]) => be.unary(op, xi, out, n));
        // gelu: absolute below 1 (see the header); the others relative down to 1e-30.
        const floor = op === 'gelu' ? 1 : 1e-30;
        assertClose(fwd.cpu[1], fwd.js[1], UNARY_TOL[op], `unary ${op} ${simd} n=${n}`, floor);
        const y = fwd.js[1];
        const bwd = both([input, y, gy, padded(n)], (be, [xi, yi, g, gx]) =>
          be.unaryBackward(op, xi, yi, g, gx, n),
        );
        if (op === 'gelu') {
          assertClose(bwd.cpu[3], bwd.js[3], 2e-6, `unaryBackward gelu ${simd} n=${n}`, 1);
        } else {
          assertClose(bwd.cpu[3], bwd.js[3], 0, `unaryBackward ${op} ${simd} n=${n}`);
        }
      }
    }
  });
});

test('affine, axpy and sumSquares match the reference', { skip }, () => {
  const rng = makeRng(4);
  forEachConfig((cfg) => {
    for (const n of [...ODD_SIZES, 300001]) {
      const x = randArray(rng, n);
      const y = randArray(rng, n);
      const r = both([x, y, x.slice()], (be, [xi, yi, alias]) => {
        be.affine(xi, yi, n, 0.1, -0.3);
        be.axpy(xi, alias, n, 1 / 3); // alias: out = x itself is allowed for affine only
        be.affine(alias, alias, n, 3, 0.5);
      });
      assertClose(r.cpu[1], r.js[1], ULP, `affine n=${n} ${cfg}`);
      assertClose(r.cpu[2], r.js[2], ULP, `axpy+affine in place n=${n} ${cfg}`);
      const s = cpu().sumSquares(x, n);
      const e = jsBackend.sumSquares(x, n);
      assert.ok(Math.abs(s - e) <= 1e-12 * e, `sumSquares n=${n}: ${s} vs ${e}`);
    }
  });
});

// ---- reductions and layout -----------------------------------------------------------------------

test('sumAxis, broadcastAxis and permute match the reference', { skip }, () => {
  const rng = makeRng(5);
  forEachConfig((cfg) => {
    for (const [outer, axis, inner] of [
      [1, 1, 1],
      [1, 1856, 1],
      [7, 13, 1],
      [1, 257, 384],
      [3, 31, 61],
      [13, 1, 7],
      [2, 300, 129],
    ]) {
      for (const accumulate of [false, true]) {
        const x = randArray(rng, outer * axis * inner);
        const out0 = randArray(rng, outer * inner);
        const r = both([x, out0], (be, [xi, out]) =>
          be.sumAxis(xi, out, outer, axis, inner, accumulate),
        );
        assertClose(r.cpu[1], r.js[1], ULP, `sumAxis ${outer}x${axis}x${inner} ${cfg}`, 1e-6);
      }
      const x = randArray(rng, outer * inner);
      const r = both([x, new Float32Array(outer * axis * inner)], (be, [xi, out]) =>
        be.broadcastAxis(xi, out, outer, axis, inner),
      );
      assertClose(r.cpu[1], r.js[1], 0, `broadcastAxis ${outer}x${axis}x${inner}`);
    }
    const cases: [number[], number[]][] = [
      [[7], [0]],
      [
        [13, 7],
        [1, 0],
      ],
      [
        [2, 58, 4, 32],
        [0, 2, 1, 3],
      ],
      [
        [3, 5, 7, 2],
        [3, 1, 0, 2],
      ],
      [
        [1, 61, 1, 17],
        [2, 3, 1, 0],
      ],
      [
        [129, 300],
        [1, 0],
      ],
      [
        [4, 1, 3],
        [1, 2, 0],
      ],
    ];
    for (const [shape, perm] of cases) {
      const size = shape.reduce((a, b) => a * b, 1);
      const xf = randArray(rng, size);
      const xi = randInts(rng, size, -1000, 1000);
      const r = both([xf, new Float32Array(size), xi, new Int32Array(size)], (be, [a, b, c, d]) => {
        be.permute(a, b, shape, perm, 'float32');
        be.permute(c, d, shape, perm, 'int32');
      });
      assertClose(r.cpu[1], r.js[1], 0, `permute f32 [${shape}] (${perm}) ${cfg}`);
      assertClose(r.cpu[3], r.js[3], 0, `permute i32 [${shape}] (${perm}) ${cfg}`);
    }
  });
});

// ---- matmul ----------------------------------------------------------------------------------------

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

function checkMatmul(rng: Rng, p: MatmulParams, what: string): void {
  const aLen = (p.batch - 1) * p.strideA + p.m * p.k;
  const bLen = (p.batch - 1) * p.strideB + p.k * p.n;
  const cLen = (p.batch - 1) * p.strideC + p.m * p.n;
  const a = randArray(rng, aLen);
  const b = randArray(rng, bLen);
  const c0 = randArray(rng, cLen + 19); // 19 sentinels past the end must stay untouched
  const r = both([a, b, c0], (be, [x, y, c]) => be.matmul(x, y, c, p));
  let scale: Float32Array;
  if (p.strideC === 0 && p.batch > 1) {
    // Sequential semantics over the batch: bound each element by the sum of every item's scale.
    scale = new Float32Array(c0.length);
    for (let bi = 0; bi < p.batch; bi++) {
      const one = { ...p, batch: 1 };
      const s = matmulScale(
        a.subarray(bi * p.strideA, bi * p.strideA + p.m * p.k),
        b.subarray(bi * p.strideB, bi * p.strideB + p.k * p.n),
        c0,
        one,
      );
      for (let i = 0; i < cLen; i++) scale[i] += s[i];
    }
  } else {
    scale = matmulScale(a, b, c0, p);
  }
  const tolFactor = 2e-7 * Math.sqrt(p.k + 1);
  const got = r.cpu[2];
  const want = r.js[2];
  for (let i = 0; i < cLen; i++) {
    const tol = tolFactor * scale[i] + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      assert.fail(`${what}: C[${i}] = ${got[i]}, expected ${want[i]} (tol ${tol})`);
    }
  }
  for (let i = cLen; i < c0.length; i++) {
    if (got[i] !== c0[i]) assert.fail(`${what}: wrote past the end of C (element ${i})`);
  }
}

test(
  'matmul matches the reference: transposes, strides (incl. 0), alpha, accumulate, every SIMD build',
  { skip },
  () => {
    const rng = makeRng(6);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 61, 7],
      [3, 13, 31],
      [4, 33, 17],
      [5, 7, 2],
      [7, 13, 31],
      [13, 1, 61],
      [31, 17, 13],
      [58, 58, 32],
      [61, 33, 300], // k crosses a packing block
    ];
    forEachSimd((simd) => {
      for (const [m, n, k] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const [batch, bcast, accumulate, alpha] of [
              [1, 'none', false, 1],
              [3, 'none', true, 0.37],
              [2, 'A', false, -1.5],
              [3, 'B', true, 1],
            ] as [number, string, boolean, number][]) {
              const p: MatmulParams = {
                batch,
                m,
                n,
                k,
                transA,
                transB,
                strideA: bcast === 'A' ? 0 : m * k,
                strideB: bcast === 'B' ? 0 : k * n,
                strideC: m * n,
                alpha,
                accumulate,
              };
              checkMatmul(
                rng,
                p,
                `matmul ${simd} ${batch}x[${m}x${k}]@[${k}x${n}] tA=${transA} tB=${transB} ${bcast} acc=${accumulate} alpha=${alpha}`,
              );
            }
          }
        }
      }
    });
  },
);

test(
  'matmul: big and batched shapes split over threads; strideC = 0 sums the batch in order',
  { skip },
  () => {
    const rng = makeRng(7);
    forEachConfig((cfg) => {
      const cases: MatmulParams[] = [
        // One big product: micro-tiles split over threads, n crosses an nc block.
        {
          batch: 1,
          m: 130,
          n: 600,
          k: 67,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          alpha: 1,
          accumulate: false,
        },
        // Few big items (3 on 2 threads): each item split over the team.
        {
          batch: 3,
          m: 97,
          n: 45,
          k: 280,
          transA: true,
          transB: false,
          strideA: 97 * 280,
          strideB: 280 * 45,
          strideC: 97 * 45,
          alpha: 0.5,
          accumulate: true,
        },
        // Deep products (k > 256) on one team: op(B) packed for all depth blocks at once,
        // across two column blocks and with a transposed A (the backward's weight gradients).
        {
          batch: 1,
          m: 75,
          n: 70,
          k: 700,
          transA: true,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          alpha: 0.5,
          accumulate: true,
        },
        {
          batch: 1,
          m: 40,
          n: 600,
          k: 300,
          transA: false,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          alpha: 1,
          accumulate: false,
        },
        // Many small items (attention): one item per thread, strided with gaps.
        {
          batch: 16,
          m: 19,
          n: 19,
          k: 8,
          transA: false,
          transB: true,
          strideA: 19 * 8 + 3,
          strideB: 19 * 8 + 5,
          strideC: 19 * 19 + 2,
          alpha: 0.35,
          accumulate: false,
        },
        // strideC = 0: sequential semantics (accumulate sums every item; else the last one wins).
        {
          batch: 5,
          m: 29,
          n: 31,
          k: 37,
          transA: false,
          transB: false,
          strideA: 29 * 37,
          strideB: 37 * 31,
          strideC: 0,
          alpha: 1,
          accumulate: true,
        },
        {
          batch: 4,
          m: 29,
          n: 31,
          k: 37,
          transA: true,
          transB: true,
          strideA: 29 * 37,
          strideB: 0,
          strideC: 0,
          alpha: 2,
          accumulate: false,
        },
        // Small m (no packing) with a shared weight and many columns.
        {
          batch: 2,
          m: 3,
          n: 1058,
          k: 128,
          transA: false,
          transB: false,
          strideA: 3 * 128,
          strideB: 0,
          strideC: 3 * 1058,
          alpha: 1,
          accumulate: true,
        },
        {
          batch: 1,
          m: 1,
          n: 259,
          k: 131,
          transA: true,
          transB: true,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          alpha: 1,
          accumulate: false,
        },
        // k = 0: C = 0 (or unchanged when accumulating).
        {
          batch: 2,
          m: 3,
          n: 5,
          k: 0,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 15,
          alpha: 1,
          accumulate: false,
        },
        {
          batch: 2,
          m: 3,
          n: 5,
          k: 0,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 15,
          alpha: 1,
          accumulate: true,
        },
      ];
      for (const p of cases) {
        checkMatmul(
          rng,
          p,
          `matmul ${cfg} ${p.batch}x[${p.m}x${p.k}]@[${p.k}x${p.n}] sC=${p.strideC}`,
        );
      }
    });
  },
);

// ---- embeddings ---------------------------------------------------------------------------------------

test('gather and scatterAdd match the reference; bad indices throw', { skip }, () => {
  const rng = makeRng(8);
  forEachConfig((cfg) => {
    for (const [rows, d, vocab] of [
      [1, 1, 1],
      [7, 13, 5],
      [1856, 128, 1058],
      [61, 3, 2],
    ]) {
      const table = randArray(rng, vocab * d);
      const idx = randInts(rng, rows, 0, vocab);
      const g = randArray(rng, rows * d);
      const r = both(
        [table, idx, new Float32Array(rows * d), g, randArray(rng, vocab * d)],
        (be, [t, i, out, gi, gt]) => {
          be.gather(t, i, out, rows, d, vocab);
          be.scatterAdd(gi, i, gt, rows, d);
        },
      );
      assertClose(r.cpu[2], r.js[2], 0, `gather ${rows}x${d} ${cfg}`);
      assertClose(r.cpu[4], r.js[4], 0, `scatterAdd ${rows}x${d} ${cfg}`);
    }
  });
  const be = cpu();
  const table = new Float32Array(6);
  assert.throws(() => be.gather(table, new Int32Array([0, 3]), new Float32Array(4), 2, 2, 3), {
    name: 'RangeError',
    message: /index 3 at row 1 is out of range for a vocabulary of size 3/,
  });
  assert.throws(
    () => be.gather(table, new Int32Array([-1]), new Float32Array(2), 1, 2, 3),
    /index -1 at row 0/,
  );
  assert.throws(
    () => be.scatterAdd(new Float32Array(2), new Int32Array([3]), table, 1, 2),
    /index 3 at row 0 is out of range for a table of 3 rows/,
  );
});

// ---- fused normalisation, softmax, cross-entropy ----------------------------------------------------------

test('layerNorm and layerNormBackward match the reference', { skip }, () => {
  const rng = makeRng(9);
  forEachConfig((cfg) => {
    for (const [rows, d] of [
      [1, 1],
      [1, 7],
      [13, 31],
      [61, 128],
      [300, 17],
    ]) {
      const x = randArray(rng, rows * d, -3, 5);
      const w = randArray(rng, d, 0.5, 1.5);
      const b = randArray(rng, d);
      const fwd = both(
        [x, w, b, new Float32Array(rows * d), new Float32Array(rows), new Float32Array(rows)],
        (be, [xi, wi, bi, out, mean, rstd]) =>
          be.layerNorm(xi, wi, bi, out, mean, rstd, rows, d, 1e-5),
      );
      assertClose(fwd.cpu[3], fwd.js[3], ULP, `layerNorm out ${rows}x${d} ${cfg}`, 1e-6);
      assertClose(fwd.cpu[4], fwd.js[4], ULP, `layerNorm mean ${rows}x${d}`, 1e-6);
      assertClose(fwd.cpu[5], fwd.js[5], ULP, `layerNorm rstd ${rows}x${d}`);
      const [, , , , mean, rstd] = fwd.js;
      const gy = randArray(rng, rows * d);
      const bwd = both(
        [x, w, mean, rstd, gy, new Float32Array(rows * d), randArray(rng, d), randArray(rng, d)],
        (be, [xi, wi, mi, ri, g, gx, gw, gb]) =>
          be.layerNormBackward(xi, wi, mi, ri, g, gx, gw, gb, rows, d),
      );
      assertClose(bwd.cpu[5], bwd.js[5], ULP, `layerNormBackward gx ${rows}x${d} ${cfg}`, 1e-6);
      assertClose(bwd.cpu[6], bwd.js[6], ULP, `layerNormBackward gw ${rows}x${d}`, 1e-6);
      assertClose(bwd.cpu[7], bwd.js[7], ULP, `layerNormBackward gb ${rows}x${d}`, 1e-6);
    }
  });
});

test(
  'softmax (plain and causal) and softmaxBackward match the reference on every SIMD build',
  { skip },
  () => {
    const rng = makeRng(10);
    forEachSimd((simd) => {
      for (const [rows, n, tq] of [
        [1, 1, 0],
        [3, 7, 0],
        [1, 1058, 0],
        [4 * 58, 58, 58],
        [2 * 13, 17, 13], // n > tq: a cached prefix stays visible
        [2 * 9, 5, 9], // n < tq: the first rows are fully masked (all zeros)
        [31, 61, 0],
      ]) {
        const x = randArray(rng, rows * n, -8, 8);
        const fwd = both([x, padded(rows * n)], (be, [xi, out]) =>
          be.softmax(xi, out, rows, n, tq),
        );
        assertClose(fwd.cpu[1], fwd.js[1], 2e-6, `softmax ${simd} ${rows}x${n} tq=${tq}`, 1e-6);
        // Masked entries are exactly zero on both.
        for (let i = 0; i < rows * n; i++) {
          if (fwd.js[1][i] === 0) assert.equal(fwd.cpu[1][i], 0, `softmax mask [${i}]`);
        }
        const gy = randArray(rng, rows * n);
        const bwd = both([fwd.js[1], gy, padded(rows * n)], (be, [y, g, gx]) =>
          be.softmaxBackward(y, g, gx, rows, n),
        );
        assertClose(bwd.cpu[2], bwd.js[2], ULP, `softmaxBackward ${simd} ${rows}x${n}`, 1e-7);
      }
      // Large logits stay finite.
      const big = Float32Array.from([1000, 999, -1000, 0]);
      const out = f32(cpu().alloc(4, 'float32'));
      cpu().softmax(big, out, 1, 4, 0);
      assert.ok(out.every(Number.isFinite));
    });
  },
);

test(
  'crossEntropy and its backward match the reference; ignore index; bad targets throw',
  { skip },
  () => {
    const rng = makeRng(11);
    forEachSimd((simd) => {
      for (const [rows, v] of [
        [1, 1],
        [5, 7],
        [61, 1058],
        [13, 33],
      ]) {
        const logits = randArray(rng, rows * v, -10, 10);
        const targets = randInts(rng, rows, 0, v);
        targets[0] = -1; // ignored row
        const fwd = both(
          [logits, targets, padded(rows * v), padded(rows)],
          (be, [l, t, probs, losses]) => be.crossEntropy(l, t, probs, losses, rows, v),
        );
        assertClose(fwd.cpu[2], fwd.js[2], 2e-6, `crossEntropy probs ${simd} ${rows}x${v}`, 1e-6);
        assertClose(fwd.cpu[3], fwd.js[3], 1e-6, `crossEntropy losses ${simd} ${rows}x${v}`, 1e-3);
        assert.equal(fwd.cpu[3][0], 0);
        const gLoss = randArray(rng, rows);
        const bwd = both(
          [fwd.js[2], targets, gLoss, randArray(rng, rows * v)],
          (be, [p, t, gl, g]) => be.crossEntropyBackward(p, t, gl, g, rows, v),
        );
        assertClose(bwd.cpu[3], bwd.js[3], ULP, `crossEntropyBackward ${simd} ${rows}x${v}`, 1e-7);
      }
    });
    const be = cpu();
    assert.throws(
      () =>
        be.crossEntropy(
          new Float32Array(3),
          new Int32Array([3]),
          new Float32Array(3),
          new Float32Array(1),
          1,
          3,
        ),
      { name: 'RangeError', message: /target 3 at row 0 is out of range for 3 classes/ },
    );
    assert.throws(
      () =>
        be.crossEntropyBackward(
          new Float32Array(3),
          new Int32Array([5]),
          new Float32Array(1),
          new Float32Array(3),
          1,
          3,
        ),
      /target 5/,
    );
  },
);

// ---- randomness, convolution, vector quantisation, optimiser -----------------------------------------------

// ---- errors and configuration ----------------------------------------------------------------------------------

test('bad arguments throw clear JS errors instead of crashing', { skip }, () => {
  const be = cpu();
  const x = new Float32Array(4);
  assert.throws(() => be.unary('exp', new Float64Array(4), x, 4), {
    name: 'TypeError',
    message: /x must be a Float32Array, got a Float64Array/,
  });
  assert.throws(() => be.unary('exp', x, x, 5), {
    name: 'RangeError',
    message: /has 4 elements but the kernel needs at least 5/,
  });
  assert.throws(() => be.unary('cosh' as UnaryOp, x, x, 4), /unknown op 'cosh'/);
  assert.throws(() => be.unary('exp', x, x, 1.5), /n must be a non-negative integer/);
  assert.throws(() => be.gather(x, new Float32Array(1), x, 1, 1, 1), /idx must be an Int32Array/);
  assert.throws(
    () =>
      be.matmul(x, x, x, {
        batch: 2,
        m: 2,
        n: 2,
        k: 1,
        transA: false,
        transB: false,
        strideA: 2,
        strideB: 2,
        strideC: 4,
        alpha: 1,
        accumulate: false,
      }),
    /C has 4 elements but the kernel needs at least 8/,
  );
  assert.throws(() => be.copyBlock(x, x, 1, 4, 3, 4, 0, 2, 1, false), /range out of bounds/);
  assert.throws(() => be.copyBlock(x, new Int32Array(4), 1, 4, 0, 4, 0, 2, 1, false), /same dtype/);
  assert.throws(() => be.permute(x, x, [2, 2], [0, 0], 'float32'), /not a permutation/);
  assert.throws(
    () => be.permute(x, new Int32Array(4), [2, 2], [1, 0], 'float32'),
    /must both hold float32/,
  );
  assert.throws(() => be.binary('add', x, x, x, [2, 2], [2], [2, 1]), /one rank/);
  assert.throws(() => be.nearestCode(x, x, new Int32Array(1), x, 1, 0, 1), /at least one row/);
  assert.throws(
    () =>
      be.adam(x, x, x, x, 4, {
        lr: 1,
        beta1: 0.9,
        beta2: 0.9,
        eps: 1e-8,
        weightDecay: 0,
        decoupled: true,
        step: 0,
        gradScale: 1,
      }),
    /step is 1-based/,
  );
});

test(
  'freed buffers are recycled zero-filled, and a double free hands a buffer out once',
  { skip },
  () => {
    const be = cpu();
    const n = 5000; // above the pool's minimum size
    const a = f32(be.alloc(n, 'float32'));
    a.fill(3);
    be.free(a);
    be.free(a); // double free: must not be pooled twice
    const b = f32(be.alloc(n, 'float32'));
    const c = f32(be.alloc(n, 'float32'));
    assert.ok(b !== c, 'one freed buffer was handed out twice');
    assert.ok(b.every((v) => v === 0) && c.every((v) => v === 0), 'alloc must return zeros');
    const i = i32(be.alloc(n, 'int32')); // same length, other dtype: never the float buffer
    assert.ok(i instanceof Int32Array && i.every((v) => v === 0));
    // Arrays the backend did not create are never recycled.
    const mine = new Float32Array(n).fill(1);
    be.free(mine);
    const d = f32(be.alloc(n, 'float32'));
    assert.ok(d !== mine && mine[0] === 1);
    const up = f32(be.upload(Float32Array.from({ length: n }, (_, k) => k)));
    assert.equal(up[n - 1], n - 1);
    for (const buf of [b, c, d, up, i]) be.free(buf);
  },
);

test('thread count and SIMD path can be set and are reported', { skip }, () => {
  assert.ok(addon);
  assert.ok(simdPaths.includes('baseline'));
  assert.throws(() => addon.setSimdPath('neon-avx9000'), /unknown SIMD path/);
  assert.throws(() => addon.setNumThreads(0), /1\.\.1024/);
  const info = addon.info();
  if (!process.env.MMGPT_SIMD) assert.equal(info.simd, simdPaths[0]); // the fastest by default
  assert.ok(info.threads >= 1);
  const reported = cpuBackendInfo();
  assert.ok(!('error' in reported));
  assert.equal(reported.simd, info.simd);
  assert.deepEqual(reported.availableSimd, simdPaths);
  const threads = addon.getNumThreads();
  try {
    setCpuThreads(1);
    assert.equal(addon.getNumThreads(), 1);
  } finally {
    setCpuThreads(threads);
  }
});
