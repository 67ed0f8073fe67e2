// The image tokenizer: a VQ-VAE that maps a 28x28x3 coloured-MNIST image (levels 0..3) to a
// 7x7 grid of codebook indices (49 tokens, raster order) and back.
//
// Follows the VQ-VAE paper (van den Oord et al. 2017, "Neural Discrete Representation Learning")
// and its appendix A.1 / sonnet's `VectorQuantizerEMA`: the encoder output z is replaced by its
// nearest codebook vector, gradients pass straight through (z + sg(zq - z)), the loss adds a
// commitment term beta * ||z - sg(zq)||^2, and the codebook is not learned by the optimiser but
// moved by exponential moving averages of the cluster sizes and of the sums of the encoder
// outputs assigned to each code (Laplace-smoothed counts).
// Notable choices:
// - Input: levels scaled to [-1, 1] (level * 2/3 - 1), one channel per colour. The levels are
//   ordered intensities, so a linear scale keeps their order, and 3 input channels make the first
//   convolution 4x cheaper than a 12-channel one-hot.
// - Output: 3 x 4 logits per pixel and a categorical cross-entropy over the 4 levels of each
//   channel (the data is exactly 4-level, so this is the likelihood of the data, and the decoded
//   image is the argmax level: always in 0..3, no clipping or rounding needed).
// - Loss weighting: the values of pixels that differ from their image's most common colour (the
//   digit and its anti-aliased edge, about a fifth of the pixels) weigh `foregroundWeight` (4 by
//   default) against 1 for the background. With a plain mean the background dominates and the
//   codes spend too little on the digit's colour: reconstructions kept the foreground colour in
//   22% of test images after 800 steps, 66% with the weight (digit 77% -> 89%).
// - `globalContext` (off by default) adds the grid mean of the 7x7 features back at every position
//   in the encoder and decoder. Meant to let codes share the image-wide colours, it did not help
//   (all three attributes kept: 87% without, 85% with, at 2400 steps) and stays as an option.
// - Codebook upkeep: EMA (decay 0.99, eps 1e-5) plus dead-code restarts: a code unused for
//   `deadCodeSteps` training steps is reset to a random encoder output of the current batch,
//   drawn with the model's seeded restart Rng (as in Jukebox, Dhariwal et al. 2020) with
//   probability proportional to its squared quantisation error (k-means++'s D^2 sampling), so
//   new codes land where the codebook serves the batch worst. Restarting every code from the
//   first batch (a data-dependent init) was tried and hurt: it anchors the codebook to a random
//   encoder's outputs; counters start at 0 instead, so the first restarts come after
//   `deadCodeSteps` steps of training.
// - The EMA statistics live on the host (Float32Array; K x D is small) and the codebook tensor
//   is rewritten in place after each update; the optimiser never sees the codebook.
//   `stateDict()` / `loadStateDict()` cover the parameters and these buffers
//   (`quantizer.codebook`, `quantizer.cluster_size`, `quantizer.embed_sum`,
//   `quantizer.unused_steps`).
// Architecture (h = hiddenChannels):
//   encoder: conv 4x4 s2 (3 -> h/2, 28 -> 14), ReLU, conv 4x4 s2 (h/2 -> h, 14 -> 7), ReLU,
//            conv 3x3 (h -> h), residual blocks, ReLU, conv 1x1 (h -> codeDim)
//   decoder: conv 3x3 (codeDim -> h), residual blocks, ReLU, convT 4x4 s2 (h -> h/2, 7 -> 14),
//            ReLU, convT 4x4 s2 (h/2 -> 3*4, 14 -> 28)
//   residual block: x + conv1x1(ReLU(conv3x3(ReLU(x)))) with residualChannels in the middle.

