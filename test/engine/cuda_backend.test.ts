// The cuda backend agrees with the reference backend (backends/js.ts), kernel by kernel, forward
// and backward, on odd sizes (1, primes, sizes around the 32/64/128/256 of warps, tiles and
// blocks) and on the launch regimes each kernel switches between (split-K matmul, split sumAxis,
// chunked layerNorm gradients, warp- and block-per-row reductions); bad calls throw clear errors;
// and a short training run of a tiny GPT gives the cpu backend's losses. Every output is read back
// with sentinel padding, so a kernel writing past its last element fails.
//
// Where it runs: on a machine with a CUDA device and the addon built with nvcc. Elsewhere every
// test is skipped with loadCudaBackend()'s reason. MMGPT_CUDA_ADDON=native/build/cuda-emu/
// mmgpt_cuda_emu.node runs the same tests on the CPU emulator of the kernels (native/cuda/emu:
// every CUDA thread a fiber, guard pages after every buffer), which checks the kernels' indexing,
// barriers and host logic without a GPU (slowly; not in the default suite).
//
// im2col, col2im, nearestCode, dropoutMask, adam and the fused training-step kernels are tested
// for every native backend in
// native_backends.test.ts (one suite parametrised by backend).
//
// Tolerances (relative to max(|expected|, floor), per element):
// - exact (0): fill, copyBlock, binary, relu/neg/square/sqrt and their backward, broadcastAxis,
//   permute, gather, scatterAdd (the same sequential float32 sums per column), dropoutMask,
//   im2col, col2im (the same float64 sums), nearestCode indices;
// - 1 ulp (2^-23): kernels computing in float64 like the reference, whose last bits may differ
//   through summation order, FMA contraction or the device's float64 exp/log/tanh: the other
//   unary ops and their backward (gelu: absolute below 1), affine, axpy, sumAxis, layerNorm
//   (+ backward), softmax (+ backward), crossEntropy probabilities, losses and backward, adam,
//   nearestCode distances; sumSquares 1e-12;
// - matmul: float32 accumulation, |C - C_ref| <= 4e-7 * sqrt(k + 1) * (|alpha| sum_p |a_ip b_pj|
//   + |C_prev| if accumulating), ~7 ulp * sqrt(k) of the magnitude scale;
// - training: 20 Adam steps of a 2-layer GPT with dropout from the same seed; every step's loss
//   within 2e-3 (absolute, losses ~4.6) of the reference backend's, the first within 1e-5.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { Backend, BinaryOp, DType, MatmulParams, UnaryOp } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import type { CudaStats } from '../../src/engine/backends/cuda';
import {
  cudaBackendInfo,
  cudaStats,
  loadCudaBackend,
  setCudaSyncChecks,
} from '../../src/engine/backends/cuda';
import { getBackend, isBackend, loadBackend, setBackend } from '../../src/engine/registry';
import { makeTrainStep } from '../../bench/train_step';
import { assertClose, makeRng, padded, randArray, randInts, runBoth, ULP } from './backend_helpers';
import type { HostArray, Rng } from './backend_helpers';
import * as F from '../../src/engine/ops';
import { keep, tidy } from '../../src/engine/tensor';
import { GPT } from '../../src/gpt/model';
import { AdamW } from '../../src/nn/optim';
import { Rng as ModelRng } from '../../src/nn/rng';
import type { GptConfig } from '../../src/gpt/model';

const loadedBackend = loadCudaBackend();
const skip = 'error' in loadedBackend ? `cuda backend unavailable: ${loadedBackend.error}` : false;
const info = cudaBackendInfo();
const emulated = !('error' in info) && info.emulated;

function cuda(): Backend {
  if ('error' in loadedBackend) throw new Error(loadedBackend.error);
  return loadedBackend;
}

// ---- helpers ---------------------------------------------------------------------------------

/**
 * Runs `kernel` with the js backend on host copies of `inputs` and with the cuda backend on
 * uploaded copies, then downloads every cuda buffer (whole, sentinels included).
 */
function both<T extends HostArray[]>(
  inputs: T,
  kernel: (be: Backend, bufs: T) => void,
): { js: T; cuda: T } {
  const r = runBoth(cuda(), inputs, kernel);
  return { js: r.js, cuda: r.be };
}

const ODD_SIZES = [1, 2, 7, 31, 32, 33, 61, 100, 257, 1000];

// ---- memory -----------------------------------------------------------------------------------------

