// Every native backend (cpu, cuda; backend_targets.ts) agrees with the reference backend
// (backends/js.ts) on the kernels beyond the core ones of backends.test.ts: dropoutMask, im2col,
// col2im, nearestCode, adam, and the fused training-step kernels (crossEntropyMean, biasGelu and
// its backward, attention and its backward, addLayerNorm, adamMulti), across their regimes (ignored and all-ignored targets;
// > 24 tensors and tensors of several 4096-element blocks for the multi-tensor Adam, clipping on
// and off). Outputs carry sentinel padding, so a kernel writing past its last element fails.
//
// Tolerances (relative to max(|expected|, floor), per element) shared by both backends; those
// that differ (crossEntropyMean, biasGelu) are in the table of backend_targets.ts:
// - im2col, col2im, nearestCode indices, dropoutMask: exact; nearestCode distances 1 ulp;
// - adam: 1 ulp (float64 like the reference; FMA contraction);
// - biasGelu's gBias: the float64 column sums of its gx, 2e-6 relative to the column's sum of |gx|;
// - addLayerNorm: h exact (one float32 add); out, mean, rstd 1 ulp (floor 1e-6), as layerNorm;
// - attention (probs, out) and attentionBackward (gQkv): float32 sums against the reference's
//   float64 ones, relative with a floor of 0.1 (inputs of order 1), tol.attention;
// - adamMulti: p, m, v 4 ulp (floor 1e-30) against the reference's per-tensor adam with the
//   clip's gradient scale; the norm 1e-12 relative.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { AdamParams, Backend, Conv2dGeometry } from '../../src/engine/backend';
import { convOutSize } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import { assertClose, makeRng, padded, randArray, runBoth, ULP } from './backend_helpers';
import { TARGETS, backendOf, sized } from './backend_targets';

/** The Adam settings of the adamMulti test (its decoupled flag varies). */
const ADAM_MULTI: AdamParams = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: false,
  step: 3,
  gradScale: 1,
};

