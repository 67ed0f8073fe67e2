// The attribute reader: a small CNN that reads digit, foreground colour and background colour off
// a 28x28x3 level image. Two networks of this architecture serve the project: the reports' judge
// (src/eval/classifier.ts trains, saves and loads it, on real images only) and the readers of the
// tokenizer recipes (the perceptual term of training, and the code search's reader, which the
// tokenizer carries: src/vqvae/search.ts). It lives here, at the tokenizer's stage, because the
// tokenizer is its first user in the data's journey; src/eval/classifier.ts re-exports it.
//
// Architecture: a small CNN in two branches with three heads, on two views of the image:
//   shape view [B, 1, 28, 28]: per pixel the largest per-channel distance (in levels) from the
//     image's background (each channel's most frequent level), scaled to [-1, 1]: a grey
//     MNIST-like digit whatever the two colours are;
//   colour view [B, 12, 28, 28]: each channel's level one-hot (3 channels x 4 levels, the same
//     12 planes the VQ-VAE decodes to), so one ReLU unit can detect one exact colour.
//   shape branch: conv 3x3 s1 p1 (1 -> s0, 28 -> 28), ReLU (absent when s0 = 0), conv 3x3 s2 p1
//     (s0 -> s1, 28 -> 14), ReLU, conv 3x3 s2 p1 (s1 -> s2, 14 -> 7), ReLU, flatten [B, s2*49],
//     linear -> shapeHidden, ReLU, linear -> digit (10);
//   colour branch: conv 1x1 (12 -> c, one colour detector per channel), ReLU, two weighted means
//     over the 28x28 pixels: weighted by the shape view (the digit's pixels) and by its
//     complement (the background's) -> [B, 2c], linear -> colourHidden, ReLU, then
//     linear -> foreground (palette size) and linear -> background (palette size).
//
// - Why two views and two branches, not one conv trunk on the levels scaled to [-1, 1] (tried
//   first): the digit must be read whatever its two colours are, and one trunk on scaled levels
//   learnt that slowly, well behind the same trunk on grey MNIST, and read the foregrounds
//   worse. The background-distance view gives the digit branch grey MNIST. A plain mean of the
//   colour detectors found the background but not the foreground (a few percent of the pixels);
//   weighting the mean by the shape view fixes that.
//   The views and the weights are fixed functions of the image alone: the judge sees only pixels.

import * as F from '../engine/ops';
import type { Tensor } from '../engine/tensor';
import { noGrad, tidy } from '../engine/tensor';
import { Conv2d, Linear, Module } from '../nn/module';
import type { Rng } from '../nn/rng';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/images';
import type { Attributes } from '../data/coloured';
import { PALETTE } from '../data/palette';

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const DIGITS = 10;

export interface ClassifierConfig {
  /** Channels of a stride-1 conv at 28x28 before the shape branch's stride-2 convs (0 = none). */
  shapeChannels0: number;
  /** Channels of the shape branch's first stride-2 conv (28 -> 14). */
  shapeChannels1: number;
  /** Channels of the shape branch's second conv (14 -> 7). */
  shapeChannels2: number;
  /** Width of the shape branch's hidden layer. */
  shapeHidden: number;
  /** Colour detectors (1x1 conv channels) of the colour branch. */
  colourChannels: number;
  /** Width of the colour branch's hidden layer. */
  colourHidden: number;
  /** Colours per colour head (the palette size). */
  colours: number;
}

export const CLASSIFIER_DEFAULTS: ClassifierConfig = {
  shapeChannels0: 32,
  shapeChannels1: 32,
  shapeChannels2: 64,
  shapeHidden: 128,
  colourChannels: 32,
  colourHidden: 64,
  colours: PALETTE.length,
};

const CONFIG_KEYS = [
  'shapeChannels1',
  'shapeChannels2',
  'shapeHidden',
  'colourChannels',
  'colourHidden',
  'colours',
] as const;

/** Throws naming the field, the value and what is accepted. */
export function validateClassifierConfig(c: ClassifierConfig): ClassifierConfig {
  for (const key of CONFIG_KEYS) {
    if (!Number.isInteger(c[key]) || c[key] <= 0)
      throw new Error(`ClassifierConfig.${key} must be a positive integer, got ${c[key]}`);
  }
  if (!Number.isInteger(c.shapeChannels0) || c.shapeChannels0 < 0)
    throw new Error(
      `ClassifierConfig.shapeChannels0 must be a non-negative integer, got ${c.shapeChannels0}`,
    );
  return c;
}