test('alloc is zero-filled, upload/download round-trip, free is idempotent', { skip }, () => {
  const be = cuda();
  for (const dtype of ['float32', 'int32'] as DType[]) {
    const buf = be.alloc(1001, dtype);
    const host = be.download(buf, 1001, dtype);
    assert.ok(
      host.every((v) => v === 0),
      `alloc ${dtype} is zero-filled`,
    );
    be.free(buf);
    be.free(buf); // a second free is a no-op
    assert.throws(() => be.download(buf, 1, dtype), /already freed/);
  }
  const data = Float32Array.from({ length: 777 }, (_, i) => i * 0.5 - 3);
  const up = be.upload(data);
  assert.deepEqual(be.download(up, 777, 'float32'), data);
  assert.deepEqual(be.download(up, 5, 'float32'), data.subarray(0, 5));
  assert.throws(() => be.download(up, 778, 'float32'), /download of 778 elements/);
  assert.throws(() => be.download(up, 1, 'int32'), /holds float32/);
  const ints = Int32Array.from([1, -2, 3, 2147483647, -2147483648]);
  const upI = be.upload(ints);
  assert.deepEqual(be.download(upI, 5, 'int32'), ints);
  const empty = be.upload(new Float32Array(0));
  assert.equal(be.download(empty, 0, 'float32').length, 0);
  for (const b of [up, upI, empty]) be.free(b);
  be.sync();
});

// ---- elementwise ------------------------------------------------------------------------------------

test('fill and copyBlock match the reference (both dtypes, accumulate)', { skip }, () => {
  const rng = makeRng(1);
  for (const n of ODD_SIZES) {
    const r = both([randArray(rng, n + 3), randInts(rng, n + 3, -50, 50)], (be, [f, i]) => {
      be.fill(f, n, 0.1);
      be.fill(i, n, -7.9);
    });
    assertClose(r.cuda[0], r.js[0], 0, `fill f32 n=${n}`);
    assertClose(r.cuda[1], r.js[1], 0, `fill i32 n=${n}`);
  }
  for (const [outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner] of [
    [1, 5, 1, 7, 3, 4, 1],
    [3, 13, 2, 7, 0, 7, 5],
    [17, 4, 0, 9, 5, 4, 31],
    [2, 600, 17, 700, 3, 583, 129],
    [4, 3, 1, 3, 1, 0, 8], // count 0: nothing happens
  ]) {
    for (const accumulate of [false, true]) {
      const src = randArray(rng, outer * srcAxis * inner);
      const dst = randArray(rng, outer * dstAxis * inner);
      const r = both([src, dst], (be, [s, d]) =>
        be.copyBlock(s, d, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, accumulate),
      );
      assertClose(r.cuda[1], r.js[1], 0, `copyBlock ${outer}x${count}x${inner} acc=${accumulate}`);
    }
    const srcI = randInts(rng, outer * srcAxis * inner, -9, 9);
    const r = both([srcI, new Int32Array(outer * dstAxis * inner)], (be, [s, d]) =>
      be.copyBlock(s, d, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, false),
    );
    assertClose(r.cuda[1], r.js[1], 0, `copyBlock int32 ${outer}x${count}x${inner}`);
  }
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
    { shape: [1, 1, 1], aB: [], bB: [1] },
    { shape: [13, 7], aB: [], bB: [0] },
    { shape: [13, 7], aB: [1], bB: [] },
    { shape: [3, 1, 31], aB: [], bB: [2] },
    { shape: [2, 5, 3, 17], aB: [1], bB: [0, 3] },
    { shape: [2, 3, 1, 4, 5, 3], aB: [0, 4], bB: [1, 3, 5] },
    { shape: [61, 129], aB: [], bB: [0] },
    { shape: [300, 301], aB: [], bB: [] },
  ];
  for (const { shape, aB, bB } of cases) {
    const as = stridesOf(shape, aB);
    const bs = stridesOf(shape, bB);
    const size = shape.reduce((x, y) => x * y, 1);
    const aLen = shape.reduce((acc, s, d) => acc + (s - 1) * as[d], 0) + 1;
    const bLen = shape.reduce((acc, s, d) => acc + (s - 1) * bs[d], 0) + 1;
    const a = randArray(rng, aLen);
    const b = randArray(rng, bLen, 0.5, 2);
    for (const op of ['add', 'sub', 'mul', 'div'] as BinaryOp[]) {
      const r = both([a, b, padded(size)], (be, [x, y, out]) =>
        be.binary(op, x, y, out, shape, as, bs),
      );
      assertClose(r.cuda[2], r.js[2], 0, `binary ${op} [${shape}]`);
    }
  }
  // A transposed operand (non-unit inner stride) and a gap between rows.
  const a = randArray(rng, 7 * 5);
  const b = randArray(rng, 7 * 6);
  const r = both([a, b, padded(35)], (be, [x, y, out]) =>
    be.binary('mul', x, y, out, [7, 5], [1, 7], [6, 1]),
  );
  assertClose(r.cuda[2], r.js[2], 0, 'binary transposed / gapped');
});

