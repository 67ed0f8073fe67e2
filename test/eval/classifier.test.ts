// The attribute classifier: it learns a tiny synthetic set well above chance, saves and loads
// with identical predictions, is reused only when its provenance matches, and refuses files that
// are not classifiers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { memoryStats, tidy } from '../../src/engine/tensor';
import * as F from '../../src/engine/ops';
import { Rng } from '../../src/nn/rng';
import { TestRng } from '../engine/gradcheck';
import { loadSafetensors, saveSafetensors } from '../../src/nn/safetensors';
import { shiftImage } from '../../src/data/coloured';
import {
  AttributeClassifier,
  ensureClassifier,
  perceptualLossTerm,
  softClassifierInput,
  evaluateClassifier,
  INPUT_PLANES,
  imagesToInput,
  loadClassifier,
  saveClassifier,
  trainClassifier,
  type ClassifierConfig,
} from '../../src/eval/classifier';
import { syntheticSet } from './helpers';

setBackend('js');

const tiny: ClassifierConfig = {
  shapeChannels0: 0,
  shapeChannels1: 4,
  shapeChannels2: 8,
  shapeHidden: 32,
  colourChannels: 16,
  colourHidden: 32,
  colours: 40,
};
const settings = { epochs: 8, batchSize: 32, lr: 1e-2, seed: 0, trainLimit: 0 };
const train = syntheticSet(320, 1);
const heldOut = syntheticSet(200, 2);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-classifier-'));

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

test('the classifier learns a tiny synthetic set far above chance, without leaking tensors', () => {
  const before = memoryStats().liveTensors;
  const result = trainClassifier({ train, config: tiny, settings });
  assert.ok(
    result.epochLoss[result.epochLoss.length - 1]! < result.epochLoss[0]! * 0.5,
    `loss fell: ${result.epochLoss.map((l) => l.toFixed(3)).join(' ')}`,
  );
  const acc = evaluateClassifier(result.model, heldOut);
  if (process.env.MMGPT_TEST_VERBOSE) console.log(acc, result.epochLoss);
  // Chance: digit 10%, colours ~1/6, all three well under 2%.
  assert.ok(acc.digit > 0.6, `digit accuracy ${acc.digit}`);
  assert.ok(acc.fg > 0.6, `fg accuracy ${acc.fg}`);
  assert.ok(acc.bg > 0.6, `bg accuracy ${acc.bg}`);
  assert.ok(acc.all > 0.3, `all-three accuracy ${acc.all}`);
  assert.equal(acc.count, heldOut.count);

  // Save / load round trip gives the same predictions.
  const file = path.join(tmp(), 'classifier.safetensors');
  saveClassifier(result.model, file, { dataSeed: 5, settings: result.settings }, acc);
  const loaded = loadClassifier(file);
  assert.deepEqual(loaded.model.config, tiny);
  assert.equal(loaded.provenance.dataSeed, 5);
  assert.deepEqual(loaded.testAccuracy, acc);
  const a = result.model.classify(heldOut.images, 50);
  const b = loaded.model.classify(heldOut.images, 50, 7); // another batch size
  assert.deepEqual(b, a);
  result.model.dispose();
  loaded.model.dispose();
  assert.equal(memoryStats().liveTensors, before);
});

test('ensureClassifier trains once, then reuses; a changed setting retrains', () => {
  const dir = tmp();
  const file = path.join(dir, 'sub', 'classifier.safetensors');
  const small = { ...settings, epochs: 1, trainLimit: 64 };
  const lines: string[] = [];
  const opts = {
    path: file,
    train,
    test: heldOut,
    dataSeed: 0,
    config: tiny,
    settings: small,
    testLimit: 40,
    log: (l: string) => lines.push(l),
  };
  const first = ensureClassifier(opts);
  assert.equal(first.status, 'trained');
  assert.ok(fs.existsSync(file));
  assert.equal(first.testAccuracy?.count, 40);
  const second = ensureClassifier(opts);
  assert.equal(second.status, 'reused');
  assert.deepEqual(second.testAccuracy, first.testAccuracy);
  const third = ensureClassifier({ ...opts, dataSeed: 1 });
  assert.equal(third.status, 'trained');
  assert.match(third.reason ?? '', /dataSeed/);
  for (const c of [first, second, third]) c.model.dispose();
});

