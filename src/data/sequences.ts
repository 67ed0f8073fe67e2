// The two sequence orders of the multimodal transformer, and the batches it trains on.
//
// The original write-up's layout: 58 tokens with <bos>, the model predicts the 57 after it.
//   order 1 (text -> image): <bos> <end of image> text(6) <end of text> image(49)
//   order 2 (image -> text): <bos> <end of text> image(49) <end of image> text(6)
// The token after <bos> announces which modality is *absent first*: <end of image> first means
// "no image yet, text follows", as in the original.
// Notable choices:
// - Training batches: each epoch draws one permutation of the items from the seeded RNG; in every
//   batch the first half of the rows is order 1 and the second half order 2 (an odd batch gives
//   its extra row to an order drawn from the RNG). All of an epoch's randomness is drawn when
//   epochBatches() is called, so a run resumed at batch b (startBatch) sees the same batches.
// - Evaluation: every item in both orders, row 2i = item i in order 1, row 2i+1 = order 2,
//   no randomness; any even-sized slice is half/half.

import type { Rng } from '../nn/rng';
import type { ColouredSplit } from './coloured';
import { CAPTION_LENGTH, Vocab } from './vocab';

export const IMAGE_TOKENS = 49;
export const SEQUENCE_LENGTH = 58;
/** Predicted tokens per sequence (all after <bos>). */
export const TARGETS_PER_SEQUENCE = SEQUENCE_LENGTH - 1;

export const TEXT_TO_IMAGE = 1;
export const IMAGE_TO_TEXT = 2;
export type SequenceOrder = typeof TEXT_TO_IMAGE | typeof IMAGE_TO_TEXT;

/** Where each part sits in a 58-token sequence of each order (token positions). */
export const SEQUENCE_LAYOUT: Readonly<
  Record<
    SequenceOrder,
    { marker: number; textStart: number; separator: number; imageStart: number }
  >
> = {
  // <bos>=0, <end of image>=1, text 2..7, <end of text>=8, image 9..57
  [TEXT_TO_IMAGE]: { marker: 1, textStart: 2, separator: 8, imageStart: 9 },
  // <bos>=0, <end of text>=1, image 2..50, <end of image>=51, text 52..57
  [IMAGE_TO_TEXT]: { marker: 1, imageStart: 2, separator: 51, textStart: 52 },
};

/** Caption and image tokens of a split: what sequences are made from. */
export interface SequenceSource {
  count: number;
  /** [N, 6] word tokens. */
  captionTokens: Int32Array;
  /** [N, 49] image code tokens 0..K-1 (from the VQ-VAE). */
  imageTokens: Int32Array;
}

export interface SequenceBatch {
  /** Rows in this batch. */
  size: number;
  /** [B, 58] token ids. */
  tokens: Int32Array;
  /** [B] order of each row: 1 (text -> image) or 2 (image -> text). */
  orders: Uint8Array;
  /** [B] dataset index of each row. */
  items: Int32Array;
}

/** Checks shapes and token ranges once, so batch building can skip the checks. */
export function makeSequenceSource(
  captionTokens: Int32Array,
  imageTokens: Int32Array,
  vocab: Vocab,
): SequenceSource {
  const count = captionTokens.length / CAPTION_LENGTH;
  if (!Number.isInteger(count) || imageTokens.length !== count * IMAGE_TOKENS) {
    throw new Error(
      `sequence source: captionTokens must be [N, ${CAPTION_LENGTH}] and imageTokens ` +
        `[N, ${IMAGE_TOKENS}]; got ${captionTokens.length} and ${imageTokens.length} values`,
    );
  }
  for (let i = 0; i < captionTokens.length; i++) {
    if (!vocab.isWordToken(captionTokens[i]!)) {
      throw new Error(
        `sequence source: caption token ${captionTokens[i]} (item ${Math.floor(i / CAPTION_LENGTH)}) ` +
          `is not a word token (${vocab.wordOffset}..${vocab.bos - 1})`,
      );
    }
  }
  for (let i = 0; i < imageTokens.length; i++) {
    if (!vocab.isImageToken(imageTokens[i]!)) {
      throw new Error(
        `sequence source: image token ${imageTokens[i]} (item ${Math.floor(i / IMAGE_TOKENS)}) ` +
          `is not an image code 0..${vocab.imageCodes - 1}`,
      );
    }
  }
  return { count, captionTokens, imageTokens };
}

