// Shared helpers for the GPT training tests (and the write-failure tests that train one): a
// one-layer preset on the tiny recipe, and sequence sources whose fields cycle.

import type { Vocab } from '../../src/data/vocab';
import { makeSequenceSource } from '../../src/data/sequences';
import type { SequenceSource } from '../../src/data/sequences';
import { GPT_PRESETS } from '../../src/gpt/train';
import type { GptPreset, GptTrainConfig } from '../../src/gpt/train';

/**
 * One layer, 2 heads, width 16, on the tiny recipe for one epoch of batches of 8, tested on 8
 * items in one batch; `train` overrides any training field.
 */
export function oneLayerPreset(train: Partial<GptTrainConfig>, dropout = 0): GptPreset {
  return {
    model: { nLayer: 1, nHead: 2, nEmbd: 16, dropout },
    train: {
      ...GPT_PRESETS.tiny.train,
      epochs: 1,
      batchSize: 8,
      testLimit: 8,
      evalBatchSize: 8,
      ...train,
    },
  };
}

/** `count` items: digit i % 10, foreground i % 3, background 3 + i % 3, image codes i % 16. */
export function cyclicSource(vocab: Vocab, count: number): SequenceSource {
  const digit = new Int32Array(count).map((_, i) => i % 10);
  const fg = new Int32Array(count).map((_, i) => i % 3);
  const bg = new Int32Array(count).map((_, i) => 3 + (i % 3));
  const image = new Int32Array(count * 49).map((_, i) => i % 16);
  return makeSequenceSource(vocab.captionTokensBatch(digit, fg, bg), image, vocab);
}