/** Planes of the classifier's input: 1 shape plane + 12 one-hot colour planes. */
export const INPUT_PLANES = 1 + IMAGE_CHANNELS * LEVELS;

/**
 * Images [count, 28, 28, 3] (HWC levels) from `start` -> the two views in one NCHW tensor
 * [count, 13, 28, 28]: plane 0 the shape view in [-1, 1], planes 1 + 4c + l the one-hot of
 * level l in channel c (see the file header).
 */
export function imagesToInput(images: Uint8Array, start: number, count: number): Tensor {
  const data = new Float32Array(count * INPUT_PLANES * PIXELS); // [count, 13, 28, 28]
  const scale = 2 / (LEVELS - 1);
  const histogram = new Int32Array(LEVELS);
  const background = new Int32Array(IMAGE_CHANNELS);
  for (let b = 0; b < count; b++) {
    const src = (start + b) * IMAGE_VALUES;
    const dst = b * INPUT_PLANES * PIXELS;
    backgroundLevels(images, start + b, histogram, background);
    for (let p = 0; p < PIXELS; p++) {
      let distance = 0;
      for (let c = 0; c < IMAGE_CHANNELS; c++) {
        const level = images[src + p * IMAGE_CHANNELS + c]!;
        distance = Math.max(distance, Math.abs(level - background[c]!));
        data[dst + (1 + c * LEVELS + level) * PIXELS + p] = 1;
      }
      data[dst + p] = distance * scale - 1;
    }
  }
  return F.tensor(data, [count, INPUT_PLANES, IMAGE_SIZE, IMAGE_SIZE]);
}

/** background[c] = the most frequent level of channel c in image `index` (lowest on ties). */
function backgroundLevels(
  images: Uint8Array,
  index: number,
  histogram: Int32Array,
  background: Int32Array,
): void {
  const src = index * IMAGE_VALUES;
  for (let c = 0; c < IMAGE_CHANNELS; c++) {
    histogram.fill(0);
    for (let p = 0; p < PIXELS; p++) histogram[images[src + p * IMAGE_CHANNELS + c]!]!++;
    let mode = 0;
    for (let l = 1; l < LEVELS; l++) if (histogram[l]! > histogram[mode]!) mode = l;
    background[c] = mode;
  }
}

/**
 * imagesToInput made differentiable, from a decoder's logits [B, 12, 28, 28] (channel c's level l
 * at 4c + l, as the VQ-VAE decodes) rather than from levels: the colour planes are the softmax
 * probabilities of the four levels (the one-hot in the limit of confident logits), and the shape
 * plane is, per pixel, the largest over the channels of the expected distance |level -
 * background|, scaled to [-1, 1]. The backgrounds are those of `images` (B images [28, 28, 3]:
 * the real images the logits reconstruct), which a faithful reconstruction shares. -> [B, 13, 28, 28]
 */