import type { Tensor } from '../engine/tensor';
import { keep, noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { Module, ModuleList, Conv2d, ConvTranspose2d, randn } from '../nn/module';
import { Rng } from '../nn/rng';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/coloured';
import type { CodeSearch, SearchableTokenizer } from './search';
import { AttributeClassifier } from './reader';
import { searchCodes, validateCodeSearch } from './search';

/** Side of the code grid: 28 / 4 (two stride-2 convolutions). */
export const CODE_GRID = IMAGE_SIZE / 4;
/** Codes per image: 7 x 7 = 49. */
export const CODES_PER_IMAGE = CODE_GRID * CODE_GRID;
/** Images per call of the code search in `encode` (see searchInChunks). */
const SEARCH_CHUNK = 32;
/** Output logits per pixel: 3 channels x 4 levels. */
const LOGITS_PER_PIXEL = IMAGE_CHANNELS * LEVELS;
const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

export interface VqVaeConfig {
  /** Number of codebook vectors K (the image vocabulary of the GPT). */
  codebookSize: number;
  /** Dimension D of each codebook vector. */
  codeDim: number;
  /** Channels at 7x7 (the 14x14 stage uses half as many). Must be even. */
  hiddenChannels: number;
  /** Channels inside each residual block. */
  residualChannels: number;
  /** Residual blocks in the encoder and (as many) in the decoder. */
  residualBlocks: number;
  /** Commitment loss weight beta. */
  beta: number;
  /** EMA decay of the codebook statistics (sonnet's default 0.99). */
  emaDecay: number;
  /** Laplace smoothing epsilon of the EMA cluster sizes. */
  emaEpsilon: number;
  /** A code unused for this many training steps is restarted from the batch (0: never). */
  deadCodeSteps: number;
  /**
   * Loss weight of the pixels that differ from their image's background colour (the most
   * common colour of the image), relative to 1 for background pixels. The digit and its
   * colour live in about a fifth of the pixels; a plain mean lets the background dominate.
   */
  foregroundWeight: number;
  /**
   * Adds an image-wide context to the encoder and decoder at the 7x7 stage: the mean of the
   * features over the grid, through a 1x1 convolution, added at every position. The two
   * colours are properties of the whole image, and this lets every code see and share them.
   */
  globalContext: boolean;
  /**
   * Decoder-aware encoding (src/vqvae/search.ts; absent: each cell gets its nearest code). The
   * encoder's nearest codes are the start of a search that tries each cell's `candidates`
   * nearest codes in turn and keeps the one whose decoded image is closest to the input. It
   * changes only `encode`: training and decoding are the same.
   */
  codeSearch?: CodeSearch;
}

/** What a checkpoint written before a field existed meant by it (the behaviour of that time). */
export const VQVAE_LEGACY_FIELDS: Pick<VqVaeConfig, 'foregroundWeight' | 'globalContext'> = {
  foregroundWeight: 1,
  globalContext: false,
};

/** The mission's tokenizer: 1024 codes of dimension 64, beta 0.25. */
export const VQVAE_DEFAULTS: VqVaeConfig = {
  codebookSize: 1024,
  codeDim: 64,
  hiddenChannels: 64,
  residualChannels: 32,
  residualBlocks: 2,
  beta: 0.25,
  emaDecay: 0.99,
  emaEpsilon: 1e-5,
  deadCodeSteps: 100,
  foregroundWeight: 4,
  globalContext: false,
};

export const VQVAE_PRESETS = {
  /** The real tokenizer (1024 x 64). */
  default: VQVAE_DEFAULTS,
  /** A tokenizer small enough for unit tests on the reference backend. */
  tiny: {
    codebookSize: 32,
    codeDim: 8,
    hiddenChannels: 16,
    residualChannels: 8,
    residualBlocks: 1,
    beta: 0.25,
    emaDecay: 0.9,
    emaEpsilon: 1e-5,
    deadCodeSteps: 10,
    foregroundWeight: 1,
    globalContext: false,
  } satisfies VqVaeConfig,
} as const;

export type VqVaePresetName = keyof typeof VQVAE_PRESETS;

/** Checks every field; throws naming the field, the value and what is accepted. */
export function validateVqVaeConfig(c: VqVaeConfig): VqVaeConfig {
  const positiveInts = ['codebookSize', 'codeDim', 'hiddenChannels', 'residualChannels'] as const;
  for (const key of positiveInts) {
    if (!Number.isInteger(c[key]) || c[key] <= 0)
      throw new Error(`VqVaeConfig.${key} must be a positive integer, got ${c[key]}`);
  }
  for (const key of ['residualBlocks', 'deadCodeSteps'] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 0)
      throw new Error(`VqVaeConfig.${key} must be a non-negative integer, got ${c[key]}`);
  }
  if (c.hiddenChannels % 2 !== 0)
    throw new Error(`VqVaeConfig.hiddenChannels must be even, got ${c.hiddenChannels}`);
  if (!(c.beta >= 0 && Number.isFinite(c.beta)))
    throw new Error(`VqVaeConfig.beta must be a finite number >= 0, got ${c.beta}`);
  if (!(c.emaDecay >= 0 && c.emaDecay < 1))
    throw new Error(`VqVaeConfig.emaDecay must be in [0, 1), got ${c.emaDecay}`);
  if (!(c.foregroundWeight > 0 && Number.isFinite(c.foregroundWeight)))
    throw new Error(
      `VqVaeConfig.foregroundWeight must be a finite number > 0, got ${c.foregroundWeight}`,
    );
  if (typeof c.globalContext !== 'boolean')
    throw new Error(`VqVaeConfig.globalContext must be true or false, got ${c.globalContext}`);
  if (!(c.emaEpsilon > 0 && Number.isFinite(c.emaEpsilon)))
    throw new Error(`VqVaeConfig.emaEpsilon must be a finite number > 0, got ${c.emaEpsilon}`);
  if (c.codeSearch !== undefined) validateCodeSearch(c.codeSearch, c.codebookSize);
  return c;
}

/** A preset by name, with optional overrides, validated. */
export function vqVaeConfig(
  preset: VqVaePresetName = 'default',
  overrides: Partial<VqVaeConfig> = {},
): VqVaeConfig {
  if (!Object.prototype.hasOwnProperty.call(VQVAE_PRESETS, preset)) {
    throw new Error(
      `unknown VQ-VAE preset '${preset}': choose one of ${Object.keys(VQVAE_PRESETS).join(', ')}`,
    );
  }
  return validateVqVaeConfig({ ...VQVAE_PRESETS[preset], ...overrides });
}

