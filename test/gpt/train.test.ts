// GPT training on a tiny config: the loss falls, logs are complete, a resumed run ends with
// bit-identical weights to an uninterrupted one, a mismatched resume is refused, and a
// non-finite loss or gradient norm (lr 1e9; a NaN injected into the loss) stops training with
// the step, the batch and the last good checkpoint named, that checkpoint intact and resumable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import { SEQUENCE_LENGTH, buildSequence, makeSequenceSource } from '../../src/data/sequences';
import type { SequenceSource } from '../../src/data/sequences';
import * as F from '../../src/engine/ops';
import { tidy } from '../../src/engine/tensor';
import type { Tensor } from '../../src/engine/tensor';
import { GPT } from '../../src/gpt/model';
import {
  TrainingDivergedError,
  gptRunDir,
  presetFingerprint,
  trainGpt,
  loadGpt,
  validateTrainConfig,
} from '../../src/gpt/train';
import type {
  GptPreset,
  TrainGptOptions,
  TrainGptResult,
  TrainProgressEvent,
} from '../../src/gpt/train';
import {
  ConfigurationMismatchError,
  configurationDifferences,
  loadCheckpoint,
} from '../../src/gpt/checkpoint';
import { oneLayerPreset } from './helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const vocab = new Vocab(16);

/** Items whose image codes are a function of the caption, so there is something to learn. */
function synthetic(count: number, seed: number): SequenceSource {
  const rng = new Rng(seed);
  const digit = new Int32Array(count);
  const fg = new Int32Array(count);
  const bg = new Int32Array(count);
  const image = new Int32Array(count * 49);
  for (let i = 0; i < count; i++) {
    digit[i] = rng.int(10);
    fg[i] = rng.int(3);
    bg[i] = 3 + rng.int(3);
    for (let j = 0; j < 49; j++) image[i * 49 + j] = (digit[i] + fg[i] * j) % 16;
  }
  return makeSequenceSource(vocab.captionTokensBatch(digit, fg, bg), image, vocab);
}

const preset: GptPreset = oneLayerPreset(
  {
    epochs: 2,
    trainLimit: 64,
    testLimit: 16,
    evalBatchSize: 16,
    logEvery: 1000,
    optimizer: 'adamw',
    schedule: 'cosine',
    warmupSteps: 3,
    clipNorm: 1,
  },
  0.1,
);
const train = synthetic(64, 1);
const testSet = synthetic(16, 2);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-train-'));
const quiet = () => undefined;

/** trainGpt into `runDir` on the synthetic sets with `preset`, quietly; `extra` adds options. */
function trainOn(runDir: string, extra: Partial<TrainGptOptions> = {}): Promise<TrainGptResult> {
  return trainGpt({
    runDir,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    ...extra,
  });
}

/** A log's test NLLs without the process memory recorded beside them (each process's own). */
function testNllWithoutRss(l: { testNll: { rssBytes?: number }[] }): object[] {
  return l.testNll.map(({ rssBytes: _r, ...rest }) => rest);
}

test('training lowers the NLL and records every minibatch and every epoch', async () => {
  const dir = tmp();
  const events: TrainProgressEvent[] = [];
  const r = await trainOn(dir, { onProgress: (e) => events.push(e) });
  assert.equal(r.complete, true);
  assert.equal(r.log.trainNll.length, 16);
  // onProgress saw every step's loss and every test evaluation, as the log records them.
  const steps = events.filter((e) => e.kind === 'step');
  assert.deepEqual(
    steps.map((e) => e.step),
    Array.from({ length: 16 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    steps.map((e) => (e.kind === 'step' ? e.loss : NaN)),
    r.log.trainNll,
  );
  assert.deepEqual(
    events.filter((e) => e.kind === 'test').map((e) => e.kind === 'test' && [e.epoch, e.testNll]),
    r.log.testNll.map((e) => [e.epoch, e.nll]),
  );
  assert.deepEqual(
    r.log.testNll.map((e) => e.epoch),
    [0, 1, 2],
  );
  assert.ok(r.log.testNll[2].nll < r.log.testNll[0].nll, JSON.stringify(r.log.testNll));
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'log.json'), 'utf8'));
  assert.equal(saved.trainNll.length, 16);
  const { model, meta } = loadGpt(r.checkpointPath);
  assert.equal(meta.complete, true);
  assert.equal(model.config.vocabSize, vocab.size);
});

