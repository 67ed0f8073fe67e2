// What a named run is made of: a tokenizer recipe (how the image tokenizer is trained, or made
// from another one without training) and a pipeline preset (which tokenizer recipe, GPT recipe,
// sampling preset and evaluation size a named run uses). The shapes only, and the classifier a
// recipe's perceptual term reads with; the registries are tokenizers.ts (tokenizer recipes),
// presets.ts (named runs) and experiments.ts (the runs and recipes that did not ship).

import { CLASSIFIER_DEFAULTS } from '../eval/classifier';
import type { ClassifierConfig, ClassifierTrainSettings } from '../eval/classifier';
import type { SamplingPresetName } from '../sampling/presets';
import type { VqVaeConfig } from '../vqvae/model';

export interface TokenizerRecipe {
  config: VqVaeConfig;
  batchSize: number;
  /** Optimiser steps (the tokenizer is small; a few epochs of 60k images suffice). */
  steps: number;
  lr: number;
  /** Train on the first N images only (0 = all). */
  trainLimit: number;
  seed: number;
  /** Training images carved off as the validation split and never trained on (0 = none). */
  validationItems: number;
  /**
   * Start from this recipe's trained tokenizer (its weights, codebook and codebook statistics)
   * and train `steps` more, under this recipe's own schedule; absent: from scratch. The two
   * recipes must share the config and the validation split.
   */
  init?: string;
  /**
   * Weight of a perceptual term in the loss (absent: none): a second attribute classifier,
   * trained on this recipe's training images (PERCEPTUAL_CLASSIFIER: another architecture and
   * seed than the judge of the reports), reads a differentiable rendering of each
   * reconstruction, and its cross-entropy against the item's true digit and colours is added
   * (perceptualLossTerm in src/eval/classifier.ts). It pushes the codes and the decoder to keep
   * what a reader of digits sees, which the per-pixel loss weighs only by pixel count.
   */
  perceptualWeight?: number;
}

/**
 * The classifier inside the perceptual term: the judge's first architecture (no stride-1 conv)
 * with seed 1, so the reports' judge (CLASSIFIER_DEFAULTS, seed 0, trained on every training
 * image) stays independent of what the tokenizer was trained to please.
 */
export const PERCEPTUAL_CLASSIFIER: {
  config: ClassifierConfig;
  settings: Partial<ClassifierTrainSettings>;
} = {
  config: { ...CLASSIFIER_DEFAULTS, shapeChannels0: 0 },
  settings: { seed: 1 },
};

/** A named run: `mmgpt train --preset NAME` and `mmgpt pipeline --preset NAME`. */
export interface PipelinePreset {
  /** Its tokenizer recipe: a key of TOKENIZER_RECIPES (src/pipeline/tokenizers.ts). */
  tokenizer: string;
  /** Its GPT recipe: a key of GPT_PRESETS (src/gpt/train.ts). */
  gpt: string;
  /** The sampling preset its sample grids and evaluation use (a key of SAMPLING_PRESETS). */
  sampling: SamplingPresetName;
  /** Test items `mmgpt pipeline` evaluates it on (the default of its --n). */
  evalItems: number;
  /** One line for --help. */
  summary: string;
}