/** Distinct codes used and perplexity exp(H) of the code histogram. */
export interface CodeStatistics {
  usedCodes: number;
  perplexity: number;
}

export function codeStatistics(codes: Int32Array, codebookSize: number): CodeStatistics {
  const counts = new Float64Array(codebookSize);
  for (let i = 0; i < codes.length; i++) counts[codes[i]!]!++;
  let used = 0;
  let entropy = 0;
  for (let k = 0; k < codebookSize; k++) {
    const c = counts[k]!;
    if (c === 0) continue;
    used++;
    const p = c / codes.length;
    entropy -= p * Math.log(p);
  }
  return { usedCodes: used, perplexity: Math.exp(entropy) };
}

/** Throws unless `images` holds `count` images of 28x28x3 levels in 0..3. */
function checkImages(op: string, images: Uint8Array, count: number): void {
  if (!Number.isInteger(count) || count < 0 || images.length < count * IMAGE_VALUES) {
    throw new Error(
      `${op}: need ${count} images of ${IMAGE_SIZE}x${IMAGE_SIZE}x${IMAGE_CHANNELS} ` +
        `(${count * IMAGE_VALUES} values), got ${images.length} values`,
    );
  }
  const n = count * IMAGE_VALUES;
  for (let i = 0; i < n; i++) {
    if (images[i]! >= LEVELS) {
      throw new Error(
        `${op}: value ${images[i]} at index ${i} is not a colour level (accepted: 0..${LEVELS - 1})`,
      );
    }
  }
}

// ---- layers --------------------------------------------------------------------------------------

/** x + conv1x1(ReLU(conv3x3(ReLU(x)))), shape-preserving. */
export class ResidualBlock extends Module {
  readonly conv3: Conv2d;
  readonly conv1: Conv2d;
  constructor(channels: number, residualChannels: number, rng: Rng) {
    super();
    this.conv3 = this.child('conv3', new Conv2d(channels, residualChannels, 3, rng, 1, 1));
    this.conv1 = this.child('conv1', new Conv2d(residualChannels, channels, 1, rng));
  }
  forward(x: Tensor): Tensor {
    return F.add(x, this.conv1.forward(F.relu(this.conv3.forward(F.relu(x))))); // [B, C, H, W]
  }
}

/** x + conv1x1(mean of x over the grid), broadcast to every position: [B, C, H, W] -> same. */
export class GlobalContext extends Module {
  readonly proj: Conv2d;
  constructor(channels: number, rng: Rng) {
    super();
    this.proj = this.child('proj', new Conv2d(channels, channels, 1, rng));
  }
  forward(x: Tensor): Tensor {
    const pooled = F.mean(F.mean(x, 3, true), 2, true); // [B, C, 1, 1]
    return F.add(x, this.proj.forward(pooled)); // [B, C, H, W]
  }
}

/** [B, 3, 28, 28] in [-1, 1] -> z [B, codeDim, 7, 7]. */
export class Encoder extends Module {
  readonly down1: Conv2d;
  readonly down2: Conv2d;
  readonly conv: Conv2d;
  readonly res: ModuleList<ResidualBlock>;
  readonly proj: Conv2d;
  readonly context: GlobalContext | null;
  constructor(c: VqVaeConfig, rng: Rng) {
    super();
    const h = c.hiddenChannels;
    this.down1 = this.child('down1', new Conv2d(IMAGE_CHANNELS, h / 2, 4, rng, 2, 1));
    this.down2 = this.child('down2', new Conv2d(h / 2, h, 4, rng, 2, 1));
    this.conv = this.child('conv', new Conv2d(h, h, 3, rng, 1, 1));
    this.context = c.globalContext ? this.child('context', new GlobalContext(h, rng)) : null;
    this.res = this.child(
      'res',
      new ModuleList(
        Array.from(
          { length: c.residualBlocks },
          () => new ResidualBlock(h, c.residualChannels, rng),
        ),
      ),
    );
    this.proj = this.child('proj', new Conv2d(h, c.codeDim, 1, rng));
  }
  forward(x: Tensor): Tensor {
    let y = F.relu(this.down1.forward(x)); // [B, h/2, 14, 14]
    y = F.relu(this.down2.forward(y)); // [B, h, 7, 7]
    y = this.conv.forward(y); // [B, h, 7, 7]
    if (this.context) y = this.context.forward(y);
    for (const block of this.res.items) y = block.forward(y);
    return this.proj.forward(F.relu(y)); // [B, codeDim, 7, 7]
  }
}

