// The VQ-VAE tokenizer: shapes and ranges, straight-through gradients, the EMA codebook and its
// dead-code restarts, overfitting a small batch, training logs, checkpoints and memory.
// Tiny configs on the reference backend; synthetic two-colour blob images made here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { tidy, memoryStats } from '../../src/engine/tensor';
import type { Tensor } from '../../src/engine/tensor';
import * as F from '../../src/engine/ops';
import { Rng } from '../../src/nn/rng';
import { Adam } from '../../src/nn/optim';
import { loadSafetensors, saveSafetensors } from '../../src/nn/safetensors';
import type { NamedArray } from '../../src/nn/safetensors';
import { gradCheck } from '../engine/gradcheck';
import {
  CODES_PER_IMAGE,
  GlobalContext,
  VQVAE_DEFAULTS,
  VectorQuantizer,
  VqVae,
  codeStatistics,
  foregroundWeights,
  vqVaeConfig,
} from '../../src/vqvae/model';
import {
  evaluateVqVae,
  loadVqVae,
  loadVqVaeCheckpoint,
  saveVqVae,
  trainVqVae,
  vqVaeFingerprint,
} from '../../src/vqvae/train';
import { IMAGE_VALUES, blobImages } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-vqvae-'));
}

test('config: presets, overrides and validation', () => {
  assert.equal(VQVAE_DEFAULTS.codebookSize, 1024);
  assert.equal(VQVAE_DEFAULTS.codeDim, 64);
  assert.equal(VQVAE_DEFAULTS.beta, 0.25);
  assert.equal(vqVaeConfig('tiny', { codebookSize: 48 }).codebookSize, 48);
  assert.throws(() => vqVaeConfig('tiny', { codeDim: 0 }), /codeDim must be a positive integer/);
  assert.throws(() => vqVaeConfig('tiny', { hiddenChannels: 15 }), /hiddenChannels must be even/);
  assert.throws(() => vqVaeConfig('tiny', { emaDecay: 1 }), /emaDecay must be in \[0, 1\)/);
  assert.throws(() => vqVaeConfig('huge' as 'tiny'), /unknown VQ-VAE preset 'huge'.*tiny/);
});

test('encode gives 49 codes per image in range; decode gives levels 0..3', () => {
  const model = new VqVae(vqVaeConfig('tiny'), new Rng(1));
  const images = blobImages(5, new Rng(2));
  const codes = model.encode(images, 5, 2); // batches of 2, 2, 1
  assert.ok(codes instanceof Int32Array);
  assert.equal(codes.length, 5 * CODES_PER_IMAGE);
  assert.equal(CODES_PER_IMAGE, 49);
  assert.ok(codes.every((c) => c >= 0 && c < 32));
  assert.deepEqual(model.encode(images.subarray(IMAGE_VALUES * 4), 1), codes.subarray(4 * 49));
  const decoded = model.decode(codes, 5, 3);
  assert.ok(decoded instanceof Uint8Array);
  assert.equal(decoded.length, 5 * IMAGE_VALUES);
  assert.ok(decoded.every((v) => v <= 3));
  assert.deepEqual(model.reconstruct(images, 5), decoded);
  // Errors a user can cause name what is accepted.
  const bad = images.slice(0, IMAGE_VALUES);
  bad[7] = 4;
  assert.throws(() => model.encode(bad, 1), /value 4 at index 7 is not a colour level.*0\.\.3/);
  assert.throws(() => model.encode(images, 6), /need 6 images/);
  assert.throws(() => model.decode(new Int32Array(48), 1), /need 1 x 49 codes, got 48/);
  assert.throws(
    () => model.decode(new Int32Array(49).fill(32), 1),
    /code 32 at 0 is out of range \(accepted: 0\.\.31\)/,
  );
});

