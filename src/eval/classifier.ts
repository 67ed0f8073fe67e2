// The attribute classifier: an independent judge of images, trained with the engine on REAL
// coloured-MNIST images only (never on generated ones), that reads digit, foreground colour and
// background colour off a 28x28x3 level image.
//
// The network (two views of the image, two branches, three heads) is src/vqvae/reader.ts,
// re-exported here.
//
// The loss is the sum of the three cross-entropies. Adam with warm-up and cosine decay, a few
// epochs, seeded shuffling; each training image moved by up to `shift` pixels (seeded).
// Notable choices:
// - The stride-1 conv, 8 epochs and shifts of up to 2 pixels: the first judge had none of them
//   and read too few test images right to measure a tokenizer that keeps 99% (docs/results.md).
//   It ships in weights/classifier/ (`shipped` in ensureClassifier), so no command trains it
//   unless the settings change.
// - Saved as safetensors with the config, the training settings, the data seed and the palette
//   hash in the metadata; `ensureClassifier` reuses a saved one only when all of these match, so a
//   changed palette or dataset retrains it instead of silently judging with a stale model.
// - The classifier's accuracy on real test images and on VQ-VAE reconstructions of them (the
//   tokenizer's ceiling for text->image accuracy) are reported by `evaluateClassifier`.
// - A classifier can also train a tokenizer (`perceptualLossTerm`): `softClassifierInput` renders
//   the two views from the decoder's logits instead of levels, differentiably, so the reader's
//   cross-entropy reaches the decoder and the encoder. The tokenizer recipes that use it train a
//   reader of their own (another architecture and seed), never this judge.

import * as fs from 'fs';
import * as path from 'path';
import * as F from '../engine/ops';
import type { Tensor } from '../engine/tensor';
import { tidy } from '../engine/tensor';
import { Adam, warmupCosineLr } from '../nn/optim';
import { Rng, deriveSeed } from '../nn/rng';
import { atomicWriteFile, loadSafetensors, saveSafetensors } from '../nn/safetensors';
import type { NamedArray } from '../nn/safetensors';
import { IMAGE_VALUES, shiftImage } from '../data/coloured';
import { paletteHash } from '../data/palette';
import {
  AttributeClassifier,
  CLASSIFIER_DEFAULTS,
  checkImages,
  imagesToInput,
  softClassifierInput,
  validateClassifierConfig,
} from '../vqvae/reader';
import type { ClassifierConfig } from '../vqvae/reader';
import { attributeAccuracy } from './metrics';
import type { AttributeAccuracy, Attributes } from './metrics';

export {
  AttributeClassifier,
  CLASSIFIER_DEFAULTS,
  DIGITS,
  INPUT_PLANES,
  imagesToInput,
  softClassifierInput,
  validateClassifierConfig,
} from '../vqvae/reader';
export type { ClassifierConfig, HeadLogits } from '../vqvae/reader';

export const CLASSIFIER_FORMAT = 'mmgpt-attribute-classifier';
export const CLASSIFIER_VERSION = 1;
/** Images with their true attributes; a ColouredSplit fits. images: [count, 28, 28, 3] levels. */
export interface LabelledImages extends Attributes {
  images: Uint8Array;
  count: number;
}

/**
 * A perceptual loss for a tokenizer: `classifier` (frozen here: its parameters stop taking
 * gradients) reads the soft rendering of the decoder's logits, and the term is the sum of its
 * three cross-entropies against the true attributes of the batch's items (indices into
 * `labels`). The VQ-VAE trainer's `extraLoss.term` takes this, scaled by a weight.
 */
export function perceptualLossTerm(
  classifier: AttributeClassifier,
  labels: Attributes,
  weight: number,
): (logits: Tensor, images: Uint8Array, items: Int32Array) => Tensor {
  if (!(weight > 0 && Number.isFinite(weight)))
    throw new Error(`perceptualLossTerm: weight must be positive, got ${weight}`);
  for (const [, p] of classifier.namedParameters()) p.requiresGrad = false;
  classifier.eval();
  return (logits, images, items) => {
    const n = items.length;
    const pick = (from: Int32Array) =>
      F.tensor(
        Int32Array.from(items, (i) => from[i]!),
        [n],
        'int32',
      );
    const loss = classifier.loss(softClassifierInput(logits, images), {
      digit: pick(labels.digit),
      fg: pick(labels.fg),
      bg: pick(labels.bg),
    });
    return weight === 1 ? loss : F.scale(loss, weight);
  };
}

// ---- training --------------------------------------------------------------------------------