const UNARY_OPS: UnaryOp[] = ['exp', 'log', 'tanh', 'relu', 'gelu', 'neg', 'sqrt', 'square'];
const EXACT_UNARY: UnaryOp[] = ['relu', 'neg', 'sqrt', 'square'];

test('unary and unaryBackward match the reference', { skip }, () => {
  const rng = makeRng(3);
  const special = [0, -0, 1e-30, -1e-30, 0.3, -0.62, 0.63, 9, -9, 20, -20, 88, -88, 89, -104, -120];
  special.push(Infinity, -Infinity, NaN);
  for (const n of [...ODD_SIZES, 4099]) {
    const x = randArray(rng, n, -6, 6);
    if (n > special.length) x.set(special, n - special.length);
    const gy = randArray(rng, n);
    for (const op of UNARY_OPS) {
      const input = op === 'log' || op === 'sqrt' ? x.map(Math.abs) : x;
      const tol = EXACT_UNARY.includes(op) ? 0 : ULP;
      const floor = op === 'gelu' ? 1 : 1e-30;
      const fwd = both([input, padded(n)], (be, [xi, out]) => be.unary(op, xi, out, n));
      assertClose(fwd.cuda[1], fwd.js[1], tol, `unary ${op} n=${n}`, floor);
      const y = fwd.js[1];
      const bwd = both([input, y, gy, padded(n)], (be, [xi, yi, g, gx]) =>
        be.unaryBackward(op, xi, yi, g, gx, n),
      );
      assertClose(bwd.cuda[3], bwd.js[3], tol, `unaryBackward ${op} n=${n}`, floor);
    }
  }
});

test('affine, axpy and sumSquares match the reference', { skip }, () => {
  const rng = makeRng(4);
  for (const n of [...ODD_SIZES, emulated ? 30001 : 300001]) {
    const x = randArray(rng, n);
    const y = randArray(rng, n);
    const r = both([x, y, x.slice()], (be, [xi, yi, alias]) => {
      be.affine(xi, yi, n, 0.1, -0.3);
      be.axpy(xi, alias, n, 1 / 3);
      be.affine(alias, alias, n, 3, 0.5); // out may alias x
    });
    assertClose(r.cuda[1], r.js[1], ULP, `affine n=${n}`);
    assertClose(r.cuda[2], r.js[2], ULP, `axpy+affine in place n=${n}`);
    const be = cuda();
    const dx = be.upload(x);
    const s = be.sumSquares(dx, n);
    be.free(dx);
    const e = jsBackend.sumSquares(x, n);
    assert.ok(Math.abs(s - e) <= 1e-12 * e, `sumSquares n=${n}: ${s} vs ${e}`);
  }
  const be = cuda();
  const z = be.alloc(4, 'float32');
  assert.equal(be.sumSquares(z, 0), 0);
  be.free(z);
});

// ---- reductions and layout -----------------------------------------------------------------------

