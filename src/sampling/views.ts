// Shifted views of an image, for image -> text. The model reads an image through its 49 VQ-VAE
// codes, and which codes an image gets depends on exactly where its strokes fall on the 4 x 4
// pixel cells the encoder quantises. The same image moved by one pixel is as much that digit, but
// gets other codes; each view is one more look for the generative classifier p(image | caption).
// Summing a digit's score over the image and its four one-pixel shifts reads digits better than
// the image alone (docs/sampling.md). The shift-views search uses the views in the last
// image -> text step (searches.ts, `viewDigitVote`); drawing the candidate captions uses the
// image itself.
//
// A shift moves the image by (dx, dy) pixels and repeats the edge row or column into the gap
// (`shiftImage` of src/data/images.ts with fill 'edge'): a stroke that touches the edge is
// extended rather than cut.

import { IMAGE_VALUES, shiftImage } from '../data/images';
import { IMAGE_TOKENS } from '../data/sequences';

/** The shifts (dx, dy) in pixels of the views beside the image itself: right, left, down, up. */
export const VIEW_SHIFTS: readonly (readonly [number, number])[] = [
  [1, 0],
  [-1, 0],
  [0, 1],
  [0, -1],
];

/**
 * The codes of each image's shifted views: result[i][v] is image i moved by VIEW_SHIFTS[v], encoded
 * by `tokenizer` (one batched encode for all of them). `images` is [count, 28, 28, 3].
 */
export function shiftedViewCodes(
  tokenizer: { encode(images: Uint8Array, count: number): Int32Array },
  images: Uint8Array,
  count: number,
): Int32Array[][] {
  if (!(Number.isInteger(count) && count >= 0 && images.length >= count * IMAGE_VALUES))
    throw new Error(
      `shiftedViewCodes: ${count} images need ${count * IMAGE_VALUES} values, got ${images.length}`,
    );
  const V = VIEW_SHIFTS.length;
  const shifted = new Uint8Array(count * V * IMAGE_VALUES); // [count, V, 28, 28, 3]
  for (let i = 0; i < count; i++)
    VIEW_SHIFTS.forEach(([dx, dy], v) =>
      shiftImage(images, i, dx, dy, shifted, (i * V + v) * IMAGE_VALUES, 'edge'),
    );
  const codes = count === 0 ? new Int32Array(0) : tokenizer.encode(shifted, count * V);
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length: V }, (_, v) =>
      codes.subarray((i * V + v) * IMAGE_TOKENS, (i * V + v + 1) * IMAGE_TOKENS),
    ),
  );
}

/**
 * `opts` with `imageViews` added when shiftViews asks for them (with reranking), encoded from
 * the prompt images: what a caller holding the images passes to `imageToText`.
 */
export function withImageViews<O extends { shiftViews?: boolean; rerank?: number }>(
  opts: O,
  tokenizer: { encode(images: Uint8Array, count: number): Int32Array },
  images: Uint8Array | undefined,
  count: number,
): O & { imageViews?: Int32Array[][] } {
  if (opts.shiftViews !== true || (opts.rerank ?? 1) === 1) return opts; // views serve reranking
  if (images === undefined)
    throw new Error('shiftViews needs the prompt images, to encode their one-pixel shifts');
  return { ...opts, imageViews: shiftedViewCodes(tokenizer, images, count) };
}
