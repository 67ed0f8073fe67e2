// Every native backend (cpu, cuda; backend_targets.ts) agrees with the reference backend
// (backends/js.ts), kernel by kernel, forward and backward: elementwise, reductions and layout,
// matmul, embeddings, normalisation, softmax and cross-entropy; bad calls throw clear JS errors.
// Shapes are odd (1, primes, non-multiples of the 4/8/16 SIMD widths, sizes around the
// 32/64/128/256 of warps, tiles and blocks) and cover the regimes each kernel switches between
// (thread splits on the cpu; split-K matmul, split sumAxis, chunked layerNorm gradients, warp- and
// block-per-row reductions on the device). Every output carries sentinel padding, so a kernel
// writing past its last element fails. backends_fused.test.ts holds the other kernels (dropout,
// convolution, vector quantisation, optimiser and the fused training-step kernels).
//
// Tolerances (relative to max(|expected|, floor), per element) shared by both backends; those
// that differ (unary maths, softmax and cross-entropy probabilities, matmul) are in the table of
// backend_targets.ts:
// - exact (0): fill, copyBlock, binary, broadcastAxis, permute, gather, scatterAdd (the same
//   sequential float32 sums per column);
// - 1 ulp (2^-23): kernels computing in float64 like the reference, whose last bits may differ
//   through summation order or FMA contraction: affine, axpy, sumAxis, layerNorm (+ backward),
//   softmaxBackward, crossEntropyBackward; sumSquares 1e-12.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { BinaryOp, MatmulParams, UnaryOp } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import {
  assertClose,
  batchedMatmulParams,
  checkMatmul,
  makeRng,
  matmulParams,
  padded,
  randArray,
  randInts,
  runBoth,
  stridesOf,
  ULP,
} from './backend_helpers';
import { TARGETS, backendOf, sized } from './backend_targets';

const ODD_SIZES = [1, 2, 7, 13, 16, 17, 31, 32, 33, 61, 64, 100, 257, 1000];
const UNARY_OPS: UnaryOp[] = ['exp', 'log', 'tanh', 'relu', 'gelu', 'neg', 'sqrt', 'square'];
const ADAM_STEP0 = {
  lr: 1,
  beta1: 0.9,
  beta2: 0.9,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: true,
  step: 0,
  gradScale: 1,
};

