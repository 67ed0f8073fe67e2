// What training does not see: a validation split carved from the training set, and optionally a
// fixed set of legible (foreground, background) pairs held out of training altogether (the
// compositional test: can the model draw colour pairs it never saw together?).
//
// - The validation split is a fixed random subset of the MNIST train split (5,000 of 60,000 by
//   default), chosen by a seeded shuffle that depends only on the split's size and the seed, so
//   every run, the tokenizer and the GPT agree on it. Every choice of a setting (sampling
//   defaults, the tokenizer recipe, the presets) is made on it; the test split is for reporting.
// - Held-out pairs: the first `count` pairs of a seeded shuffle of the legible ordered pairs.
//   Training items with such a pair are dropped; the test split keeps them, so text -> image on
//   test captions with a held-out pair measures composition.
// - Runs made before this existed hold out nothing (validation 0, pairs 0): their configs load
//   with that meaning.

import { Rng, deriveSeed } from '../nn/rng';
import { legiblePairs, PALETTE } from './palette';
import { IMAGE_VALUES, type ColouredSplit } from './coloured';

/** What a run keeps out of its training items. */
export interface HoldoutConfig {
  /** Training items carved off as the validation split (0 = none). */
  validationItems: number;
  /** Legible (fg, bg) pairs whose items are dropped from training (0 = none). */
  heldOutPairs: number;
}

/** The validation split every new run uses. */
export const VALIDATION_ITEMS = 5000;
/** Pairs held out by the presets that run the compositional test. */
export const HELD_OUT_PAIRS = 40;
const HOLDOUT_SEED = 0;

/** Checks a holdout config, naming what is accepted. */
export function validateHoldout(h: HoldoutConfig, trainCount?: number): HoldoutConfig {
  const pairCount = legiblePairs().length / 2;
  if (!Number.isInteger(h.validationItems) || h.validationItems < 0)
    throw new Error(`validationItems must be an integer >= 0, got ${h.validationItems}`);
  if (trainCount !== undefined && h.validationItems >= trainCount)
    throw new Error(
      `validationItems (${h.validationItems}) must be smaller than the training split (${trainCount})`,
    );
  if (!Number.isInteger(h.heldOutPairs) || h.heldOutPairs < 0 || h.heldOutPairs >= pairCount)
    throw new Error(
      `heldOutPairs must be an integer in 0..${pairCount - 1} (there are ${pairCount} legible pairs), got ${h.heldOutPairs}`,
    );
  return h;
}

/** A seeded permutation of 0..n-1 (Rng.permutation: Fisher-Yates with the unbiased Rng.int). */
function permutation(n: number, label: string): Int32Array {
  return new Rng(deriveSeed(HOLDOUT_SEED, label)).permutation(n);
}

/** Indices (ascending) of the validation items among `trainCount` training items. */
export function validationIndices(trainCount: number, validationItems: number): Int32Array {
  if (validationItems === 0) return new Int32Array(0);
  const chosen = permutation(trainCount, `mmgpt-validation/${trainCount}`).slice(
    0,
    validationItems,
  );
  return chosen.sort();
}

/** The held-out (fg, bg) pairs: [count, 2] flattened, palette indices. */
export function heldOutPairList(count: number): Int32Array {
  const pairs = legiblePairs(); // [P, 2]
  const order = permutation(pairs.length / 2, 'mmgpt-held-out-pairs');
  const out = new Int32Array(2 * count);
  for (let k = 0; k < count; k++) {
    out[2 * k] = pairs[2 * order[k]!]!;
    out[2 * k + 1] = pairs[2 * order[k]! + 1]!;
  }
  return out;
}

/** A lookup fg * P + bg -> held out, for `count` held-out pairs. */
function heldOutPairMask(count: number): Uint8Array {
  const P = PALETTE.length;
  const mask = new Uint8Array(P * P);
  const pairs = heldOutPairList(count);
  for (let k = 0; k < count; k++) mask[pairs[2 * k]! * P + pairs[2 * k + 1]!] = 1;
  return mask;
}

/** The items of a split at `indices` (copies), in that order. */
export function subsetSplit(split: ColouredSplit, indices: ArrayLike<number>): ColouredSplit {
  const n = indices.length;
  const images = new Uint8Array(n * IMAGE_VALUES);
  const digit = new Int32Array(n);
  const fg = new Int32Array(n);
  const bg = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k]!;
    if (!(i >= 0 && i < split.count))
      throw new Error(`subsetSplit: index ${i} outside 0..${split.count - 1}`);
    images.set(split.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES), k * IMAGE_VALUES);
    digit[k] = split.digit[i]!;
    fg[k] = split.fg[i]!;
    bg[k] = split.bg[i]!;
  }
  return { split: split.split, count: n, images, digit, fg, bg };
}

/** The training split divided by a holdout config. */
export interface PartitionedTrain {
  /** What training sees: not validation, no held-out pair. */
  train: ColouredSplit;
  /** Indices into the full train split of `train`'s items. */
  trainIndices: Int32Array;
  /** The validation split (empty when validationItems is 0). */
  validation: ColouredSplit;
  validationIndices: Int32Array;
  /** Training items dropped for having a held-out pair (validation items not counted). */
  droppedForPairs: number;
}

/** Splits the full MNIST train split into training items and the validation split. */
export function partitionTrain(full: ColouredSplit, holdout: HoldoutConfig): PartitionedTrain {
  validateHoldout(holdout, full.count);
  const validation = validationIndices(full.count, holdout.validationItems);
  const isValidation = new Uint8Array(full.count);
  for (const i of validation) isValidation[i] = 1;
  const pairMask = heldOutPairMask(holdout.heldOutPairs);
  const P = PALETTE.length;
  const kept: number[] = [];
  let droppedForPairs = 0;
  for (let i = 0; i < full.count; i++) {
    if (isValidation[i]) continue;
    if (pairMask[full.fg[i]! * P + full.bg[i]!]) {
      droppedForPairs++;
      continue;
    }
    kept.push(i);
  }
  const trainIndices = Int32Array.from(kept);
  const noneHeld = holdout.validationItems === 0 && holdout.heldOutPairs === 0;
  return {
    train: noneHeld ? full : subsetSplit(full, trainIndices),
    trainIndices,
    validation: subsetSplit(full, validation),
    validationIndices: validation,
    droppedForPairs,
  };
}

/** Indices of the items of `split` whose (fg, bg) is one of the first `count` held-out pairs. */
export function itemsWithHeldOutPairs(split: ColouredSplit, count: number): Int32Array {
  const mask = heldOutPairMask(count);
  const P = PALETTE.length;
  const out: number[] = [];
  for (let i = 0; i < split.count; i++) if (mask[split.fg[i]! * P + split.bg[i]!]) out.push(i);
  return Int32Array.from(out);
}
