// The named runs: for each preset of `mmgpt train` and `mmgpt pipeline`, its tokenizer recipe
// (TOKENIZER_RECIPES, src/pipeline/tokenizers.ts), its GPT recipe (GPT_PRESETS,
// src/gpt/train.ts), its sampling preset (SAMPLING_PRESETS, src/sampling/presets.ts), how many
// test items the pipeline evaluates it on, and its line in --help. Resolved in one place
// (pipelinePreset), as gpt-fast resolves its named configs.
//
// Every preset but `tiny` uses a shipped tokenizer (weights/tokenizer-<recipe>/, copied into
// runs/ rather than trained), so the main job trains no tokenizer: `original` the `full9600`
// one the original weights were trained through, the others the `full` one (24,000 steps,
// validation held out). The experiments (experiments.ts) are accepted too but listed nowhere.

import { EXPERIMENT_PRESETS } from './experiments';
import type { PipelinePreset } from './recipes';

/** The presets --help lists, in its order. */
export const USER_PRESETS: Record<string, PipelinePreset> = {
  quick: {
    tokenizer: 'full',
    gpt: 'quick',
    sampling: 'default',
    evalItems: 300,
    summary:
      '1,800 steps, mostly caption-first, Muon for the matrices, through the shipped tokenizer: about 4 minutes on 2 cores, evaluation included',
  },
  best: {
    tokenizer: 'full',
    gpt: 'best',
    sampling: 'default',
    evalItems: 1000,
    summary: '30 epochs, dropout 0.1, AdamW, warm-up + cosine; 40 colour pairs held out',
  },
  original: {
    tokenizer: 'full9600',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary: 'the original recipe: 30 epochs, batch 32, Adam, lr 1e-3',
  },
  'original-full': {
    tokenizer: 'full',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary:
      'the original recipe through the 24000-step `full` tokenizer (trains it first unless shipped)',
  },
  tiny: {
    tokenizer: 'tiny',
    gpt: 'tiny',
    sampling: 'default',
    evalItems: 50,
    summary: 'seconds; smoke tests and MMGPT_TINY notebooks',
  },
};

/** Every preset --preset accepts: the user-facing ones, then the experiments. */
export const PIPELINE_PRESETS: Record<string, PipelinePreset> = {
  ...USER_PRESETS,
  ...EXPERIMENT_PRESETS,
};

/** The user-facing preset names (--help and error messages list only these). */
export const PRESET_NAMES = Object.keys(USER_PRESETS);

/** The experiments' names: accepted by --preset, listed nowhere. */
export const EXPERIMENT_NAMES = Object.keys(EXPERIMENT_PRESETS);

/** Every name --preset accepts, experiments included. */
export const ACCEPTED_PRESET_NAMES = Object.keys(PIPELINE_PRESETS);

/** The preset of this name; an unknown name throws, listing the user-facing presets. */
export function pipelinePreset(name: string): PipelinePreset {
  const preset = Object.prototype.hasOwnProperty.call(PIPELINE_PRESETS, name)
    ? PIPELINE_PRESETS[name]
    : undefined;
  if (!preset) throw new Error(`unknown preset '${name}' (known: ${PRESET_NAMES.join(', ')})`);
  return preset;
}

/** Whether `name` is an experiment: accepted, but listed nowhere. */
export function isExperiment(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(EXPERIMENT_PRESETS, name);
}