/** A sequence source from a coloured split (its captions) and its VQ-VAE codes [N, 49]. */
export function splitSequenceSource(
  split: ColouredSplit,
  imageTokens: Int32Array,
  vocab: Vocab,
): SequenceSource {
  return makeSequenceSource(
    vocab.captionTokensBatch(split.digit, split.fg, split.bg),
    imageTokens,
    vocab,
  );
}

/** Writes item `item` of `source` in `order` into out[offset .. offset + 58). */
export function writeSequence(
  out: Int32Array,
  offset: number,
  order: SequenceOrder,
  source: SequenceSource,
  item: number,
  vocab: Vocab,
): void {
  const caption = source.captionTokens.subarray(item * CAPTION_LENGTH, (item + 1) * CAPTION_LENGTH);
  const image = source.imageTokens.subarray(item * IMAGE_TOKENS, (item + 1) * IMAGE_TOKENS);
  const layout = SEQUENCE_LAYOUT[order];
  out[offset] = vocab.bos;
  if (order === TEXT_TO_IMAGE) {
    out[offset + layout.marker] = vocab.endOfImage;
    out.set(caption, offset + layout.textStart);
    out[offset + layout.separator] = vocab.endOfText;
    out.set(image, offset + layout.imageStart);
  } else {
    out[offset + layout.marker] = vocab.endOfText;
    out.set(image, offset + layout.imageStart);
    out[offset + layout.separator] = vocab.endOfImage;
    out.set(caption, offset + layout.textStart);
  }
}

/** One item's 58-token sequence in `order`. */
export function buildSequence(
  order: SequenceOrder,
  source: SequenceSource,
  item: number,
  vocab: Vocab,
): Int32Array {
  const out = new Int32Array(SEQUENCE_LENGTH);
  writeSequence(out, 0, order, source, item, vocab);
  return out;
}

function assembleBatch(
  source: SequenceSource,
  vocab: Vocab,
  items: Int32Array,
  orders: Uint8Array,
): SequenceBatch {
  const size = items.length;
  const tokens = new Int32Array(size * SEQUENCE_LENGTH); // [B, 58]
  for (let r = 0; r < size; r++) {
    writeSequence(
      tokens,
      r * SEQUENCE_LENGTH,
      orders[r] as SequenceOrder,
      source,
      items[r]!,
      vocab,
    );
  }
  return { size, tokens, orders, items };
}

export interface EpochOptions {
  /** Drop a final batch smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Skip the first startBatch batches (resuming mid-epoch); the RNG draws are the same. */
  startBatch?: number;
  /**
   * The share of each batch's rows in order 1 (text -> image), rounded to whole rows; absent:
   * half (an odd batch's extra row to an order drawn from the RNG, as always).
   */
  textFirstShare?: number;
}