export function softClassifierInput(logits: Tensor, images: Uint8Array): Tensor {
  const batch = logits.shape[0]!;
  const planes = IMAGE_CHANNELS * LEVELS;
  if (logits.rank !== 4 || logits.shape.join() !== [batch, planes, IMAGE_SIZE, IMAGE_SIZE].join())
    throw new Error(
      `softClassifierInput: logits must be [B, ${planes}, ${IMAGE_SIZE}, ${IMAGE_SIZE}], got [${logits.shape.join(', ')}]`,
    );
  checkImages('softClassifierInput', images, batch);
  // distance[b, 4c + l] = |l - background of channel c in image b|
  const distance = new Float32Array(batch * planes);
  const histogram = new Int32Array(LEVELS);
  const background = new Int32Array(IMAGE_CHANNELS);
  for (let b = 0; b < batch; b++) {
    backgroundLevels(images, b, histogram, background);
    for (let c = 0; c < IMAGE_CHANNELS; c++)
      for (let l = 0; l < LEVELS; l++)
        distance[b * planes + c * LEVELS + l] = Math.abs(l - background[c]!);
  }
  const probabilities = F.permute(
    F.reshape(
      F.softmax(
        F.reshape(F.permute(logits, [0, 2, 3, 1]), [batch * PIXELS * IMAGE_CHANNELS, LEVELS]),
      ),
      [batch, IMAGE_SIZE, IMAGE_SIZE, planes],
    ),
    [0, 3, 1, 2],
  ); // [B, 12, 28, 28]
  const expected = F.sum(
    F.reshape(F.mul(probabilities, F.tensor(distance, [batch, planes, 1, 1])), [
      batch,
      IMAGE_CHANNELS,
      LEVELS,
      PIXELS,
    ]),
    2,
  ); // [B, 3, 784]: each channel's expected distance from its background
  const max = (a: Tensor, b: Tensor): Tensor => F.add(b, F.relu(F.sub(a, b)));
  let largest = F.slice(expected, 1, 0, 1);
  for (let c = 1; c < IMAGE_CHANNELS; c++) largest = max(F.slice(expected, 1, c, c + 1), largest);
  const shape = F.reshape(F.affine(largest, 2 / (LEVELS - 1), -1), [
    batch,
    1,
    IMAGE_SIZE,
    IMAGE_SIZE,
  ]);
  return F.concat([shape, probabilities], 1);
}

/** Logits of the three heads for one batch. */
export interface HeadLogits {
  digit: Tensor; // [B, 10]
  fg: Tensor; // [B, colours]
  bg: Tensor; // [B, colours]
}

export class AttributeClassifier extends Module {
  readonly config: ClassifierConfig;
  readonly shapeConv0: Conv2d | null;
  readonly shapeConv1: Conv2d;
  readonly shapeConv2: Conv2d;
  readonly shapeFc: Linear;
  readonly digitHead: Linear;
  readonly colourConv: Conv2d;
  readonly colourFc: Linear;
  readonly fgHead: Linear;
  readonly bgHead: Linear;
  /** Inputs of the shape branch's hidden layer: shapeChannels2 * 7 * 7. */
  readonly shapeFeatures: number;

  constructor(config: ClassifierConfig, rng: Rng) {
    super();
    this.config = validateClassifierConfig({ ...config });
    const c = this.config;
    this.shapeFeatures = c.shapeChannels2 * (IMAGE_SIZE / 4) * (IMAGE_SIZE / 4);
    this.shapeConv0 =
      c.shapeChannels0 > 0
        ? this.child('shape_conv0', new Conv2d(1, c.shapeChannels0, 3, rng, 1, 1))
        : null;
    this.shapeConv1 = this.child(
      'shape_conv1',
      new Conv2d(Math.max(1, c.shapeChannels0), c.shapeChannels1, 3, rng, 2, 1),
    );
    this.shapeConv2 = this.child(
      'shape_conv2',
      new Conv2d(c.shapeChannels1, c.shapeChannels2, 3, rng, 2, 1),
    );
    // He-style scale for the hidden ReLU layers; heads at 1/sqrt(fan-in).
    const he = (fanIn: number) => ({ std: Math.sqrt(2 / fanIn) });
    const head = (fanIn: number) => ({ std: 1 / Math.sqrt(fanIn) });
    this.shapeFc = this.child(
      'shape_fc',
      new Linear(this.shapeFeatures, c.shapeHidden, rng, he(this.shapeFeatures)),
    );
    this.digitHead = this.child(
      'digit',
      new Linear(c.shapeHidden, DIGITS, rng, head(c.shapeHidden)),
    );
    this.colourConv = this.child(
      'colour_conv',
      new Conv2d(INPUT_PLANES - 1, c.colourChannels, 1, rng),
    );
    this.colourFc = this.child(
      'colour_fc',
      new Linear(2 * c.colourChannels, c.colourHidden, rng, he(2 * c.colourChannels)),
    );
    this.fgHead = this.child(
      'fg',
      new Linear(c.colourHidden, c.colours, rng, head(c.colourHidden)),
    );
    this.bgHead = this.child(
      'bg',
      new Linear(c.colourHidden, c.colours, rng, head(c.colourHidden)),
    );
  }