test(
  'sumAxis (every launch regime), broadcastAxis and permute match the reference',
  { skip },
  () => {
    const rng = makeRng(5);
    for (const [outer, axis, inner] of [
      [1, 1, 1],
      [1, 1856, 1], // inner < 32, long axis: one block per output
      [7, 13, 1], // inner < 32: one warp per output
      [5, 40, 3],
      [1, 1856, 384], // few column blocks, long axis: split over the axis + combine
      [1, 257, 384],
      [3, 31, 61],
      [13, 1, 7],
      [2, 300, 129],
      [70, 5, 33],
      [4, 0, 40], // empty sums
    ]) {
      for (const accumulate of [false, true]) {
        const x = randArray(rng, outer * axis * inner);
        const out0 = randArray(rng, outer * inner + 19);
        const r = both([x, out0], (be, [xi, out]) =>
          be.sumAxis(xi, out, outer, axis, inner, accumulate),
        );
        assertClose(
          r.cuda[1],
          r.js[1],
          ULP,
          `sumAxis ${outer}x${axis}x${inner} acc=${accumulate}`,
          1e-6,
        );
      }
      const x = randArray(rng, outer * inner);
      const r = both([x, padded(outer * axis * inner)], (be, [xi, out]) =>
        be.broadcastAxis(xi, out, outer, axis, inner),
      );
      assertClose(r.cuda[1], r.js[1], 0, `broadcastAxis ${outer}x${axis}x${inner}`);
    }
    const cases: [number[], number[]][] = [
      [[7], [0]],
      [[], []],
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
      [
        [2, 3, 4, 5],
        [0, 1, 2, 3],
      ], // identity: merges to one run
      [
        [2, 3, 4, 5, 6, 7],
        [5, 3, 1, 4, 2, 0],
      ],
      [
        [2, 1, 3, 1, 4, 5],
        [0, 2, 1, 4, 5, 3],
      ], // size-1 axes between merged runs
    ];
    for (const [shape, perm] of cases) {
      const size = shape.reduce((a, b) => a * b, 1);
      const xf = randArray(rng, size);
      const xi = randInts(rng, size, -1000, 1000);
      const outI = new Int32Array(size + 19).fill(-5);
      const r = both([xf, padded(size), xi, outI], (be, [a, b, c, d]) => {
        be.permute(a, b, shape, perm, 'float32');
        be.permute(c, d, shape, perm, 'int32');
      });
      assertClose(r.cuda[1], r.js[1], 0, `permute f32 [${shape}] (${perm})`);
      assertClose(r.cuda[3], r.js[3], 0, `permute i32 [${shape}] (${perm})`);
    }
  },
);

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
  const tolFactor = 4e-7 * Math.sqrt(p.k + 1);
  const got = r.cuda[2];
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
  'matmul matches the reference: transposes, strides (incl. 0), alpha, accumulate',
  { skip },
  () => {
    const rng = makeRng(6);
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 61, 7],
      [3, 13, 31],
      [5, 7, 2],
      [13, 1, 61],
      [31, 17, 13],
      [58, 58, 32],
      [64, 64, 16], // exactly one tile
      [65, 63, 17], // one past / short of a tile in every dimension
      [61, 33, 300],
    ];
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
              `matmul ${batch}x[${m}x${k}]@[${k}x${n}] tA=${transA} tB=${transB} ${bcast} acc=${accumulate} alpha=${alpha}`,
            );
          }
        }
      }
    }
  },
);

test(
  'matmul: split-K, big and batched shapes; strideC = 0 sums the batch in order',
  { skip },
  () => {
    const rng = makeRng(7);
    const base = { transA: false, transB: false, strideA: 0, strideB: 0, strideC: 0 };
    const cases: MatmulParams[] = [
      // Weight gradient of the seed model: few tiles, long k -> split-K + ordered combine.
      { ...base, batch: 1, m: 128, n: 384, k: 1824, transA: true, alpha: 1, accumulate: false },
      {
        ...base,
        batch: 1,
        m: 67,
        n: 129,
        k: 1000,
        transA: true,
        transB: true,
        alpha: 0.5,
        accumulate: true,
      },
      // One big product: many tiles.
      { ...base, batch: 1, m: 130, n: 600, k: 67, transB: true, alpha: 1, accumulate: false },
      // Few big items, accumulate.
      {
        ...base,
        batch: 3,
        m: 97,
        n: 45,
        k: 280,
        transA: true,
        strideA: 97 * 280,
        strideB: 280 * 45,
        strideC: 97 * 45,
        alpha: 0.5,
        accumulate: true,
      },
      // Many small items (attention), strided with gaps.
      {
        ...base,
        batch: 16,
        m: 19,
        n: 19,
        k: 8,
        transB: true,
        strideA: 19 * 8 + 3,
        strideB: 19 * 8 + 5,
        strideC: 19 * 19 + 2,
        alpha: 0.35,
        accumulate: false,
      },
      // strideC = 0: sequential semantics (accumulate sums every item; else the last one wins).
      {
        ...base,
        batch: 5,
        m: 29,
        n: 31,
        k: 37,
        strideA: 29 * 37,
        strideB: 37 * 31,
        alpha: 1,
        accumulate: true,
      },
      {
        ...base,
        batch: 4,
        m: 29,
        n: 31,
        k: 37,
        transA: true,
        transB: true,
        strideA: 29 * 37,
        alpha: 2,
        accumulate: false,
      },
      // Small m with a shared weight and many columns (decoding).
      {
        ...base,
        batch: 2,
        m: 3,
        n: 1058,
        k: 128,
        strideA: 3 * 128,
        strideC: 3 * 1058,
        alpha: 1,
        accumulate: true,
      },
      {
        ...base,
        batch: 1,
        m: 1,
        n: 259,
        k: 131,
        transA: true,
        transB: true,
        alpha: 1,
        accumulate: false,
      },
      // k = 0: C = 0 (or unchanged when accumulating).
      { ...base, batch: 2, m: 3, n: 5, k: 0, strideC: 15, alpha: 1, accumulate: false },
      { ...base, batch: 2, m: 3, n: 5, k: 0, strideC: 15, alpha: 1, accumulate: true },
    ];
    for (const p of cases) {
      checkMatmul(
        rng,
        p,
        `matmul ${p.batch}x[${p.m}x${p.k}]@[${p.k}x${p.n}] tA=${p.transA} tB=${p.transB} sC=${p.strideC}`,
      );
    }
    // Bit-for-bit repeatable (no atomics), split-K included.
    const be = cuda();
    const p = cases[0];
    const a = be.upload(randArray(rng, p.m * p.k));
    const b = be.upload(randArray(rng, p.k * p.n));
    const c1 = be.alloc(p.m * p.n, 'float32');
    const c2 = be.alloc(p.m * p.n, 'float32');
    be.matmul(a, b, c1, p);
    be.matmul(a, b, c2, p);
    assert.deepEqual(be.download(c1, p.m * p.n, 'float32'), be.download(c2, p.m * p.n, 'float32'));
    for (const buf of [a, b, c1, c2]) be.free(buf);
  },
);