/** zq [B, codeDim, 7, 7] -> logits [B, 3*4, 28, 28] (channel index = colour * 4 + level). */
export class Decoder extends Module {
  readonly conv: Conv2d;
  readonly res: ModuleList<ResidualBlock>;
  readonly up1: ConvTranspose2d;
  readonly up2: ConvTranspose2d;
  readonly context: GlobalContext | null;
  constructor(c: VqVaeConfig, rng: Rng) {
    super();
    const h = c.hiddenChannels;
    this.conv = this.child('conv', new Conv2d(c.codeDim, h, 3, rng, 1, 1));
    this.context = c.globalContext ? this.child('context', new GlobalContext(h, rng)) : null;
    this.res = this.child(
      'res',
      new ModuleList(
        Array.from(
          { length: c.residualBlocks },
          () => new ResidualBlock(h, c.residualChannels, rng),
        ),
      ),
    );
    this.up1 = this.child('up1', new ConvTranspose2d(h, h / 2, 4, rng, 2, 1));
    this.up2 = this.child('up2', new ConvTranspose2d(h / 2, LOGITS_PER_PIXEL, 4, rng, 2, 1));
  }
  forward(zq: Tensor): Tensor {
    let y = this.conv.forward(zq); // [B, h, 7, 7]
    if (this.context) y = this.context.forward(y);
    for (const block of this.res.items) y = block.forward(y);
    y = F.relu(this.up1.forward(F.relu(y))); // [B, h/2, 14, 14]
    return this.up2.forward(y); // [B, 12, 28, 28]
  }
}

/** What one codebook update did. */
export interface QuantizerUpdate {
  /** Codes restarted by this update. */
  restarted: number;
}

/**
 * The codebook and its upkeep (no parameters: the optimiser never updates it). `codebook` is a
 * kept float32 tensor [K, D] without grad, rewritten in place by `update`.
 */
export class VectorQuantizer extends Module {
  readonly codebook: Tensor;
  /** EMA of the number of encoder outputs assigned to each code [K]. */
  readonly clusterSize: Float32Array;
  /** EMA of the sum of the encoder outputs assigned to each code [K, D]. */
  readonly embedSum: Float32Array;
  /** Training steps since each code was last assigned [K] (float32 so it fits the state dict). */
  readonly unusedSteps: Float32Array;
  private readonly codebookHost: Float32Array;

  constructor(
    readonly config: VqVaeConfig,
    rng: Rng,
    /** Draws the batch rows that restarted codes copy. */
    readonly restartRng: Rng,
  ) {
    super();
    const { codebookSize: k, codeDim: d } = config;
    const init = randn([k, d], rng, 1 / Math.sqrt(d));
    this.codebookHost = init.toFloat32Array();
    init.dispose();
    this.codebook = keep(F.tensor(this.codebookHost.slice(), [k, d]));
    this.codebook.name = 'quantizer.codebook';
    // Consistent start: codebook = embedSum / clusterSize with unit cluster sizes.
    this.clusterSize = new Float32Array(k).fill(1);
    this.embedSum = this.codebookHost.slice();
    this.unusedSteps = new Float32Array(k);
  }

  /** z [rows, D] -> nearest code indices int32 [rows] and their vectors zq [rows, D] (no grad). */
  quantize(z: Tensor): { indices: Tensor; zq: Tensor } {
    const { indices, distances } = F.nearestCode(z, this.codebook); // [rows], [rows]
    distances.dispose();
    const zq = noGrad(() => F.embedding(this.codebook, indices)); // [rows, D]
    return { indices, zq };
  }

  /** Codebook vectors of int32 codes [...] -> [..., D] (no grad). */
  lookup(codes: Tensor): Tensor {
    return noGrad(() => F.embedding(this.codebook, codes));
  }

