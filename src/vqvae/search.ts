// Decoder-aware encoding: the code search.
//
// A VQ-VAE encodes an image by replacing each encoder output with its nearest codebook vector.
// That is the code the decoder was trained on, but not always the code whose decoding is closest
// to the image: the nearest vector in the encoder's space and the best image in pixel space can
// differ, and where they do, a stroke comes out thinner or a loop closes, and the digit is read
// as another one. The search keeps the encoder's choice as its start and then asks the decoder:
// cell by cell in raster order, each of the cell's `candidates` nearest codes is put in its place,
// the whole image is decoded, and the code whose decoding has the lowest reconstruction loss is
// kept (the current code stays unless another one is strictly better). `sweeps` passes over the
// 49 cells. The loss is the tokenizer's own training term: the cross-entropy of the decoded
// levels against the image, pixels of the digit weighted by `foregroundWeight`. Nothing but the
// image is used, so the search is part of the encoder: a GPT trained on searched codes reads
// searched codes of its input images too (the tokenizer's config carries the setting, and its
// fingerprint names its tokens).
//
// This is analysis by synthesis: a greedy coordinate descent on the decoder's loss, started from
// the nearest codes, so the loss never ends above theirs. It costs up to 49 x (candidates - 1)
// decodes per image and sweep; `reach` skips the cells far from any wrongly decoded pixel (most
// of a digit image's background).
//
// A `reader` adds what the image shows to what the pixels say: an attribute classifier carried
// in the tokenizer reads the real image once, and each trial's decoded image is charged `weight`
// x the reader's cross-entropy against that reading (digit, foreground and background). A code
// that turns a 5 into a 6 costs little in pixels and much in this term. The reader's reading of
// the real image is the target, not the item's label: the search still uses nothing but the
// image.

