// The attribute reader network (src/vqvae/reader.ts): its two input views from levels, and the
// soft views from a decoder's logits (equal to them for confident logits; gradients against
// central differences). Training, saving and judging: test/eval/classifier.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import { tidy } from '../../src/engine/tensor';
import * as F from '../../src/engine/ops';
import { TestRng } from '../engine/gradcheck';
import { INPUT_PLANES, imagesToInput, softClassifierInput } from '../../src/vqvae/reader';
import { syntheticSet } from '../eval/helpers';

setBackend('js');

test('imagesToInput: a shape plane (distance from the background) and 12 one-hot colour planes', () => {
  const images = new Uint8Array(2 * 28 * 28 * 3);
  images.fill(1, 0, 28 * 28 * 3); // image 0: background level 1 in every channel
  images[3 * (28 * 5 + 7) + 2] = 3; // image 0, pixel (x 7, y 5): blue 3, distance 2
  images[28 * 28 * 3 + 1] = 2; // image 1 (background 000), pixel (0, 0): green 2, distance 2
  const x = imagesToInput(images, 0, 2);
  assert.deepEqual(x.shape, [2, INPUT_PLANES, 28, 28]);
  assert.equal(INPUT_PLANES, 13);
  const v = x.toFloat32Array();
  const at = (b: number, plane: number, y: number, xx: number) =>
    v[((b * INPUT_PLANES + plane) * 28 + y) * 28 + xx];
  assert.equal(at(0, 0, 0, 0), -1); // background: distance 0
  assert.ok(Math.abs(at(0, 0, 5, 7)! - 1 / 3) < 1e-6); // distance 2 of 3 -> 2 * 2/3 - 1
  assert.equal(at(0, 1 + 0 * 4 + 1, 0, 0), 1); // red level 1
  assert.equal(at(0, 1 + 2 * 4 + 1, 5, 7), 0); // blue is 3 there, not 1
  assert.equal(at(0, 1 + 2 * 4 + 3, 5, 7), 1);
  assert.equal(at(1, 1 + 1 * 4 + 2, 0, 0), 1); // image 1: green level 2
  assert.ok(Math.abs(at(1, 0, 0, 0)! - 1 / 3) < 1e-6);
  let ones = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === 1) ones++;
  assert.equal(ones, 2 * 28 * 28 * 3); // exactly one level per channel and pixel
  x.dispose();
});

/** Logits [n, 12, 28, 28] that put `gap` on each value's level of `images` (confident decoding). */
function confidentLogits(images: Uint8Array, n: number, gap: number): Float32Array {
  const out = new Float32Array(n * 12 * 784);
  for (let b = 0; b < n; b++)
    for (let p = 0; p < 784; p++)
      for (let c = 0; c < 3; c++) {
        const level = images[(b * 784 + p) * 3 + c]!;
        out[(b * 12 + c * 4 + level) * 784 + p] = gap;
      }
  return out;
}

test('softClassifierInput: confident logits give imagesToInput; gradients match central differences', () => {
  const set = syntheticSet(3, 5);
  const soft = softClassifierInput(
    F.tensor(confidentLogits(set.images, 3, 40), [3, 12, 28, 28]),
    set.images,
  ).toFloat32Array();
  const hard = imagesToInput(set.images, 0, 3).toFloat32Array();
  assert.equal(soft.length, hard.length);
  let worst = 0;
  for (let i = 0; i < hard.length; i++) worst = Math.max(worst, Math.abs(soft[i]! - hard[i]!));
  assert.ok(worst < 1e-5, `largest difference ${worst}`);
  // Gradient of sum(input * R) at random logits, against central differences at 60 elements.
  // A logit moves only its own pixel's 13 input values, so the difference sums those (float64).
  const rng = new TestRng(3);
  const logits = rng.array(12 * 784, -2, 2);
  const weights = rng.array(13 * 784);
  const grad = tidy(() => {
    const x = F.tensor(logits, [1, 12, 28, 28]);
    x.requiresGrad = true;
    F.sum(F.mul(softClassifierInput(x, set.images), F.tensor(weights, [1, 13, 28, 28]))).backward();
    return x.grad!.toFloat32Array();
  });
  const inputAt = (values: Float32Array) =>
    tidy(() => softClassifierInput(F.tensor(values, [1, 12, 28, 28]), set.images).toFloat32Array());
  // The shape plane is a max over the channels' expected distances from the background: pixels
  // where the two largest are within 0.01 have a kink within reach of the step and are skipped.
  const background = [0, 1, 2].map((c) => {
    const counts = [0, 0, 0, 0];
    for (let q = 0; q < 784; q++) counts[set.images[q * 3 + c]!]!++;
    return counts.indexOf(Math.max(...counts));
  });
  const nearTie = (pixel: number) => {
    const distances = background.map((bg, c) => {
      const e = [0, 1, 2, 3].map((l) => Math.exp(logits[(c * 4 + l) * 784 + pixel]!));
      const total = e[0]! + e[1]! + e[2]! + e[3]!;
      return e.reduce((sum, v, l) => sum + (v / total) * Math.abs(l - bg), 0);
    });
    distances.sort((a, b) => b - a);
    return distances[0]! - distances[1]! < 0.01;
  };
  const h = 1e-3;
  let checked = 0;
  for (let k = 0; k < 60; k++) {
    const j = Math.floor(rng.uniform() * logits.length);
    const pixel = j % 784;
    if (nearTie(pixel)) continue;
    checked++;
    const plus = logits.slice();
    plus[j]! += h;
    const minus = logits.slice();
    minus[j]! -= h;
    const [a, b] = [inputAt(plus), inputAt(minus)];
    let numeric = 0;
    for (let plane = 0; plane < 13; plane++) {
      const i = plane * 784 + pixel;
      numeric += ((a[i]! - b[i]!) * weights[i]!) / (2 * h);
    }
    const err = Math.abs(numeric - grad[j]!) / Math.max(1, Math.abs(grad[j]!));
    assert.ok(err < 1e-2, `logit ${j}: analytic ${grad[j]} vs numeric ${numeric}`);
  }
  assert.ok(checked >= 50, `only ${checked} of 60 elements away from a near-tie`);
  assert.throws(
    () => softClassifierInput(F.tensor(new Float32Array(12 * 784), [1, 12, 784]), set.images),
    /logits must be \[B, 12, 28, 28\]/,
  );
});