// ---- embeddings ---------------------------------------------------------------------------------------

test(
  'gather and scatterAdd match the reference (repeated indices); bad indices throw',
  { skip },
  () => {
    const rng = makeRng(8);
    for (const [rows, d, vocab] of [
      [1, 1, 1],
      [7, 13, 5],
      [300, 129, 61], // two column blocks of scatterAdd, many repeats
      [emulated ? 400 : 1856, 128, emulated ? 97 : 1058],
      [61, 3, 2],
    ]) {
      const table = randArray(rng, vocab * d);
      const idx = randInts(rng, rows, 0, vocab);
      const g = randArray(rng, rows * d);
      const r = both(
        [table, idx, padded(rows * d), g, randArray(rng, vocab * d)],
        (be, [t, i, out, gi, gt]) => {
          be.gather(t, i, out, rows, d, vocab);
          be.scatterAdd(gi, i, gt, rows, d);
        },
      );
      assertClose(r.cuda[2], r.js[2], 0, `gather ${rows}x${d}`);
      assertClose(r.cuda[4], r.js[4], 0, `scatterAdd ${rows}x${d}`);
    }
    const be = cuda();
    const table = be.upload(new Float32Array(6));
    const out = be.alloc(4, 'float32');
    const bad = be.upload(new Int32Array([0, 3]));
    assert.throws(() => be.gather(table, bad, out, 2, 2, 3), {
      name: 'RangeError',
      message: /index 3 at row 1 is out of range for a vocabulary of size 3/,
    });
    const neg = be.upload(new Int32Array([-1]));
    assert.throws(() => be.gather(table, neg, out, 1, 2, 3), /index -1 at row 0/);
    const over = be.upload(new Int32Array([3]));
    const g = be.upload(new Float32Array(2));
    assert.throws(
      () => be.scatterAdd(g, over, table, 1, 2),
      /index 3 at row 0 is out of range for a table of 3 rows/,
    );
    // Deferred checks: the error surfaces at the next synchronisation instead.
    setCudaSyncChecks(false);
    try {
      be.gather(table, bad, out, 2, 2, 3);
      assert.throws(() => be.sync(), /index 3 at row 1 .*next synchronisation/);
      be.sync(); // reported once
    } finally {
      setCudaSyncChecks(true);
    }
    for (const buf of [table, out, bad, neg, over, g]) be.free(buf);
  },
);

// ---- fused normalisation, softmax, cross-entropy ----------------------------------------------------------

