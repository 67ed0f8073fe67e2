// Shared-prefix span scores: sequences that share prefixes (the searches' caption variants in the
// caption-first order, shifted views of one caption, captions of one image in the image-first
// order, duplicates) score exactly as teacher forcing each whole sequence, in fewer token
// positions; on the js backend and, where it is built, the cpu backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, setBackend } from '../../src/engine/registry';
import type { Tensor } from '../../src/engine/tensor';
import { Rng } from '../../src/nn/rng';
import type { GPT, KVCache } from '../../src/gpt/model';
import { tinyModel, vocab } from './helpers';
import {
  IMAGE_TOKENS,
  SEQUENCE_LENGTH,
  TEXT_TO_IMAGE,
  IMAGE_TO_TEXT,
} from '../../src/data/sequences';
import {
  CAPTION_GIVEN_IMAGE,
  IMAGE_GIVEN_CAPTION,
  pairSequence,
  spanLogLikelihood,
} from '../../src/sampling/score';
import { sharedPrefixSpanLogLikelihood } from '../../src/sampling/prefix';

setBackend('js');

/** Pairs as the searches make them: variants of a few captions and images, and duplicates. */
function searchLikePairs(rng: Rng): { caption: number[]; image: Int32Array }[] {
  const word = () => vocab.wordOffset + rng.int(vocab.bos - vocab.wordOffset);
  const image = () => Int32Array.from({ length: IMAGE_TOKENS }, () => rng.int(vocab.imageCodes));
  const pairs: { caption: number[]; image: Int32Array }[] = [];
  for (let item = 0; item < 3; item++) {
    const caption = Array.from({ length: 6 }, word);
    const views = [image(), image(), image()];
    for (let v = 0; v < 4; v++) {
      const changed = caption.slice();
      changed[v % 2 === 0 ? 2 : 4] = word(); // a digit or a background word changed
      for (const view of views) pairs.push({ caption: changed, image: view });
    }
    pairs.push({ caption, image: views[0]! }); // the same pair twice
    pairs.push({ caption, image: views[0]! });
  }
  return pairs;
}

/** Token positions run through the model (prefixes and continuations) while `fn` runs. */
function positionsRun(model: GPT, fn: () => void): number {
  const hidden = model.hidden.bind(model);
  let positions = 0;
  model.hidden = (tokens: Tensor, cache?: KVCache) => {
    positions += tokens.size;
    return hidden(tokens, cache);
  };
  try {
    fn();
  } finally {
    model.hidden = hidden;
  }
  return positions;
}

/**
 * Shared-prefix scores against teacher-forced ones: equal (rel = 0), or within rel of them. On
 * the cpu backend a full sequence runs the fused attention kernel and a continuation from a
 * cache the composed one, whose float32 sums run in another order.
 */
function checkSharedEqualsForced(model: GPT, rel = 0): void {
  const pairs = searchLikePairs(new Rng(5));
  for (const [order, span] of [
    [TEXT_TO_IMAGE, IMAGE_GIVEN_CAPTION],
    [IMAGE_TO_TEXT, CAPTION_GIVEN_IMAGE],
  ] as const) {
    const sequences = pairs.map((p) => pairSequence(vocab, order, p.caption, p.image));
    const forced = spanLogLikelihood(model, sequences, span);
    for (const batchSize of [1, 5, 64]) {
      let shared = new Float64Array(0);
      const sharedPositions = positionsRun(model, () => {
        shared = sharedPrefixSpanLogLikelihood(model, sequences, span, batchSize);
      });
      const what = `order ${order}, batches of ${batchSize}`;
      if (rel === 0) assert.deepEqual(shared, forced, what);
      else {
        assert.equal(shared.length, forced.length, what);
        forced.forEach((f, i) =>
          assert.ok(Math.abs(shared[i] - f) <= rel * Math.abs(f), `${what}: ${shared[i]} vs ${f}`),
        );
      }
      if (batchSize > 1)
        assert.ok(
          sharedPositions < sequences.length * (span.to - 1),
          `order ${order}, batches of ${batchSize}: ${sharedPositions} positions, no prefix shared`,
        );
    }
  }
}

test('shared-prefix span scores equal the teacher-forced ones exactly, in fewer positions', () => {
  checkSharedEqualsForced(tinyModel(2));
});

test('shared-prefix span scores on the cpu backend equal its teacher-forced ones to 1e-6', (t) => {
  if (!availableBackends().includes('cpu')) {
    t.skip('cpu backend unavailable');
    return;
  }
  setBackend('cpu');
  try {
    checkSharedEqualsForced(tinyModel(2), 1e-6);
  } finally {
    setBackend('js');
  }
});

test('shared-prefix scoring checks its span and sequence lengths', () => {
  const model = tinyModel(2);
  const seq = new Int32Array(SEQUENCE_LENGTH).fill(vocab.bos);
  assert.deepEqual(
    sharedPrefixSpanLogLikelihood(model, [], IMAGE_GIVEN_CAPTION),
    new Float64Array(0),
  );
  assert.throws(() => sharedPrefixSpanLogLikelihood(model, [seq], { from: 0, to: 5 }), /span/);
  assert.throws(
    () => sharedPrefixSpanLogLikelihood(model, [seq, seq.subarray(1)], { from: 1, to: 5 }),
    /sequence 1 has 57 tokens/,
  );
});