test('loadClassifier refuses missing files and files of another kind', () => {
  const dir = tmp();
  assert.throws(() => loadClassifier(path.join(dir, 'none.safetensors')), /does not exist/);
  const other = path.join(dir, 'other.safetensors');
  saveSafetensors(
    other,
    { w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } },
    {
      format: 'something-else',
    },
  );
  assert.throws(() => loadClassifier(other), /not an attribute classifier/);
});

test('shiftImage moves an image by (dx, dy) and fills what it uncovers with the background', () => {
  const px = 28 * 28 * 3;
  const images = new Uint8Array(2 * px);
  images.fill(2, px); // image 1: background level 2 in every channel
  const at = (x: number, y: number, c: number) => (y * 28 + x) * 3 + c;
  images[px + at(10, 12, 0)] = 0; // a foreground pixel at (x 10, y 12), red 0
  images[px + at(27, 27, 1)] = 3; // one in the bottom-right corner, green 3
  const out = new Uint8Array(px + 5);
  shiftImage(images, 1, 2, -1, out, 5);
  assert.equal(out[5 + at(12, 11, 0)], 0, 'moved right 2, up 1');
  assert.equal(out[5 + at(10, 12, 0)], 2, 'its old place shows the background');
  assert.equal(out[5 + at(25, 26, 1)], 2, 'the corner pixel left the image');
  assert.equal(out[5 + at(0, 27, 2)], 2, 'an uncovered column and row are background');
  assert.equal(out[5 + at(1, 27, 1)], 2);
  let changed = 0;
  for (let i = 0; i < px; i++) if (out[5 + i] !== 2) changed++;
  assert.equal(changed, 1, 'exactly the one moved foreground pixel differs from the background');
  const same = new Uint8Array(px);
  shiftImage(images, 1, 0, 0, same, 0);
  assert.deepEqual(same, images.subarray(px));
});

test('a classifier with a stride-1 conv, trained on shifted images, learns and round-trips', () => {
  const config: ClassifierConfig = { ...tiny, shapeChannels0: 4 };
  const result = trainClassifier({ train, config, settings: { ...settings, shift: 1 } });
  assert.ok(result.model.shapeConv0 !== null);
  assert.equal(result.settings.shift, 1);
  const acc = evaluateClassifier(result.model, heldOut);
  assert.ok(acc.digit > 0.6, `digit accuracy ${acc.digit}`);
  assert.ok(acc.all > 0.3, `all-three accuracy ${acc.all}`);
  const file = path.join(tmp(), 'classifier.safetensors');
  saveClassifier(result.model, file, { dataSeed: 0, settings: result.settings }, acc);
  const loaded = loadClassifier(file);
  assert.deepEqual(loaded.model.config, config);
  assert.equal(loaded.provenance.settings.shift, 1);
  assert.deepEqual(
    loaded.model.classify(heldOut.images, 40),
    result.model.classify(heldOut.images, 40),
  );
  assert.throws(
    () => trainClassifier({ train, config: tiny, settings: { ...settings, shift: 9 } }),
    /shift must be an integer in 0\.\.4, got 9/,
  );
  result.model.dispose();
  loaded.model.dispose();
});