import type { Tensor } from '../engine/tensor';
import { noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/images';
import { argmaxLevels } from './levels';
import type { Attributes } from '../data/coloured';
import type { ClassifierConfig, HeadLogits } from './reader';
import { imagesToInput, validateClassifierConfig } from './reader';

/**
 * What the search minimises for an image: 'likelihood', the tokenizer's training term (the
 * foreground-weighted cross-entropy of the decoded levels); 'pixels', the foreground-weighted
 * count of wrongly decoded values (what the decoded image shows), with the likelihood breaking
 * ties.
 */
export type SearchObjective = 'likelihood' | 'pixels';

/** The code search of `VqVaeConfig.codeSearch`. */
export interface CodeSearch {
  /** Codes tried at each cell: its `candidates` nearest codebook vectors (at least 2). */
  candidates: number;
  /** Passes over the 49 cells in raster order (at least 1). */
  sweeps: number;
  /**
   * Where to search (absent: every cell). A cell is tried only if the reconstruction at the
   * start of the sweep has a wrong pixel within `reach` cells of it (0: in its own 4 x 4 pixels).
   * Most cells of a digit image are background that the nearest code already draws exactly.
   */
  reach?: number;
  /** Absent: 'likelihood'. */
  objective?: SearchObjective;
  /** A reader term in the objective (absent: none; see the top of this file). */
  reader?: SearchReader;
}

/** The reader of `CodeSearch.reader`: its weights are the tokenizer's `reader.*` tensors. */
interface SearchReader {
  /** Weight of the reader's cross-entropy (summed over its three heads) in the objective. */
  weight: number;
  /** The reader's architecture (an attribute classifier's config). */
  classifier: ClassifierConfig;
}

/** What the search asks of a reader (AttributeClassifier implements it). */
interface ReaderModel {
  /** Head logits of classifier input [B, 13, 28, 28] (imagesToInput). */
  forward(x: Tensor): HeadLogits;
  /** The most likely digit and colours of images [count, 28, 28, 3]. */
  classify(images: Uint8Array, count: number): Attributes;
}

/** Throws naming the field unless `s` is a valid CodeSearch. */
export function validateCodeSearch(s: CodeSearch, codebookSize: number): void {
  if (typeof s !== 'object' || s === null)
    throw new Error(`VqVaeConfig.codeSearch must be { candidates, sweeps }, got ${String(s)}`);
  if (!Number.isInteger(s.candidates) || s.candidates < 2 || s.candidates > codebookSize)
    throw new Error(
      `VqVaeConfig.codeSearch.candidates must be an integer in 2..${codebookSize} (the codebook size), got ${s.candidates}`,
    );
  if (!Number.isInteger(s.sweeps) || s.sweeps < 1)
    throw new Error(`VqVaeConfig.codeSearch.sweeps must be a positive integer, got ${s.sweeps}`);
  if (s.objective !== undefined && s.objective !== 'likelihood' && s.objective !== 'pixels')
    throw new Error(
      `VqVaeConfig.codeSearch.objective must be 'likelihood', 'pixels' or absent, got ${String(s.objective)}`,
    );
  if (s.reach !== undefined && !(Number.isInteger(s.reach) && s.reach >= 0))
    throw new Error(
      `VqVaeConfig.codeSearch.reach must be a non-negative integer or absent, got ${s.reach}`,
    );
  if (s.reader !== undefined) {
    if (typeof s.reader !== 'object' || s.reader === null)
      throw new Error(
        `VqVaeConfig.codeSearch.reader must be { weight, classifier } or absent, got ${String(s.reader)}`,
      );
    if (!(
      typeof s.reader.weight === 'number' &&
      s.reader.weight > 0 &&
      Number.isFinite(s.reader.weight)
    ))
      throw new Error(
        `VqVaeConfig.codeSearch.reader.weight must be a positive number, got ${String(s.reader.weight)}`,
      );
    if (typeof s.reader.classifier !== 'object' || s.reader.classifier === null)
      throw new Error(
        `VqVaeConfig.codeSearch.reader.classifier must be a classifier config, got ${String(s.reader.classifier)}`,
      );
    validateClassifierConfig(s.reader.classifier);
  }
}

/**
 * Which cells to try [n, cells] (1: try): those with a wrongly decoded pixel (any channel's
 * level) within `reach` cells, from the decoding of `codes` [n, cells] against `images`.
 */
export function cellsNearErrors(
  model: SearchableTokenizer,
  codes: Int32Array,
  n: number,
  images: Uint8Array,
  reach: number,
  batchRows: number,
): Uint8Array {
  const cells = model.codesPerImage;
  const grid = Math.round(Math.sqrt(cells));
  const patch = IMAGE_SIZE / grid;
  const pixels = IMAGE_SIZE * IMAGE_SIZE;
  const wrong = new Uint8Array(n * cells);
  const levels = new Uint8Array(batchRows * IMAGE_VALUES);
  for (let b0 = 0; b0 < n; b0 += batchRows) {
    const rows = Math.min(batchRows, n - b0);
    const logits = tidy(() =>
      noGrad(() => model.decodeCodes(codes.subarray(b0 * cells), rows).toFloat32Array()),
    );
    argmaxLevels(logits, rows, levels);
    for (let r = 0; r < rows; r++) {
      const image = (b0 + r) * IMAGE_VALUES;
      for (let p = 0; p < pixels; p++) {
        const i = p * IMAGE_CHANNELS;
        let same = true;
        for (let c = 0; c < IMAGE_CHANNELS; c++)
          same &&= levels[r * IMAGE_VALUES + i + c] === images[image + i + c];
        if (!same) {
          const y = Math.floor(p / IMAGE_SIZE / patch);
          const x = Math.floor((p % IMAGE_SIZE) / patch);
          wrong[(b0 + r) * cells + y * grid + x] = 1;
        }
      }
    }
  }
  const near = new Uint8Array(n * cells);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < grid; y++)
      for (let x = 0; x < grid; x++) {
        let any = 0;
        for (let dy = -reach; dy <= reach && !any; dy++)
          for (let dx = -reach; dx <= reach && !any; dx++) {
            const yy = y + dy;
            const xx = x + dx;
            if (yy >= 0 && yy < grid && xx >= 0 && xx < grid)
              any = wrong[b * cells + yy * grid + xx]!;
          }
        near[b * cells + y * grid + x] = any;
      }
  return near;
}

