// The registry of named runs (src/pipeline/presets.ts, experiments.ts): every preset names a
// tokenizer recipe, a GPT recipe and a sampling preset that exist; the pipeline's evaluation
// sizes; the experiments are accepted but not user-facing; an unknown name lists the others.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCEPTED_PRESET_NAMES,
  PIPELINE_PRESETS,
  PRESET_NAMES,
  USER_PRESETS,
  isExperiment,
  pipelinePreset,
} from '../../src/pipeline/presets';
import { EXPERIMENT_PRESETS, EXPERIMENT_TOKENIZER_RECIPES } from '../../src/pipeline/experiments';
import { TOKENIZER_RECIPES } from '../../src/pipeline/tokenizers';
import { GPT_PRESETS } from '../../src/gpt/train';
import { SAMPLING_PRESETS } from '../../src/sampling/presets';

test('every preset names a tokenizer recipe, a GPT recipe and a sampling preset that exist', () => {
  for (const [name, preset] of Object.entries(PIPELINE_PRESETS)) {
    assert.ok(preset.tokenizer in TOKENIZER_RECIPES, `${name}: tokenizer ${preset.tokenizer}`);
    assert.ok(preset.gpt in GPT_PRESETS, `${name}: gpt ${preset.gpt}`);
    assert.ok(preset.sampling in SAMPLING_PRESETS, `${name}: sampling ${preset.sampling}`);
    assert.ok(Number.isInteger(preset.evalItems) && preset.evalItems >= 1, name);
    assert.ok(preset.summary.length > 0 && !preset.summary.includes('\n'), name);
  }
});

test('the user-facing presets, their evaluation sizes, and the experiments', () => {
  assert.deepEqual(PRESET_NAMES, ['quick', 'best', 'original', 'original-full', 'tiny']);
  assert.deepEqual(Object.keys(USER_PRESETS), PRESET_NAMES);
  const sizes = Object.fromEntries(PRESET_NAMES.map((n) => [n, pipelinePreset(n).evalItems]));
  assert.deepEqual(sizes, {
    quick: 300,
    best: 1000,
    original: 1000,
    'original-full': 1000,
    tiny: 50,
  });
  assert.deepEqual(Object.keys(EXPERIMENT_PRESETS), [
    'original-full36k',
    'original-perceptual',
    'original-searched',
    'original-searched-reader',
  ]);
  assert.deepEqual(ACCEPTED_PRESET_NAMES, [...PRESET_NAMES, ...Object.keys(EXPERIMENT_PRESETS)]);
  for (const name of Object.keys(EXPERIMENT_PRESETS)) {
    assert.ok(isExperiment(name), name);
    assert.equal(pipelinePreset(name), EXPERIMENT_PRESETS[name]);
  }
  for (const name of PRESET_NAMES) assert.ok(!isExperiment(name), name);
  assert.ok(!isExperiment('constructor'));
});

test("the experiments' tokenizer recipes are used by experiments only", () => {
  for (const recipe of Object.keys(EXPERIMENT_TOKENIZER_RECIPES)) {
    assert.equal(TOKENIZER_RECIPES[recipe], EXPERIMENT_TOKENIZER_RECIPES[recipe], recipe);
    for (const name of PRESET_NAMES)
      assert.notEqual(USER_PRESETS[name]!.tokenizer, recipe, `${name} uses ${recipe}`);
  }
});

test('an unknown preset is refused with the user-facing list', () => {
  assert.throws(
    () => pipelinePreset('huge'),
    /unknown preset 'huge' \(known: quick, best, original, original-full, tiny\)/,
  );
  assert.throws(() => pipelinePreset('constructor'), /unknown preset 'constructor'/);
});
