// The model the sampling tests run on: a 2-layer, 16-wide GPT over a 16-code vocabulary, built
// with random weights from a seed of each test's own.

import { GPT, type GptConfig } from '../../src/gpt/model';
import { Vocab } from '../../src/data/vocab';
import { SEQUENCE_LENGTH } from '../../src/data/sequences';
import { Rng } from '../../src/nn/rng';

export const vocab = new Vocab(16);

const config: GptConfig = {
  vocabSize: vocab.size,
  blockSize: SEQUENCE_LENGTH,
  nLayer: 2,
  nHead: 2,
  nEmbd: 16,
  dropout: 0,
};

/** A tiny GPT over `vocab` with random weights from `seed`. */
export function tinyModel(seed: number): GPT {
  return new GPT(config, new Rng(seed));
}
