// Images as colour levels, and the decoder's logits over them: what the tokenizer, its code
// search and its trainer share below the model.
//
// An image is [28, 28, 3] levels 0..3 (HWC, row-major, as src/data/coloured.ts stores them); a
// set of images is one Uint8Array of `count` of them. The decoder's output is 3 x 4 logits per
// pixel, [n, 12, 28, 28] with channel c's level l at plane 4c + l; the decoded image is the argmax
// level of each channel. The loss weights toward the digit (`foregroundWeights`) belong here too:
// both the training loss and the code search's objective use them.

import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/images';

/** Pixels of one image: 28 x 28. */
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
/** Output logits per pixel: 3 channels x 4 levels. */
export const LOGITS_PER_PIXEL = IMAGE_CHANNELS * LEVELS;

/** Any set of images: a ColouredSplit fits. images: [count, 28, 28, 3] levels 0..3. */
export interface ImageSet {
  images: Uint8Array;
  count: number;
}

/** Throws unless `set` holds at least one image and as many values as its count needs. */
export function checkSet(what: string, set: ImageSet): void {
  if (
    !Number.isInteger(set.count) ||
    set.count <= 0 ||
    set.images.length < set.count * IMAGE_VALUES
  ) {
    throw new Error(
      `${what}: need count > 0 and count * ${IMAGE_VALUES} image values, ` +
        `got count ${set.count} and ${set.images.length} values`,
    );
  }
}

/** Throws unless `images` holds `count` images of 28x28x3 levels in 0..3. */
export function checkLevelImages(op: string, images: Uint8Array, count: number): void {
  if (!Number.isInteger(count) || count < 0 || images.length < count * IMAGE_VALUES) {
    throw new Error(
      `${op}: need ${count} images of ${IMAGE_SIZE}x${IMAGE_SIZE}x${IMAGE_CHANNELS} ` +
        `(${count * IMAGE_VALUES} values), got ${images.length} values`,
    );
  }
  const n = count * IMAGE_VALUES;
  for (let i = 0; i < n; i++) {
    if (images[i]! >= LEVELS) {
      throw new Error(
        `${op}: value ${images[i]} at index ${i} is not a colour level (accepted: 0..${LEVELS - 1})`,
      );
    }
  }
}

/**
 * Per-value loss weights [count * 28*28*3] in the HWC order of `images`: `weight` for the values
 * of pixels whose colour differs from their image's most common colour (its background), 1 for
 * the rest; and their sum.
 */
export function foregroundWeights(
  images: Uint8Array,
  count: number,
  weight: number,
): { weights: Float32Array; total: number } {
  const weights = new Float32Array(count * IMAGE_VALUES);
  const histogram = new Int32Array(LEVELS ** IMAGE_CHANNELS);
  const colourAt = (i: number): number =>
    (images[i]! * LEVELS + images[i + 1]!) * LEVELS + images[i + 2]!;
  let total = 0;
  for (let b = 0; b < count; b++) {
    histogram.fill(0);
    const base = b * IMAGE_VALUES;
    for (let p = 0; p < PIXELS; p++) histogram[colourAt(base + p * IMAGE_CHANNELS)]!++;
    let background = 0;
    for (let c = 1; c < histogram.length; c++)
      if (histogram[c]! > histogram[background]!) background = c;
    for (let p = 0; p < PIXELS; p++) {
      const i = base + p * IMAGE_CHANNELS;
      const w = colourAt(i) === background ? 1 : weight;
      weights[i] = w;
      weights[i + 1] = w;
      weights[i + 2] = w;
      total += IMAGE_CHANNELS * w;
    }
  }
  return { weights, total };
}

/** Logits [n, 12, 28, 28] (channel = colour*4 + level) -> images [n, 28, 28, 3] of argmax levels. */
export function argmaxLevels(logits: Float32Array, n: number, out: Uint8Array): void {
  for (let b = 0; b < n; b++) {
    const base = b * LOGITS_PER_PIXEL * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      for (let c = 0; c < IMAGE_CHANNELS; c++) {
        let best = 0;
        let bestValue = logits[base + c * LEVELS * PIXELS + p]!;
        for (let l = 1; l < LEVELS; l++) {
          const v = logits[base + (c * LEVELS + l) * PIXELS + p]!;
          if (v > bestValue) {
            bestValue = v;
            best = l;
          }
        }
        out[(b * PIXELS + p) * IMAGE_CHANNELS + c] = best;
      }
    }
  }
}