test('losses read back in bursts (lossReadEvery) give the same log, events and weights', async () => {
  const runs = [];
  for (const lossReadEvery of [1, 3]) {
    const events: TrainProgressEvent[] = [];
    const r = await trainOn(tmp(), { onProgress: (e) => events.push(e), lossReadEvery });
    runs.push({ r, events, weights: loadCheckpoint(r.checkpointPath).weights });
  }
  const [every, bursts] = runs;
  assert.deepEqual(bursts.r.log.trainNll, every.r.log.trainNll);
  // The test NLLs agree; the process memory recorded beside them is each run's own.
  assert.deepEqual(testNllWithoutRss(bursts.r.log), testNllWithoutRss(every.r.log));
  // Every step reported once, in order, before the epoch's test evaluation.
  assert.deepEqual(bursts.events, every.events);
  for (const [name, t] of Object.entries(every.weights)) {
    assert.deepEqual(bursts.weights[name].data, t.data, name);
  }
});

/** Muon for the matrices, AdamW for the rest, warm-up then linear decay (the speedrun's). */
const muonPreset: GptPreset = {
  ...preset,
  train: { ...preset.train, optimizer: 'muon', muonLr: 0.02, schedule: 'linear' },
};

for (const [label, recipe] of [
  ['AdamW, cosine', preset],
  ['Muon, linear', muonPreset],
] as const)
  test(`a resumed run ends bit-identical to an uninterrupted one (${label})`, async () => {
    await resumedEqualsUninterrupted({ preset: recipe });
  });

test('a Muon run lowers the test NLL', async () => {
  const result = await trainOn(tmp(), { preset: muonPreset });
  const nll = result.log.testNll;
  assert.ok(nll[nll.length - 1]!.nll < nll[0]!.nll - 0.25, JSON.stringify(nll));
});

/** The same recipe stopped by maxSteps part-way through its second epoch (8 steps an epoch). */
const maxStepsPreset: GptPreset = { ...preset, train: { ...preset.train, maxSteps: 11 } };

test('maxSteps ends a run part-way through an epoch: its NLL, a complete checkpoint', async () => {
  const events: TrainProgressEvent[] = [];
  const r = await trainOn(tmp(), { preset: maxStepsPreset, onProgress: (e) => events.push(e) });
  assert.equal(r.complete, true);
  assert.equal(r.log.trainNll.length, 11);
  assert.deepEqual(
    r.log.testNll.map((e) => [e.epoch, e.step]),
    [
      [0, 0],
      [1, 8],
      [2, 11],
    ],
  );
  assert.equal(loadGpt(r.checkpointPath).meta.complete, true);
  // The schedule ends at step 11: the last step's rate is the cosine's floor, not the 16-step
  // schedule's value at step 11.
  const stepLrs = (es: TrainProgressEvent[]) =>
    es.flatMap((e) => (e.kind === 'step' ? [e.lr] : []));
  const fullEvents: TrainProgressEvent[] = [];
  const full = await trainOn(tmp(), { onProgress: (e) => fullEvents.push(e) });
  assert.equal(full.log.trainNll.length, 16);
  const [lrs, fullLrs] = [stepLrs(events), stepLrs(fullEvents)];
  assert.deepEqual(lrs.slice(0, 3), fullLrs.slice(0, 3)); // the same warm-up
  assert.ok(lrs[10] < fullLrs[10], `${lrs[10]} vs ${fullLrs[10]}`);
  // A complete run resumed trains nothing more.
  const again = await trainOn(path.dirname(r.checkpointPath), {
    preset: maxStepsPreset,
    resume: true,
  });
  assert.equal(again.log.trainNll.length, 11);
  assert.throws(
    () => validateTrainConfig({ ...preset.train, maxSteps: 0 }),
    /maxSteps must be a positive integer/,
  );
});

test('a run stopped by maxSteps resumes bit-identical to an uninterrupted one', async () => {
  const [a, b] = [tmp(), tmp()];
  await trainOn(a, { preset: maxStepsPreset });
  assert.equal((await trainOn(b, { preset: maxStepsPreset, stopAfterSteps: 9 })).complete, false);
  const done = await trainOn(b, { preset: maxStepsPreset, resume: true });
  assert.equal(done.complete, true);
  assert.equal(done.log.trainNll.length, 11);
  const wa = loadCheckpoint(path.join(a, 'checkpoint.safetensors')).weights;
  const wb = loadCheckpoint(path.join(b, 'checkpoint.safetensors')).weights;
  for (const [name, t] of Object.entries(wa))
    assert.deepEqual(Buffer.from(wb[name].data.buffer), Buffer.from(t.data.buffer), name);
});