for (const target of TARGETS) {
  const { name, skip, tol } = target;
  const be = () => backendOf(target);

  // ---- elementwise --------------------------------------------------------------------------

  test(
    `${name}: fill and copyBlock match the reference (both dtypes, accumulate)`,
    { skip },
    () => {
      const rng = makeRng(1);
      for (const n of ODD_SIZES) {
        const r = runBoth(
          be(),
          [randArray(rng, n + 3), randInts(rng, n + 3, -50, 50)],
          (b, [f, i]) => {
            b.fill(f, n, 0.1);
            b.fill(i, n, -7.9);
          },
        );
        assertClose(r.be[0], r.js[0], 0, `fill f32 n=${n}`);
        assertClose(r.be[1], r.js[1], 0, `fill i32 n=${n}`);
      }
      target.forEachConfig((cfg) => {
        for (const [outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner] of [
          [1, 5, 1, 7, 3, 4, 1],
          [3, 13, 2, 7, 0, 7, 5],
          [17, 4, 0, 9, 5, 4, 31],
          [2, 600, 17, 700, 3, 583, 129],
          [4, 3, 1, 3, 1, 0, 8], // count 0: nothing happens
        ]) {
          const what = `${outer}x${count}x${inner} ${cfg}`;
          for (const acc of [false, true]) {
            const src = randArray(rng, outer * srcAxis * inner);
            const dst = randArray(rng, outer * dstAxis * inner);
            const r = runBoth(be(), [src, dst], (b, [s, d]) =>
              b.copyBlock(s, d, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, acc),
            );
            assertClose(r.be[1], r.js[1], 0, `copyBlock ${what} acc=${acc}`);
          }
          const srcI = randInts(rng, outer * srcAxis * inner, -9, 9);
          const r = runBoth(be(), [srcI, new Int32Array(outer * dstAxis * inner)], (b, [s, d]) =>
            b.copyBlock(s, d, outer, srcAxis, srcOffset, dstAxis, dstOffset, count, inner, false),
          );
          assertClose(r.be[1], r.js[1], 0, `copyBlock int32 ${what}`);
        }
      });
    },
  );

  test(
    `${name}: binary matches the reference exactly: broadcasting, odd shapes, all ops`,
    { skip },
    () => {
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
      target.forEachConfig((cfg) => {
        for (const { shape, aB, bB } of cases) {
          const as = stridesOf(shape, aB);
          const bs = stridesOf(shape, bB);
          const size = shape.reduce((x, y) => x * y, 1);
          const aLen = shape.reduce((acc, s, d) => acc + (s - 1) * as[d], 0) + 1;
          const bLen = shape.reduce((acc, s, d) => acc + (s - 1) * bs[d], 0) + 1;
          const a = randArray(rng, aLen);
          const b = randArray(rng, bLen, 0.5, 2);
          for (const op of ['add', 'sub', 'mul', 'div'] as BinaryOp[]) {
            const r = runBoth(be(), [a, b, padded(size)], (bk, [x, y, out]) =>
              bk.binary(op, x, y, out, shape, as, bs),
            );
            assertClose(r.be[2], r.js[2], 0, `binary ${op} [${shape}] ${cfg}`);
          }
        }
        // A transposed operand (non-unit inner stride), on either side, and a gap between rows.
        const a = randArray(rng, 7 * 5);
        const b = randArray(rng, 7 * 6);
        for (const [aStrides, bStrides] of [
          [
            [5, 1],
            [1, 7],
          ],
          [
            [1, 7],
            [6, 1],
          ],
        ]) {
          const r = runBoth(be(), [a, b, padded(35)], (bk, [x, y, out]) =>
            bk.binary('mul', x, y, out, [7, 5], aStrides, bStrides),
          );
          assertClose(r.be[2], r.js[2], 0, `binary transposed / gapped ${aStrides} ${cfg}`);
        }
      });
    },
  );

  test(`${name}: unary and unaryBackward match the reference on every build`, { skip }, () => {
    const rng = makeRng(3);
    // Values spanning the polynomial ranges and the saturation regions, plus special values.
    const special = [0, -0, 1e-30, -1e-30, 0.3, -0.62, 0.63, 9, -9, 20, -20, 88, -88, 89, -104];
    special.push(-120, Infinity, -Infinity, NaN);
    target.forEachSimd((cfg) => {
      for (const n of [...ODD_SIZES, 4099]) {
        const x = randArray(rng, n, -6, 6);
        if (n > special.length) x.set(special, n - special.length);
        const gy = randArray(rng, n);
        for (const op of UNARY_OPS) {
          const input = op === 'log' || op === 'sqrt' ? x.map(Math.abs) : x;
          // gelu: absolute below 1 (see backend_targets.ts); the others relative down to 1e-30.
          const floor = op === 'gelu' ? 1 : 1e-30;
          const fwd = runBoth(be(), [input, padded(n)], (b, [xi, out]) => b.unary(op, xi, out, n));
          assertClose(fwd.be[1], fwd.js[1], tol.unary[op], `unary ${op} ${cfg} n=${n}`, floor);
          const y = fwd.js[1];
          const bwd = runBoth(be(), [input, y, gy, padded(n)], (b, [xi, yi, g, gx]) =>
            b.unaryBackward(op, xi, yi, g, gx, n),
          );
          const what = `unaryBackward ${op} ${cfg} n=${n}`;
          assertClose(bwd.be[3], bwd.js[3], tol.unaryBackward[op], what, floor);
        }
      }
    });
  });

  test(`${name}: affine, axpy and sumSquares match the reference`, { skip }, () => {
    const rng = makeRng(4);
    target.forEachConfig((cfg) => {
      for (const n of [...ODD_SIZES, sized(target, 300001, 30001)]) {
        const x = randArray(rng, n);
        const y = randArray(rng, n);
        const r = runBoth(be(), [x, y, x.slice()], (b, [xi, yi, alias]) => {
          b.affine(xi, yi, n, 0.1, -0.3);
          b.axpy(xi, alias, n, 1 / 3);
          b.affine(alias, alias, n, 3, 0.5); // out may alias x (affine only)
        });
        assertClose(r.be[1], r.js[1], ULP, `affine n=${n} ${cfg}`);
        assertClose(r.be[2], r.js[2], ULP, `axpy+affine in place n=${n} ${cfg}`);
        const dx = be().upload(x);
        const s = be().sumSquares(dx, n);
        be().free(dx);
        const e = jsBackend.sumSquares(x, n);
        assert.ok(Math.abs(s - e) <= 1e-12 * e, `sumSquares n=${n} ${cfg}: ${s} vs ${e}`);
      }
      const z = be().alloc(4, 'float32');
      assert.equal(be().sumSquares(z, 0), 0);
      be().free(z);
    });
  });

  // ---- reductions and layout ------------------------------------------------------------------

  test(
    `${name}: sumAxis (every launch regime), broadcastAxis and permute match the reference`,
    { skip },
    () => {
      const rng = makeRng(5);
      target.forEachConfig((cfg) => {
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
          const what = `${outer}x${axis}x${inner} ${cfg}`;
          for (const accumulate of [false, true]) {
            const x = randArray(rng, outer * axis * inner);
            const out0 = randArray(rng, outer * inner + 19);
            const r = runBoth(be(), [x, out0], (b, [xi, out]) =>
              b.sumAxis(xi, out, outer, axis, inner, accumulate),
            );
            assertClose(r.be[1], r.js[1], ULP, `sumAxis ${what} acc=${accumulate}`, 1e-6);
          }
          const x = randArray(rng, outer * inner);
          const r = runBoth(be(), [x, padded(outer * axis * inner)], (b, [xi, out]) =>
            b.broadcastAxis(xi, out, outer, axis, inner),
          );
          assertClose(r.be[1], r.js[1], 0, `broadcastAxis ${what}`);
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
          const r = runBoth(be(), [xf, padded(size), xi, outI], (b, [x1, o1, x2, o2]) => {
            b.permute(x1, o1, shape, perm, 'float32');
            b.permute(x2, o2, shape, perm, 'int32');
          });
          assertClose(r.be[1], r.js[1], 0, `permute f32 [${shape}] (${perm}) ${cfg}`);
          assertClose(r.be[3], r.js[3], 0, `permute i32 [${shape}] (${perm}) ${cfg}`);
        }
      });
    },
  );

  // ---- matmul -------------------------------------------------------------------------------

  test(
    `${name}: matmul matches the reference: transposes, strides (incl. 0), alpha, accumulate, every build`,
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
        [64, 64, 16], // exactly one tile
        [65, 63, 17], // one past / short of a tile in every dimension
        [61, 33, 300], // k crosses a packing block
      ];
      const variants: [number, 'none' | 'A' | 'B', boolean, number][] = [
        [1, 'none', false, 1],
        [3, 'none', true, 0.37],
        [2, 'A', false, -1.5],
        [3, 'B', true, 1],
      ];
      target.forEachSimd((cfg) => {
        for (const [m, n, k] of shapes) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              for (const [batch, bcast, accumulate, alpha] of variants) {
                const p = batchedMatmulParams(
                  { batch, m, n, k, transA, transB, alpha, accumulate },
                  bcast,
                );
                const what = `matmul ${cfg} ${batch}x[${m}x${k}]@[${k}x${n}] tA=${transA} tB=${transB} ${bcast} acc=${accumulate} alpha=${alpha}`;
                checkMatmul(be(), rng, p, tol.matmul, what);
              }
            }
          }
        }
      });
    },
  );

  test(
    `${name}: matmul: split-K, big and batched shapes split over threads and blocks; strideC = 0 sums the batch in order`,
    { skip },
    () => {
      const rng = makeRng(7);
      const cases: MatmulParams[] = [
        // Weight gradient of the original recipe's model: few tiles, long k (split-K + ordered
        // combine on the device).
        matmulParams({ m: 128, n: 384, k: 1824, transA: true }),
        matmulParams({
          m: 67,
          n: 129,
          k: 1000,
          transA: true,
          transB: true,
          alpha: 0.5,
          accumulate: true,
        }),
        // One big product: many tiles; micro-tiles split over threads, n crosses an nc block.
        matmulParams({ m: 130, n: 600, k: 67, transB: true }),
        // Few big items (3 on 2 threads): each item split over the team.
        matmulParams({
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
        }),
        // Deep products (k > 256) on one team: op(B) packed for all depth blocks at once,
        // across two column blocks and with a transposed A (the backward's weight gradients).
        matmulParams({ m: 75, n: 70, k: 700, transA: true, alpha: 0.5, accumulate: true }),
        matmulParams({ m: 40, n: 600, k: 300, transB: true }),
        // Deep products with few rows of C on a team (weight gradients): every thread packs
        // its own blocks of op(B); blocks of rows and columns, n over one nc block, ragged edges.
        matmulParams({ m: 197, n: 45, k: 530, transA: true, alpha: 0.5, accumulate: true }),
        matmulParams({ m: 41, n: 1058, k: 600, transA: true }),
        // Many small items (attention): one item per thread, strided with gaps.
        matmulParams({
          batch: 16,
          m: 19,
          n: 19,
          k: 8,
          transB: true,
          strideA: 19 * 8 + 3,
          strideB: 19 * 8 + 5,
          strideC: 19 * 19 + 2,
          alpha: 0.35,
        }),
        // A decode step's attention: many one-row items over the leading rows of each item's
        // preallocated [58 x 32] cache matrix (strideB larger than the operand).
        matmulParams({
          batch: 24,
          m: 1,
          n: 37,
          k: 32,
          transB: true,
          strideA: 32,
          strideB: 58 * 32,
          strideC: 37,
        }),
        matmulParams({ batch: 24, m: 1, n: 32, k: 37, strideA: 37, strideB: 58 * 32, strideC: 32 }),
        // strideC = 0: sequential semantics (accumulate sums every item; else the last one wins).
        matmulParams({
          batch: 5,
          m: 29,
          n: 31,
          k: 37,
          strideA: 29 * 37,
          strideB: 37 * 31,
          accumulate: true,
        }),
        matmulParams({
          batch: 4,
          m: 29,
          n: 31,
          k: 37,
          transA: true,
          transB: true,
          strideA: 29 * 37,
          alpha: 2,
        }),
        // Small m (no packing) with a shared weight and many columns (decoding).
        matmulParams({
          batch: 2,
          m: 3,
          n: 1058,
          k: 128,
          strideA: 3 * 128,
          strideC: 3 * 1058,
          accumulate: true,
        }),
        matmulParams({ m: 1, n: 259, k: 131, transA: true, transB: true }),
        // k = 0: C = 0 (or unchanged when accumulating).
        matmulParams({ batch: 2, m: 3, n: 5, k: 0, strideC: 15 }),
        matmulParams({ batch: 2, m: 3, n: 5, k: 0, strideC: 15, accumulate: true }),
      ];
      target.forEachConfig((cfg) => {
        for (const p of cases) {
          const what = `matmul ${cfg} ${p.batch}x[${p.m}x${p.k}]@[${p.k}x${p.n}] tA=${p.transA} tB=${p.transB} sC=${p.strideC}`;
          checkMatmul(be(), rng, p, tol.matmul, what);
        }
        // Bit-for-bit repeatable (no atomics), split-K included.
        const b = be();
        const p = cases[0];
        const x = b.upload(randArray(rng, p.m * p.k));
        const y = b.upload(randArray(rng, p.k * p.n));
        const c1 = b.alloc(p.m * p.n, 'float32');
        const c2 = b.alloc(p.m * p.n, 'float32');
        b.matmul(x, y, c1, p);
        b.matmul(x, y, c2, p);
        const size = p.m * p.n;
        assert.deepEqual(b.download(c1, size, 'float32'), b.download(c2, size, 'float32'));
        for (const buf of [x, y, c1, c2]) b.free(buf);
      });
    },
  );

  test(
    `${name}: matmul of one operand with its own transpose (A and B one buffer: a symmetric C, as Newton-Schulz's Gram matrices)`,
    { skip },
    () => {
      const rng = makeRng(8);
      // [batch, m, k]: m around the 4 rows that skip packing and the 12 x 32 / 8 x 16 tiles,
      // k across a depth block; batches of one (a team) and of several (one item per thread).
      const shapes: [number, number, number][] = [
        [1, 5, 3],
        [3, 13, 31],
        [1, 37, 300],
        [4, 64, 17],
        [2, 65, 64],
        [1, 130, 129],
        [4, 128, 128],
      ];
      target.forEachConfig((cfg) => {
        for (const [batch, m, k] of shapes) {
          for (const transA of [false, true]) {
            for (const [alpha, accumulate] of [
              [1, false],
              [-0.7, false],
              [0.5, true],
            ] as const) {
              // C = alpha op(X) op(X)^T: X stored [m, k] (A as is, B transposed) or [k, m].
              const p = matmulParams({
                batch,
                m,
                n: m,
                k,
                transA,
                transB: !transA,
                strideA: m * k,
                strideB: m * k,
                strideC: m * m,
                alpha,
                accumulate,
              });
              const what = `one-operand matmul ${cfg} ${batch}x[${m}x${k}] tA=${transA} alpha=${alpha} acc=${accumulate}`;
              const c = checkMatmul(be(), rng, p, tol.matmul, what, true);
              // The cpu kernels (wasm's too) compute one triangle and mirror it: C is exactly
              // symmetric (the other backends need only agree with the reference).
              if (accumulate || !['cpu', 'wasm'].includes(name)) continue;
              for (let b = 0; b < batch; b++) {
                for (let i = 0; i < m; i++) {
                  for (let j = 0; j < i; j++) {
                    const [ij, ji] = [c[b * m * m + i * m + j], c[b * m * m + j * m + i]];
                    if (ij !== ji)
                      assert.fail(
                        `${what}: C[${b}, ${i}, ${j}] = ${ij} but C[${b}, ${j}, ${i}] = ${ji}`,
                      );
                  }
                }
              }
            }
          }
        }
      });
    },
  );

  test(
    `${name}: matmul with a bias row: the reference's within the matmul bound, and bit for bit the backend's own matmul then add`,
    { skip },
    () => {
      const rng = makeRng(9);
      // [case, one operand]: several depth blocks (the bias must go in once, after the last),
      // ragged n, the small-m path, transposes, alpha and accumulate, every GEMM path of the cpu
      // (shared B, own tasks, the transposed narrow C, one item per thread), split-K on the
      // device, strideC = 0 (every item adds the bias, in order) and k = 0.
      const cases: [MatmulParams, boolean][] = [
        [matmulParams({ m: 61, n: 33, k: 300 }), false],
        [matmulParams({ m: 130, n: 600, k: 67, transB: true }), false],
        [matmulParams({ m: 40, n: 600, k: 300, transB: true }), false],
        [matmulParams({ m: 75, n: 70, k: 700, transA: true, alpha: 0.5, accumulate: true }), false],
        [matmulParams({ m: 41, n: 1058, k: 600, transA: true }), false],
        [matmulParams({ m: 128, n: 384, k: 1824, transA: true }), false],
        [matmulParams({ m: 197, n: 45, k: 530, transA: true }), false],
        [matmulParams({ m: 13, n: 17, k: 31, transA: true, alpha: 0.37 }), false],
        [matmulParams({ m: 1, n: 259, k: 131, transA: true, transB: true }), false],
        [matmulParams({ m: 3, n: 37, k: 300 }), false],
        [matmulParams({ m: 4, n: 1058, k: 128, alpha: -0.7, accumulate: true }), false],
        [
          matmulParams({ batch: 3, m: 29, n: 31, k: 37, strideA: 29 * 37, strideC: 29 * 31 }),
          false,
        ],
        [
          matmulParams({
            batch: 16,
            m: 19,
            n: 19,
            k: 8,
            transB: true,
            strideA: 19 * 8,
            strideB: 19 * 8,
            strideC: 19 * 19,
            alpha: 0.35,
          }),
          false,
        ],
        [
          matmulParams({
            batch: 4,
            m: 29,
            n: 31,
            k: 37,
            strideA: 29 * 37,
            strideB: 37 * 31,
            accumulate: true,
          }),
          false,
        ],
        [matmulParams({ batch: 2, m: 3, n: 5, k: 0, strideC: 15 }), false],
        // One operand read both ways (the cpu's symmetric path must not mirror a biased C).
        [matmulParams({ m: 37, n: 37, k: 300, transB: true }), true],
      ];
      target.forEachConfig((cfg) => {
        const b = be();
        for (const [p, oneOperand] of cases) {
          const what = `biased matmul ${cfg} ${p.batch}x[${p.m}x${p.k}]@[${p.k}x${p.n}] tA=${p.transA} tB=${p.transB} sC=${p.strideC} alpha=${p.alpha} acc=${p.accumulate}`;
          checkMatmul(b, rng, p, tol.matmul, what, oneOperand, randArray(rng, p.n));
          if (p.strideC === 0 && p.batch > 1) continue; // one C for all items: no separate add
          // The same product, then binary('add') of the broadcast bias: the same bits.
          const rows = p.batch * p.m;
          const x = b.upload(randArray(rng, (p.batch - 1) * p.strideA + p.m * p.k));
          const y = oneOperand
            ? x
            : b.upload(randArray(rng, (p.batch - 1) * p.strideB + p.k * p.n));
          const c0 = randArray(rng, rows * p.n);
          const bias = b.upload(randArray(rng, p.n));
          const [fused, product, sum] = [
            b.upload(c0),
            b.upload(c0),
            b.alloc(rows * p.n, 'float32'),
          ];
          b.matmul(x, y, fused, { ...p, bias });
          b.matmul(x, y, product, p);
          b.binary('add', product, bias, sum, [rows, p.n], [p.n, 1], [0, 1]);
          const got = b.download(fused, rows * p.n, 'float32');
          const want = b.download(sum, rows * p.n, 'float32');
          for (let i = 0; i < rows * p.n; i++) {
            if (!Object.is(got[i], want[i])) {
              assert.fail(`${what}: C[${i}] = ${got[i]} fused, ${want[i]} as matmul then add`);
            }
          }
          for (const buf of new Set([x, y, bias, fused, product, sum])) b.free(buf);
        }
      });
    },
  );

  // ---- embeddings ---------------------------------------------------------------------------

  test(
    `${name}: gather and scatterAdd match the reference (repeated indices); bad indices throw`,
    { skip },
    () => {
      const rng = makeRng(8);
      target.forEachConfig((cfg) => {
        for (const [rows, d, vocab] of [
          [1, 1, 1],
          [7, 13, 5],
          [300, 129, 61], // two column blocks of scatterAdd, many repeats
          [sized(target, 1856, 400), 128, sized(target, 1058, 97)],
          [61, 3, 2],
        ]) {
          const table = randArray(rng, vocab * d);
          const idx = randInts(rng, rows, 0, vocab);
          const g = randArray(rng, rows * d);
          const r = runBoth(
            be(),
            [table, idx, padded(rows * d), g, randArray(rng, vocab * d)],
            (b, [t, i, out, gi, gt]) => {
              b.gather(t, i, out, rows, d, vocab);
              b.scatterAdd(gi, i, gt, rows, d);
            },
          );
          assertClose(r.be[2], r.js[2], 0, `gather ${rows}x${d} ${cfg}`);
          assertClose(r.be[4], r.js[4], 0, `scatterAdd ${rows}x${d} ${cfg}`);
        }
      });
      const b = be();
      const table = b.upload(new Float32Array(6));
      const out = b.alloc(4, 'float32');
      const bad = b.upload(new Int32Array([0, 3]));
      assert.throws(() => b.gather(table, bad, out, 2, 2, 3), {
        name: 'RangeError',
        message: /index 3 at row 1 is out of range for a vocabulary of size 3/,
      });
      const neg = b.upload(new Int32Array([-1]));
      assert.throws(() => b.gather(table, neg, out, 1, 2, 3), /index -1 at row 0/);
      const over = b.upload(new Int32Array([3]));
      const g = b.upload(new Float32Array(2));
      assert.throws(
        () => b.scatterAdd(g, over, table, 1, 2),
        /index 3 at row 0 is out of range for a table of 3 rows/,
      );
      for (const buf of [table, out, bad, neg, over, g]) b.free(buf);
    },
  );

  // ---- normalisation, softmax, cross-entropy --------------------------------------------------

  test(
    `${name}: layerNorm and layerNormBackward match the reference (chunked gw/gb)`,
    { skip },
    () => {
      const rng = makeRng(9);
      target.forEachConfig((cfg) => {
        for (const [rows, d] of [
          [1, 1],
          [1, 7],
          [13, 31],
          [61, 128],
          [300, 17],
          [sized(target, 1824, 700), 128], // many row chunks for gw/gb
          [5, 1000],
        ]) {
          const x = randArray(rng, rows * d, -3, 5);
          const w = randArray(rng, d, 0.5, 1.5);
          const bias = randArray(rng, d);
          const fwd = runBoth(
            be(),
            [x, w, bias, padded(rows * d), padded(rows), padded(rows)],
            (b, [xi, wi, bi, out, mean, rstd]) =>
              b.layerNorm(xi, wi, bi, out, mean, rstd, rows, d, 1e-5),
          );
          const what = `${rows}x${d} ${cfg}`;
          assertClose(fwd.be[3], fwd.js[3], ULP, `layerNorm out ${what}`, 1e-6);
          assertClose(fwd.be[4], fwd.js[4], ULP, `layerNorm mean ${what}`, 1e-6);
          assertClose(fwd.be[5], fwd.js[5], ULP, `layerNorm rstd ${what}`);
          const mean = fwd.js[4].slice(0, rows);
          const rstd = fwd.js[5].slice(0, rows);
          const gy = randArray(rng, rows * d);
          const gw0 = randArray(rng, d + 19);
          const gb0 = randArray(rng, d + 19);
          const bwd = runBoth(
            be(),
            [x, w, mean, rstd, gy, padded(rows * d), gw0, gb0],
            (b, [xi, wi, mi, ri, g, gx, gw, gb]) =>
              b.layerNormBackward(xi, wi, mi, ri, g, gx, gw, gb, rows, d),
          );
          assertClose(bwd.be[5], bwd.js[5], ULP, `layerNormBackward gx ${what}`, 1e-6);
          assertClose(bwd.be[6], bwd.js[6], ULP, `layerNormBackward gw ${what}`, 1e-6);
          assertClose(bwd.be[7], bwd.js[7], ULP, `layerNormBackward gb ${what}`, 1e-6);
        }
      });
    },
  );

  test(
    `${name}: softmax (plain and causal) and softmaxBackward match the reference on every build`,
    { skip },
    () => {
      const rng = makeRng(10);
      target.forEachSimd((cfg) => {
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
          const fwd = runBoth(be(), [x, padded(rows * n)], (b, [xi, out]) =>
            b.softmax(xi, out, rows, n, tq),
          );
          const what = `${cfg} ${rows}x${n} tq=${tq}`;
          assertClose(fwd.be[1], fwd.js[1], tol.softmax.rel, `softmax ${what}`, tol.softmax.floor);
          // Masked entries are exactly zero on both.
          for (let i = 0; i < rows * n; i++) {
            if (fwd.js[1][i] === 0) assert.equal(fwd.be[1][i], 0, `softmax mask [${i}]`);
          }
          const y = fwd.js[1].slice(0, rows * n);
          const gy = randArray(rng, rows * n);
          const bwd = runBoth(be(), [y, gy, padded(rows * n)], (b, [yi, g, gx]) =>
            b.softmaxBackward(yi, g, gx, rows, n),
          );
          assertClose(bwd.be[2], bwd.js[2], ULP, `softmaxBackward ${what}`, 1e-7);
        }
        const big = runBoth(
          be(),
          [Float32Array.from([1000, 999, -1000, 0]), padded(4)],
          (b, [x, o]) => b.softmax(x, o, 1, 4, 0),
        );
        assert.ok(big.be[1].every(Number.isFinite), `large logits stay finite ${cfg}`);
      });
    },
  );

  test(
    `${name}: crossEntropy and its backward match the reference; ignore index; bad targets throw`,
    { skip },
    () => {
      const rng = makeRng(11);
      const { crossEntropyProbs: probsTol, crossEntropyLosses: lossTol } = tol;
      target.forEachSimd((cfg) => {
        for (const [rows, v] of [
          [1, 1],
          [5, 7],
          [61, 1058],
          [13, 33],
        ]) {
          const logits = randArray(rng, rows * v, -10, 10);
          const targets = randInts(rng, rows, 0, v);
          targets[0] = -1; // ignored row
          const fwd = runBoth(
            be(),
            [logits, targets, padded(rows * v), padded(rows)],
            (b, [l, t, probs, losses]) => b.crossEntropy(l, t, probs, losses, rows, v),
          );
          const what = `${cfg} ${rows}x${v}`;
          assertClose(fwd.be[2], fwd.js[2], probsTol.rel, `probs ${what}`, probsTol.floor);
          assertClose(fwd.be[3], fwd.js[3], lossTol.rel, `losses ${what}`, lossTol.floor);
          assert.equal(fwd.be[3][0], 0);
          const probs = fwd.js[2].slice(0, rows * v);
          const gLoss = randArray(rng, rows);
          const bwd = runBoth(be(), [probs, targets, gLoss, padded(rows * v)], (b, [p, t, gl, g]) =>
            b.crossEntropyBackward(p, t, gl, g, rows, v),
          );
          assertClose(bwd.be[3], bwd.js[3], ULP, `crossEntropyBackward ${what}`, 1e-7);
        }
      });
      const b = be();
      const l = b.alloc(3, 'float32');
      const t3 = b.upload(new Int32Array([3]));
      const p = b.alloc(3, 'float32');
      const loss = b.alloc(1, 'float32');
      assert.throws(() => b.crossEntropy(l, t3, p, loss, 1, 3), {
        name: 'RangeError',
        message: /target 3 at row 0 is out of range for 3 classes/,
      });
      const t5 = b.upload(new Int32Array([5]));
      assert.throws(() => b.crossEntropyBackward(p, t5, loss, l, 1, 3), /target 5/);
      for (const buf of [l, t3, p, loss, t5]) b.free(buf);
    },
  );

  // ---- errors -------------------------------------------------------------------------------

  test(`${name}: bad arguments throw clear JS errors instead of crashing`, { skip }, () => {
    const b = be();
    const x = b.alloc(4, 'float32');
    const xi = b.alloc(4, 'int32');
    assert.throws(() => b.unary('exp', target.foreignBuffer(), x, 4), {
      name: 'TypeError',
      message: target.foreignMessage,
    });
    assert.throws(() => b.unary('exp', x, x, 5), {
      name: 'RangeError',
      message: /has 4 elements but the kernel needs at least 5/,
    });
    assert.throws(() => b.unary('cosh' as UnaryOp, x, x, 4), /unknown op 'cosh'/);
    assert.throws(() => b.unary('exp', x, x, 1.5), /n must be a non-negative integer/);
    assert.throws(() => b.gather(x, x, x, 1, 1, 1), target.idxMessage);
    const p = matmulParams({ batch: 2, m: 2, n: 2, k: 1, strideA: 2, strideB: 2, strideC: 4 });
    assert.throws(() => b.matmul(x, x, x, p), /C has 4 elements but the kernel needs at least 8/);
    assert.throws(() => b.copyBlock(x, x, 1, 4, 3, 4, 0, 2, 1, false), /range out of bounds/);
    assert.throws(() => b.copyBlock(x, xi, 1, 4, 0, 4, 0, 2, 1, false), /same dtype/);
    assert.throws(() => b.permute(x, x, [2, 2], [0, 0], 'float32'), /not a permutation/);
    assert.throws(() => b.permute(x, xi, [2, 2], [1, 0], 'float32'), /must both hold float32/);
    assert.throws(() => b.binary('add', x, x, x, [2, 2], [2], [2, 1]), /one rank/);
    assert.throws(() => b.nearestCode(x, x, xi, x, 1, 0, 1), /at least one row/);
    assert.throws(() => b.adam(x, x, x, x, 4, ADAM_STEP0), /step is 1-based/);
    for (const buf of [x, xi]) b.free(buf);
  });
}
