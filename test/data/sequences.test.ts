// The two sequence orders laid out exactly as the original write-up lays them out; training batches half/half within
// every batch, shuffled per epoch, resumable; evaluation in both orders, deterministic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import {
  IMAGE_TO_TEXT,
  SEQUENCE_LENGTH,
  TEXT_TO_IMAGE,
  batchesPerEpoch,
  buildSequence,
  epochBatches,
  evaluationBatches,
  evaluationSequences,
  inputsAndTargets,
  makeSequenceSource,
} from '../../src/data/sequences';

const vocab = new Vocab();

/** N items with distinct, recognisable tokens: image code of item i, position p = (i*49+p) % K. */
function toySource(n: number) {
  const captions = new Int32Array(n * 6);
  const images = new Int32Array(n * 49);
  for (let i = 0; i < n; i++) {
    captions.set(vocab.captionTokens(i % 10, i % 40, (i + 1) % 40), i * 6);
    for (let p = 0; p < 49; p++) images[i * 49 + p] = (i * 49 + p) % 1024;
  }
  return makeSequenceSource(captions, images, vocab);
}

test('both orders are laid out exactly: 58 tokens, 57 targets', () => {
  const src = toySource(3);
  const caption = [...src.captionTokens.subarray(6, 12)];
  const image = [...src.imageTokens.subarray(49, 98)];
  const t2i = [...buildSequence(TEXT_TO_IMAGE, src, 1, vocab)];
  const i2t = [...buildSequence(IMAGE_TO_TEXT, src, 1, vocab)];
  assert.equal(SEQUENCE_LENGTH, 58);
  assert.deepEqual(t2i, [vocab.bos, vocab.endOfImage, ...caption, vocab.endOfText, ...image]);
  assert.deepEqual(i2t, [vocab.bos, vocab.endOfText, ...image, vocab.endOfImage, ...caption]);
  const { inputs, targets } = inputsAndTargets(Int32Array.from(t2i), 1);
  assert.equal(targets.length, 57);
  assert.deepEqual([...inputs], t2i.slice(0, 57));
  assert.deepEqual([...targets], t2i.slice(1));
});

test('every training batch is half order 1, half order 2; an epoch covers every item once', () => {
  const n = 103;
  const src = toySource(n);
  const rng = new Rng(5);
  for (const batchSize of [32, 7]) {
    const seen = new Int32Array(n);
    let batches = 0;
    for (const batch of epochBatches(src, vocab, rng, batchSize)) {
      batches++;
      assert.equal(batch.tokens.length, batch.size * 58);
      const ones = batch.orders.filter((o) => o === TEXT_TO_IMAGE).length;
      assert.ok(Math.abs(ones - (batch.size - ones)) <= 1, `${ones} of ${batch.size}`);
      if (batch.size % 2 === 0) assert.equal(ones, batch.size / 2);
      for (let r = 0; r < batch.size; r++) {
        seen[batch.items[r]!]!++;
        const row = batch.tokens.subarray(r * 58, (r + 1) * 58);
        const expected = buildSequence(batch.orders[r] as 1 | 2, src, batch.items[r]!, vocab);
        assert.deepEqual(row, expected);
      }
    }
    assert.equal(batches, batchesPerEpoch(n, batchSize));
    assert.ok(seen.every((c) => c === 1));
  }
  const dropped = [...epochBatches(src, vocab, rng, 32, { dropLast: true })];
  assert.equal(dropped.length, 3);
  assert.ok(dropped.every((b) => b.size === 32));
});

test('epochs are shuffled differently, deterministically per seed, and resumable mid-epoch', () => {
  const src = toySource(64);
  const order = (rng: Rng) => [...epochBatches(src, vocab, rng, 16)].flatMap((b) => [...b.items]);
  const a = new Rng(9);
  const epoch1 = order(a);
  const epoch2 = order(a);
  assert.notDeepEqual(epoch1, epoch2);
  assert.deepEqual(order(new Rng(9)), epoch1);

  const rng = new Rng(11);
  const state = rng.getState();
  const full = [...epochBatches(src, vocab, rng, 16)];
  const afterFull = rng.getState();
  const resumedRng = new Rng(0);
  resumedRng.setState(state);
  const resumed = [...epochBatches(src, vocab, resumedRng, 16, { startBatch: 2 })];
  assert.deepEqual(resumed, full.slice(2));
  assert.deepEqual(resumedRng.getState(), afterFull);
});

test('evaluation covers every item in both orders, deterministically', () => {
  const n = 11;
  const src = toySource(n);
  const all = evaluationSequences(src, vocab);
  assert.equal(all.size, 2 * n);
  for (let i = 0; i < n; i++) {
    assert.deepEqual(
      all.tokens.subarray(2 * i * 58, (2 * i + 1) * 58),
      buildSequence(TEXT_TO_IMAGE, src, i, vocab),
    );
    assert.deepEqual(
      all.tokens.subarray((2 * i + 1) * 58, (2 * i + 2) * 58),
      buildSequence(IMAGE_TO_TEXT, src, i, vocab),
    );
  }
  const batches = [...evaluationBatches(src, vocab, 8)];
  assert.equal(batches.length, 3);
  const joined = new Int32Array(batches.reduce((s, b) => s + b.tokens.length, 0));
  let off = 0;
  for (const b of batches) {
    joined.set(b.tokens, off);
    off += b.tokens.length;
    assert.equal(b.orders.filter((o) => o === TEXT_TO_IMAGE).length, b.size / 2);
  }
  assert.deepEqual(joined, all.tokens);
  assert.throws(() => [...evaluationBatches(src, vocab, 7)], /even integer/);
});

test('sources with bad shapes or out-of-range tokens are rejected', () => {
  assert.throws(
    () => makeSequenceSource(new Int32Array(6), new Int32Array(48), vocab),
    /\[N, 49\]/,
  );
  const caption = vocab.captionTokens(1, 2, 3);
  assert.throws(
    () => makeSequenceSource(caption, new Int32Array(49).fill(1024), vocab),
    /image token 1024.*0\.\.1023/,
  );
  assert.throws(
    () => makeSequenceSource(new Int32Array(6), new Int32Array(49), vocab),
    /caption token 0 .*not a word token/,
  );
});

test('textFirstShare sets the share of text-first rows; the items and their shuffle are unchanged', () => {
  const src = toySource(40);
  const half = [...epochBatches(src, vocab, new Rng(9), 16)];
  const most = [...epochBatches(src, vocab, new Rng(9), 16, { textFirstShare: 0.75 })];
  assert.deepEqual(
    most.map((b) => [...b.items]),
    half.map((b) => [...b.items]),
  );
  // Batches of 16, 16 and 8 rows: 12, 12 and 6 text-first rows, first in each batch.
  assert.deepEqual(
    most.map((b) => b.orders.filter((o) => o === TEXT_TO_IMAGE).length),
    [12, 12, 6],
  );
  for (const b of most) {
    const first = b.orders.filter((o) => o === TEXT_TO_IMAGE).length;
    assert.ok(b.orders.subarray(0, first).every((o) => o === TEXT_TO_IMAGE));
    assert.ok(b.orders.subarray(first).every((o) => o === IMAGE_TO_TEXT));
    for (let r = 0; r < b.size; r++)
      assert.deepEqual(
        b.tokens.subarray(r * 58, (r + 1) * 58),
        buildSequence(b.orders[r] as 1 | 2, src, b.items[r]!, vocab),
      );
  }
  assert.throws(
    () => epochBatches(src, vocab, new Rng(9), 16, { textFirstShare: 1.5 }),
    /textFirstShare must be in 0..1, got 1.5/,
  );
});