test('layerNorm and layerNormBackward match the reference (chunked gw/gb)', { skip }, () => {
  const rng = makeRng(9);
  for (const [rows, d] of [
    [1, 1],
    [1, 7],
    [13, 31],
    [61, 128],
    [300, 17],
    [emulated ? 700 : 1824, 128], // many row chunks for gw/gb
    [5, 1000],
  ]) {
    const x = randArray(rng, rows * d, -3, 5);
    const w = randArray(rng, d, 0.5, 1.5);
    const b = randArray(rng, d);
    const fwd = both(
      [x, w, b, padded(rows * d), padded(rows), padded(rows)],
      (be, [xi, wi, bi, out, mean, rstd]) =>
        be.layerNorm(xi, wi, bi, out, mean, rstd, rows, d, 1e-5),
    );
    assertClose(fwd.cuda[3], fwd.js[3], ULP, `layerNorm out ${rows}x${d}`, 1e-6);
    assertClose(fwd.cuda[4], fwd.js[4], ULP, `layerNorm mean ${rows}x${d}`, 1e-6);
    assertClose(fwd.cuda[5], fwd.js[5], ULP, `layerNorm rstd ${rows}x${d}`);
    const mean = fwd.js[4].slice(0, rows);
    const rstd = fwd.js[5].slice(0, rows);
    const gy = randArray(rng, rows * d);
    const gw0 = randArray(rng, d + 19);
    const gb0 = randArray(rng, d + 19);
    const bwd = both(
      [x, w, mean, rstd, gy, padded(rows * d), gw0, gb0],
      (be, [xi, wi, mi, ri, g, gx, gw, gb]) =>
        be.layerNormBackward(xi, wi, mi, ri, g, gx, gw, gb, rows, d),
    );
    assertClose(bwd.cuda[5], bwd.js[5], ULP, `layerNormBackward gx ${rows}x${d}`, 1e-6);
    assertClose(bwd.cuda[6], bwd.js[6], ULP, `layerNormBackward gw ${rows}x${d}`, 1e-6);
    assertClose(bwd.cuda[7], bwd.js[7], ULP, `layerNormBackward gb ${rows}x${d}`, 1e-6);
  }
});

test('softmax (plain and causal) and softmaxBackward match the reference', { skip }, () => {
  const rng = makeRng(10);
  for (const [rows, n, tq] of [
    [1, 1, 0],
    [3, 7, 0],
    [1, 1058, 0],
    [4 * 58, 58, 58],
    [2 * 13, 17, 13], // n > tq: a cached prefix stays visible
    [2 * 9, 5, 9], // n < tq: the first rows are fully masked (all zeros)
    [31, 61, 0],
    [3, 33, 3],
  ]) {
    const x = randArray(rng, rows * n, -8, 8);
    const fwd = both([x, padded(rows * n)], (be, [xi, out]) => be.softmax(xi, out, rows, n, tq));
    assertClose(fwd.cuda[1], fwd.js[1], ULP, `softmax ${rows}x${n} tq=${tq}`);
    for (let i = 0; i < rows * n; i++) {
      if (fwd.js[1][i] === 0) assert.equal(fwd.cuda[1][i], 0, `softmax mask [${i}]`);
    }
    const y = fwd.js[1].slice(0, rows * n);
    const gy = randArray(rng, rows * n);
    const bwd = both([y, gy, padded(rows * n)], (be, [yi, g, gx]) =>
      be.softmaxBackward(yi, g, gx, rows, n),
    );
    assertClose(bwd.cuda[2], bwd.js[2], ULP, `softmaxBackward ${rows}x${n}`, 1e-7);
  }
  const big = both([Float32Array.from([1000, 999, -1000, 0]), padded(4)], (be, [xi, out]) =>
    be.softmax(xi, out, 1, 4, 0),
  );
  assert.ok(big.cuda[1].every(Number.isFinite), 'large logits stay finite');
});

