// The timed training step and forward (src/perf/train_step.ts), never their speed: a
// measurement returns a well-formed result and chooses its step count from the warm-up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ORIGINAL_MODEL_CONFIG,
  benchTrainStep,
  benchForward,
  median,
} from '../../src/perf/train_step';
import type { GptConfig } from '../../src/gpt/model';

const tiny: GptConfig = { vocabSize: 20, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, dropout: 0 };

test("the benchmark's model is the original recipe's", () => {
  assert.deepEqual(
    { ...ORIGINAL_MODEL_CONFIG },
    { nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0, vocabSize: 1058, blockSize: 57 },
  );
});

test("benchTrainStep: 2 steps of the original recipe's model at batch 2 on js give a well-formed result", () => {
  const r = benchTrainStep({ backend: 'js', batch: 2, steps: 2, warmup: 0 });
  assert.equal(r.backend, 'js');
  assert.equal(r.batch, 2);
  assert.equal(r.steps, 2);
  assert.equal(r.msPerStepAll.length, 2);
  assert.ok(r.msPerStep > 0 && Number.isFinite(r.msPerStep));
  assert.equal(r.inputTokens, 57);
  assert.ok(Math.abs(r.tokensPerSec - (2 * 57 * 1000) / r.msPerStep) < 1e-6);
  // Random tokens at initialisation: the loss is close to ln(vocab).
  assert.ok(Math.abs(r.lastLoss - Math.log(1058)) < 0.3, `loss ${r.lastLoss}`);
  assert.equal(r.parameters, 1_071_488);
});

test('benchTrainStep chooses the step count from the warm-up when none is given', () => {
  const r = benchTrainStep({
    backend: 'js',
    batch: 2,
    warmup: 1,
    budgetMs: 1,
    minSteps: 2,
    config: tiny,
  });
  assert.equal(r.steps, 2);
});

test('benchForward times a batch-1 forward over the whole block', () => {
  const r = benchForward({ backend: 'js', steps: 3, warmup: 1, config: tiny });
  assert.equal(r.tokens, 8);
  assert.equal(r.msAll.length, 3);
  assert.ok(r.msMedian > 0);
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
});
