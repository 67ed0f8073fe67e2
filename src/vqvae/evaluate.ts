// Evaluating a tokenizer: how exactly a set of images comes back through its codes.
//
// Encodes and decodes a set and reports per-pixel exact accuracy (all 3 channels right),
// per-value accuracy, per-image accuracy, codebook usage and the perplexity of the set's codes.

import { IMAGE_VALUES } from '../data/coloured';
import { codeStatistics } from './codebook';
import { checkSet } from './levels';
import type { ImageSet } from './levels';
import { CODES_PER_IMAGE } from './model';
import type { VqVae } from './model';

export interface VqVaeEvaluation {
  /** Images evaluated. */
  count: number;
  /** Fraction of pixels whose 3 channels are all reconstructed exactly. */
  pixelAccuracy: number;
  /** Fraction of channel values reconstructed exactly. */
  valueAccuracy: number;
  /** Fraction of images reconstructed exactly. */
  imageAccuracy: number;
  /** Distinct codes used on the set. */
  usedCodes: number;
  codebookSize: number;
  /** Perplexity of the set's code histogram. */
  perplexity: number;
  /** The codes of the set [count, 49] (for caching the tokenised dataset). */
  codes: Int32Array;
}

/** Encodes and decodes a set (or its first `limit` images) and compares with the originals. */
export function evaluateVqVae(
  model: VqVae,
  set: ImageSet,
  opts: {
    batchSize?: number;
    limit?: number;
    /** The set's codes [count, 49] if already encoded by this model (e.g. a token cache). */
    codes?: Int32Array;
  } = {},
): VqVaeEvaluation {
  checkSet('evaluateVqVae', set);
  const count = Math.min(set.count, opts.limit ?? set.count);
  const batchSize = opts.batchSize ?? 256;
  if (opts.codes !== undefined && opts.codes.length !== count * CODES_PER_IMAGE)
    throw new Error(
      `evaluateVqVae: codes hold ${opts.codes.length} values, ${count} images need ${count * CODES_PER_IMAGE}`,
    );
  const codes = opts.codes ?? model.encode(set.images, count, batchSize);
  const decoded = model.decode(codes, count, batchSize);
  let pixelsRight = 0;
  let valuesRight = 0;
  let imagesRight = 0;
  const pixelsPerImage = IMAGE_VALUES / 3;
  for (let n = 0; n < count; n++) {
    let imageRight = true;
    for (let p = 0; p < pixelsPerImage; p++) {
      const i = (n * pixelsPerImage + p) * 3;
      const r = decoded[i] === set.images[i] ? 1 : 0;
      const g = decoded[i + 1] === set.images[i + 1] ? 1 : 0;
      const b = decoded[i + 2] === set.images[i + 2] ? 1 : 0;
      valuesRight += r + g + b;
      if (r + g + b === 3) pixelsRight++;
      else imageRight = false;
    }
    if (imageRight) imagesRight++;
  }
  const { usedCodes, perplexity } = codeStatistics(codes, model.config.codebookSize);
  return {
    count,
    pixelAccuracy: pixelsRight / (count * pixelsPerImage),
    valueAccuracy: valuesRight / (count * IMAGE_VALUES),
    imageAccuracy: imagesRight / count,
    usedCodes,
    codebookSize: model.config.codebookSize,
    perplexity,
    codes,
  };
}