export interface ClassifierTrainSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Train on the first N images only (0 = all). */
  trainLimit: number;
  /** Augmentation: each training image moved by up to this many pixels on each axis (0 = none). */
  shift: number;
}

export const CLASSIFIER_TRAIN_DEFAULTS: ClassifierTrainSettings = {
  epochs: 8,
  batchSize: 128,
  lr: 2e-3,
  seed: 0,
  trainLimit: 0,
  shift: 2,
};

export interface TrainClassifierOptions {
  /** Real images with their labels (the train split). */
  train: LabelledImages;
  config?: ClassifierConfig;
  settings?: Partial<ClassifierTrainSettings>;
  /** One line per interval. */
  log?: (line: string) => void;
  /** Lines per epoch (default 4). */
  logsPerEpoch?: number;
}

export interface TrainClassifierResult {
  model: AttributeClassifier;
  settings: ClassifierTrainSettings;
  /** Mean training loss per epoch. */
  epochLoss: number[];
  wallMs: number;
}

/** Trains a new classifier with Adam on real labelled images. */
export function trainClassifier(opts: TrainClassifierOptions): TrainClassifierResult {
  const settings = { ...CLASSIFIER_TRAIN_DEFAULTS, ...opts.settings };
  const { epochs, lr, seed } = settings;
  const count =
    settings.trainLimit > 0 ? Math.min(settings.trainLimit, opts.train.count) : opts.train.count;
  checkImages('trainClassifier', opts.train.images, count);
  const batchSize = Math.min(settings.batchSize, count);
  if (!Number.isInteger(epochs) || epochs <= 0 || !Number.isInteger(batchSize) || batchSize <= 0)
    throw new Error(
      `trainClassifier: epochs (${epochs}) and batchSize (${settings.batchSize}) must be ` +
        `positive integers, and the set non-empty (${count} images)`,
    );
  const log = opts.log ?? (() => undefined);
  const model = new AttributeClassifier(
    opts.config ?? CLASSIFIER_DEFAULTS,
    new Rng(deriveSeed(seed, 'classifier/init')),
  );
  const optimizer = new Adam(model.namedParameters(), { lr });
  const stepsPerEpoch = Math.floor(count / batchSize); // the last partial batch is dropped
  const totalSteps = stepsPerEpoch * epochs;
  const schedule = warmupCosineLr(
    lr,
    Math.min(100, Math.floor(totalSteps / 10)),
    totalSteps,
    lr / 20,
  );
  const logEvery = Math.max(1, Math.floor(stepsPerEpoch / (opts.logsPerEpoch ?? 4)));
  const batchImages = new Uint8Array(batchSize * IMAGE_VALUES); // [B, 28, 28, 3]
  const digit = new Int32Array(batchSize);
  const fg = new Int32Array(batchSize);
  const bg = new Int32Array(batchSize);
  const epochLoss: number[] = [];
  const started = performance.now();
  const shift = settings.shift;
  if (!Number.isInteger(shift) || shift < 0 || shift > 4)
    throw new Error(`trainClassifier: shift must be an integer in 0..4, got ${shift}`);
  model.train();
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = new Rng(deriveSeed(seed, `classifier/epoch-${epoch}`)).permutation(count);
    const jitter = new Rng(deriveSeed(seed, `classifier/shift-${epoch}`));
    let total = 0;
    let intervalStart = performance.now();
    for (let step = 0; step < stepsPerEpoch; step++) {
      for (let b = 0; b < batchSize; b++) {
        const i = order[step * batchSize + b]!;
        if (shift > 0) {
          const dx = jitter.int(2 * shift + 1) - shift;
          const dy = jitter.int(2 * shift + 1) - shift;
          shiftImage(opts.train.images, i, dx, dy, batchImages, b * IMAGE_VALUES);
        } else {
          batchImages.set(
            opts.train.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES),
            b * IMAGE_VALUES,
          );
        }
        digit[b] = opts.train.digit[i]!;
        fg[b] = opts.train.fg[i]!;
        bg[b] = opts.train.bg[i]!;
      }
      const loss = tidy(() => {
        const l = model.loss(imagesToInput(batchImages, 0, batchSize), {
          digit: F.tensor(digit, [batchSize], 'int32'),
          fg: F.tensor(fg, [batchSize], 'int32'),
          bg: F.tensor(bg, [batchSize], 'int32'),
        });
        l.backward();
        optimizer.update(schedule(optimizer.step));
        optimizer.zeroGrad();
        return l.item();
      });
      if (!Number.isFinite(loss))
        throw new Error(
          `classifier training diverged: loss ${loss} at epoch ${epoch} step ${step}`,
        );
      total += loss;
      if ((step + 1) % logEvery === 0 || step === stepsPerEpoch - 1) {
        const ms = (performance.now() - intervalStart) / ((step % logEvery) + 1);
        log(
          `classifier: epoch ${epoch + 1}/${epochs} step ${step + 1}/${stepsPerEpoch} | ` +
            `loss ${loss.toFixed(4)} | ${ms.toFixed(0)} ms/step`,
        );
        intervalStart = performance.now();
      }
    }
    epochLoss.push(total / stepsPerEpoch);
  }
  optimizer.dispose();
  model.eval();
  return { model, settings, epochLoss, wallMs: performance.now() - started };
}