  /**
   * One EMA step from a batch of encoder outputs z [rows, D] (host) and their codes [rows]:
   *   N_k <- decay N_k + (1 - decay) n_k,   m_k <- decay m_k + (1 - decay) sum_{i: c_i = k} z_i,
   *   e_k = m_k / ((N_k + eps) / (sum N + K eps) * sum N),
   * then codes unused for `deadCodeSteps` steps are reset to rows of z (see restartDeadCodes).
   */
  update(z: Float32Array, codes: Int32Array): QuantizerUpdate {
    const { codebookSize: k, codeDim: d, emaDecay: decay, emaEpsilon: eps } = this.config;
    const rows = codes.length;
    if (z.length !== rows * d) {
      throw new Error(
        `VectorQuantizer.update: z has ${z.length} values, ${rows} codes need ${rows * d}`,
      );
    }
    const counts = new Float64Array(k);
    const sums = new Float64Array(k * d); // [K, D]
    // Squared distance of each row to its code before the update: the restart weights.
    const errors = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const c = codes[r]!;
      if (!(c >= 0 && c < k))
        throw new Error(`VectorQuantizer.update: code ${c} out of range 0..${k - 1}`);
      counts[c]!++;
      const zBase = r * d;
      const sBase = c * d;
      let err = 0;
      for (let j = 0; j < d; j++) {
        const v = z[zBase + j]!;
        sums[sBase + j]! += v;
        const diff = v - this.codebookHost[sBase + j]!;
        err += diff * diff;
      }
      errors[r] = err;
    }
    let total = 0;
    for (let c = 0; c < k; c++) {
      this.clusterSize[c] = decay * this.clusterSize[c]! + (1 - decay) * counts[c]!;
      total += this.clusterSize[c]!;
      for (let j = 0; j < d; j++) {
        const i = c * d + j;
        this.embedSum[i] = decay * this.embedSum[i]! + (1 - decay) * sums[i]!;
      }
      this.unusedSteps[c] = counts[c]! > 0 ? 0 : this.unusedSteps[c]! + 1;
    }
    for (let c = 0; c < k; c++) {
      const smoothed = ((this.clusterSize[c]! + eps) / (total + k * eps)) * total;
      for (let j = 0; j < d; j++)
        this.codebookHost[c * d + j] = this.embedSum[c * d + j]! / smoothed;
    }
    const restarted = this.restartDeadCodes(z, errors);
    this.upload();
    return { restarted };
  }

  /**
   * Resets every code unused for `deadCodeSteps` steps to a row of z drawn without replacement
   * with probability proportional to its squared quantisation error (k-means++'s D^2 sampling):
   * new codes land where the codebook serves the batch worst, e.g. on two clusters that share
   * one code. Uniform once every row with nonzero error is taken.
   */
  private restartDeadCodes(z: Float32Array, errors: Float64Array): number {
    const { codebookSize: k, codeDim: d, deadCodeSteps } = this.config;
    const rows = errors.length;
    if (deadCodeSteps === 0 || rows === 0) return 0;
    const dead: number[] = [];
    for (let c = 0; c < k; c++) if (this.unusedSteps[c]! >= deadCodeSteps) dead.push(c);
    if (dead.length === 0) return 0;
    const weights = Float64Array.from(errors);
    let remaining = weights.reduce((a, b) => a + b, 0);
    for (const c of dead) {
      let row = -1;
      if (remaining > 0) {
        let u = this.restartRng.uniform() * remaining;
        for (let r = 0; r < rows && row < 0; r++) {
          u -= weights[r]!;
          if (u < 0 && weights[r]! > 0) row = r;
        }
      }
      if (row >= 0) {
        remaining -= weights[row]!;
        weights[row] = 0;
      } else {
        remaining = 0; // every weighted row is taken (or rounding left a sliver): uniform
        row = this.restartRng.int(rows);
      }
      const zBase = row * d;
      for (let t = 0; t < d; t++) {
        const v = z[zBase + t]!;
        this.codebookHost[c * d + t] = v;
        this.embedSum[c * d + t] = v; // cluster size 1: the EMA restarts from this one vector
      }
      this.clusterSize[c] = 1;
      this.unusedSteps[c] = 0;
    }
    return dead.length;
  }

  /** Copies the host codebook into the codebook tensor. */
  private upload(): void {
    const be = this.codebook.backend;
    const tmp = be.upload(this.codebookHost);
    be.copyBlock(tmp, this.codebook.buf, 1, 1, 0, 1, 0, 1, this.codebook.size, false);
    be.free(tmp);
  }

  /** A host copy of the codebook [K, D]. */
  codebookArray(): Float32Array {
    return this.codebookHost.slice();
  }

  /** The buffers that the state dict carries besides parameters (prefix 'quantizer.'). */
  buffers(): Record<string, { shape: number[]; data: Float32Array }> {
    const { codebookSize: k, codeDim: d } = this.config;
    return {
      codebook: { shape: [k, d], data: this.codebookHost.slice() },
      cluster_size: { shape: [k], data: this.clusterSize.slice() },
      embed_sum: { shape: [k, d], data: this.embedSum.slice() },
      unused_steps: { shape: [k], data: this.unusedSteps.slice() },
    };
  }

  /** Restores `buffers()`; the codebook is required, the EMA state optional (inference files). */
  loadBuffers(
    dict: Record<string, { shape: readonly number[]; data: Float32Array }>,
    source: string,
  ): void {
    const { codebookSize: k, codeDim: d } = this.config;
    const expected: Record<string, [number[], Float32Array]> = {
      codebook: [[k, d], this.codebookHost],
      cluster_size: [[k], this.clusterSize],
      embed_sum: [[k, d], this.embedSum],
      unused_steps: [[k], this.unusedSteps],
    };
    if (dict['codebook'] === undefined)
      throw new Error(`${source}: does not match the model; missing: quantizer.codebook`);
    for (const [name, [shape, target]] of Object.entries(expected)) {
      const src = dict[name];
      if (src === undefined) continue;
      if (
        src.shape.length !== shape.length ||
        src.shape.some((s, i) => s !== shape[i]) ||
        src.data.length !== target.length
      ) {
        throw new Error(
          `${source}: 'quantizer.${name}' has shape [${src.shape.join(', ')}], ` +
            `the model needs [${shape.join(', ')}]`,
        );
      }
    }
    for (const [name, [, target]] of Object.entries(expected)) {
      const src = dict[name];
      if (src !== undefined) target.set(src.data);
    }
    if (dict['embed_sum'] === undefined || dict['cluster_size'] === undefined) {
      // No EMA state (an inference-only file): restart the EMA from the codebook.
      this.clusterSize.fill(1);
      this.embedSum.set(this.codebookHost);
    }
    this.upload();
  }

  dispose(): void {
    this.codebook.dispose();
  }
}

// ---- the model -----------------------------------------------------------------------------------

