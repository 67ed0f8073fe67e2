// Modules, optimisers and schedules: names, overfitting a fixed batch, memory stability.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import * as F from '../../src/engine/ops';
import { tidy, memoryStats } from '../../src/engine/tensor';
import { Rng } from '../../src/nn/rng';
import { Linear, Conv2d, ConvTranspose2d, Module } from '../../src/nn/module';
import { Adam, AdamW, warmupCosineLr, warmupStableDecayLr, constantLr } from '../../src/nn/optim';
import { GPT } from '../../src/gpt/model';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const tinyConfig = { vocabSize: 11, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0 };

test('parameter names follow GPT-2 (nested, numbered)', () => {
  const model = new GPT(tinyConfig, new Rng(0));
  const names = model.namedParameters().map(([n]) => n);
  for (const n of [
    'wte.weight',
    'wpe.weight',
    'h.0.ln_1.weight',
    'h.0.attn.c_attn.weight',
    'h.1.mlp.c_proj.bias',
    'ln_f.bias',
    'lm_head.weight',
  ]) {
    assert.ok(names.includes(n), `missing ${n}`);
  }
  assert.deepEqual(model.h.items[0].attn.c_attn.weight.shape, [16, 48]);
  assert.equal(model.lm_head.bias, null);
});

test('state dict round trip, and a mismatched one is rejected by name', () => {
  const a = new GPT(tinyConfig, new Rng(1));
  const b = new GPT(tinyConfig, new Rng(2));
  b.loadStateDict(a.stateDict());
  const x = F.tensor([1, 2, 3, 4], [1, 4], 'int32');
  assert.deepEqual(a.forward(x).toArray(), b.forward(x).toArray());
  const sd = a.stateDict();
  delete sd['wpe.weight'];
  assert.throws(
    () => b.loadStateDict(sd, 'ckpt.safetensors'),
    /ckpt.safetensors.*missing: wpe.weight/,
  );
  const sd2 = a.stateDict();
  sd2['ln_f.bias'] = { shape: [3], data: new Float32Array(3) };
  assert.throws(() => b.loadStateDict(sd2), /'ln_f.bias' has shape \[3\], the model needs \[16\]/);
});

test('a tiny GPT overfits one fixed batch', () => {
  const rng = new Rng(3);
  const model = new GPT(tinyConfig, rng);
  const opt = new Adam(model.namedParameters(), { lr: 1e-2 });
  const data = new Int32Array(4 * 12);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(11);
  const batch = F.tensor(data, [4, 12], 'int32');
  let first = 0;
  let last = 0;
  for (let step = 0; step < 150; step++) {
    last = tidy(() => {
      const loss = model.loss(batch);
      loss.backward();
      opt.update();
      opt.zeroGrad();
      return loss.item();
    });
    if (step === 0) first = last;
  }
  assert.ok(first > 2, `initial loss ${first} should be near ln(11)`);
  assert.ok(last < 0.05, `final loss ${last} should be near 0`);
});

test('1000 training steps leave live tensors and bytes unchanged', () => {
  const rng = new Rng(4);
  const model = new GPT({ ...tinyConfig, nLayer: 1, dropout: 0.1 }, rng);
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, clipNorm: 1 });
  const batch = F.tensor(
    Int32Array.from({ length: 2 * 8 }, (_, i) => i % 11),
    [2, 8],
    'int32',
  );
  const step = () =>
    tidy(() => {
      // A fresh upload every step, as the trainer does.
      const loss = model.loss(F.tensor(batch.toArray(), batch.shape, 'int32'));
      loss.backward();
      opt.update();
      opt.zeroGrad();
    });
  step();
  const before = memoryStats();
  for (let i = 0; i < 1000; i++) step();
  const after = memoryStats();
  assert.equal(after.liveTensors, before.liveTensors);
  assert.equal(after.liveStorages, before.liveStorages);
  assert.equal(after.liveBytes, before.liveBytes);
  // Freed buffers are recycled, and the pool does not grow either (uploads are not pooled).
  assert.equal(after.pooledBytes, before.pooledBytes);
});