// ---- evaluation ------------------------------------------------------------------------------

/** The classifier's accuracy on the first `limit` images of a labelled set. */
export function evaluateClassifier(
  model: AttributeClassifier,
  set: LabelledImages,
  limit = set.count,
): AttributeAccuracy {
  const count = Math.min(limit, set.count);
  return attributeAccuracy(model.classify(set.images, count), set, count);
}

// ---- save / load -----------------------------------------------------------------------------

/** What a saved classifier was trained on; `ensureClassifier` retrains when any differs. */
export interface ClassifierProvenance {
  /** Seed of the coloured-MNIST data it was trained on. */
  dataSeed: number;
  paletteHash: string;
  settings: ClassifierTrainSettings;
  config: ClassifierConfig;
}

export interface LoadedClassifier {
  model: AttributeClassifier;
  provenance: ClassifierProvenance;
  /** Accuracy on real test images recorded when it was saved (if any). */
  testAccuracy: AttributeAccuracy | null;
}

/** Writes the weights with config, provenance and test accuracy in the metadata (atomically). */
export function saveClassifier(
  model: AttributeClassifier,
  filePath: string,
  provenance: Omit<ClassifierProvenance, 'config' | 'paletteHash'>,
  testAccuracy: AttributeAccuracy | null = null,
): void {
  const tensors: Record<string, NamedArray> = {};
  for (const [name, { shape, data }] of Object.entries(model.stateDict()))
    tensors[name] = { dtype: 'F32', shape, data };
  saveSafetensors(filePath, tensors, {
    format: CLASSIFIER_FORMAT,
    version: String(CLASSIFIER_VERSION),
    config: JSON.stringify(model.config),
    provenance: JSON.stringify({
      ...provenance,
      paletteHash: paletteHash(),
      config: model.config,
    } satisfies ClassifierProvenance),
    test_accuracy: JSON.stringify(testAccuracy),
  });
}

/** Loads a classifier written by saveClassifier; errors name the file and the problem. */
export function loadClassifier(filePath: string): LoadedClassifier {
  if (!fs.existsSync(filePath))
    throw new Error(`classifier '${filePath}' does not exist (it is trained by mmgpt eval)`);
  const contents = loadSafetensors(filePath);
  const meta = contents.metadata;
  if (meta.format !== CLASSIFIER_FORMAT)
    throw new Error(
      `'${filePath}' is not an attribute classifier (format '${meta.format}', expected '${CLASSIFIER_FORMAT}')`,
    );
  if (meta.version !== String(CLASSIFIER_VERSION))
    throw new Error(
      `'${filePath}': classifier version ${meta.version} is not supported (this mmgpt reads ${CLASSIFIER_VERSION}); delete it to retrain`,
    );
  let provenance: ClassifierProvenance;
  let testAccuracy: AttributeAccuracy | null;
  try {
    provenance = JSON.parse(meta.provenance ?? '') as ClassifierProvenance;
    testAccuracy = JSON.parse(meta.test_accuracy ?? 'null') as AttributeAccuracy | null;
  } catch (e) {
    throw new Error(
      `'${filePath}': classifier metadata is not valid JSON (${(e as Error).message})`,
    );
  }
  // Files written before the stride-1 conv and the shift augmentation existed had neither.
  provenance = {
    ...provenance,
    // (The keys keep their saved order: ensureClassifier compares provenances as JSON.)
    config: Object.assign({ shapeChannels0: 0 }, provenance.config),
    settings: { ...provenance.settings, shift: provenance.settings.shift ?? 0 },
  };
  const model = new AttributeClassifier(provenance.config, new Rng(0));
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(contents.tensors)) {
    if (t.dtype !== 'F32')
      throw new Error(`'${filePath}': tensor '${name}' is ${t.dtype}, not F32`);
    dict[name] = { shape: t.shape, data: t.data };
  }
  model.loadStateDict(dict, filePath);
  model.eval();
  return { model, provenance, testAccuracy };
}

