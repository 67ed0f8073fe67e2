// What only the native cpu backend has: its host buffers (recycled zero-filled, a double free
// handing a buffer out once) and its configuration (thread count and SIMD build, set and
// reported), a tiny GPT's training run against the reference backend (its attention fused), the
// steady-state step's allocations and fills, and weight-gradient GEMMs and Newton-Schulz's
// batched (symmetric) products that are the same bits on 1 and 2 threads. Its kernels are tested against the reference backend, in every SIMD build
// and with 1 thread as well as the default count, by the suite parametrised by backend
// (backends.test.ts, backends_fused.test.ts). If the addon is not built every test is skipped with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { cpuBackendInfo, loadNativeAddon, setCpuThreads } from '../../src/engine/backends/cpu';
import { getBackend, setBackend } from '../../src/engine/registry';
import type { GptConfig } from '../../src/gpt/model';
import { makeTrainStep } from '../../src/perf/train_step';
import * as F from '../../src/engine/ops';
import { tidy } from '../../src/engine/tensor';
import { newtonSchulz } from '../../src/nn/muon';
import { f32, i32 } from './backend_helpers';
import { backendOf, targetOf } from './backend_targets';

const target = targetOf('cpu');
const { skip } = target;
const loadedAddon = loadNativeAddon();
const addon = 'error' in loadedAddon ? null : loadedAddon.addon;

