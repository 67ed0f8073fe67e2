// GPT training on a tiny config: the loss falls, logs are complete, a resumed run ends with
// bit-identical weights to an uninterrupted one, and a mismatched resume is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import { makeSequenceSource } from '../../src/data/sequences';
import type { SequenceSource } from '../../src/data/sequences';
import { GPT_PRESETS, trainGpt, loadGpt } from '../../src/gpt/train';
import type { GptPreset, TrainProgressEvent } from '../../src/gpt/train';
import { loadCheckpoint } from '../../src/gpt/checkpoint';

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

const preset: GptPreset = {
  model: { nLayer: 1, nHead: 2, nEmbd: 16, dropout: 0.1 },
  train: {
    ...GPT_PRESETS.tiny.train,
    epochs: 2,
    batchSize: 8,
    trainLimit: 64,
    testLimit: 16,
    evalBatchSize: 16,
    logEvery: 1000,
    optimizer: 'adamw',
    schedule: 'cosine',
    warmupSteps: 3,
    clipNorm: 1,
  },
};
const train = synthetic(64, 1);
const testSet = synthetic(16, 2);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-train-'));
const quiet = () => undefined;

test('training lowers the NLL and records every minibatch and every epoch', async () => {
  const dir = tmp();
  const events: TrainProgressEvent[] = [];
  const r = await trainGpt({
    runDir: dir,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    onProgress: (e) => events.push(e),
  });
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
    const r = await trainGpt({
      runDir: tmp(),
      preset,
      vocab,
      train,
      test: testSet,
      tokenizerHash: 'h',
      log: quiet,
      onProgress: (e) => events.push(e),
      lossReadEvery,
    });
    runs.push({ r, events, weights: loadCheckpoint(r.checkpointPath).weights });
  }
  const [every, bursts] = runs;
  assert.deepEqual(bursts.r.log.trainNll, every.r.log.trainNll);
  assert.deepEqual(bursts.r.log.testNll, every.r.log.testNll);
  // Every step reported once, in order, before the epoch's test evaluation.
  assert.deepEqual(bursts.events, every.events);
  for (const [name, t] of Object.entries(every.weights)) {
    assert.deepEqual(bursts.weights[name].data, t.data, name);
  }
});

test('a resumed run ends bit-identical to an uninterrupted one', async () => {
  const a = tmp();
  const b = tmp();
  await trainGpt({
    runDir: a,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
  });
  const stopped = await trainGpt({
    runDir: b,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    stopAfterSteps: 5,
  });
  assert.equal(stopped.complete, false);
  const mid = await trainGpt({
    runDir: b,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    resume: true,
    stopAfterSteps: 6,
  });
  assert.equal(mid.complete, false);
  const done = await trainGpt({
    runDir: b,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    resume: true,
  });
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
  assert.deepEqual(lb.testNll, la.testNll);
});

test('resume refuses a different configuration or tokenizer, and a missing checkpoint', async () => {
  const dir = tmp();
  await trainGpt({
    runDir: dir,
    preset,
    vocab,
    train,
    test: testSet,
    tokenizerHash: 'h',
    log: quiet,
    stopAfterSteps: 2,
  });
  const other = { ...preset, train: { ...preset.train, lr: 0.5 } };
  await assert.rejects(
    trainGpt({
      runDir: dir,
      preset: other,
      vocab,
      train,
      test: testSet,
      tokenizerHash: 'h',
      log: quiet,
      resume: true,
    }),
    /another configuration/,
  );
  await assert.rejects(
    trainGpt({
      runDir: dir,
      preset,
      vocab,
      train,
      test: testSet,
      tokenizerHash: 'x',
      log: quiet,
      resume: true,
    }),
    /tokenizer/,
  );
  await assert.rejects(
    trainGpt({
      runDir: tmp(),
      preset,
      vocab,
      train,
      test: testSet,
      tokenizerHash: 'h',
      log: quiet,
      resume: true,
    }),
    /no checkpoint/,
  );
  fs.writeFileSync(path.join(dir, 'checkpoint.safetensors'), Buffer.from('garbage'));
  await assert.rejects(
    trainGpt({
      runDir: dir,
      preset,
      vocab,
      train,
      test: testSet,
      tokenizerHash: 'h',
      log: quiet,
      resume: true,
    }),
    /checkpoint.safetensors/,
  );
});
