// The fused training-step kernels of the Backend interface (crossEntropyMean, biasGelu and its
// backward, addLayerNorm, adamMulti) agree with the reference backend (backends/js.ts) on every
// native backend that loads: one suite parametrised by backend, with the tolerances per backend.
// Sizes are odd (1, primes, the model's 1058 classes) and cross the kernels' regimes (ignored
// and all-ignored targets, > 24 tensors and tensors of several 4096-element blocks for the
// multi-tensor Adam, clipping on and off). Outputs carry sentinel padding, so a kernel writing
// past its last element fails. The cuda backend runs on a GPU or, with MMGPT_CUDA_ADDON=native/
// build/cuda-emu/mmgpt_cuda_emu.node, on the CPU emulator of its kernels; elsewhere it is skipped.
//
// Tolerances (relative to max(|expected|, floor), per element), cpu / cuda:
// - crossEntropyMean gradient: 2e-6 (floor 1e-6 / count) / 4 ulp: the cpu's float32 exp of a
//   float32 difference (as its crossEntropy), the device's float64 exp; losses 1e-6 / 4 ulp;
//   the mean loss 1e-6 / 4 ulp (float64 sums in another order);
// - biasGelu and its gx: 2e-6, absolute below 1 / 1 ulp (as the unary gelu tests); gBias: the
//   float64 column sums of those gx, 2e-6 relative to the column's sum of |gx|;
// - addLayerNorm: h exact (one float32 add); out, mean, rstd 1 ulp (floor 1e-6), as layerNorm;
// - adamMulti: p, m, v 4 ulp (floor 1e-30) against the reference's per-tensor adam with the
//   clip's gradient scale; the norm 1e-12 relative.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { AdamParams, Backend } from '../../src/engine/backend';
import { jsBackend } from '../../src/engine/backends/js';
import { loadCpuBackend } from '../../src/engine/backends/cpu';
import { loadCudaBackend } from '../../src/engine/backends/cuda';
import { assertClose, makeRng, padded, randArray, runBoth, ULP } from './backend_helpers';

interface Target {
  name: string;
  backend: Backend | { error: string };
  tol: {
    ceGrad: number;
    ceLoss: number;
    gelu: number;
    ln: number;
    adam: number;
  };
}

const targets: Target[] = [
  {
    name: 'cpu',
    backend: loadCpuBackend(),
    tol: { ceGrad: 2e-6, ceLoss: 1e-6, gelu: 2e-6, ln: ULP, adam: 4 * ULP },
  },
  {
    name: 'cuda',
    backend: loadCudaBackend(),
    tol: { ceGrad: 4 * ULP, ceLoss: 4 * ULP, gelu: ULP, ln: ULP, adam: 4 * ULP },
  },
];

// ---- the suite, once per backend ---------------------------------------------------------------

for (const target of targets) {
  const skip = 'error' in target.backend ? `${target.name}: ${target.backend.error}` : false;
  const be = (): Backend => {
    if ('error' in target.backend) throw new Error(target.backend.error);
    return target.backend;
  };
  const { tol } = target;

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
        assertClose(out.be[4], out.js[4], tol.ceGrad, `${what} gLogits`, 1e-6 / count);
        assertClose(out.be[2], out.js[2], tol.ceLoss, `${what} losses`, 1e-6);
        assertClose(out.be[3], out.js[3], tol.ceLoss, `${what} loss`, 1e-6);
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
      assertClose(fwd.be[2], fwd.js[2], tol.gelu, what, 1);
      const bwd = runBoth(
        be(),
        [x, bias, gy, padded(rows * n), padded(n)],
        (b, [xb, bb, g, gx, gb]) => b.biasGeluBackward(xb, bb, g, gx, gb, rows, n),
      );
      assertClose(bwd.be[3], bwd.js[3], tol.gelu, `${what} gx`, 1);
      for (let j = 0; j < n; j++) {
        let absSum = 0;
        for (let r = 0; r < rows; r++) absSum += Math.abs(bwd.js[3][r * n + j]);
        const diff = Math.abs(bwd.be[4][j] - bwd.js[4][j]);
        assert.ok(diff <= 2e-6 * Math.max(absSum, 1e-6), `${what} gBias[${j}]: diff ${diff}`);
      }
      assert.equal(bwd.be[4][n], 7.5, `${what} gBias sentinel`);
    }
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
      assertClose(out.be[5], out.js[5], tol.ln, `${what} out`, 1e-6);
      assertClose(out.be[6], out.js[6], tol.ln, `${what} mean`, 1e-6);
      assertClose(out.be[7], out.js[7], tol.ln, `${what} rstd`);
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
      const params: AdamParams = {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weightDecay: 0,
        decoupled,
        step: 3,
        gradScale: 1,
      };
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
        assertClose(t.p, ref.result[i].p, tol.adam, `${what} p[${i}]`);
        assertClose(t.m, ref.result[i].m, tol.adam, `${what} m[${i}]`);
        assertClose(t.v, ref.result[i].v, tol.adam, `${what} v[${i}]`);
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
          {
            lr: 1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay: 0,
            decoupled: true,
            step: 1,
            gradScale: 1,
          },
          0,
          norm,
        ),
      /grads has 0 elements but params has 1|a list of 0/,
    );
    b.free(one);
    b.free(norm);
  });
}
