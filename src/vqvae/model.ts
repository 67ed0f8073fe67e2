// The image tokenizer: a VQ-VAE that maps a 28x28x3 coloured-MNIST image (levels 0..3) to a
// 7x7 grid of codebook indices (49 tokens, raster order) and back.
//
// Follows the VQ-VAE paper (van den Oord et al. 2017, "Neural Discrete Representation Learning"):
// the encoder output z is replaced by its nearest codebook vector, gradients pass straight
// through (z + sg(zq - z)), and the loss adds a commitment term beta * ||z - sg(zq)||^2. The
// codebook moves by exponential moving averages, not by the optimiser (codebook.ts).
// Notable choices:
// - Input: levels scaled to [-1, 1] (level * 2/3 - 1), one channel per colour. The levels are
//   ordered intensities, so a linear scale keeps their order, and 3 input channels make the first
//   convolution 4x cheaper than a 12-channel one-hot.
// - Output: 3 x 4 logits per pixel and a categorical cross-entropy over the 4 levels of each
//   channel (the data is exactly 4-level, so this is the likelihood of the data, and the decoded
//   image is the argmax level: always in 0..3, no clipping or rounding needed).
// - Loss weighting: the digit's pixels weigh `foregroundWeight` against 1 for the background
//   (config.ts says why; levels.ts computes the weights).
// - `stateDict()` / `loadStateDict()` cover the parameters and the codebook's buffers
//   (`quantizer.*`); a code search's reader, when the config has one, is part of the tokenizer
//   (`reader.*`) and never trained with it.
// The pieces: config.ts (fields, presets, validation), layers.ts (encoder, decoder),
// codebook.ts (the quantizer and its upkeep), levels.ts (level images, logits, loss weights),
// search.ts (decoder-aware encoding), train.ts (training), checkpoint.ts (files).

import type { Tensor } from '../engine/tensor';
import { noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { Module } from '../nn/module';
import { Rng } from '../nn/rng';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/images';
import type { VqVaeConfig } from './config';
import { validateVqVaeConfig } from './config';
import { VectorQuantizer, codeStatistics } from './codebook';
import { Decoder, Encoder } from './layers';
import { PIXELS, argmaxLevels, checkLevelImages, foregroundWeights } from './levels';
import type { CodeSearch, SearchableTokenizer } from './search';
import { AttributeClassifier } from './reader';
import { searchCodes } from './search';

// What this module exported before its pieces had files of their own.
export type { VqVaeConfig, VqVaePresetName } from './config';
export {
  VQVAE_DEFAULTS,
  VQVAE_LEGACY_FIELDS,
  VQVAE_PRESETS,
  validateVqVaeConfig,
  vqVaeConfig,
} from './config';
export type { CodeStatistics, QuantizerUpdate } from './codebook';
export { VectorQuantizer, codeStatistics } from './codebook';
export { Decoder, Encoder, GlobalContext, ResidualBlock } from './layers';
export { argmaxLevels, foregroundWeights } from './levels';

/** Side of the code grid: 28 / 4 (two stride-2 convolutions). */
export const CODE_GRID = IMAGE_SIZE / 4;
/** Codes per image: 7 x 7 = 49. */
export const CODES_PER_IMAGE = CODE_GRID * CODE_GRID;
/** Images per call of the code search in `encode` (see searchInChunks). */
const SEARCH_CHUNK = 32;

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
    checkLevelImages('VqVae.trainingLoss', images, count);
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
    checkLevelImages('VqVae.encode', images, count);
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
   * activations small, which made the search faster per image than whole batches of 256.
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
