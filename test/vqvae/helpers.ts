// Shared helpers for the tokenizer tests: synthetic two-colour images (levels 0..3).

import type { Rng } from '../../src/nn/rng';

/** Values of one image: 28 x 28 x 3. */
export const IMAGE_VALUES = 28 * 28 * 3;

/** Paints image `i` of `images` [n, 28, 28, 3]: colour `fg` where `inside(x, y)`, `bg` elsewhere. */
function paintImage(
  images: Uint8Array,
  i: number,
  fg: number[],
  bg: number[],
  inside: (x: number, y: number) => boolean,
): void {
  for (let y = 0; y < 28; y++)
    for (let x = 0; x < 28; x++) {
      const colour = inside(x, y) ? fg : bg;
      for (let c = 0; c < 3; c++) images[i * IMAGE_VALUES + (y * 28 + x) * 3 + c] = colour[c]!;
    }
}

/** n images of one disc of a foreground colour on a different background colour. */
export function blobImages(n: number, rng: Rng): Uint8Array {
  const images = new Uint8Array(n * IMAGE_VALUES); // [n, 28, 28, 3]
  for (let i = 0; i < n; i++) {
    const bg = [rng.int(4), rng.int(4), rng.int(4)];
    let fg = bg;
    while (fg.join() === bg.join()) fg = [rng.int(4), rng.int(4), rng.int(4)];
    const cx = 6 + rng.uniform() * 16;
    const cy = 6 + rng.uniform() * 16;
    const r = 3 + rng.uniform() * 5;
    paintImage(images, i, fg, bg, (x, y) => (x - cx) ** 2 + (y - cy) ** 2 < r * r);
  }
  return images;
}

/** n images: a 6 x 16 bar of one colour on another, at random places. */
export function barImages(n: number, rng: Rng): Uint8Array {
  const images = new Uint8Array(n * IMAGE_VALUES); // [n, 28, 28, 3]
  for (let i = 0; i < n; i++) {
    const bg = [rng.int(4), rng.int(4), rng.int(4)];
    const fg = bg.map((v) => (v + 1 + rng.int(3)) % 4);
    const x0 = rng.int(20);
    const y0 = rng.int(10);
    paintImage(images, i, fg, bg, (x, y) => x >= x0 && x < x0 + 6 && y >= y0 && y < y0 + 16);
  }
  return images;
}