test('a classifier saved before the stride-1 conv and the shift existed loads as having neither', () => {
  const result = trainClassifier({ train, config: tiny, settings: { ...settings, epochs: 1 } });
  const file = path.join(tmp(), 'old.safetensors');
  saveClassifier(result.model, file, { dataSeed: 0, settings: result.settings }, null);
  // Rewrite its metadata as the earlier version wrote it: no shapeChannels0, no shift.
  const contents = loadSafetensors(file);
  const provenance = JSON.parse(contents.metadata.provenance!);
  delete provenance.config.shapeChannels0;
  delete provenance.settings.shift;
  const config = JSON.parse(contents.metadata.config!);
  delete config.shapeChannels0;
  const tensors = Object.fromEntries(
    Object.entries(contents.tensors).map(([k, t]) => [
      k,
      { dtype: t.dtype, shape: t.shape, data: t.data },
    ]),
  );
  saveSafetensors(file, tensors as Parameters<typeof saveSafetensors>[1], {
    ...contents.metadata,
    provenance: JSON.stringify(provenance),
    config: JSON.stringify(config),
  });
  const loaded = loadClassifier(file);
  assert.equal(loaded.model.config.shapeChannels0, 0);
  assert.equal(loaded.provenance.settings.shift, 0);
  assert.deepEqual(
    loaded.model.classify(heldOut.images, 20),
    result.model.classify(heldOut.images, 20),
  );
  result.model.dispose();
  loaded.model.dispose();
});

test('ensureClassifier copies a shipped classifier of the same settings instead of training', () => {
  const dir = tmp();
  const shipped = path.join(dir, 'weights', 'classifier.safetensors');
  const small = { ...settings, epochs: 1, trainLimit: 64 };
  const base = { train, test: heldOut, dataSeed: 0, config: tiny, settings: small, testLimit: 40 };
  ensureClassifier({ ...base, path: shipped }).model.dispose(); // "ships" one
  const lines: string[] = [];
  const target = path.join(dir, 'runs', 'classifier.safetensors');
  const copied = ensureClassifier({ ...base, path: target, shipped, log: (l) => lines.push(l) });
  assert.equal(copied.status, 'reused');
  assert.match(lines.join('\n'), /using the shipped/);
  assert.deepEqual(fs.readFileSync(target), fs.readFileSync(shipped));
  // A shipped classifier of other settings is not used: the reason names it.
  const other = path.join(dir, 'runs2', 'classifier.safetensors');
  const trained = ensureClassifier({
    ...base,
    settings: { ...small, seed: 1 },
    path: other,
    shipped,
  });
  assert.equal(trained.status, 'trained');
  assert.match(trained.reason ?? '', /the shipped .*settings differs/);
  for (const c of [copied, trained]) c.model.dispose();
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

test('perceptualLossTerm: the frozen classifier reads the soft rendering of the picked items', () => {
  const labels = syntheticSet(8, 6);
  const model = new AttributeClassifier(tiny, new Rng(4));
  const items = Int32Array.from([5, 2]);
  const images = new Uint8Array(2 * 28 * 28 * 3);
  items.forEach((item, b) =>
    images.set(labels.images.subarray(item * 2352, (item + 1) * 2352), b * 2352),
  );
  const values = new TestRng(9).array(2 * 12 * 784, -3, 3);
  const term = perceptualLossTerm(model, labels, 0.5);
  const { value, gradSize } = tidy(() => {
    const logits = F.tensor(values, [2, 12, 28, 28]);
    logits.requiresGrad = true;
    const loss = term(logits, images, items);
    loss.backward();
    let size = 0;
    for (const g of logits.grad!.toFloat32Array()) size += g * g;
    return { value: loss.item(), gradSize: size };
  });
  const expected = tidy(() =>
    model
      .loss(softClassifierInput(F.tensor(values, [2, 12, 28, 28]), images), {
        digit: F.tensor(Int32Array.from([labels.digit[5]!, labels.digit[2]!]), [2], 'int32'),
        fg: F.tensor(Int32Array.from([labels.fg[5]!, labels.fg[2]!]), [2], 'int32'),
        bg: F.tensor(Int32Array.from([labels.bg[5]!, labels.bg[2]!]), [2], 'int32'),
      })
      .item(),
  );
  assert.ok(
    Math.abs(value - 0.5 * expected) < 1e-6 * Math.max(1, expected),
    `${value} vs ${expected}`,
  );
  assert.ok(gradSize > 0, 'no gradient reached the logits');
  // The classifier is a fixed reader: none of its parameters took a gradient.
  for (const [name, p] of model.namedParameters()) assert.equal(p.grad, null, name);
  assert.throws(() => perceptualLossTerm(model, labels, 0), /weight must be positive/);
  model.dispose();
});
