// The named runs that did not ship, and the tokenizer recipes only they use. Each is still
// accepted by `--preset` (old runs and write-ups can be reproduced), but no --help or error
// message lists them; docs/tokenizers.md says what each tried and what it gave.
//
// All four retrain the original GPT recipe through another tokenizer: `full` trained longer
// (full36k), `full` trained on with a perceptual term (perceptual), and `perceptual`'s weights
// encoding with the code search, without a reader (searched) or with one (searched-reader).

import { VQVAE_PRESETS } from '../vqvae/model';
import type { CodeSearch } from '../vqvae/search';
import { VALIDATION_ITEMS } from '../data/holdout';
import { PERCEPTUAL_CLASSIFIER } from './recipes';
import type { PipelinePreset, TokenizerRecipe } from './recipes';

/**
 * A recipe without training: the default tokenizer of recipe `init` (seed 2, validation held
 * out, as `perceptual`), encoding with `codeSearch`.
 */
function searchingRecipe(init: string, codeSearch: CodeSearch): TokenizerRecipe {
  return {
    config: { ...VQVAE_PRESETS.default, codeSearch },
    batchSize: 64,
    steps: 0,
    lr: 0,
    trainLimit: 0,
    seed: 2,
    validationItems: VALIDATION_ITEMS,
    init,
  };
}

/** The tokenizer recipes of the experiments (TOKENIZER_RECIPES in tokenizers.ts holds them too). */
export const EXPERIMENT_TOKENIZER_RECIPES: Record<string, TokenizerRecipe> = {
  /**
   * `full` trained 6,000 steps more with the perceptual term (weight 1; warm-up to lr 5e-4,
   * cosine to 5e-5). It mended the foreground but not the digit, nor did a decoder-only
   * fine-tune with the term or with a reader of the judge's architecture: the codes lose it.
   * Not shipped; no GPT was trained through it.
   */
  perceptual: {
    config: VQVAE_PRESETS.default,
    batchSize: 64,
    steps: 6000,
    lr: 5e-4,
    trainLimit: 0,
    seed: 2,
    validationItems: VALIDATION_ITEMS,
    init: 'full',
    perceptualWeight: 1,
  },

  /**
   * `perceptual`'s weights, encoding with the code search (src/vqvae/search.ts): each cell's
   * nearest code is the start, and in one raster sweep over the cells within one cell of a
   * wrongly decoded pixel, its 2 nearest codes are tried, keeping the one whose decoding is
   * closest to the image. No training (0 steps). Chosen on the validation split
   * (bench/results/tokenizer-search-validation.md).
   */
  searched: searchingRecipe('perceptual', { candidates: 2, sweeps: 1, reach: 1 }),

  /**
   * `searched` with a reader in the search (`codeSearch.reader`, src/vqvae/search.ts): each
   * trial's decoded image is also charged 50 x the cross-entropy of `perceptual`'s
   * reader (PERCEPTUAL_CLASSIFIER, trained on this recipe's training images; never the judge)
   * against that reader's reading of the real image. The reader ships inside the tokenizer.
   * Chosen on the validation split (bench/results/tokenizer-search-validation.md).
   */
  'searched-reader': searchingRecipe('perceptual', {
    candidates: 2,
    sweeps: 2,
    reach: 1,
    reader: { weight: 50, classifier: PERCEPTUAL_CLASSIFIER.config },
  }),

  /**
   * `full` trained 12,000 steps more (warm-up to lr 5e-4, cosine to 5e-5), the encoder and
   * codebook included: fine-tuning only its decoder on fixed codes kept no more attributes, so
   * the codes lose what is missing. It kept too few more to ship or to retrain a GPT through.
   */
  full36k: {
    config: VQVAE_PRESETS.default,
    batchSize: 64,
    steps: 12000,
    lr: 5e-4,
    trainLimit: 0,
    seed: 1,
    validationItems: VALIDATION_ITEMS,
    init: 'full',
  },
};

/** The named runs that did not ship: accepted by --preset, listed nowhere. */
export const EXPERIMENT_PRESETS: Record<string, PipelinePreset> = {
  'original-full36k': {
    tokenizer: 'full36k',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary:
      'the original recipe through `full36k`, the full tokenizer trained 12,000 steps more (trains it first)',
  },
  'original-perceptual': {
    tokenizer: 'perceptual',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary:
      'the original recipe through `perceptual`, the full tokenizer trained on with a perceptual loss (trains it first)',
  },
  'original-searched': {
    tokenizer: 'searched',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary:
      'the original recipe through `searched`: `perceptual` encoding with the code search (copies it if shipped)',
  },
  'original-searched-reader': {
    tokenizer: 'searched-reader',
    gpt: 'original',
    sampling: 'default',
    evalItems: 1000,
    summary:
      'the original recipe through `searched-reader`: the code search with a reader (copies it if shipped)',
  },
};