for (const target of TARGETS) {
  const { skip, tol } = target;
  const be = () => backendOf(target);
  const big = sized(target, 100003, 10007);

  test(`${target.name}: dropoutMask is bit-identical to the reference`, { skip }, () => {
    for (const [n, p, seed] of [
      [1, 0.5, 0],
      [257, 0.1, 12345],
      [big, 0.3, 0xdeadbeef],
      [64, 0, 7],
      [100, 1, 3], // keeps nothing (scale 1/0 is never used)
      [5000, 3 / 16777216, 9], // threshold at the uniform's resolution
    ]) {
      target.forEachConfig((cfg) => {
        const r = runBoth(be(), [padded(n)], (b, [out]) => b.dropoutMask(out, n, p, seed));
        assertClose(r.be[0], r.js[0], 0, `${target.name} dropoutMask n=${n} p=${p} ${cfg}`);
      });
    }
  });

  test(`${target.name}: im2col and col2im match the reference`, { skip }, () => {
    const rng = makeRng(12);
    target.forEachConfig((cfg) => {
      for (const [n, c, h, w, kh, kw, stride, pad] of [
        [1, 1, 1, 1, 1, 1, 1, 0],
        [2, 3, 7, 5, 3, 3, 1, 1],
        [1, 2, 13, 13, 4, 4, 2, 1],
        [3, 5, 28, 28, 3, 3, 2, 0],
        [1, 1, 5, 7, 2, 3, 3, 2],
      ]) {
        const ho = convOutSize(h, kh, stride, pad);
        const wo = convOutSize(w, kw, stride, pad);
        const g: Conv2dGeometry = { n, c, h, w, kh, kw, stride, pad, ho, wo };
        const colsLen = n * c * kh * kw * ho * wo;
        const x = randArray(rng, n * c * h * w);
        const cols = randArray(rng, colsLen);
        const r = runBoth(
          be(),
          [x, padded(colsLen), cols, randArray(rng, n * c * h * w + 19)],
          (b, [xi, co, ci, xo]) => {
            b.im2col(xi, co, g);
            b.col2im(ci, xo, g);
          },
        );
        const what = `${target.name} ${JSON.stringify(g)} ${cfg}`;
        assertClose(r.be[1], r.js[1], 0, `im2col ${what}`);
        assertClose(r.be[3], r.js[3], 0, `col2im ${what}`);
      }
    });
  });

  test(
    `${target.name}: nearestCode matches the reference (indices exactly, lowest index on ties)`,
    {
      skip,
    },
    () => {
      const rng = makeRng(13);
      for (const [rows, k, d] of [
        [1, 1, 1],
        [7, 13, 5],
        [61, 64, 17],
        [300, 31, 64],
        [20, 300, 8], // more codes than cuda threads: each thread scans several
      ]) {
        const z = randArray(rng, rows * d);
        const codebook = randArray(rng, k * d);
        if (k > 2) codebook.copyWithin(2 * d, 0, d); // rows 0 and 2 tie: index 0 must win
        if (k > 2) z.set(codebook.subarray(0, d), 0);
        if (k > 200) codebook.copyWithin(200 * d, 5 * d, 6 * d); // a tie across cuda threads
        if (k > 200) z.set(codebook.subarray(5 * d, 6 * d), d);
        const r = runBoth(
          be(),
          [z, codebook, new Int32Array(rows + 19).fill(-3), padded(rows)],
          (b, [zi, cb, idx, dist]) => b.nearestCode(zi, cb, idx, dist, rows, k, d),
        );
        const what = `${target.name} nearestCode ${rows}x${k}x${d}`;
        assertClose(r.be[2], r.js[2], 0, `${what} idx`);
        assertClose(r.be[3], r.js[3], ULP, `${what} dist`, 1e-30);
      }
    },
  );

  test(
    `${target.name}: nearestCode at the tokenizer's size (1024 x 64) equals the exhaustive float64 search, near ties, exact ties and non-finite rows included`,
    {
      skip,
    },
    () => {
      // The cpu backend screens the codes with a float32 GEMM and measures the survivors in
      // float64; these rows are built so that a float32 distance alone would often pick wrong.
      const rng = makeRng(31);
      const k = 1024;
      const d = 64;
      const rows = sized(target, 640, 48);
      const codebook = randArray(rng, k * d);
      codebook.copyWithin(700 * d, 3 * d, 4 * d); // codes 3 and 700 are one vector: 3 must win
      codebook.copyWithin(1023 * d, 512 * d, 513 * d); // codes 512 and 1023 likewise
      for (let j = 0; j < d; j++) codebook[900 * d + j] = 0; // the zero code
      const z = randArray(rng, rows * d);
      for (let r = 0; r < rows; r++) {
        const row = z.subarray(r * d, (r + 1) * d);
        const a = (r * 37) % k;
        const b = (r * 101 + 7) % k;
        switch (r % 8) {
          case 0: // midway between two codes: their distances differ by rounding only
            for (let j = 0; j < d; j++) row[j] = 0.5 * (codebook[a * d + j] + codebook[b * d + j]);
            break;
          case 1: // on a duplicated code
            row.set(codebook.subarray((r % 16 < 8 ? 3 : 512) * d, (r % 16 < 8 ? 4 : 513) * d));
            break;
          case 2: // near one code, far from the origin (large |z|)
            for (let j = 0; j < d; j++) row[j] = 100 * codebook[a * d + j] + 1e-3 * row[j];
            break;
          case 3: // tiny vectors around the zero code
            for (let j = 0; j < d; j++) row[j] *= 1e-6;
            break;
          case 4: // a code plus a nudge of a few ulps
            for (let j = 0; j < d; j++) row[j] = codebook[a * d + j] * (1 + 2 ** -22);
            break;
          default: // random: ordinary rows
            break;
        }
      }
      z[5 * d + 3] = NaN; // a NaN row (case 5): index 0, distance NaN or inf as the reference says
      z[13 * d] = Infinity;
      const check = (label: string) => {
        const r = runBoth(
          be(),
          [z, codebook, new Int32Array(rows + 19).fill(-3), padded(rows)],
          (b, [zi, cb, idx, dist]) => b.nearestCode(zi, cb, idx, dist, rows, k, d),
        );
        const what = `${target.name} ${label} nearestCode ${rows}x${k}x${d}`;
        assertClose(r.be[2], r.js[2], 0, `${what} idx`);
        assertClose(r.be[3], r.js[3], ULP, `${what} dist`, 1e-30);
        // The planted cases decide what they should: the lower of two equal codes.
        assert.equal(r.js[2][1], 3, `${what}: row 1 sits on codes 3 and 700`);
        assert.equal(r.js[2][9], 512, `${what}: row 9 sits on codes 512 and 1023`);
      };
      target.forEachConfig(check);
    },
  );

  test(
    `${target.name}: adam matches the reference (Adam + L2 and AdamW, gradient scale)`,
    {
      skip,
    },
    () => {
      const rng = makeRng(14);
      target.forEachConfig((cfg) => {
        for (const n of [1, 7, 61, big]) {
          for (const decoupled of [false, true]) {
            const p = randArray(rng, n);
            const g = randArray(rng, n);
            const m = randArray(rng, n, -0.1, 0.1);
            const v = randArray(rng, n, 0, 0.01);
            const params = {
              lr: 3e-4,
              beta1: 0.9,
              beta2: 0.95,
              eps: 1e-8,
              weightDecay: 0.1,
              decoupled,
              step: 7,
              gradScale: 0.5,
            };
            const r = runBoth(be(), [p, g, m, v], (b, [pi, gi, mi, vi]) =>
              b.adam(pi, gi, mi, vi, n, params),
            );
            const what = `${target.name} adam n=${n} decoupled=${decoupled} ${cfg}`;
            assertClose(r.be[0], r.js[0], ULP, `${what} p`, 1e-6);
            assertClose(r.be[2], r.js[2], ULP, `${what} m`, 1e-9);
            assertClose(r.be[3], r.js[3], ULP, `${what} v`, 1e-12);
          }
        }
      });
    },
  );

  test(
    `${target.name}: crossEntropyMean matches the reference (ignored rows, bad targets)`,
    {
      skip,
    },
    () => {
      const rng = makeRng(11);
      const cases: [number, number, 'some' | 'none' | 'all'][] = [
        [1, 1, 'none'],
        [7, 33, 'some'],
        [37, 1058, 'some'],
        [5, 17, 'all'],
      ];
      for (const [rows, v, ignored] of cases) {
        const logits = randArray(rng, rows * v, -4, 4);
        const tg = new Int32Array(rows);
        for (let r = 0; r < rows; r++) {
          tg[r] = Math.floor(rng(0, v));
          if (ignored === 'all' || (ignored === 'some' && r % 3 === 1)) tg[r] = -1;
        }
        const count = Math.max(1, tg.filter((t) => t >= 0).length);
        const out = runBoth(
          be(),
          [logits, tg, padded(rows), padded(1), padded(rows * v)],
          (b, [l, t, losses, loss, g]) => b.crossEntropyMean(l, t, losses, loss, g, rows, v),
        );
        const what = `${target.name} crossEntropyMean ${rows}x${v} ignored=${ignored}`;
        assertClose(
          out.be[4],
          out.js[4],
          tol.crossEntropyMeanGrad,
          `${what} gLogits`,
          1e-6 / count,
        );
        assertClose(out.be[2], out.js[2], tol.crossEntropyMeanLoss, `${what} losses`, 1e-6);
        assertClose(out.be[3], out.js[3], tol.crossEntropyMeanLoss, `${what} loss`, 1e-6);
        if (ignored === 'all') assert.equal(out.be[3][0], 0);
      }
      // A target >= v is an error naming it.
      const b = be();
      const bufs = [
        b.upload(new Float32Array(6)),
        b.upload(Int32Array.from([0, 3])),
        b.alloc(2, 'float32'),
        b.alloc(1, 'float32'),
        b.alloc(6, 'float32'),
      ];
      assert.throws(() => {
        b.crossEntropyMean(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], 2, 3);
        b.sync();
      }, /target 3 at row 1/);
      bufs.forEach((x) => b.free(x));
    },
  );

  test(`${target.name}: biasGelu and biasGeluBackward match the reference`, { skip }, () => {
    const rng = makeRng(12);
    for (const [rows, n] of [
      [1, 1],
      [3, 17],
      [33, 70],
      [64, 512],
    ]) {
      const x = randArray(rng, rows * n, -4, 4);
      const bias = randArray(rng, n);
      const gy = randArray(rng, rows * n);
      const fwd = runBoth(be(), [x, bias, padded(rows * n)], (b, [xb, bb, o]) =>
        b.biasGelu(xb, bb, o, rows, n),
      );
      const what = `${target.name} biasGelu ${rows}x${n}`;
      assertClose(fwd.be[2], fwd.js[2], tol.biasGelu, what, 1);
      const bwd = runBoth(
        be(),
        [x, bias, gy, padded(rows * n), padded(n)],
        (b, [xb, bb, g, gx, gb]) => b.biasGeluBackward(xb, bb, g, gx, gb, rows, n),
      );
      assertClose(bwd.be[3], bwd.js[3], tol.biasGelu, `${what} gx`, 1);
      for (let j = 0; j < n; j++) {
        let absSum = 0;
        for (let r = 0; r < rows; r++) absSum += Math.abs(bwd.js[3][r * n + j]);
        const diff = Math.abs(bwd.be[4][j] - bwd.js[4][j]);
        assert.ok(diff <= 2e-6 * Math.max(absSum, 1e-6), `${what} gBias[${j}]: diff ${diff}`);
      }
      assert.equal(bwd.be[4][n], 7.5, `${what} gBias sentinel`);
    }
  });

  test(`${target.name}: attention and attentionBackward match the reference`, { skip }, () => {
    const rng = makeRng(21);
    for (const [batch, t, heads, hs] of [
      [1, 1, 1, 1],
      [2, 5, 3, 7],
      [3, 17, 2, 16],
      [2, 58, 4, 32],
      [1, 64, 1, 33],
    ]) {
      const c = heads * hs;
      const scale = 1 / Math.sqrt(hs);
      const qkv = randArray(rng, batch * t * 3 * c, -2, 2);
      const gy = randArray(rng, batch * t * c);
      const what = `${target.name} attention b=${batch} t=${t} heads=${heads} hs=${hs}`;
      target.forEachConfig((cfg) => {
        const fwd = runBoth(
          be(),
          [qkv, padded(batch * t * c), padded(batch * heads * t * t)],
          (b, [x, o, p]) => b.attention(x, o, p, batch, t, heads, hs, scale),
        );
        assertClose(fwd.be[2], fwd.js[2], tol.attention, `${what} ${cfg} probs`, 0.1);
        assertClose(fwd.be[1], fwd.js[1], tol.attention, `${what} ${cfg} out`, 0.1);
        const bwd = runBoth(
          be(),
          [qkv, fwd.js[2], gy, padded(batch * t * 3 * c)],
          (b, [x, p, g, gx]) => b.attentionBackward(x, p, g, gx, batch, t, heads, hs, scale),
        );
        assertClose(bwd.be[3], bwd.js[3], tol.attention, `${what} ${cfg} gQkv`, 0.1);
      });
    }
    const b = be();
    assert.throws(
      () =>
        b.attention(
          b.alloc(3 * 65, 'float32'),
          b.alloc(65, 'float32'),
          b.alloc(65 * 65, 'float32'),
          1,
          65,
          1,
          1,
          1,
        ),
      /t must be <= 64|t <= 64/,
    );
  });

  test(`${target.name}: addLayerNorm equals add followed by layerNorm`, { skip }, () => {
    const rng = makeRng(13);
    for (const [rows, d] of [
      [1, 1],
      [5, 31],
      [37, 128],
    ]) {
      const x = randArray(rng, rows * d, -3, 3);
      const r = randArray(rng, rows * d);
      const w = randArray(rng, d);
      const bias = randArray(rng, d);
      const out = runBoth(
        be(),
        [x, r, w, bias, padded(rows * d), padded(rows * d), padded(rows), padded(rows)],
        (b, [xb, rb, wb, bb, h, o, mean, rstd]) =>
          b.addLayerNorm(xb, rb, wb, bb, h, o, mean, rstd, rows, d, 1e-5),
      );
      const what = `${target.name} addLayerNorm ${rows}x${d}`;
      assertClose(out.be[4], out.js[4], 0, `${what} h`);
      assertClose(out.be[5], out.js[5], ULP, `${what} out`, 1e-6);
      assertClose(out.be[6], out.js[6], ULP, `${what} mean`, 1e-6);
      assertClose(out.be[7], out.js[7], ULP, `${what} rstd`);
    }
  });

  test(`${target.name}: adamMulti matches per-tensor adam with the clip's scale`, { skip }, () => {
    const rng = makeRng(14);
    const sizes = [1, 0, 4097, 33, 9000, ...Array.from({ length: 25 }, (_, i) => 3 + i * 7)];
    const data = sizes.map((n) => ({
      p: randArray(rng, n),
      g: randArray(rng, n, -0.1, 0.1),
      m: randArray(rng, n, -0.01, 0.01),
      v: randArray(rng, n, 0, 1e-4),
    }));
    const weightDecays = sizes.map((_, i) => (i % 3 === 0 ? 0 : 0.01 * i));
    for (const [clipNorm, decoupled] of [
      [0, false],
      [0.05, true], // clips (the norm is ~1.2)
      [100, true], // does not
    ] as [number, boolean][]) {
      const params: AdamParams = { ...ADAM_MULTI, decoupled };
      const run = (b: Backend) => {
        const up = data.map((t) => ({
          p: b.upload(t.p),
          g: b.upload(t.g),
          m: b.upload(t.m),
          v: b.upload(t.v),
        }));
        const norm = b.upload(padded(1));
        b.adamMulti(
          {
            params: up.map((t) => t.p),
            grads: up.map((t) => t.g),
            m: up.map((t) => t.m),
            v: up.map((t) => t.v),
            sizes,
            weightDecays,
          },
          params,
          clipNorm,
          norm,
        );
        const result = up.map((t, i) => ({
          p: b.download(t.p, sizes[i], 'float32'),
          m: b.download(t.m, sizes[i], 'float32'),
          v: b.download(t.v, sizes[i], 'float32'),
        }));
        const normHost = b.download(norm, 20, 'float32');
        up.forEach((t) => [t.p, t.g, t.m, t.v].forEach((x) => b.free(x)));
        b.free(norm);
        return { result, norm: normHost };
      };
      const ref = run(jsBackend);
      const got = run(be());
      const what = `${target.name} adamMulti clip=${clipNorm} decoupled=${decoupled}`;
      assertClose(got.norm, ref.norm, 1e-12, `${what} norm`);
      if (clipNorm === 0) assert.equal(got.norm[0], 0);
      got.result.forEach((t, i) => {
        assertClose(t.p, ref.result[i].p, 4 * ULP, `${what} p[${i}]`);
        assertClose(t.m, ref.result[i].m, 4 * ULP, `${what} m[${i}]`);
        assertClose(t.v, ref.result[i].v, 4 * ULP, `${what} v[${i}]`);
      });
    }
    // The lists must have one entry per parameter.
    const b = be();
    const one = b.upload(new Float32Array(2));
    const norm = b.alloc(1, 'float32');
    assert.throws(
      () =>
        b.adamMulti(
          { params: [one], grads: [], m: [one], v: [one], sizes: [2], weightDecays: [0] },
          { ...ADAM_MULTI, lr: 1, decoupled: true, step: 1 },
          0,
          norm,
        ),
      /grads has 0 elements but params has 1|a list of 0/,
    );
    b.free(one);
    b.free(norm);
  });
}
