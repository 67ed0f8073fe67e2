// What only the cuda backend has: device buffers (zero-filled alloc, upload/download round trips,
// idempotent free, use after free), the deferred index checks, its stride and buffer errors, its
// device report, and a short training run of a tiny GPT that gives the reference backend's losses
// and reads nothing back to the host per step. Its kernels are tested against the reference
// backend, on odd sizes and on the launch regimes each kernel switches between, by the suite
// parametrised by backend (backends.test.ts, backends_fused.test.ts).
//
// Where it runs: on a machine with a CUDA device and the addon built with nvcc. Elsewhere every
// test is skipped with loadCudaBackend()'s reason. MMGPT_CUDA_ADDON=native/build/cuda-emu/
// mmgpt_cuda_emu.node runs the same tests on the CPU emulator of the kernels (native/cuda/emu:
// every CUDA thread a fiber, guard pages after every buffer), which checks the kernels' indexing,
// barriers and host logic without a GPU (slowly; not in the default suite).
//
// Training: 20 Adam steps of a 2-layer GPT with dropout from the same seed; every step's loss
// within 2e-3 (absolute, losses ~4.6) of the reference backend's, the first within 1e-5.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { DType } from '../../src/engine/backend';
import type { CudaStats } from '../../src/engine/backends/cuda';
import { cudaBackendInfo, cudaStats, setCudaSyncChecks } from '../../src/engine/backends/cuda';
import { getBackend, isBackend, loadBackend, setBackend } from '../../src/engine/registry';
import { makeTrainStep } from '../../src/perf/train_step';
import { matmulParams } from './backend_helpers';
import { backendOf, targetOf } from './backend_targets';
import * as F from '../../src/engine/ops';
import { keep, tidy } from '../../src/engine/tensor';
import { GPT } from '../../src/gpt/model';
import { AdamW } from '../../src/nn/optim';
import { Rng as ModelRng } from '../../src/nn/rng';
import type { GptConfig } from '../../src/gpt/model';

const target = targetOf('cuda');
const { skip } = target;
const cuda = () => backendOf(target);

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

// ---- errors ------------------------------------------------------------------------------------------------

test('deferred index checks surface at the next synchronisation, once', { skip }, () => {
  const be = cuda();
  const table = be.upload(new Float32Array(6));
  const out = be.alloc(4, 'float32');
  const bad = be.upload(new Int32Array([0, 3]));
  setCudaSyncChecks(false);
  try {
    be.gather(table, bad, out, 2, 2, 3);
    assert.throws(() => be.sync(), /index 3 at row 1 .*next synchronisation/);
    be.sync(); // reported once
  } finally {
    setCudaSyncChecks(true);
  }
  for (const buf of [table, out, bad]) be.free(buf);
});

test('bad strides, foreign and freed buffers throw clear JS errors', { skip }, () => {
  const be = cuda();
  const x = be.alloc(4, 'float32');
  const c = be.alloc(16, 'float32');
  const p = matmulParams({ batch: 2, m: 2, n: 2, k: 1, strideA: 2, strideB: 2, strideC: 3 });
  assert.throws(() => be.matmul(x, x, c, p), /strideC \(3\) must be 0 or at least m\*n/);
  assert.throws(() => be.free({}), /must be a cuda buffer/);
  for (const buf of [x, c]) be.free(buf);
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

/** A 2-layer GPT with dropout, small enough for the emulator. */
const TINY_GPT: GptConfig = {
  vocabSize: 96,
  blockSize: 23,
  nLayer: 2,
  nHead: 2,
  nEmbd: 32,
  dropout: 0.1,
};

test('a short training run matches the reference backend (20 steps, same seed)', { skip }, (t) => {
  // A tiny GPT with dropout: every op of a training step (embeddings, layerNorm, attention with
  // the causal softmax, GeLU MLP, cross-entropy, dropout masks, Adam) on both backends.
  const steps = 20;
  const reference = isBackend(loadBackend('cpu')) ? 'cpu' : 'js';
  const previous = getBackend().name;
  const run = (name: string): { losses: number[]; perStep?: Record<string, number> } => {
    setBackend(name);
    const { step } = makeTrainStep(4, TINY_GPT, 4242);
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
  const previous = getBackend().name;
  setBackend('cuda');
  setCudaSyncChecks(false);
  try {
    const model = new GPT(TINY_GPT, new ModelRng(5));
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