test(
  'crossEntropy and its backward match the reference; ignore index; bad targets throw',
  { skip },
  () => {
    const rng = makeRng(11);
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
      assertClose(fwd.cuda[2], fwd.js[2], ULP, `crossEntropy probs ${rows}x${v}`);
      assertClose(fwd.cuda[3], fwd.js[3], ULP, `crossEntropy losses ${rows}x${v}`, 1e-6);
      assert.equal(fwd.cuda[3][0], 0);
      const probs = fwd.js[2].slice(0, rows * v);
      const gLoss = randArray(rng, rows);
      const bwd = both([probs, targets, gLoss, padded(rows * v)], (be, [p, t, gl, g]) =>
        be.crossEntropyBackward(p, t, gl, g, rows, v),
      );
      assertClose(bwd.cuda[3], bwd.js[3], ULP, `crossEntropyBackward ${rows}x${v}`, 1e-7);
    }
    const be = cuda();
    const l = be.alloc(3, 'float32');
    const t3 = be.upload(new Int32Array([3]));
    const p = be.alloc(3, 'float32');
    const loss = be.alloc(1, 'float32');
    assert.throws(() => be.crossEntropy(l, t3, p, loss, 1, 3), {
      name: 'RangeError',
      message: /target 3 at row 0 is out of range for 3 classes/,
    });
    const t5 = be.upload(new Int32Array([5]));
    assert.throws(() => be.crossEntropyBackward(p, t5, loss, l, 1, 3), /target 5/);
    for (const buf of [l, t3, p, loss, t5]) be.free(buf);
  },
);

// ---- randomness, convolution, vector quantisation, optimiser -----------------------------------------------

// ---- errors ------------------------------------------------------------------------------------------------

test('bad arguments throw clear JS errors instead of crashing', { skip }, () => {
  const be = cuda();
  const x = be.alloc(4, 'float32');
  const xi = be.alloc(4, 'int32');
  assert.throws(() => be.unary('exp', new Float32Array(4), x, 4), {
    name: 'TypeError',
    message: /x must be a cuda buffer, got a Float32Array/,
  });
  assert.throws(() => be.unary('exp', x, x, 5), {
    name: 'RangeError',
    message: /has 4 elements but the kernel needs at least 5/,
  });
  assert.throws(() => be.unary('cosh' as UnaryOp, x, x, 4), /unknown op 'cosh'/);
  assert.throws(() => be.unary('exp', x, x, 1.5), /n must be a non-negative integer/);
  assert.throws(() => be.gather(x, x, x, 1, 1, 1), /idx must hold int32/);
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
  const c = be.alloc(16, 'float32');
  assert.throws(
    () =>
      be.matmul(x, x, c, {
        batch: 2,
        m: 2,
        n: 2,
        k: 1,
        transA: false,
        transB: false,
        strideA: 2,
        strideB: 2,
        strideC: 3,
        alpha: 1,
        accumulate: false,
      }),
    /strideC \(3\) must be 0 or at least m\*n/,
  );
  assert.throws(() => be.copyBlock(x, x, 1, 4, 3, 4, 0, 2, 1, false), /range out of bounds/);
  assert.throws(() => be.copyBlock(x, xi, 1, 4, 0, 4, 0, 2, 1, false), /same dtype/);
  assert.throws(() => be.permute(x, x, [2, 2], [0, 0], 'float32'), /not a permutation/);
  assert.throws(() => be.permute(x, xi, [2, 2], [1, 0], 'float32'), /must both hold float32/);
  assert.throws(() => be.binary('add', x, x, x, [2, 2], [2], [2, 1]), /one rank/);
  assert.throws(() => be.nearestCode(x, x, xi, x, 1, 0, 1), /at least one row/);
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
  assert.throws(() => be.free({}), /must be a cuda buffer/);
  for (const buf of [x, xi, c]) be.free(buf);
  assert.throws(() => be.fill(x, 1, 0), /out was already freed/);
});

test('the backend reports its device and build', { skip }, () => {
  const i = cudaBackendInfo();
  assert.ok(!('error' in i), 'info');
  assert.ok(i.name.length > 0 && i.multiProcessors > 0);
  assert.ok(/^\d+\.\d+$/.test(i.computeCapability));
  assert.ok(i.archs.length > 0);
  const s = cudaStats();
  assert.ok(!('error' in s) && s.launches > 0);
});

// ---- training ------------------------------------------------------------------------------------------------