export interface EnsureClassifierOptions {
  /** Where the classifier lives (reused if valid, else trained and written there). */
  path: string;
  train: LabelledImages;
  /** Real test images: the accuracy recorded beside the weights. */
  test: LabelledImages;
  dataSeed: number;
  config?: ClassifierConfig;
  settings?: Partial<ClassifierTrainSettings>;
  /** Test images scored after training (default 10000: the whole test split). */
  testLimit?: number;
  /** A shipped classifier (weights/classifier/) to copy to `path` when it matches. */
  shipped?: string;
  log?: (line: string) => void;
}

export interface EnsuredClassifier extends LoadedClassifier {
  /** 'reused' a valid saved classifier, or 'trained' a new one (with the reason). */
  status: 'reused' | 'trained';
  reason?: string;
  trainWallMs?: number;
}

/** The classifier in `file` if it was made with exactly `wanted`, else why not. */
function checkSavedClassifier(
  file: string,
  wanted: ClassifierProvenance,
): { loaded: LoadedClassifier } | { reason: string } {
  if (!fs.existsSync(file)) return { reason: 'none saved yet' };
  try {
    const loaded = loadClassifier(file);
    const mismatch = (Object.keys(wanted) as (keyof ClassifierProvenance)[]).find(
      (k) => JSON.stringify(loaded.provenance[k]) !== JSON.stringify(wanted[k]),
    );
    if (mismatch === undefined && loaded.testAccuracy !== null) return { loaded };
    loaded.model.dispose();
    return {
      reason:
        mismatch !== undefined
          ? `its ${mismatch} differs (${JSON.stringify(loaded.provenance[mismatch])} vs ${JSON.stringify(wanted[mismatch])})`
          : 'it has no recorded test accuracy',
    };
  } catch (e) {
    return { reason: `it is unreadable (${(e as Error).message})` };
  }
}

/**
 * The classifier at `path` if it was trained with the same config, settings, data seed and
 * palette; else a shipped one (`shipped`) made with all of these, copied to `path`; otherwise
 * trains one on the real train images, scores it on real test images and
 * saves it there.
 */
export function ensureClassifier(opts: EnsureClassifierOptions): EnsuredClassifier {
  const log = opts.log ?? (() => undefined);
  const config = validateClassifierConfig({ ...(opts.config ?? CLASSIFIER_DEFAULTS) });
  const settings = { ...CLASSIFIER_TRAIN_DEFAULTS, ...opts.settings };
  const wanted: ClassifierProvenance = {
    dataSeed: opts.dataSeed,
    paletteHash: paletteHash(),
    settings,
    config,
  };
  const saved = checkSavedClassifier(opts.path, wanted);
  if ('loaded' in saved) {
    log(`classifier: reusing ${opts.path}`);
    return { ...saved.loaded, status: 'reused' };
  }
  let reason = saved.reason;
  if (opts.shipped !== undefined) {
    // A shipped classifier of exactly these settings: copy it rather than train one.
    const shipped = checkSavedClassifier(opts.shipped, wanted);
    if ('loaded' in shipped) {
      fs.mkdirSync(path.dirname(opts.path), { recursive: true });
      atomicWriteFile(opts.path, fs.readFileSync(opts.shipped));
      log(`classifier: using the shipped ${opts.shipped} (copied to ${opts.path})`);
      return { ...shipped.loaded, status: 'reused' };
    }
    reason += `; the shipped ${opts.shipped}: ${shipped.reason}`;
  }
  log(`classifier: training one on real images (${reason})`);
  const trained = trainClassifier({ train: opts.train, config, settings, log });
  const testAccuracy = evaluateClassifier(trained.model, opts.test, opts.testLimit ?? 10000);
  log(
    `classifier: real test accuracy ${(100 * testAccuracy.all).toFixed(2)}% all three ` +
      `(digit ${(100 * testAccuracy.digit).toFixed(2)}%, fg ${(100 * testAccuracy.fg).toFixed(2)}%, ` +
      `bg ${(100 * testAccuracy.bg).toFixed(2)}%) in ${(trained.wallMs / 1000).toFixed(0)} s`,
  );
  saveClassifier(trained.model, opts.path, { dataSeed: opts.dataSeed, settings }, testAccuracy);
  return {
    model: trained.model,
    provenance: wanted,
    testAccuracy,
    status: 'trained',
    reason,
    trainWallMs: trained.wallMs,
  };
}
