// The tokenizer's configuration: the fields of a VQ-VAE, its presets, and their validation.
//
// Notable choices the fields carry (the measurements behind them are in docs/):
// - `foregroundWeight`: the values of pixels that differ from their image's most common colour
//   (the digit and its anti-aliased edge, about a fifth of the pixels) weigh more than the
//   background's in the reconstruction loss. With a plain mean the background dominates and the
//   codes spend too little on the digit's colour; the weight keeps the digit's colour and shape
//   in far more reconstructions.
// - `globalContext` (off by default) adds the grid mean of the 7x7 features back at every position
//   in the encoder and decoder. Meant to let codes share the image-wide colours, it did not help
//   and stays as an option.
// - `codeSearch` (absent by default) makes `encode` search the codes against the decoder
//   (src/vqvae/search.ts); training and decoding do not change.
// A checkpoint stores its config beside the weights; fields added later read with the meaning
// they had before they existed (VQVAE_LEGACY_FIELDS).

import type { CodeSearch } from './search';
import { validateCodeSearch } from './search';

export interface VqVaeConfig {
  /** Number of codebook vectors K (the image vocabulary of the GPT). */
  codebookSize: number;
  /** Dimension D of each codebook vector. */
  codeDim: number;
  /** Channels at 7x7 (the 14x14 stage uses half as many). Must be even. */
  hiddenChannels: number;
  /** Channels inside each residual block. */
  residualChannels: number;
  /** Residual blocks in the encoder and (as many) in the decoder. */
  residualBlocks: number;
  /** Commitment loss weight beta. */
  beta: number;
  /** EMA decay of the codebook statistics (sonnet's default 0.99). */
  emaDecay: number;
  /** Laplace smoothing epsilon of the EMA cluster sizes. */
  emaEpsilon: number;
  /** A code unused for this many training steps is restarted from the batch (0: never). */
  deadCodeSteps: number;
  /**
   * Loss weight of the pixels that differ from their image's background colour (the most
   * common colour of the image), relative to 1 for background pixels. The digit and its
   * colour live in about a fifth of the pixels; a plain mean lets the background dominate.
   */
  foregroundWeight: number;
  /**
   * Adds an image-wide context to the encoder and decoder at the 7x7 stage: the mean of the
   * features over the grid, through a 1x1 convolution, added at every position. The two
   * colours are properties of the whole image, and this lets every code see and share them.
   */
  globalContext: boolean;
  /**
   * Decoder-aware encoding (src/vqvae/search.ts; absent: each cell gets its nearest code). The
   * encoder's nearest codes are the start of a search that tries each cell's `candidates`
   * nearest codes in turn and keeps the one whose decoded image is closest to the input. It
   * changes only `encode`: training and decoding are the same.
   */
  codeSearch?: CodeSearch;
}

/** What a checkpoint written before a field existed meant by it (the behaviour of that time). */
export const VQVAE_LEGACY_FIELDS: Pick<VqVaeConfig, 'foregroundWeight' | 'globalContext'> = {
  foregroundWeight: 1,
  globalContext: false,
};

/** The default tokenizer: 1024 codes of dimension 64, beta 0.25. */
export const VQVAE_DEFAULTS: VqVaeConfig = {
  codebookSize: 1024,
  codeDim: 64,
  hiddenChannels: 64,
  residualChannels: 32,
  residualBlocks: 2,
  beta: 0.25,
  emaDecay: 0.99,
  emaEpsilon: 1e-5,
  deadCodeSteps: 100,
  foregroundWeight: 4,
  globalContext: false,
};

export const VQVAE_PRESETS = {
  /** The real tokenizer (1024 x 64). */
  default: VQVAE_DEFAULTS,
  /** A tokenizer small enough for unit tests on the reference backend. */
  tiny: {
    codebookSize: 32,
    codeDim: 8,
    hiddenChannels: 16,
    residualChannels: 8,
    residualBlocks: 1,
    beta: 0.25,
    emaDecay: 0.9,
    emaEpsilon: 1e-5,
    deadCodeSteps: 10,
    foregroundWeight: 1,
    globalContext: false,
  } satisfies VqVaeConfig,
} as const;

export type VqVaePresetName = keyof typeof VQVAE_PRESETS;

/** Checks every field; throws naming the field, the value and what is accepted. */
export function validateVqVaeConfig(c: VqVaeConfig): VqVaeConfig {
  const positiveInts = ['codebookSize', 'codeDim', 'hiddenChannels', 'residualChannels'] as const;
  for (const key of positiveInts) {
    if (!Number.isInteger(c[key]) || c[key] <= 0)
      throw new Error(`VqVaeConfig.${key} must be a positive integer, got ${c[key]}`);
  }
  for (const key of ['residualBlocks', 'deadCodeSteps'] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 0)
      throw new Error(`VqVaeConfig.${key} must be a non-negative integer, got ${c[key]}`);
  }
  if (c.hiddenChannels % 2 !== 0)
    throw new Error(`VqVaeConfig.hiddenChannels must be even, got ${c.hiddenChannels}`);
  if (!(c.beta >= 0 && Number.isFinite(c.beta)))
    throw new Error(`VqVaeConfig.beta must be a finite number >= 0, got ${c.beta}`);
  if (!(c.emaDecay >= 0 && c.emaDecay < 1))
    throw new Error(`VqVaeConfig.emaDecay must be in [0, 1), got ${c.emaDecay}`);
  if (!(c.foregroundWeight > 0 && Number.isFinite(c.foregroundWeight)))
    throw new Error(
      `VqVaeConfig.foregroundWeight must be a finite number > 0, got ${c.foregroundWeight}`,
    );
  if (typeof c.globalContext !== 'boolean')
    throw new Error(`VqVaeConfig.globalContext must be true or false, got ${c.globalContext}`);
  if (!(c.emaEpsilon > 0 && Number.isFinite(c.emaEpsilon)))
    throw new Error(`VqVaeConfig.emaEpsilon must be a finite number > 0, got ${c.emaEpsilon}`);
  if (c.codeSearch !== undefined) validateCodeSearch(c.codeSearch, c.codebookSize);
  return c;
}

/** A preset by name, with optional overrides, validated. */
export function vqVaeConfig(
  preset: VqVaePresetName = 'default',
  overrides: Partial<VqVaeConfig> = {},
): VqVaeConfig {
  if (!Object.prototype.hasOwnProperty.call(VQVAE_PRESETS, preset)) {
    throw new Error(
      `unknown VQ-VAE preset '${preset}': choose one of ${Object.keys(VQVAE_PRESETS).join(', ')}`,
    );
  }
  return validateVqVaeConfig({ ...VQVAE_PRESETS[preset], ...overrides });
}