test('straight-through gradients reach the encoder; the codebook is not a parameter', () => {
  const model = new VqVae(vqVaeConfig('tiny'), new Rng(3));
  const names = model.namedParameters().map(([n]) => n);
  assert.ok(names.includes('encoder.down1.weight'));
  assert.ok(names.includes('decoder.up2.bias'));
  assert.ok(
    !names.some((n) => n.startsWith('quantizer.')),
    'the optimiser must not see the codebook',
  );
  const images = blobImages(2, new Rng(4));
  model.eval(); // no codebook update: only gradients are under test
  const before = model.quantizer.codebookArray();
  tidy(() => {
    const out = model.trainingLoss(images, 2);
    assert.ok(out.reconLoss > 1 && out.reconLoss < 2, `initial recon ${out.reconLoss} ~ ln 4`);
    assert.ok(out.commitLoss > 0);
    assert.ok(Math.abs(out.loss.item() - (out.reconLoss + out.commitLoss)) < 1e-5);
    out.loss.backward();
  });
  for (const p of [
    model.encoder.down1.weight,
    model.encoder.proj.weight,
    model.decoder.up2.weight,
  ]) {
    assert.ok(p.grad !== null, `${p.name} has no gradient`);
    const g = p.grad.toFloat32Array();
    assert.ok(g.some((v) => v !== 0) && g.every(Number.isFinite), `${p.name} gradient is zero`);
  }
  assert.equal(model.quantizer.codebook.requiresGrad, false);
  assert.equal(model.quantizer.codebook.grad, null);
  assert.deepEqual(model.quantizer.codebookArray(), before);
  model.zeroGrad();
});

test('EMA update follows the formula; the codebook tensor mirrors it', () => {
  const config = vqVaeConfig('tiny', {
    codebookSize: 3,
    codeDim: 2,
    emaDecay: 0.5,
    deadCodeSteps: 0,
  });
  const q = new VectorQuantizer(config, new Rng(5), new Rng(6));
  const start = q.codebookArray();
  // Rows 0, 1 -> code 0; row 2 -> code 2; code 1 unused.
  const z = Float32Array.from([1, 2, 3, 4, -1, 0]);
  q.update(z, Int32Array.from([0, 0, 2]));
  const n = [0.5 * 1 + 0.5 * 2, 0.5 * 1, 0.5 * 1 + 0.5 * 1];
  assert.deepEqual(Array.from(q.clusterSize), n.map(Math.fround));
  const m = [
    0.5 * start[0]! + 0.5 * 4,
    0.5 * start[1]! + 0.5 * 6,
    0.5 * start[2]!,
    0.5 * start[3]!,
    0.5 * start[4]! - 0.5,
    0.5 * start[5]!,
  ];
  m.forEach((v, i) => assert.ok(Math.abs(q.embedSum[i]! - v) < 1e-6));
  const total = n[0]! + n[1]! + n[2]!;
  const eps = config.emaEpsilon;
  const expected = m.map((v, i) => {
    const k = Math.floor(i / 2);
    return v / (((n[k]! + eps) / (total + 3 * eps)) * total);
  });
  const codebook = q.codebookArray();
  expected.forEach((v, i) =>
    assert.ok(Math.abs(codebook[i]! - v) < 1e-5, `${codebook[i]} vs ${v}`),
  );
  assert.deepEqual(q.codebook.toFloat32Array(), codebook);
  assert.deepEqual(Array.from(q.unusedSteps), [0, 1, 0]);
  q.dispose();
});

