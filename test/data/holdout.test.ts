// The validation split and the held-out colour pairs: fixed by their seed, disjoint from what
// training sees, the right sizes; and the error tabulation the report uses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IMAGE_VALUES, type ColouredSplit } from '../../src/data/coloured';
import { PALETTE, isLegible, legiblePairs } from '../../src/data/palette';
import { Rng } from '../../src/nn/rng';
import {
  heldOutPairList,
  itemsWithHeldOutPairs,
  partitionTrain,
  validateHoldout,
  validationIndices,
} from '../../src/data/holdout';
import { errorSummary } from '../../src/eval/confusions';

/** A synthetic split: item i's image is filled with i % 251, its pair drawn from the legible ones. */
function fakeSplit(count: number): ColouredSplit {
  const rng = new Rng(1);
  const pairs = legiblePairs();
  const images = new Uint8Array(count * IMAGE_VALUES);
  const digit = new Int32Array(count);
  const fg = new Int32Array(count);
  const bg = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    images.fill(i % 251, i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES);
    const p = rng.int(pairs.length / 2);
    digit[i] = i % 10;
    fg[i] = pairs[2 * p]!;
    bg[i] = pairs[2 * p + 1]!;
  }
  return { split: 'train', count, images, digit, fg, bg };
}

test('the validation split is fixed, sorted, of the asked size, and never trained on', () => {
  const a = validationIndices(60000, 5000);
  assert.equal(a.length, 5000);
  assert.deepEqual(a, validationIndices(60000, 5000));
  for (let k = 1; k < a.length; k++) assert.ok(a[k]! > a[k - 1]!);
  assert.ok(a[0]! < 100 && a[a.length - 1]! > 59900, 'spread over the whole split');
  assert.equal(validationIndices(60000, 0).length, 0);

  const full = fakeSplit(3000);
  const part = partitionTrain(full, { validationItems: 300, heldOutPairs: 40 });
  assert.equal(part.validation.count, 300);
  const inValidation = new Set(part.validationIndices);
  assert.ok(part.trainIndices.every((i) => !inValidation.has(i)));
  assert.equal(part.train.count + part.validation.count + part.droppedForPairs, 3000);
  assert.ok(part.droppedForPairs > 0);
  // Items are copied with their labels: item k of the validation split is item index[k].
  const i = part.validationIndices[7]!;
  assert.equal(part.validation.images[7 * IMAGE_VALUES], i % 251);
  assert.equal(part.validation.fg[7], full.fg[i]);
  // No training item has a held-out pair.
  assert.equal(itemsWithHeldOutPairs(part.train, 40).length, 0);
  assert.ok(itemsWithHeldOutPairs(full, 40).length > 0);
  // Nothing held out: the split itself.
  assert.equal(partitionTrain(full, { validationItems: 0, heldOutPairs: 0 }).train, full);
});

test('held-out pairs are distinct legible pairs, fixed by their seed', () => {
  const pairs = heldOutPairList(40);
  const seen = new Set<string>();
  for (let k = 0; k < 40; k++) {
    const f = pairs[2 * k]!;
    const b = pairs[2 * k + 1]!;
    assert.ok(isLegible(f, b));
    seen.add(`${f}/${b}`);
  }
  assert.equal(seen.size, 40);
  assert.deepEqual(heldOutPairList(10), pairs.slice(0, 20));
  assert.throws(() => validateHoldout({ validationItems: -1, heldOutPairs: 0 }), /validationItems/);
  assert.throws(
    () => validateHoldout({ validationItems: 0, heldOutPairs: 1e6 }),
    /heldOutPairs must be an integer/,
  );
  assert.throws(
    () => partitionTrain(fakeSplit(10), { validationItems: 10, heldOutPairs: 0 }),
    /smaller than the training split/,
  );
});

test('error summaries count digit and colour confusions and unreadable items', () => {
  const intended = {
    digit: Int32Array.from([1, 2, 3, 4]),
    fg: Int32Array.from([0, 0, 5, 5]),
    bg: Int32Array.from([1, 1, 6, 6]),
  };
  const observed = {
    digit: Int32Array.from([1, 7, 3, -1]),
    fg: Int32Array.from([0, 0, 9, 5]),
    bg: Int32Array.from([1, 1, 6, 6]),
  };
  const s = errorSummary(intended, observed, 4);
  assert.equal(s.wrong, 3);
  assert.equal(s.unreadable, 1);
  assert.equal(s.digits[2]![7], 1);
  assert.equal(
    s.digits.flat().reduce((a, b) => a + b, 0),
    1,
  );
  assert.deepEqual(s.colours, [
    { field: 'fg', intended: PALETTE[5]!.name, observed: PALETTE[9]!.name, count: 1 },
  ]);
});