test(
  'freed buffers are recycled zero-filled, and a double free hands a buffer out once',
  { skip },
  () => {
    const be = backendOf(target);
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
  const simdPaths = addon.availableSimdPaths();
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

/** A 2-layer GPT without dropout: its attention runs in the fused kernels. */
const TINY_GPT: GptConfig = {
  vocabSize: 96,
  blockSize: 23,
  nLayer: 2,
  nHead: 2,
  nEmbd: 32,
  dropout: 0,
};

test('a short training run (fused attention) matches the reference backend', { skip }, () => {
  const previous = getBackend().name;
  const run = (name: string): number[] => {
    setBackend(name);
    const { step } = makeTrainStep(4, TINY_GPT, 4242);
    return Array.from({ length: 8 }, () => step());
  };
  try {
    const ref = run('js');
    const got = run('cpu');
    for (let s = 0; s < ref.length; s++) {
      assert.ok(Math.abs(got[s] - ref[s]) <= 1e-4, `step ${s}: cpu loss ${got[s]} vs js ${ref[s]}`);
    }
    assert.ok(got[got.length - 1] < got[0], 'the loss falls');
  } finally {
    setBackend(previous);
  }
});

test(
  'the steady-state training step allocates nothing and fills only what it must',
  { skip },
  () => {
    const previous = getBackend().name;
    const be = setBackend('cpu');
    const counts = { alloc: 0, fill: 0 };
    const alloc = be.alloc.bind(be);
    const fill = be.fill.bind(be);
    try {
      const { step } = makeTrainStep(4, { ...TINY_GPT, blockSize: 57 }, 7);
      for (let s = 0; s < 3; s++) step();
      be.alloc = (size, dtype) => (counts.alloc++, alloc(size, dtype));
      be.fill = (out, n, value) => (counts.fill++, fill(out, n, value));
      for (let s = 0; s < 3; s++) step();
      assert.equal(counts.alloc, 0, 'fresh buffers in 3 steady-state steps');
      // Per step: the embeddings' scatter-add targets (wte, wpe) are zeroed and the seed
      // gradient set to 1; no other buffer is filled.
      assert.equal(counts.fill, 3 * 3, 'fills in 3 steady-state steps');
    } finally {
      be.alloc = alloc;
      be.fill = fill;
      setBackend(previous);
    }
  },
);

test(
  'LayerNorm rows are the same bits in a group of rows as alone, on every SIMD build',
  { skip },
  () => {
    // The kernels run four rows at a time (their reductions in flight together) and the rest
    // one by one: a row's out, mean, rstd and gx must not depend on which way it went.
    assert.ok(addon);
    const be = backendOf(target);
    const original = addon.simdPath();
    let seed = 11;
    const rand = (n: number, scale: number): Float32Array =>
      Float32Array.from({ length: n }, () => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return (seed / 4294967296 - 0.3) * scale;
      });
    try {
      for (const simd of addon.availableSimdPaths()) {
        addon.setSimdPath(simd);
        for (const [rows, d] of [
          [9, 128],
          [7, 100],
          [6, 3],
          [13, 17],
        ] as const) {
          const x = rand(rows * d, 4);
          const r = rand(rows * d, 2);
          const w = rand(d, 1.5);
          const b = rand(d, 1);
          const gy = rand(rows * d, 1);
          const all = {
            out: new Float32Array(rows * d),
            mean: new Float32Array(rows),
            rstd: new Float32Array(rows),
            h: new Float32Array(rows * d),
            out2: new Float32Array(rows * d),
            gx: new Float32Array(rows * d),
          };
          be.layerNorm(x, w, b, all.out, all.mean, all.rstd, rows, d, 1e-5);
          const scratch = [new Float32Array(rows), new Float32Array(rows)];
          be.addLayerNorm(x, r, w, b, all.h, all.out2, scratch[0], scratch[1], rows, d, 1e-5);
          be.layerNormBackward(
            x,
            w,
            all.mean,
            all.rstd,
            gy,
            all.gx,
            new Float32Array(d),
            new Float32Array(d),
            rows,
            d,
          );
          for (let i = 0; i < rows; i++) {
            const row = (a: Float32Array) => a.slice(i * d, (i + 1) * d);
            const one = {
              out: new Float32Array(d),
              mean: new Float32Array(1),
              rstd: new Float32Array(1),
              h: new Float32Array(d),
              out2: new Float32Array(d),
              gx: new Float32Array(d),
            };
            be.layerNorm(row(x), w, b, one.out, one.mean, one.rstd, 1, d, 1e-5);
            const s1 = [new Float32Array(1), new Float32Array(1)];
            be.addLayerNorm(row(x), row(r), w, b, one.h, one.out2, s1[0], s1[1], 1, d, 1e-5);
            be.layerNormBackward(
              row(x),
              w,
              one.mean,
              one.rstd,
              row(gy),
              one.gx,
              new Float32Array(d),
              new Float32Array(d),
              1,
              d,
            );
            const what = `${simd} ${rows}x${d} row ${i}`;
            assert.deepEqual(one.out, row(all.out), `layerNorm out ${what}`);
            assert.deepEqual(
              [one.mean[0], one.rstd[0]],
              [all.mean[i], all.rstd[i]],
              `mean, rstd ${what}`,
            );
            assert.deepEqual(one.out2, row(all.out2), `addLayerNorm out ${what}`);
            assert.deepEqual(one.gx, row(all.gx), `layerNormBackward gx ${what}`);
          }
        }
      }
    } finally {
      addon.setSimdPath(original);
    }
  },
);

test(
  'deep weight gradients on 2 threads equal 1 thread bit for bit (own and swapped tasks)',
  { skip },
  () => {
    const be = backendOf(target);
    const threads = cpuBackendInfo();
    const nt = 'error' in threads ? 1 : threads.threads;
    let seed = 3;
    const rand = (n: number): Float32Array =>
      Float32Array.from({ length: n }, () => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed / 4294967296 - 0.5;
      });
    try {
      for (const [m, n, k, alpha, accumulate] of [
        [70, 300, 1000, 1, false], // wide C: own tasks
        [300, 70, 1000, 1, false], // narrow C: the transposed product
        [300, 70, 1000, 0.5, true],
        [129, 33, 700, 1, false],
        [40, 40, 600, 1, false], // square C (the step's 128 x 128): one column block per thread
        [40, 90, 600, 1, true],
      ] as const) {
        const a = rand(k * m);
        const b = rand(k * n);
        const c0 = rand(m * n);
        const p = {
          batch: 1,
          m,
          n,
          k,
          transA: true,
          transB: false,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          alpha,
          accumulate,
        };
        const run = (t: number): Float32Array => {
          setCpuThreads(t);
          const c = c0.slice();
          be.matmul(a, b, c, p);
          return c;
        };
        assert.deepEqual(
          run(2),
          run(1),
          `[${k}x${m}]^T @ [${k}x${n}] alpha ${alpha} acc ${accumulate}`,
        );
      }
    } finally {
      setCpuThreads(nt);
    }
  },
);

test(
  'Newton-Schulz on 2 threads equals 1 thread bit for bit (symmetric products per item and on a team)',
  { skip },
  () => {
    const previous = getBackend().name;
    setBackend('cpu');
    const threads = cpuBackendInfo();
    const nt = 'error' in threads ? 1 : threads.threads;
    let seed = 5;
    const rand = (n: number): number[] =>
      Array.from({ length: n }, () => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed / 4294967296 - 0.5;
      });
    try {
      // [slices, rows, cols]: several items (one per thread) in G's space, tall and wide; one
      // item whose products the team shares (the mirror split over the threads); X's space.
      for (const shape of [
        [4, 48, 160],
        [2, 150, 40],
        [1, 70, 300],
        [3, 40, 40],
      ]) {
        const data = rand(shape[0]! * shape[1]! * shape[2]!);
        const run = (t: number): Float32Array => {
          setCpuThreads(t);
          return tidy(() => newtonSchulz(F.tensor(data, shape), 5, true).toFloat32Array());
        };
        const one = run(1);
        assert.ok(one.every(Number.isFinite));
        assert.deepEqual(run(2), one, `[${shape}]`);
      }
    } finally {
      setCpuThreads(nt);
      setBackend(previous);
    }
  },
);