/** What one training step reports besides the loss tensor. */
export interface VqVaeLoss {
  /** recon + commit: the tensor to call backward() on. */
  loss: Tensor;
  /** Mean cross-entropy per channel value, nats. */
  reconLoss: number;
  /** beta * mean squared distance between z and its code (the term added to the loss). */
  commitLoss: number;
  /** Perplexity of the batch's code histogram. */
  perplexity: number;
  /** Distinct codes used in the batch. */
  usage: number;
  /** Codes restarted by this step's codebook update (0 outside training mode). */
  restarted: number;
  /** The decoder's logits [B, 12, 28, 28] (channel c's level l at 4c + l), for extra loss terms. */
  logits: Tensor;
}

export class VqVae extends Module implements SearchableTokenizer {
  readonly config: VqVaeConfig;
  readonly encoder: Encoder;
  readonly quantizer: VectorQuantizer;
  readonly decoder: Decoder;
  /**
   * The code search's reader (`codeSearch.reader`; null: none): an attribute classifier whose
   * weights are part of the tokenizer (`reader.*`), never trained with it.
   */
  readonly reader: AttributeClassifier | null;

  /** `rng` initialises the weights and seeds the dead-code restart stream. */
  constructor(config: VqVaeConfig, rng: Rng) {
    super();
    this.config = validateVqVaeConfig({ ...config });
    this.encoder = this.child('encoder', new Encoder(this.config, rng));
    this.quantizer = this.child(
      'quantizer',
      new VectorQuantizer(this.config, rng, new Rng(rng.next())),
    );
    this.decoder = this.child('decoder', new Decoder(this.config, rng));
    const reader = this.config.codeSearch?.reader;
    this.reader = reader
      ? this.child('reader', new AttributeClassifier(reader.classifier, new Rng(0)))
      : null;
    if (this.reader) for (const p of this.reader.parameters()) p.requiresGrad = false;
  }

  /** Images [count, 28, 28, 3] (levels) from `start` -> encoder input [count, 3, 28, 28]. */
  inputTensor(images: Uint8Array, start: number, count: number): Tensor {
    const data = new Float32Array(count * IMAGE_VALUES); // [count, 3, 28, 28]
    const scale = 2 / (LEVELS - 1);
    for (let b = 0; b < count; b++) {
      const src = (start + b) * IMAGE_VALUES;
      const dst = b * IMAGE_VALUES;
      for (let p = 0; p < PIXELS; p++) {
        for (let c = 0; c < IMAGE_CHANNELS; c++)
          data[dst + c * PIXELS + p] = images[src + p * IMAGE_CHANNELS + c]! * scale - 1;
      }
    }
    return F.tensor(data, [count, IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE]);
  }

  /** Encoder input [B, 3, 28, 28] -> z as rows [B*49, D] in raster order of the 7x7 grid. */
  encodeRows(x: Tensor): Tensor {
    const B = x.shape[0]!;
    const z = this.encoder.forward(x); // [B, D, 7, 7]
    return F.reshape(F.permute(z, [0, 2, 3, 1]), [B * CODES_PER_IMAGE, this.config.codeDim]); // [B*49, D]
  }

  /** Code vectors as rows [B*49, D] -> decoder logits [B, 12, 28, 28]. */
  decodeRows(rows: Tensor, count: number): Tensor {
    const grid = F.reshape(rows, [count, CODE_GRID, CODE_GRID, this.config.codeDim]); // [B, 7, 7, D]
    return this.decoder.forward(F.permute(grid, [0, 3, 1, 2])); // [B, 12, 28, 28]
  }

  /**
   * The loss of a batch of `count` images [count, 28, 28, 3] (count defaults to all of them).
   * In training mode this also moves the codebook (EMA + dead-code restarts). Call it inside
   * `tidy`; backward() the returned `loss`.
   */
  trainingLoss(images: Uint8Array, count = Math.floor(images.length / IMAGE_VALUES)): VqVaeLoss {
    checkImages('VqVae.trainingLoss', images, count);
    if (count === 0) throw new Error('VqVae.trainingLoss: the batch is empty');
    const { beta } = this.config;
    const z = this.encodeRows(this.inputTensor(images, 0, count)); // [B*49, D]
    const { indices, zq } = this.quantizer.quantize(z); // [B*49], [B*49, D]
    const commit = F.scale(F.mean(F.square(F.sub(z, F.detach(zq)))), beta);
    // Straight-through: the forward value is zq, the gradient reaches z unchanged.
    const zStraight = F.add(z, F.detach(noGrad(() => F.sub(zq, z)))); // [B*49, D]
    const logits = this.decodeRows(zStraight, count); // [B, 12, 28, 28]
    const logitsPerValue = F.reshape(F.permute(logits, [0, 2, 3, 1]), [
      count * IMAGE_VALUES,
      LEVELS,
    ]); // [B*28*28*3, 4]: rows in the HWC order of `images`
    const targets = F.tensor(
      Int32Array.from(images.subarray(0, count * IMAGE_VALUES)),
      [count * IMAGE_VALUES],
      'int32',
    );
    let recon: Tensor; // the mean cross-entropy per value (reported)
    let reconTerm: Tensor; // what the loss uses: the same, or weighted toward the digit
    if (this.config.foregroundWeight === 1) {
      recon = F.crossEntropy(logitsPerValue, targets);
      reconTerm = recon;
    } else {
      const perValue = F.crossEntropy(logitsPerValue, targets, 'none'); // [B*28*28*3]
      recon = F.mean(perValue);
      const { weights, total } = foregroundWeights(images, count, this.config.foregroundWeight);
      reconTerm = F.scale(F.sum(F.mul(perValue, F.tensor(weights, [weights.length]))), 1 / total);
    }
    const loss = F.add(reconTerm, commit);
    const codes = indices.toArray() as Int32Array;
    const { usedCodes, perplexity } = codeStatistics(codes, this.config.codebookSize);
    let restarted = 0;
    if (this.training) {
      restarted = this.quantizer.update(z.toFloat32Array(), codes).restarted;
    }
    return {
      loss,
      reconLoss: recon.item(),
      commitLoss: commit.item(),
      perplexity,
      usage: usedCodes,
      restarted,
      logits,
    };
  }

