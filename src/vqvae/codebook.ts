// The tokenizer's codebook: K vectors of dimension D, the nearest-code lookup, and their upkeep.
//
// Follows the VQ-VAE paper's appendix A.1 and sonnet's `VectorQuantizerEMA`: the codebook is not
// learned by the optimiser but moved by exponential moving averages of the cluster sizes and of
// the sums of the encoder outputs assigned to each code (Laplace-smoothed counts).
// Notable choices:
// - Dead-code restarts: a code unused for `deadCodeSteps` training steps is reset to a random
//   encoder output of the current batch, drawn with the model's seeded restart Rng (as in
//   Jukebox, Dhariwal et al. 2020) with probability proportional to its squared quantisation
//   error (k-means++'s D^2 sampling), so new codes land where the codebook serves the batch
//   worst. Restarting every code from the first batch (a data-dependent init) was tried and hurt:
//   it anchors the codebook to a random encoder's outputs; counters start at 0 instead, so the
//   first restarts come after `deadCodeSteps` steps of training.
// - The EMA statistics live on the host (Float32Array; K x D is small) and the codebook tensor
//   is rewritten in place after each update; the optimiser never sees the codebook.
//   `buffers()` / `loadBuffers()` carry the codebook and these statistics (the model's state
//   dict names them `quantizer.codebook`, `quantizer.cluster_size`, `quantizer.embed_sum`,
//   `quantizer.unused_steps`).

import type { Tensor } from '../engine/tensor';
import { keep, noGrad } from '../engine/tensor';
import * as F from '../engine/ops';
import { Module, randn } from '../nn/module';
import type { Rng } from '../nn/rng';
import type { VqVaeConfig } from './config';

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