test('a short training run matches the reference backend (20 steps, same seed)', { skip }, (t) => {
  // A tiny GPT with dropout: every op of a training step (embeddings, layerNorm, attention with
  // the causal softmax, GeLU MLP, cross-entropy, dropout masks, Adam) on both backends.
  const config: GptConfig = {
    vocabSize: 96,
    blockSize: 23,
    nLayer: 2,
    nHead: 2,
    nEmbd: 32,
    dropout: 0.1,
  };
  const steps = 20;
  const reference = isBackend(loadBackend('cpu')) ? 'cpu' : 'js';
  const previous = getBackend().name;
  const run = (name: string): { losses: number[]; perStep?: Record<string, number> } => {
    setBackend(name);
    const { step } = makeTrainStep(4, config, 4242);
    const losses: number[] = [];
    let before: CudaStats | null = null;
    for (let s = 0; s < steps; s++) {
      if (name === 'cuda' && s === steps - 10) {
        const st = cudaStats();
        if (!('error' in st)) before = st;
      }
      losses.push(step());
    }
    const after = cudaStats();
    if (name !== 'cuda' || before === null || 'error' in after) return { losses };
    const start = before;
    const per = (k: keyof CudaStats) => (after[k] - start[k]) / 10;
    return {
      losses,
      perStep: {
        uploads: per('uploads'),
        uploadBytes: per('uploadBytes'),
        downloads: per('downloads'),
        launches: per('launches'),
        syncs: per('syncs'),
        allocs: per('allocs'),
        liveBuffersGrowth: per('liveBuffers'),
      },
    };
  };
  try {
    const ref = run(reference);
    const got = run('cuda');
    t.diagnostic(`reference ${reference}: ${ref.losses.map((l) => l.toFixed(5)).join(' ')}`);
    t.diagnostic(`cuda:          ${got.losses.map((l) => l.toFixed(5)).join(' ')}`);
    if (got.perStep) t.diagnostic(`cuda per step: ${JSON.stringify(got.perStep)}`);
    assert.ok(
      Math.abs(got.losses[0] - ref.losses[0]) <= 1e-5,
      `first loss ${got.losses[0]} vs ${ref.losses[0]}`,
    );
    for (let s = 0; s < steps; s++) {
      assert.ok(Number.isFinite(got.losses[s]), `step ${s}: loss ${got.losses[s]}`);
      assert.ok(
        Math.abs(got.losses[s] - ref.losses[s]) <= 2e-3,
        `step ${s}: cuda loss ${got.losses[s]} vs ${reference} ${ref.losses[s]}`,
      );
    }
    assert.ok(got.losses[steps - 1] < got.losses[0], 'the loss falls');
  } finally {
    setBackend(previous);
  }
});

test('a training step with gradient clipping reads nothing back to the host', { skip }, (t) => {
  // Deferred index checks (as MMGPT_CUDA_SYNC_CHECKS=0), the fused mean cross-entropy and the
  // multi-tensor AdamW with its on-device global-norm clip: no sync and no download per step;
  // the loss is read once, after the steps (what the trainer does every lossReadEvery steps).
  const config: GptConfig = {
    vocabSize: 96,
    blockSize: 23,
    nLayer: 2,
    nHead: 2,
    nEmbd: 32,
    dropout: 0.1,
  };
  const previous = getBackend().name;
  setBackend('cuda');
  setCudaSyncChecks(false);
  try {
    const model = new GPT(config, new ModelRng(5));
    model.train();
    const optimizer = new AdamW(model.namedParameters(), { lr: 1e-3, clipNorm: 0.5 });
    const tokens = Int32Array.from({ length: 4 * 24 }, (_, i) => (i * 37) % 96);
    const losses = keep(F.zeros([8]));
    const step = (s: number) =>
      tidy(() => {
        const loss = model.loss(F.tensor(tokens, [4, 24], 'int32'));
        loss.backward();
        optimizer.update(1e-3);
        optimizer.zeroGrad();
        F.writeInto(losses, F.reshape(loss, [1]), 0, s);
      });
    for (let s = 0; s < 3; s++) step(s);
    const before = cudaStats();
    for (let s = 3; s < 8; s++) step(s);
    const after = cudaStats();
    assert.ok(!('error' in before) && !('error' in after));
    if ('error' in before || 'error' in after) return;
    const per = (k: keyof CudaStats) => (after[k] - before[k]) / 5;
    t.diagnostic(
      `per step: ${per('launches')} launches, ${per('uploads')} uploads, ${per('syncs')} syncs, ${per('downloads')} downloads`,
    );
    assert.equal(per('syncs'), 0, 'host synchronisations per step');
    assert.equal(per('downloads'), 0, 'downloads per step');
    const values = losses.toFloat32Array();
    assert.ok(
      values.every((v) => Number.isFinite(v) && v > 0),
      `losses ${values.join(' ')}`,
    );
    assert.ok(optimizer.lastGradNorm > 0, 'the clip measured a norm');
    losses.dispose();
    optimizer.dispose();
  } finally {
    setCudaSyncChecks(true);
    setBackend(previous);
  }
});