/** Batches in one epoch of `count` items. */
export function batchesPerEpoch(count: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

/**
 * One shuffled training epoch. All randomness (the permutation, and the order of the extra row
 * of odd-sized batches) is drawn from `rng` now, before the first batch is taken.
 */
export function epochBatches(
  source: SequenceSource,
  vocab: Vocab,
  rng: Rng,
  batchSize: number,
  options: EpochOptions = {},
): Generator<SequenceBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`epochBatches: batchSize must be a positive integer, got ${batchSize}`);
  }
  const dropLast = options.dropLast ?? false;
  const batchCount = batchesPerEpoch(source.count, batchSize, dropLast);
  const startBatch = options.startBatch ?? 0;
  if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > batchCount) {
    throw new Error(`epochBatches: startBatch must be in 0..${batchCount}, got ${startBatch}`);
  }
  const share = options.textFirstShare;
  if (share !== undefined && !(share >= 0 && share <= 1))
    throw new Error(`epochBatches: textFirstShare must be in 0..1, got ${share}`);
  const permutation = rng.permutation(source.count);
  const extraRowOrder = new Uint8Array(batchCount); // used only by odd-sized batches
  for (let b = 0; b < batchCount; b++) {
    const size = Math.min(batchSize, source.count - b * batchSize);
    if (size % 2 === 1) extraRowOrder[b] = rng.int(2) === 0 ? TEXT_TO_IMAGE : IMAGE_TO_TEXT;
  }
  function* generate(): Generator<SequenceBatch> {
    for (let b = startBatch; b < batchCount; b++) {
      const start = b * batchSize;
      const items = permutation.slice(start, Math.min(start + batchSize, source.count));
      const size = items.length;
      const textFirst =
        share !== undefined
          ? Math.round(size * share)
          : extraRowOrder[b] === TEXT_TO_IMAGE
            ? Math.ceil(size / 2)
            : size >> 1;
      const orders = new Uint8Array(size);
      orders.fill(TEXT_TO_IMAGE, 0, textFirst);
      orders.fill(IMAGE_TO_TEXT, textFirst);
      yield assembleBatch(source, vocab, items, orders);
    }
  }
  return generate();
}

/** Every item in both orders: rows 2i (order 1) and 2i+1 (order 2); [2N, 58]. */
export function evaluationSequences(source: SequenceSource, vocab: Vocab): SequenceBatch {
  const items = new Int32Array(2 * source.count);
  const orders = new Uint8Array(2 * source.count);
  for (let i = 0; i < source.count; i++) {
    items[2 * i] = i;
    items[2 * i + 1] = i;
    orders[2 * i] = TEXT_TO_IMAGE;
    orders[2 * i + 1] = IMAGE_TO_TEXT;
  }
  return assembleBatch(source, vocab, items, orders);
}

/** Evaluation in batches of `batchSize` rows (even: batchSize / 2 items in both orders). */
export function* evaluationBatches(
  source: SequenceSource,
  vocab: Vocab,
  batchSize: number,
): Generator<SequenceBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 2 || batchSize % 2 !== 0) {
    throw new Error(
      `evaluationBatches: batchSize must be an even integer >= 2 (each item appears in both ` +
        `orders), got ${batchSize}`,
    );
  }
  const itemsPerBatch = batchSize / 2;
  for (let start = 0; start < source.count; start += itemsPerBatch) {
    const end = Math.min(start + itemsPerBatch, source.count);
    const items = new Int32Array(2 * (end - start));
    const orders = new Uint8Array(2 * (end - start));
    for (let i = start; i < end; i++) {
      const r = 2 * (i - start);
      items[r] = i;
      items[r + 1] = i;
      orders[r] = TEXT_TO_IMAGE;
      orders[r + 1] = IMAGE_TO_TEXT;
    }
    yield assembleBatch(source, vocab, items, orders);
  }
}

/** Next-token split of [B, 58] tokens: inputs = tokens[:, :57], targets = tokens[:, 1:]. */
export function inputsAndTargets(
  tokens: Int32Array,
  batch: number,
): { inputs: Int32Array; targets: Int32Array } {
  if (tokens.length !== batch * SEQUENCE_LENGTH) {
    throw new Error(
      `inputsAndTargets: expected [${batch}, ${SEQUENCE_LENGTH}] tokens, got ${tokens.length} values`,
    );
  }
  const inputs = new Int32Array(batch * TARGETS_PER_SEQUENCE); // [B, 57]
  const targets = new Int32Array(batch * TARGETS_PER_SEQUENCE); // [B, 57]
  for (let b = 0; b < batch; b++) {
    const row = tokens.subarray(b * SEQUENCE_LENGTH, (b + 1) * SEQUENCE_LENGTH);
    inputs.set(row.subarray(0, TARGETS_PER_SEQUENCE), b * TARGETS_PER_SEQUENCE);
    targets.set(row.subarray(1), b * TARGETS_PER_SEQUENCE);
  }
  return { inputs, targets };
}
