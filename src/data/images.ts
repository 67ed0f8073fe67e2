// The images of Coloured MNIST v2 as arrays: their shape (28 x 28 x 3, levels 0..3 per channel,
// HWC row-major) and a one-image shift. Pure code (no file system), so that a web page can import
// it; the dataset's construction and cache are in coloured.ts.

export const IMAGE_SIZE = 28;
export const IMAGE_CHANNELS = 3;
/** Values per image: 28 * 28 * 3. */
export const IMAGE_VALUES = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;
/** Colour levels per channel: 0..LEVELS-1. */
export const LEVELS = 4;

/**
 * dst[dstOffset ..] = image `index` of `images` moved by (dx, dy) pixels. What the move uncovers is
 * filled with the image's top-left pixel (`fill` 'background': MNIST digits keep a 4-pixel margin;
 * the classifier's augmentation) or with the nearest edge pixel ('edge': a stroke that touches the
 * edge is extended, not cut; image -> text's shifted views).
 */
export function shiftImage(
  images: Uint8Array,
  index: number,
  dx: number,
  dy: number,
  dst: Uint8Array,
  dstOffset: number,
  fill: 'background' | 'edge' = 'background',
): void {
  if (!(Number.isInteger(index) && index >= 0 && (index + 1) * IMAGE_VALUES <= images.length))
    throw new Error(
      `shiftImage: image ${index} needs ${(index + 1) * IMAGE_VALUES} values, got ${images.length}`,
    );
  if (dstOffset + IMAGE_VALUES > dst.length)
    throw new Error(`shiftImage: no room for an image at ${dstOffset} of ${dst.length} values`);
  const src = index * IMAGE_VALUES;
  const clamp = (v: number) => Math.min(IMAGE_SIZE - 1, Math.max(0, v));
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const sy = y - dy;
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const sx = x - dx;
      const inside = sy >= 0 && sy < IMAGE_SIZE && sx >= 0 && sx < IMAGE_SIZE;
      const from =
        inside || fill === 'edge'
          ? src + (clamp(sy) * IMAGE_SIZE + clamp(sx)) * IMAGE_CHANNELS
          : src;
      const to = dstOffset + (y * IMAGE_SIZE + x) * IMAGE_CHANNELS;
      for (let c = 0; c < IMAGE_CHANNELS; c++) dst[to + c] = images[from + c]!;
    }
  }
}