/** What the search needs of a tokenizer (VqVae implements it). */
export interface SearchableTokenizer {
  readonly codesPerImage: number;
  readonly codebook: Tensor;
  /** Encoder outputs [n, codesPerImage, D] of images [start, start + n) as rows [n*cells, D]. */
  encoderRows(images: Uint8Array, start: number, n: number): Tensor;
  /** Decoder logits [rows, 12, 28, 28] of code rows [rows, codesPerImage]. */
  decodeCodes(codes: Int32Array, rows: number): Tensor;
  /** Per-value loss weights [n * 28*28*3] of images [n, 28, 28, 3] (foreground weighting). */
  lossWeights(images: Uint8Array, n: number): Float32Array;
  /** The reader of the config's `codeSearch.reader` (null: none). */
  readonly reader: ReaderModel | null;
}

/**
 * The reader term of codeLosses: `weight` x the reader's cross-entropy of each decoded image
 * against `labels`, the reader's reading of the real images (indexed as `images`).
 */
export interface ReaderTerm {
  reader: ReaderModel;
  labels: Attributes;
  weight: number;
}

/**
 * The `candidates` nearest codes of each row of z [rows, D] (host, nearest first), from the
 * squared distances ||c||^2 - 2 z.c (the ||z||^2 term is the same for every code of a row).
 */
export function nearestCandidates(z: Tensor, codebook: Tensor, candidates: number): Int32Array {
  const rows = z.shape[0]!;
  const k = codebook.shape[0]!;
  const dots = tidy(() => noGrad(() => F.matmul(z, F.transpose(codebook, 0, 1)).toFloat32Array())); // [rows, K]
  const book = codebook.toFloat32Array();
  const d = codebook.shape[1]!;
  const norms = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += book[c * d + j]! * book[c * d + j]!;
    norms[c] = s;
  }
  const out = new Int32Array(rows * candidates);
  const best = new Int32Array(candidates);
  const bestDistance = new Float64Array(candidates);
  for (let r = 0; r < rows; r++) {
    let filled = 0;
    for (let c = 0; c < k; c++) {
      const distance = norms[c]! - 2 * dots[r * k + c]!;
      if (filled === candidates && distance >= bestDistance[candidates - 1]!) continue;
      // Insert in order (ties keep the lower index first, as the nearest-code kernel does).
      let i = filled < candidates ? filled++ : candidates - 1;
      while (i > 0 && bestDistance[i - 1]! > distance) {
        best[i] = best[i - 1]!;
        bestDistance[i] = bestDistance[i - 1]!;
        i--;
      }
      best[i] = c;
      bestDistance[i] = distance;
    }
    out.set(best, r * candidates);
  }
  return out;
}

/**
 * The loss of each row of codes [rows, cells] against its image: the sum over the image's values
 * of weight x cross-entropy of the decoded level ('pixels': see SearchObjective), plus the
 * reader term where one is given. `imageOf[row]` names the row's image among `images` (and
 * `weights`, the per-value weights of those images, and the reader's labels).
 */
