// Shifted views of an image: a shift moves every pixel and repeats the edge into the gap; the view
// codes are the tokenizer's codes of each shifted image, in VIEW_SHIFTS order; withImageViews adds
// them only when shiftViews and reranking ask for them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IMAGE_VALUES, shiftImage } from '../../src/data/coloured';
import { IMAGE_TOKENS } from '../../src/data/sequences';
import { Rng } from '../../src/nn/rng';
import { VIEW_SHIFTS, shiftedViewCodes, withImageViews } from '../../src/sampling/views';

const at = (img: Uint8Array, x: number, y: number, c: number) => img[(y * 28 + x) * 3 + c]!;

/** A [28, 28, 3] image moved by (dx, dy), the edge repeated into the gap (the views' shift). */
function shifted(image: Uint8Array, dx: number, dy: number): Uint8Array {
  const out = new Uint8Array(IMAGE_VALUES);
  shiftImage(image, 0, dx, dy, out, 0, 'edge');
  return out;
}

function randomImages(count: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: count * IMAGE_VALUES }, () => rng.int(4));
}

/** A stand-in tokenizer: code k of an image is the sum of its 4 x 4 cell k, mod 16. */
const fakeTokenizer = {
  encode(images: Uint8Array, count: number): Int32Array {
    const out = new Int32Array(count * IMAGE_TOKENS);
    for (let i = 0; i < count; i++)
      for (let y = 0; y < 28; y++)
        for (let x = 0; x < 28; x++)
          for (let c = 0; c < 3; c++)
            out[i * IMAGE_TOKENS + Math.floor(y / 4) * 7 + Math.floor(x / 4)] +=
              images[i * IMAGE_VALUES + (y * 28 + x) * 3 + c]!;
    return out.map((v) => v % 16);
  },
};

test('a shift moves every pixel by (dx, dy) and repeats the edge into the gap', () => {
  const image = randomImages(1, 1);
  for (const [dx, dy] of [...VIEW_SHIFTS, [2, -3] as const]) {
    const out = shifted(image, dx, dy);
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++)
        for (let c = 0; c < 3; c++) {
          const sx = Math.min(27, Math.max(0, x - dx));
          const sy = Math.min(27, Math.max(0, y - dy));
          assert.equal(at(out, x, y, c), at(image, sx, sy, c));
        }
  }
  assert.deepEqual(shifted(image, 0, 0), image);
  // One pixel right: column 1 is the old column 0, and column 0 repeats it.
  const right = shifted(image, 1, 0);
  assert.equal(at(right, 1, 5, 2), at(image, 0, 5, 2));
  assert.equal(at(right, 0, 5, 2), at(image, 0, 5, 2));
  assert.throws(() => shifted(new Uint8Array(10), 1, 0), /2352 values/);
});

test('view codes are the codes of each shifted image, in VIEW_SHIFTS order', () => {
  const images = randomImages(3, 2);
  const views = shiftedViewCodes(fakeTokenizer, images, 3);
  assert.equal(views.length, 3);
  views.forEach((list, i) => {
    assert.equal(list.length, VIEW_SHIFTS.length);
    list.forEach((codes, v) => {
      const [dx, dy] = VIEW_SHIFTS[v]!;
      const image = images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
      assert.deepEqual(
        Array.from(codes),
        Array.from(fakeTokenizer.encode(shifted(image, dx, dy), 1)),
      );
    });
  });
  // The views differ from the image's own codes (random pixels: the cells' sums change).
  const own = fakeTokenizer.encode(images, 1);
  assert.notDeepEqual(Array.from(views[0]![0]!), Array.from(own));
  assert.deepEqual(shiftedViewCodes(fakeTokenizer, images, 0), []);
  assert.throws(() => shiftedViewCodes(fakeTokenizer, images, 4), /need/);
});

test('withImageViews adds views only when shiftViews and reranking ask for them', () => {
  const images = randomImages(2, 3);
  const off = { shiftViews: false, rerank: 8 };
  assert.equal(withImageViews(off, fakeTokenizer, images, 2), off);
  const noRerank = { shiftViews: true, rerank: 1 };
  assert.equal(withImageViews(noRerank, fakeTokenizer, images, 2), noRerank);
  const on = withImageViews({ shiftViews: true, rerank: 8 }, fakeTokenizer, images, 2);
  assert.deepEqual(on.imageViews, shiftedViewCodes(fakeTokenizer, images, 2));
  assert.throws(
    () => withImageViews({ shiftViews: true, rerank: 8 }, fakeTokenizer, undefined, 2),
    /prompt images/,
  );
});