test('dead codes restart from the batch, preferring badly served rows', () => {
  const config = vqVaeConfig('tiny', { codebookSize: 4, codeDim: 2, deadCodeSteps: 2 });
  const q = new VectorQuantizer(config, new Rng(7), new Rng(8));
  // Every row is assigned to code 0: codes 1..3 are unused.
  const z = Float32Array.from([0.1, 0.1, 0.2, 0.1, 50, 50, -40, 30, 0.1, 0.2]);
  const codes = new Int32Array(5);
  assert.equal(q.update(z, codes).restarted, 0);
  assert.deepEqual(Array.from(q.unusedSteps), [0, 1, 1, 1]);
  assert.equal(q.update(z, codes).restarted, 3);
  assert.deepEqual(Array.from(q.unusedSteps), [0, 0, 0, 0]);
  const codebook = q.codebookArray();
  const rows = [1, 2, 3].map((k) => [codebook[2 * k]!, codebook[2 * k + 1]!].join());
  const zRows = [0, 1, 2, 3, 4].map((r) => [z[2 * r]!, z[2 * r + 1]!].map(Math.fround).join());
  for (const row of rows) assert.ok(zRows.includes(row), `restarted code ${row} is not a row of z`);
  assert.equal(new Set(rows).size, 3, 'restarted codes are distinct rows');
  // The two far-away rows carry almost all the squared error: both are picked.
  assert.ok(rows.includes(zRows[2]!) && rows.includes(zRows[3]!), `${rows}`);
  assert.deepEqual(q.codebook.toFloat32Array(), codebook);
  q.dispose();
});

test('training moves the codebook by EMA and restarts dead codes', () => {
  const model = new VqVae(vqVaeConfig('tiny', { deadCodeSteps: 3 }), new Rng(9));
  const opt = new Adam(model.namedParameters(), { lr: 3e-3 });
  const images = blobImages(2, new Rng(10));
  const before = model.quantizer.codebookArray();
  let restarted = 0;
  for (let step = 0; step < 4; step++) {
    restarted += tidy(() => {
      const out = model.trainingLoss(images, 2);
      out.loss.backward();
      opt.update();
      opt.zeroGrad();
      return out.restarted;
    });
  }
  const after = model.quantizer.codebookArray();
  assert.notDeepEqual(after, before);
  assert.ok(restarted > 0, 'a random codebook leaves codes unused, which must be restarted');
  assert.deepEqual(model.quantizer.codebook.toFloat32Array(), after);
  opt.dispose();
  model.dispose();
});

test('a tiny VQ-VAE overfits four two-colour blob images', () => {
  const images = blobImages(4, new Rng(7));
  const set = { images, count: 4 };
  const lines: string[] = [];
  const { model, history } = trainVqVae({
    train: set,
    config: vqVaeConfig('tiny', { codebookSize: 64 }),
    seed: 3,
    batchSize: 4,
    steps: 150,
    lr: 5e-3,
    logEvery: 50,
    log: (line) => lines.push(line),
  });
  const first = history[0]!;
  const last = history[history.length - 1]!;
  assert.ok(first.reconLoss > 1.2, `initial recon ${first.reconLoss} ~ ln 4`);
  assert.ok(last.reconLoss < 0.3, `final recon ${last.reconLoss}`);
  const ev = evaluateVqVae(model, set);
  assert.ok(ev.pixelAccuracy > 0.9, `pixel accuracy ${ev.pixelAccuracy}`);
  assert.ok(ev.valueAccuracy >= ev.pixelAccuracy);
  assert.ok(ev.usedCodes > 8, `used codes ${ev.usedCodes}`);
  assert.equal(ev.codes.length, 4 * 49);
  // One header line, then a line per 50 steps in the trainer's format.
  assert.equal(lines.length, 4);
  assert.match(
    lines[3]!,
    /^step 150\/150 \| loss \d+\.\d{4} \| recon \d+\.\d{4} \| perplexity \d+\.\d \| used \d+\/64 \| \d+\.\d ms\/step \| ETA 0s$/,
  );
  model.dispose();
});

test('training is deterministic given the seed', () => {
  const set = { images: blobImages(6, new Rng(11)), count: 6 };
  const run = () =>
    trainVqVae({ train: set, config: vqVaeConfig('tiny'), seed: 5, batchSize: 3, steps: 4 });
  const a = run();
  const b = run();
  assert.deepEqual(
    a.history.map((r) => r.loss),
    b.history.map((r) => r.loss),
  );
  assert.equal(vqVaeFingerprint(a.model), vqVaeFingerprint(b.model));
  a.model.dispose();
  b.model.dispose();
});