export function codeLosses(
  model: SearchableTokenizer,
  codes: Int32Array,
  rows: number,
  images: Uint8Array,
  weights: Float32Array,
  imageOf: Int32Array,
  objective: SearchObjective = 'likelihood',
  readerTerm?: ReaderTerm,
): Float32Array {
  return tidy(() =>
    noGrad(() => {
      const logits = model.decodeCodes(codes, rows); // [rows, 12, 28, 28]
      const perValue = F.reshape(F.permute(logits, [0, 2, 3, 1]), [rows * IMAGE_VALUES, LEVELS]);
      const targets = new Int32Array(rows * IMAGE_VALUES);
      const w = new Float32Array(rows * IMAGE_VALUES);
      for (let r = 0; r < rows; r++) {
        const from = imageOf[r]! * IMAGE_VALUES;
        const image = images.subarray(from, from + IMAGE_VALUES);
        for (let i = 0; i < IMAGE_VALUES; i++) targets[r * IMAGE_VALUES + i] = image[i]!;
        w.set(weights.subarray(from, from + IMAGE_VALUES), r * IMAGE_VALUES);
      }
      const ce = F.crossEntropy(
        perValue,
        F.tensor(targets, [rows * IMAGE_VALUES], 'int32'),
        'none',
      );
      const weighted = F.mul(ce, F.tensor(w, [rows * IMAGE_VALUES]));
      const likelihood = F.sum(F.reshape(weighted, [rows, IMAGE_VALUES]), 1).toFloat32Array(); // [rows]
      if (objective === 'likelihood' && readerTerm === undefined) return likelihood;
      const levels = new Uint8Array(rows * IMAGE_VALUES); // [rows, 28, 28, 3], as the targets
      argmaxLevels(logits.toFloat32Array(), rows, levels);
      const out = likelihood;
      if (objective === 'pixels') {
        // The weighted count of wrongly decoded values, the likelihood breaking ties.
        for (let r = 0; r < rows; r++) {
          let wrong = 0;
          for (let v = r * IMAGE_VALUES; v < (r + 1) * IMAGE_VALUES; v++)
            if (levels[v] !== targets[v]) wrong += w[v]!;
          out[r] = wrong + TIE_BREAK * likelihood[r]!;
        }
      }
      if (readerTerm !== undefined) {
        const read = readerCrossEntropy(readerTerm, levels, rows, imageOf);
        for (let r = 0; r < rows; r++) out[r] += readerTerm.weight * read[r]!;
      }
      return out;
    }),
  );
}

/**
 * The reader's cross-entropy of each decoded image (levels [rows, 28, 28, 3]) against the
 * labels of its image `imageOf[row]`, summed over the three heads -> [rows].
 */
export function readerCrossEntropy(
  term: ReaderTerm,
  levels: Uint8Array,
  rows: number,
  imageOf: Int32Array,
): Float32Array {
  return tidy(() =>
    noGrad(() => {
      const heads = term.reader.forward(imagesToInput(levels, 0, rows));
      const out = new Float32Array(rows);
      for (const name of ['digit', 'fg', 'bg'] as const) {
        const labels = Int32Array.from({ length: rows }, (_, r) => term.labels[name][imageOf[r]!]!);
        const ce = F.crossEntropy(heads[name], F.tensor(labels, [rows], 'int32'), 'none');
        const values = ce.toFloat32Array();
        for (let r = 0; r < rows; r++) out[r] += values[r]!;
      }
      return out;
    }),
  );
}

/** The likelihood's share of the 'pixels' objective: below one wrong value for any image. */
const TIE_BREAK = 1e-4;

/**
 * Searched codes [n, cells] of images [start, start + n) (see the top of this file). Decodes at
 * most `batchRows` candidate images at a time.
 */
export function searchCodes(
  model: SearchableTokenizer,
  images: Uint8Array,
  start: number,
  n: number,
  search: CodeSearch,
  batchRows = 256,
): Int32Array {
  const state = searchStart(model, images, start, n, search, batchRows);
  const trials: CellTrials = {
    image: new Int32Array(n * search.candidates),
    code: new Int32Array(n * search.candidates),
    codes: new Int32Array(batchRows * model.codesPerImage),
    of: new Int32Array(batchRows),
    pending: new Int32Array(n).fill(-1),
  };
  for (let sweep = 0; sweep < search.sweeps; sweep++) {
    const tryCell =
      search.reach === undefined
        ? undefined
        : cellsNearErrors(model, state.codes, n, state.own, search.reach, batchRows);
    for (let cell = 0; cell < model.codesPerImage; cell++)
      searchCell(model, state, search, cell, tryCell, trials, batchRows);
  }
  return state.codes;
}

/** Where the search of n images stands: their codes and what scoring a trial needs. */
interface SearchState {
  n: number;
  /** The current codes [n, cells], improved in place. */
  codes: Int32Array;
  /** Each cell's nearest codes [n*cells, candidates], nearest first. */
  candidates: Int32Array;
  /** The n images [n, 28, 28, 3] and their per-value loss weights. */
  own: Uint8Array;
  weights: Float32Array;
  readerTerm: ReaderTerm | undefined;
  /** The loss of each image's current codes [n]. */
  current: Float32Array;
}