  /**
   * Images [count, 28, 28, 3] -> codes [count, 49] (int32, raster order), in batches, no grad:
   * the nearest codes, or the searched ones where the config has a `codeSearch`.
   */
  encode(
    images: Uint8Array,
    count: number,
    batchSize = 256,
    /** Called after each batch with the images encoded so far and the codes (filled to there). */
    progress?: (done: number, total: number, codes: Int32Array) => void,
  ): Int32Array {
    checkImages('VqVae.encode', images, count);
    const codes = new Int32Array(count * CODES_PER_IMAGE);
    const search = this.config.codeSearch;
    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const part = search
        ? this.searchInChunks(images, start, n, search, batchSize)
        : tidy(() =>
            noGrad(() => {
              const z = this.encoderRows(images, start, n); // [n*49, D]
              return F.nearestCode(z, this.quantizer.codebook).indices.toArray() as Int32Array;
            }),
          );
      codes.set(part, start * CODES_PER_IMAGE);
      progress?.(start + n, count, codes);
    }
    return codes;
  }

  /**
   * searchCodes over images [start, start + n), SEARCH_CHUNK images a call: the codes are the
   * same for any split (each image is searched alone), and smaller calls keep the decoder's
   * activations small: on 2 cores 32 images a call took 38-47 ms per image for `searched-reader`
   * against 63 ms for 256.
   */
  private searchInChunks(
    images: Uint8Array,
    start: number,
    n: number,
    search: CodeSearch,
    batchRows: number,
  ): Int32Array {
    const codes = new Int32Array(n * CODES_PER_IMAGE);
    for (let at = 0; at < n; at += SEARCH_CHUNK) {
      const m = Math.min(SEARCH_CHUNK, n - at);
      codes.set(searchCodes(this, images, start + at, m, search, batchRows), at * CODES_PER_IMAGE);
    }
    return codes;
  }

  /**
   * A new tokenizer with these weights and codebook that encodes with `search` (undefined: the
   * nearest codes). A search with a reader takes `reader`'s weights (default: this tokenizer's
   * own reader, whose architecture it must share). The copy owns its tensors: dispose both.
   */
  withCodeSearch(search: CodeSearch | undefined, reader?: AttributeClassifier): VqVae {
    const config: VqVaeConfig = { ...this.config };
    if (search === undefined) delete config.codeSearch;
    else config.codeSearch = { ...search };
    const copy = new VqVae(config, new Rng(0));
    const state = Object.fromEntries(
      Object.entries(this.stateDict()).filter(([name]) => !name.startsWith('reader.')),
    );
    if (copy.reader !== null) {
      const from = reader ?? this.reader;
      if (from === null)
        throw new Error(
          'VqVae.withCodeSearch: the search has a reader; pass one (this tokenizer carries none)',
        );
      if (JSON.stringify(from.config) !== JSON.stringify(copy.reader.config))
        throw new Error(
          `VqVae.withCodeSearch: the reader's config ${JSON.stringify(from.config)} is not the search's ${JSON.stringify(copy.reader.config)}`,
        );
      for (const [name, t] of Object.entries(from.stateDict())) state[`reader.${name}`] = t;
    }
    copy.loadStateDict(state, 'withCodeSearch');
    copy.setRngState(this.getRngState());
    copy.training = this.training;
    return copy;
  }

  // ---- what the code search uses (SearchableTokenizer) ----

  get codesPerImage(): number {
    return CODES_PER_IMAGE;
  }

  get codebook(): Tensor {
    return this.quantizer.codebook;
  }

  encoderRows(images: Uint8Array, start: number, n: number): Tensor {
    return this.encodeRows(this.inputTensor(images, start, n));
  }

  decodeCodes(codes: Int32Array, rows: number): Tensor {
    const part = codes.subarray(0, rows * CODES_PER_IMAGE);
    return this.decodeRows(
      this.quantizer.lookup(F.tensor(part, [rows * CODES_PER_IMAGE], 'int32')),
      rows,
    );
  }

  lossWeights(images: Uint8Array, n: number): Float32Array {
    return foregroundWeights(images, n, this.config.foregroundWeight).weights;
  }

  /** Codes [count, 49] -> images [count, 28, 28, 3] (argmax levels, always 0..3), in batches. */
  decode(codes: Int32Array, count: number, batchSize = 256): Uint8Array {
    const k = this.config.codebookSize;
    if (!Number.isInteger(count) || count < 0 || codes.length < count * CODES_PER_IMAGE) {
      throw new Error(
        `VqVae.decode: need ${count} x ${CODES_PER_IMAGE} codes, got ${codes.length}`,
      );
    }
    for (let i = 0; i < count * CODES_PER_IMAGE; i++) {
      if (!(codes[i]! >= 0 && codes[i]! < k))
        throw new Error(
          `VqVae.decode: code ${codes[i]} at ${i} is out of range (accepted: 0..${k - 1})`,
        );
    }
    const images = new Uint8Array(count * IMAGE_VALUES);
    for (let start = 0; start < count; start += batchSize) {
      const n = Math.min(batchSize, count - start);
      const logits = tidy(() =>
        noGrad(() => this.decodeCodes(codes.subarray(start * CODES_PER_IMAGE), n).toFloat32Array()),
      ); // [n, 12, 28, 28]
      argmaxLevels(logits, n, images.subarray(start * IMAGE_VALUES, (start + n) * IMAGE_VALUES));
    }
    return images;
  }

  /** decode(encode(images)). */
  reconstruct(images: Uint8Array, count: number, batchSize = 256): Uint8Array {
    return this.decode(this.encode(images, count, batchSize), count, batchSize);
  }

  /** Parameters and the quantizer's buffers (`quantizer.*`). */
  override stateDict(): Record<string, { shape: number[]; data: Float32Array }> {
    const out = super.stateDict();
    for (const [name, value] of Object.entries(this.quantizer.buffers()))
      out[`quantizer.${name}`] = value;
    return out;
  }

  override loadStateDict(
    dict: Record<string, { shape: readonly number[]; data: Float32Array }>,
    source = 'state dict',
  ): void {
    const params: typeof dict = {};
    const buffers: typeof dict = {};
    const bufferNames = new Set(Object.keys(this.quantizer.buffers()));
    for (const [name, value] of Object.entries(dict)) {
      const short = name.startsWith('quantizer.') ? name.slice('quantizer.'.length) : '';
      if (bufferNames.has(short)) buffers[short] = value;
      else params[name] = value;
    }
    super.loadStateDict(params, source);
    this.quantizer.loadBuffers(buffers, source);
  }

  /** The restart Rng's state (for exact resume). */
  getRngState(): number[] {
    return this.quantizer.restartRng.getState();
  }

  setRngState(state: number[]): void {
    this.quantizer.restartRng.setState(state);
  }

  /** Frees the parameters and the codebook. */
  dispose(): void {
    this.zeroGrad();
    for (const p of this.parameters()) p.dispose();
    this.quantizer.dispose();
  }
}