test('save/load round trip gives identical codes, images and state', () => {
  const set = { images: blobImages(3, new Rng(12)), count: 3 };
  const { model } = trainVqVae({
    train: set,
    config: vqVaeConfig('tiny'),
    seed: 6,
    batchSize: 3,
    steps: 3,
  });
  const dir = tmpDir();
  const file = path.join(dir, 'vqvae.safetensors');
  saveVqVae(model, file, { step: '3' });
  const { model: loaded, metadata } = loadVqVaeCheckpoint(file);
  assert.equal(metadata['step'], '3');
  assert.equal(metadata['format'], 'mmgpt-vqvae');
  assert.deepEqual(loaded.config, model.config);
  const codes = model.encode(set.images, 3);
  assert.deepEqual(loaded.encode(set.images, 3), codes);
  assert.deepEqual(loaded.decode(codes, 3), model.decode(codes, 3));
  assert.deepEqual(loaded.stateDict(), model.stateDict());
  assert.deepEqual(loaded.getRngState(), model.getRngState());
  assert.equal(vqVaeFingerprint(loaded), vqVaeFingerprint(model));
  assert.throws(() => saveVqVae(model, file, { config: 'x' }), /metadata key 'config' is reserved/);
  loaded.dispose();
  model.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('loading names the file and the problem', () => {
  const dir = tmpDir();
  const missing = path.join(dir, 'nope.safetensors');
  assert.throws(() => loadVqVae(missing), /VQ-VAE checkpoint '.*nope.safetensors' does not exist/);
  const corrupt = path.join(dir, 'corrupt.safetensors');
  fs.writeFileSync(corrupt, Buffer.from([1, 2, 3]));
  assert.throws(
    () => loadVqVae(corrupt),
    /cannot load VQ-VAE checkpoint '.*corrupt.safetensors'.*truncated/,
  );
  const other = path.join(dir, 'other.safetensors');
  saveSafetensors(
    other,
    { w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } },
    { format: 'gpt' },
  );
  assert.throws(() => loadVqVae(other), /not a VQ-VAE checkpoint \(metadata format is "gpt"/);
  // A checkpoint whose tensors do not match its config.
  const model = new VqVae(vqVaeConfig('tiny'), new Rng(13));
  const file = path.join(dir, 'vq.safetensors');
  saveVqVae(model, file);
  const bytes = fs.readFileSync(file);
  const patched = Buffer.from(
    bytes.toString('latin1').replace('codebookSize\\":32', 'codebookSize\\":33'),
    'latin1',
  );
  fs.writeFileSync(file, patched);
  assert.throws(
    () => loadVqVae(file),
    /'quantizer.codebook' has shape \[32, 8\], the config says \[33, 8\]/,
  );
  // A config the weights do not back is refused before a model is built from it.
  fs.writeFileSync(file, bytes);
  const contents = loadSafetensors(file);
  const huge = { ...JSON.parse(contents.metadata['config']!), codebookSize: 1_000_000_000 };
  const tensors: Record<string, NamedArray> = {};
  for (const [name, t] of Object.entries(contents.tensors))
    tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  saveSafetensors(file, tensors, { ...contents.metadata, config: JSON.stringify(huge) });
  assert.throws(
    () => loadVqVae(file),
    /VQ-VAE checkpoint '.*vq.safetensors': the weights do not match the config: 'quantizer.codebook' has shape \[32, 8\], the config says \[1000000000, 8\]/,
  );
  model.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('code statistics: usage and perplexity', () => {
  assert.deepEqual(codeStatistics(Int32Array.from([1, 1, 1, 1]), 8), {
    usedCodes: 1,
    perplexity: 1,
  });
  const s = codeStatistics(Int32Array.from([0, 1, 2, 3]), 8);
  assert.equal(s.usedCodes, 4);
  assert.ok(Math.abs(s.perplexity - 4) < 1e-9);
});

test('training steps leave live tensors unchanged', () => {
  const model = new VqVae(vqVaeConfig('tiny'), new Rng(14));
  const opt = new Adam(model.namedParameters(), { lr: 1e-3 });
  const images = blobImages(2, new Rng(15));
  const step = () =>
    tidy(() => {
      const out = model.trainingLoss(images, 2);
      out.loss.backward();
      opt.update();
      opt.zeroGrad();
    });
  step();
  const before = memoryStats();
  for (let i = 0; i < 5; i++) step();
  model.encode(images, 2);
  model.decode(new Int32Array(98), 2);
  const after = memoryStats();
  assert.equal(after.liveTensors, before.liveTensors);
  assert.equal(after.liveBytes, before.liveBytes);
  opt.dispose();
  model.dispose();
});

test('foreground weights: pixels off the most common colour get the weight', () => {
  const images = blobImages(3, new Rng(21));
  const { weights, total } = foregroundWeights(images, 3, 5);
  assert.equal(weights.length, 3 * IMAGE_VALUES);
  let expectedTotal = 0;
  for (let i = 0; i < 3; i++) {
    // blobImages draws discs smaller than half the image: the corner pixel is background.
    const base = i * IMAGE_VALUES;
    const bg = Array.from(images.subarray(base, base + 3)).join();
    for (let p = 0; p < 28 * 28; p++) {
      const at = base + p * 3;
      const isBg = Array.from(images.subarray(at, at + 3)).join() === bg;
      for (let c = 0; c < 3; c++) assert.equal(weights[at + c], isBg ? 1 : 5);
      expectedTotal += isBg ? 3 : 15;
    }
  }
  assert.equal(total, expectedTotal);
});

test('the foreground-weighted loss is the weighted mean of per-value cross-entropies', () => {
  // A few steps of training, so that background and disc values have different losses.
  const images = blobImages(2, new Rng(23));
  const config = vqVaeConfig('tiny', { foregroundWeight: 3 });
  const { model } = trainVqVae({
    train: { images, count: 2 },
    config,
    seed: 22,
    steps: 30,
    lr: 5e-3,
  });
  const { loss, reconLoss, commitLoss } = tidy(() => {
    const out = model.trainingLoss(images, 2);
    return { ...out, loss: out.loss.item() };
  });
  // The same quantities from the decoder's logits, in float64 on the host.
  const logits = tidy(() => {
    const z = model.encodeRows(model.inputTensor(images, 0, 2));
    const { zq } = model.quantizer.quantize(z);
    return model.decodeRows(zq, 2).toFloat32Array(); // [2, 12, 28, 28]
  });
  const { weights } = foregroundWeights(images, 2, 3);
  let plain = 0;
  let weighted = 0;
  let weightSum = 0;
  for (let b = 0; b < 2; b++) {
    for (let p = 0; p < 784; p++) {
      for (let c = 0; c < 3; c++) {
        const at = (l: number) => logits[b * 12 * 784 + (c * 4 + l) * 784 + p]!;
        const max = Math.max(at(0), at(1), at(2), at(3));
        let z = 0;
        for (let l = 0; l < 4; l++) z += Math.exp(at(l) - max);
        const i = (b * 784 + p) * 3 + c;
        const ce = max + Math.log(z) - at(images[i]!);
        plain += ce;
        weighted += weights[i]! * ce;
        weightSum += weights[i]!;
      }
    }
  }
  assert.ok(Math.abs(reconLoss - plain / (2 * IMAGE_VALUES)) < 1e-4, `recon ${reconLoss}`);
  const expected = weighted / weightSum + commitLoss;
  assert.ok(Math.abs(loss - expected) < 1e-4, `loss ${loss} vs ${expected}`);
  assert.ok(Math.abs(loss - (reconLoss + commitLoss)) > 1e-3, 'the weighting changed nothing');
  model.dispose();
});

test('global context: gradients match finite differences; its weights are saved', () => {
  const ctx = new GlobalContext(3, new Rng(24));
  const rng = new Rng(25);
  const data = Float32Array.from({ length: 2 * 3 * 4 * 5 }, () => rng.uniform() * 2 - 1);
  const worst = gradCheck('globalContext', ([x]) => ctx.forward(x!), [
    { shape: [2, 3, 4, 5], data },
  ]);
  assert.ok(worst < 2e-2, `worst error ${worst}`);
  for (const p of ctx.parameters()) p.dispose();

  const set = { images: blobImages(3, new Rng(26)), count: 3 };
  const config = vqVaeConfig('tiny', { globalContext: true, foregroundWeight: 2 });
  const { model, history } = trainVqVae({ train: set, config, seed: 7, batchSize: 3, steps: 3 });
  assert.ok(history.every((r) => Number.isFinite(r.loss)));
  const names = Object.keys(model.stateDict());
  assert.ok(names.includes('encoder.context.proj.weight'));
  assert.ok(names.includes('decoder.context.proj.bias'));
  const dir = tmpDir();
  const file = path.join(dir, 'vqvae.safetensors');
  saveVqVae(model, file);
  const loaded = loadVqVae(file);
  assert.deepEqual(loaded.config, model.config);
  assert.deepEqual(loaded.encode(set.images, 3), model.encode(set.images, 3));
  loaded.dispose();
  model.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('a checkpoint from before foregroundWeight/globalContext loads with their old meaning', () => {
  const model = new VqVae(vqVaeConfig('tiny'), new Rng(27));
  const dir = tmpDir();
  const file = path.join(dir, 'old.safetensors');
  saveVqVae(model, file);
  // Rewrite the config as an older build wrote it: without the two fields.
  const contents = loadSafetensors(file);
  const config = JSON.parse(contents.metadata['config']!) as Record<string, unknown>;
  delete config['foregroundWeight'];
  delete config['globalContext'];
  const tensors: Record<string, NamedArray> = {};
  for (const [name, t] of Object.entries(contents.tensors))
    tensors[name] = { dtype: 'F32', shape: t.shape, data: t.data as Float32Array };
  saveSafetensors(file, tensors, { ...contents.metadata, config: JSON.stringify(config) });
  const loaded = loadVqVae(file);
  assert.equal(loaded.config.foregroundWeight, 1);
  assert.equal(loaded.config.globalContext, false);
  assert.equal(vqVaeFingerprint(loaded), vqVaeFingerprint(model));
  loaded.dispose();
  model.dispose();
  fs.rmSync(dir, { recursive: true });
});

test('tokenizer training resumed from its saved state ends equal to an uninterrupted run', () => {
  const set = { images: blobImages(6, new Rng(31)), count: 6 };
  const config = vqVaeConfig('tiny', { deadCodeSteps: 2 }); // restarts exercise the restart Rng
  // 6 images in batches of 2: 3 steps per epoch, so states fall inside and at the end of epochs.
  const base = { train: set, config, seed: 8, batchSize: 2, steps: 10, lr: 3e-3 };
  const straight = trainVqVae(base);
  for (const every of [3, 4]) {
    const dir = tmpDir();
    const statePath = path.join(dir, 'state.safetensors');
    const crash = new Error('simulated crash');
    assert.throws(
      () =>
        trainVqVae({
          ...base,
          checkpoint: { path: statePath, every },
          onStep: (r) => {
            if (r.step === 7) throw crash;
          },
        }),
      /simulated crash/,
    );
    assert.ok(fs.existsSync(statePath), 'no state was saved before the crash');
    const lines: string[] = [];
    const resumed = trainVqVae({
      ...base,
      checkpoint: { path: statePath, every, resume: true },
      log: (l) => lines.push(l),
    });
    const savedAt = Math.floor(6 / every) * every;
    assert.ok(lines.some((l) => l.includes(`resumed ${statePath} at step ${savedAt}/10`)));
    assert.deepEqual(resumed.model.stateDict(), straight.model.stateDict());
    assert.deepEqual(resumed.model.getRngState(), straight.model.getRngState());
    assert.deepEqual(
      resumed.history.map((r) => [r.step, r.epoch, Math.fround(r.loss)]),
      straight.history.map((r) => [r.step, r.epoch, Math.fround(r.loss)]),
    );
    assert.throws(
      () => trainVqVae({ ...base, lr: 1e-3, checkpoint: { path: statePath, every, resume: true } }),
      /was saved by a run with other settings/,
    );
    resumed.model.dispose();
    fs.rmSync(dir, { recursive: true });
  }
  straight.model.dispose();
});

test('a corrupt tokenizer training state is refused with the file named and the remedy', () => {
  const dir = tmpDir();
  const statePath = path.join(dir, 'state.safetensors');
  fs.writeFileSync(statePath, Buffer.from([1, 2, 3]));
  const set = { images: blobImages(2, new Rng(41)), count: 2 };
  assert.throws(
    () =>
      trainVqVae({
        train: set,
        config: vqVaeConfig('tiny'),
        batchSize: 2,
        steps: 2,
        checkpoint: { path: statePath, every: 1, resume: true },
      }),
    /cannot resume from '.*state.safetensors': .*; delete it to start again/,
  );
  fs.rmSync(dir, { recursive: true });
});

test('an extra loss term gets the logits, the batch and its items, and moves the training', () => {
  const set = { images: blobImages(6, new Rng(41)), count: 6 };
  const base = { train: set, config: vqVaeConfig('tiny'), seed: 3, batchSize: 3, steps: 4 };
  const seenItems: number[] = [];
  const extra = {
    name: 'bright',
    term: (logits: Tensor, images: Uint8Array, items: Int32Array) => {
      assert.deepEqual(logits.shape, [3, 12, 28, 28]);
      assert.equal(items.length, 3);
      // The batch holds exactly the images of its items, in order.
      items.forEach((item, b) =>
        assert.deepEqual(
          images.subarray(b * IMAGE_VALUES, (b + 1) * IMAGE_VALUES),
          set.images.subarray(item * IMAGE_VALUES, (item + 1) * IMAGE_VALUES),
        ),
      );
      seenItems.push(...items);
      return F.scale(F.mean(F.square(logits)), 0.5);
    },
  };
  const lines: string[] = [];
  const withTerm = trainVqVae({
    ...base,
    extraLoss: extra,
    log: (l) => lines.push(l),
    logEvery: 2,
  });
  const without = trainVqVae(base);
  // 4 steps of 3 over 6 images: two epochs, every image twice.
  assert.deepEqual(
    [...seenItems].sort((a, b) => a - b),
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
  );
  assert.ok(withTerm.history.every((r) => r.extraLoss !== undefined && r.extraLoss > 0));
  assert.ok(without.history.every((r) => r.extraLoss === undefined));
  // The first step's reconstruction loss is the same; the term changes the weights after it.
  assert.equal(withTerm.history[0]!.reconLoss, without.history[0]!.reconLoss);
  assert.notEqual(vqVaeFingerprint(withTerm.model), vqVaeFingerprint(without.model));
  assert.ok(
    lines.some((l) => /\| bright \d+\.\d{4} \|/.test(l)),
    lines.join('\n'),
  );
  // A saved state remembers the term: a run without it does not continue it.
  const dir = tmpDir();
  const statePath = path.join(dir, 'state.safetensors');
  assert.throws(() =>
    trainVqVae({
      ...base,
      extraLoss: extra,
      checkpoint: { path: statePath, every: 2 },
      onStep: (r) => {
        if (r.step === 3) throw new Error('simulated crash');
      },
    }),
  );
  assert.throws(
    () => trainVqVae({ ...base, checkpoint: { path: statePath, every: 2, resume: true } }),
    /was saved by a run with other settings/,
  );
  fs.rmSync(dir, { recursive: true });
  withTerm.model.dispose();
  without.model.dispose();
});