/** The start: each cell's nearest code (the encoder's own choice), its candidates, its loss. */
function searchStart(
  model: SearchableTokenizer,
  images: Uint8Array,
  start: number,
  n: number,
  search: CodeSearch,
  batchRows: number,
): SearchState {
  const cells = model.codesPerImage;
  const { codes, candidates } = tidy(() =>
    noGrad(() => {
      const z = model.encoderRows(images, start, n); // [n*cells, D]
      return {
        codes: F.nearestCode(z, model.codebook).indices.toArray() as Int32Array, // [n*cells]
        candidates: nearestCandidates(z, model.codebook, search.candidates), // [n*cells, m]
      };
    }),
  );
  const own = images.subarray(start * IMAGE_VALUES, (start + n) * IMAGE_VALUES);
  const weights = model.lossWeights(own, n);
  let readerTerm: ReaderTerm | undefined;
  if (search.reader !== undefined) {
    if (model.reader === null)
      throw new Error('searchCodes: the code search has a reader, and the tokenizer carries none');
    // The reader's reading of the real images: what each decoding should still show.
    readerTerm = {
      reader: model.reader,
      labels: model.reader.classify(own, n),
      weight: search.reader.weight,
    };
  }
  const everyImage = Int32Array.from({ length: n }, (_, b) => b);
  const current = new Float32Array(n);
  for (let b = 0; b < n; b += batchRows) {
    const rows = Math.min(batchRows, n - b);
    const part = codeLosses(
      model,
      codes.subarray(b * cells, (b + rows) * cells),
      rows,
      own,
      weights,
      everyImage.subarray(b, b + rows),
      search.objective,
      readerTerm,
    );
    current.set(part, b);
  }
  return { n, codes, candidates, own, weights, readerTerm, current };
}

/** Buffers of one cell's trials: the (image, code) list, decoded in slices of batchRows. */
interface CellTrials {
  image: Int32Array;
  code: Int32Array;
  /** One slice's code rows [batchRows, cells] and the image of each row. */
  codes: Int32Array;
  of: Int32Array;
  /** A cell's best new code per image (-1: none). */
  pending: Int32Array;
}

/** Tries every candidate at `cell` of each image (where tryCell allows) and keeps the best. */
function searchCell(
  model: SearchableTokenizer,
  state: SearchState,
  search: CodeSearch,
  cell: number,
  tryCell: Uint8Array | undefined,
  t: CellTrials,
  batchRows: number,
): void {
  const { n, codes, candidates, current } = state;
  const cells = model.codesPerImage;
  const m = search.candidates;
  let trials = 0;
  for (let b = 0; b < n; b++) {
    if (tryCell !== undefined && tryCell[b * cells + cell] === 0) continue;
    const now = codes[b * cells + cell]!;
    for (let j = 0; j < m; j++) {
      const code = candidates[(b * cells + cell) * m + j]!;
      if (code === now) continue;
      t.image[trials] = b;
      t.code[trials++] = code;
    }
  }
  for (let t0 = 0; t0 < trials; t0 += batchRows) {
    const rows = Math.min(batchRows, trials - t0);
    for (let r = 0; r < rows; r++) {
      const b = t.image[t0 + r]!;
      t.codes.set(codes.subarray(b * cells, (b + 1) * cells), r * cells);
      t.codes[r * cells + cell] = t.code[t0 + r]!;
      t.of[r] = b;
    }
    const losses = codeLosses(
      model,
      t.codes,
      rows,
      state.own,
      state.weights,
      t.of,
      search.objective,
      state.readerTerm,
    );
    // An image's trials differ from its current codes in this cell only: the best one that
    // beats the current loss is applied once all are scored (they may span two slices).
    for (let r = 0; r < rows; r++) {
      const b = t.image[t0 + r]!;
      if (losses[r]! < current[b]!) {
        current[b] = losses[r]!;
        t.pending[b] = t.code[t0 + r]!;
      }
    }
  }
  for (let b = 0; b < n; b++) {
    if (t.pending[b]! >= 0) codes[b * cells + cell] = t.pending[b]!;
    t.pending[b] = -1;
  }
}