  /** x [B, 13, 28, 28] from imagesToInput -> logits of the three heads. */
  forward(x: Tensor): HeadLogits {
    const batch = x.shape[0]!;
    const c = this.config;
    const shapeView = F.slice(x, 1, 0, 1); // [B, 1, 28, 28]
    const colourView = F.slice(x, 1, 1, INPUT_PLANES); // [B, 12, 28, 28]
    let s = this.shapeConv0 ? F.relu(this.shapeConv0.forward(shapeView)) : shapeView; // [B, s0, 28, 28]
    s = F.relu(this.shapeConv1.forward(s)); // [B, s1, 14, 14]
    s = F.relu(this.shapeConv2.forward(s)); // [B, s2, 7, 7]
    s = F.reshape(s, [batch, this.shapeFeatures]); // [B, s2*49]
    s = F.relu(this.shapeFc.forward(s)); // [B, shapeHidden]
    // Colour detectors, averaged twice: weighted towards the digit's pixels (the shape view's
    // distance from the background, 0..1) and towards the background's (1 - that).
    const detectors = F.reshape(
      F.relu(this.colourConv.forward(colourView)), // [B, c, 28, 28]
      [batch, c.colourChannels, PIXELS],
    ); // [B, c, 784]
    const fgWeight = F.affine(F.reshape(shapeView, [batch, 1, PIXELS]), 0.5, 0.5); // [B, 1, 784]
    const bgWeight = F.affine(fgWeight, -1, 1); // [B, 1, 784]
    const pool = (w: Tensor): Tensor =>
      F.div(F.sum(F.mul(detectors, w), 2), F.addScalar(F.sum(w, 2), 1e-6)); // [B, c] / [B, 1]
    let k = F.concat([pool(fgWeight), pool(bgWeight)], 1); // [B, 2c]
    k = F.relu(this.colourFc.forward(k)); // [B, colourHidden]
    return {
      digit: this.digitHead.forward(s), // [B, 10]
      fg: this.fgHead.forward(k), // [B, colours]
      bg: this.bgHead.forward(k), // [B, colours]
    };
  }

  /** Sum of the three heads' mean cross-entropies on one labelled batch. */
  loss(x: Tensor, labels: { digit: Tensor; fg: Tensor; bg: Tensor }): Tensor {
    const logits = this.forward(x);
    return F.add(
      F.add(F.crossEntropy(logits.digit, labels.digit), F.crossEntropy(logits.fg, labels.fg)),
      F.crossEntropy(logits.bg, labels.bg),
    );
  }

  /** The most likely digit, foreground and background of each image [count, 28, 28, 3]. */
  classify(images: Uint8Array, count: number, batchSize = 256): Attributes {
    checkImages('classify', images, count);
    const out: Attributes = {
      digit: new Int32Array(count),
      fg: new Int32Array(count),
      bg: new Int32Array(count),
    };
    const wasTraining = this.training;
    this.eval();
    noGrad(() => {
      for (let start = 0; start < count; start += batchSize) {
        const n = Math.min(batchSize, count - start);
        tidy(() => {
          const logits = this.forward(imagesToInput(images, start, n));
          argmaxRows(logits.digit.toFloat32Array(), n, DIGITS, out.digit, start);
          argmaxRows(logits.fg.toFloat32Array(), n, this.config.colours, out.fg, start);
          argmaxRows(logits.bg.toFloat32Array(), n, this.config.colours, out.bg, start);
        });
      }
    });
    this.train(wasTraining);
    return out;
  }

  dispose(): void {
    this.zeroGrad();
    for (const p of this.parameters()) p.dispose();
  }
}

/** out[offset + r] = argmax of row r of logits [rows, width] (lowest index on ties). */
function argmaxRows(
  logits: Float32Array,
  rows: number,
  width: number,
  out: Int32Array,
  offset: number,
): void {
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < width; j++)
      if (logits[r * width + j]! > logits[r * width + best]!) best = j;
    out[offset + r] = best;
  }
}

export function checkImages(what: string, images: Uint8Array, count: number): void {
  if (!Number.isInteger(count) || count < 0 || images.length < count * IMAGE_VALUES) {
    throw new Error(
      `${what}: need ${count} images of [28, 28, 3] = ${count * IMAGE_VALUES} levels, ` +
        `got ${images.length}`,
    );
  }
}