async function resumedEqualsUninterrupted(extra: Partial<TrainGptOptions>): Promise<void> {
  const a = tmp();
  const b = tmp();
  await trainOn(a, extra);
  const stopped = await trainOn(b, { ...extra, stopAfterSteps: 5 });
  assert.equal(stopped.complete, false);
  const mid = await trainOn(b, { ...extra, resume: true, stopAfterSteps: 6 });
  assert.equal(mid.complete, false);
  const done = await trainOn(b, { ...extra, resume: true });
  assert.equal(done.complete, true);
  const wa = loadCheckpoint(path.join(a, 'checkpoint.safetensors'));
  const wb = loadCheckpoint(path.join(b, 'checkpoint.safetensors'));
  for (const [name, t] of Object.entries(wa.weights)) {
    assert.deepEqual(
      Buffer.from(wb.weights[name].data.buffer),
      Buffer.from(t.data.buffer),
      `weights differ: ${name}`,
    );
  }
  assert.deepEqual(wa.optimizer!.m['h.0.mlp.c_fc.weight'], wb.optimizer!.m['h.0.mlp.c_fc.weight']);
  const la = JSON.parse(fs.readFileSync(path.join(a, 'log.json'), 'utf8'));
  const lb = JSON.parse(fs.readFileSync(path.join(b, 'log.json'), 'utf8'));
  assert.deepEqual(lb.trainNll, la.trainNll);
  // Every test NLL is the same; the process memory recorded beside it is the process's own.
  assert.deepEqual(testNllWithoutRss(lb), testNllWithoutRss(la));
  assert.ok(la.testNll.slice(1).every((e: { rssBytes?: number }) => e.rssBytes! > 1e6));
}

test('resume refuses a different configuration or tokenizer, and a missing checkpoint', async () => {
  const dir = tmp();
  await trainOn(dir, { stopAfterSteps: 2 });
  const other = { ...preset, train: { ...preset.train, lr: 0.5 } };
  await assert.rejects(trainOn(dir, { preset: other, resume: true }), (e: unknown) => {
    // The message names the differing field and both values.
    assert.ok(e instanceof ConfigurationMismatchError);
    assert.match(e.message, /another configuration/);
    assert.match(e.message, /train\.lr: 0\.003 in the checkpoint, 0\.5 requested/);
    assert.deepEqual(e.differences, ['train.lr: 0.003 in the checkpoint, 0.5 requested']);
    return true;
  });
  // A changed model is named too; logEvery (cosmetic) is not a difference.
  const deeper = {
    model: { ...preset.model, nLayer: 2 },
    train: { ...preset.train, logEvery: 7 },
  };
  await assert.rejects(
    trainOn(dir, { preset: deeper, resume: true }),
    (e: unknown) =>
      e instanceof ConfigurationMismatchError &&
      e.differences.length === 1 &&
      /model\.nLayer: 1 in the checkpoint, 2 requested/.test(e.message),
  );
  // A fresh run of another configuration does not overwrite the checkpoint either.
  const before = fs.readFileSync(path.join(dir, 'checkpoint.safetensors'));
  await assert.rejects(
    trainOn(dir, { preset: other }),
    /holds a checkpoint of another configuration[^]*train\.lr/,
  );
  assert.deepEqual(fs.readFileSync(path.join(dir, 'checkpoint.safetensors')), before);
  // With logEvery changed only, resuming is allowed.
  const relogged = { ...preset, train: { ...preset.train, logEvery: 5 } };
  const resumed = await trainOn(dir, { preset: relogged, resume: true });
  assert.equal(resumed.complete, true);
  await assert.rejects(trainOn(dir, { tokenizerHash: 'x', resume: true }), /tokenizer/);
  await assert.rejects(trainOn(tmp(), { resume: true }), /no checkpoint/);
  fs.writeFileSync(path.join(dir, 'checkpoint.safetensors'), Buffer.from('garbage'));
  await assert.rejects(trainOn(dir, { resume: true }), /checkpoint.safetensors/);
});

test('lr 1e9: training stops at the first non-finite loss or gradient norm, naming the step', async () => {
  const dir = tmp();
  const huge = { ...preset, train: { ...preset.train, lr: 1e9, schedule: 'constant' as const } };
  const steps: number[] = [];
  const failure = await trainOn(dir, {
    preset: huge,
    onProgress: (e) => e.kind === 'step' && steps.push(e.step),
  }).then(
    () => assert.fail('training with lr 1e9 finished'),
    (e: unknown) => e,
  );
  assert.ok(failure instanceof TrainingDivergedError, String(failure));
  assert.match(
    failure.message,
    /training stopped at step \d+ \(epoch 1, batch \d+ of 8\): the (loss|gradient norm) is (NaN|-?Infinity)/,
  );
  assert.match(failure.message, /No checkpoint saved by this run yet/);
  assert.equal(failure.step, steps.length + 1, 'the failing step is the one after the last good');
  assert.equal(fs.existsSync(path.join(dir, 'checkpoint.safetensors')), false);
});