/**
 * Per-value loss weights [count * 28*28*3] in the HWC order of `images`: `weight` for the values
 * of pixels whose colour differs from their image's most common colour (its background), 1 for
 * the rest; and their sum.
 */
export function foregroundWeights(
  images: Uint8Array,
  count: number,
  weight: number,
): { weights: Float32Array; total: number } {
  const weights = new Float32Array(count * IMAGE_VALUES);
  const histogram = new Int32Array(LEVELS ** IMAGE_CHANNELS);
  const colourAt = (i: number): number =>
    (images[i]! * LEVELS + images[i + 1]!) * LEVELS + images[i + 2]!;
  let total = 0;
  for (let b = 0; b < count; b++) {
    histogram.fill(0);
    const base = b * IMAGE_VALUES;
    for (let p = 0; p < PIXELS; p++) histogram[colourAt(base + p * IMAGE_CHANNELS)]!++;
    let background = 0;
    for (let c = 1; c < histogram.length; c++)
      if (histogram[c]! > histogram[background]!) background = c;
    for (let p = 0; p < PIXELS; p++) {
      const i = base + p * IMAGE_CHANNELS;
      const w = colourAt(i) === background ? 1 : weight;
      weights[i] = w;
      weights[i + 1] = w;
      weights[i + 2] = w;
      total += IMAGE_CHANNELS * w;
    }
  }
  return { weights, total };
}

/** Logits [n, 12, 28, 28] (channel = colour*4 + level) -> images [n, 28, 28, 3] of argmax levels. */
export function argmaxLevels(logits: Float32Array, n: number, out: Uint8Array): void {
  for (let b = 0; b < n; b++) {
    const base = b * LOGITS_PER_PIXEL * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      for (let c = 0; c < IMAGE_CHANNELS; c++) {
        let best = 0;
        let bestValue = logits[base + c * LEVELS * PIXELS + p]!;
        for (let l = 1; l < LEVELS; l++) {
          const v = logits[base + (c * LEVELS + l) * PIXELS + p]!;
          if (v > bestValue) {
            bestValue = v;
            best = l;
          }
        }
        out[(b * PIXELS + p) * IMAGE_CHANNELS + c] = best;
      }
    }
  }
}