test('Adam matches the formula by hand; AdamW decays; clipping scales the gradient', () => {
  class One extends Module {
    readonly w = this.param('w', F.tensor([1, -2], [2]));
  }
  const m = new One();
  const opt = new Adam(m.namedParameters(), { lr: 0.1 });
  F.sum(F.mul(m.w, F.tensor([3, 4], [2]))).backward();
  opt.update();
  // Step 1: mhat = g, vhat = g^2, update = lr * g / (|g| + eps) = lr * sign(g).
  const w = m.w.toArray();
  assert.ok(Math.abs(w[0] - 0.9) < 1e-6 && Math.abs(w[1] + 2.1) < 1e-6, `${w}`);
  assert.equal(opt.state().step, 1);

  const m2 = new One();
  const opt2 = new AdamW(m2.namedParameters(), { lr: 0.1, weightDecay: 0.5, clipNorm: 1 });
  F.sum(F.mul(m2.w, F.tensor([3, 4], [2]))).backward();
  opt2.update();
  assert.ok(Math.abs(opt2.lastGradNorm - 5) < 1e-6);
  const w2 = m2.w.toArray();
  // decoupled: p -= lr * (sign(g) + wd * p)
  assert.ok(Math.abs(w2[0] - (1 - 0.1 * (1 + 0.5))) < 1e-5, `${w2}`);
});

test('learning-rate schedules', () => {
  const s = warmupCosineLr(1, 10, 110, 0.1);
  assert.ok(Math.abs(s(0) - 0.1) < 1e-12);
  assert.ok(Math.abs(s(9) - 1) < 1e-12);
  assert.ok(Math.abs(s(60) - 0.55) < 1e-12);
  assert.ok(Math.abs(s(110) - 0.1) < 1e-12);
  assert.equal(constantLr(3)(1000), 3);
  assert.throws(() => warmupCosineLr(1, 20, 10), /warmup/);
  // Warm-up 10, the peak until step 70, then linear to 0.1 at step 110.
  const w = warmupStableDecayLr(1, 10, 40, 110, 0.1);
  assert.ok(Math.abs(w(0) - 0.1) < 1e-12);
  assert.equal(w(10), 1);
  assert.equal(w(69), 1);
  assert.ok(Math.abs(w(90) - 0.55) < 1e-12);
  assert.ok(Math.abs(w(110) - 0.1) < 1e-12);
  assert.throws(() => warmupStableDecayLr(1, 10, 101, 110), /decaySteps/);
});

test('Conv2d / ConvTranspose2d modules: shapes and a learnable autoencoder step', () => {
  const rng = new Rng(5);
  const enc = new Conv2d(3, 4, 4, rng, 2, 1);
  const dec = new ConvTranspose2d(4, 3, 4, rng, 2, 1);
  const x = F.tensor(
    Float32Array.from({ length: 2 * 3 * 8 * 8 }, () => rng.uniform()),
    [2, 3, 8, 8],
  );
  const params: [string, import('../../src/engine/tensor').Tensor][] = [
    ...enc.namedParameters('enc.'),
    ...dec.namedParameters('dec.'),
  ];
  const opt = new Adam(params, { lr: 1e-2 });
  let first = 0;
  let last = 0;
  for (let i = 0; i < 60; i++) {
    last = tidy(() => {
      const z = enc.forward(x);
      assert.deepEqual(z.shape, [2, 4, 4, 4]);
      const y = dec.forward(F.relu(z));
      assert.deepEqual(y.shape, [2, 3, 8, 8]);
      const loss = F.mean(F.square(F.sub(y, x)));
      loss.backward();
      opt.update();
      opt.zeroGrad();
      return loss.item();
    });
    if (i === 0) first = last;
  }
  assert.ok(last < first * 0.5, `loss ${first} -> ${last}`);
  void Linear;
});