test('a NaN loss leaves the last checkpoint intact, and --resume from it finishes the run', async () => {
  const straight = tmp();
  await trainOn(straight);
  const dir = tmp();
  await trainOn(dir, { stopAfterSteps: 5 });
  const ckptPath = path.join(dir, 'checkpoint.safetensors');
  const before = fs.readFileSync(ckptPath);

  // The third step after resuming (step 8: epoch 1, batch 8 of 8) computes a NaN loss.
  const realLoss = GPT.prototype.loss;
  let calls = 0;
  GPT.prototype.loss = function (this: GPT, tokens: Tensor): Tensor {
    const l = realLoss.call(this, tokens);
    return this.training && ++calls === 3 ? F.affine(l, 1, NaN) : l;
  };
  try {
    // Eager on cuda too: the NaN comes from the patched JS forward, which a replayed graph skips.
    await assert.rejects(
      trainOn(dir, { resume: true, graphs: false }),
      (e: Error) =>
        e instanceof TrainingDivergedError &&
        e.message.includes('training stopped at step 8 (epoch 1, batch 8 of 8): the loss is NaN') &&
        e.message.includes(`Last good checkpoint: ${ckptPath} (step 5, epoch 1, batch 5)`) &&
        e.message.includes('--resume') &&
        e.lastGoodCheckpoint === ckptPath,
    );
  } finally {
    GPT.prototype.loss = realLoss;
  }
  assert.ok(fs.readFileSync(ckptPath).equals(before), 'the last good checkpoint is unchanged');
  const done = await trainOn(dir, { resume: true });
  assert.equal(done.complete, true);
  const a = loadCheckpoint(path.join(straight, 'checkpoint.safetensors'));
  const b = loadCheckpoint(ckptPath);
  for (const [name, t] of Object.entries(a.weights))
    assert.deepEqual(b.weights[name].data, t.data, `weights differ: ${name}`);
});

test('each configuration has its own run directory; logEvery does not change it', () => {
  const base = presetFingerprint(preset);
  assert.match(base, /^[0-9a-f]{10}$/);
  assert.equal(presetFingerprint({ ...preset, train: { ...preset.train, logEvery: 3 } }), base);
  // Key order does not matter, values do.
  const reordered: GptPreset = {
    train: { ...preset.train },
    model: { dropout: 0.1, nEmbd: 16, nHead: 2, nLayer: 1 },
  };
  assert.equal(presetFingerprint(reordered), base);
  const lr = { ...preset, train: { ...preset.train, lr: 2e-3 } };
  const layers = { ...preset, model: { ...preset.model, nLayer: 3 } };
  assert.notEqual(presetFingerprint(lr), base);
  assert.notEqual(presetFingerprint(layers), base);
  assert.notEqual(presetFingerprint(layers), presetFingerprint(lr));
  assert.equal(gptRunDir('/r', 'notebook-tiny', preset), `/r/notebook-tiny-${base}`);
  assert.deepEqual(
    configurationDifferences(
      { model: preset.model, train: preset.train },
      { model: layers.model, train: lr.train },
    ),
    [
      'model.nLayer: 1 in the checkpoint, 3 requested',
      'train.lr: 0.003 in the checkpoint, 0.002 requested',
    ],
  );
});

test('textFirstShare: a run on one order learns that order better than a run on the other', async () => {
  /** Mean NLL of `model` on the test items written in one order. */
  const orderNll = (model: GPT, order: 1 | 2): number => {
    const tokens = new Int32Array(testSet.count * SEQUENCE_LENGTH);
    for (let i = 0; i < testSet.count; i++)
      tokens.set(buildSequence(order, testSet, i, vocab), i * SEQUENCE_LENGTH);
    return tidy(() =>
      model.loss(F.tensor(tokens, [testSet.count, SEQUENCE_LENGTH], 'int32')).item(),
    );
  };
  const runs = [];
  for (const share of [1, 0]) {
    const r = await trainOn(tmp(), {
      preset: { ...preset, train: { ...preset.train, textFirstShare: share, epochs: 3 } },
    });
    const { model } = loadGpt(r.checkpointPath);
    model.eval();
    runs.push({ text: orderNll(model, 1), image: orderNll(model, 2) });
  }
  const [textFirst, imageFirst] = runs;
  assert.ok(textFirst!.text < imageFirst!.text, JSON.stringify(runs));
  assert.ok(imageFirst!.image < textFirst!.image, JSON.stringify(runs));
});
