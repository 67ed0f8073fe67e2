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
