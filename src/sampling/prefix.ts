// Span scores of many sequences that share prefixes, each shared prefix run once. The rerankers
// score tens of thousands of (caption, image) sequences per evaluation, and most of them differ
// from others only after a common start: the captions of one image in the image-first order
// share its 52-token prefix; in the caption-first order, the variants of one caption that the
// searches try share the words before the one they change, and the shifted views of one caption
// share the whole caption.
//
// How: the sequences are sorted, so those with a common prefix are neighbours; a prefix length P
// is chosen for the call, the one that costs the fewest token positions (each distinct P-token
// prefix once, plus every sequence's inputs after it, plus the copy of the prefix's cache rows);
// each distinct prefix of a batch runs once into a KV cache, and each sequence continues from a
// copy of its prefix's rows (`KVCache.gatherRows`). Identical sequences are scored once.
// Notable choices:
// - The same numbers as teacher forcing each whole sequence (tested): a position's keys, values
//   and outputs are the same products whether it runs in the prefix or in the continuation, and
//   each row's sums run in the same order. The prefix and the continuation are each at least
//   MIN_POSITIONS long, since products of fewer rows take the cpu backend's small-m kernel,
//   whose sums are grouped differently.
// - P = 0 is plain teacher forcing (`spanLogLikelihood`'s computation), chosen when no prefix is
//   shared enough to pay for the copies.

import { noGrad, tidy, type Tensor } from '../engine/tensor';
import * as F from '../engine/ops';
import { KVCache, type GPT } from '../gpt/model';

/** Positions [from, to) of a sequence whose tokens are scored (score.ts's Span). */
interface Span {
  from: number;
  to: number;
}

/** The fewest positions a prefix or a continuation runs (see the file header). */
const MIN_POSITIONS = 5;

/**
 * What continuing from a prefix costs one sequence beyond its own positions, in token positions
 * of model work: its copy of the prefix's cache rows, and the attention's copy of the filled
 * cache in every layer of the continuation (docs/performance.md: sharing 6 of 56 positions with
 * this overhead runs no faster than teacher forcing).
 */
const PREFIX_ROW_COST = 6;

/** -1, 0 or 1: the order of a and b on their first `length` tokens. */
function compareTokens(a: Int32Array, b: Int32Array, length: number): number {
  for (let t = 0; t < length; t++) if (a[t] !== b[t]) return a[t]! - b[t]!;
  return 0;
}

/** The number of leading tokens two sequences share, up to `length`. */
function commonPrefix(a: Int32Array, b: Int32Array, length: number): number {
  let t = 0;
  while (t < length && a[t] === b[t]) t++;
  return t;
}

/**
 * The prefix length of least cost for distinct sorted sequences whose neighbours share `lcp[i]`
 * tokens (lcp[0] = 0), `inputs` input positions each: 0 (no prefix) or MIN_POSITIONS ..
 * inputs - MIN_POSITIONS.
 */
function bestPrefixLength(lcp: Int32Array, inputs: number): number {
  const D = lcp.length;
  // distinctPrefixes(P) = #{i : lcp[i] < P}: count the lcps once, then accumulate.
  const atLength = new Int32Array(inputs + 1);
  for (let i = 0; i < D; i++) atLength[Math.min(lcp[i]!, inputs)]!++;
  let best = 0;
  let bestCost = D * inputs;
  let below = 0; // sequences whose lcp is < P
  for (let P = 1; P <= inputs - MIN_POSITIONS; P++) {
    below += atLength[P - 1]!;
    const cost = below * P + D * (inputs - P + PREFIX_ROW_COST);
    if (P >= MIN_POSITIONS && cost < bestCost) {
      bestCost = cost;
      best = P;
    }
  }
  return best;
}

/** Rows [B, length] of tokens [from, from + length) of each sequence. */
function stackTokens(rows: readonly Int32Array[], from: number, length: number): Tensor {
  const out = new Int32Array(rows.length * length); // [B, length]
  rows.forEach((r, b) => out.set(r.subarray(from, from + length), b * length));
  return F.tensor(out, [rows.length, length], 'int32');
}

/**
 * The span's per-token losses [B, S] of one batch of sequences: `prefixes` (U distinct, each the
 * first P tokens of its sequences; none when P = 0) run once, and row b continues from prefix
 * rowPrefix[b].
 */
function batchLosses(
  model: GPT,
  rows: readonly Int32Array[],
  prefixes: readonly Int32Array[],
  rowPrefix: Int32Array,
  P: number,
  span: Span,
): Float32Array {
  const { from, to } = span;
  const T = to - 1; // inputs 0 .. to-2 predict tokens 1 .. to-1
  const B = rows.length;
  const S = to - from;
  const targets = new Int32Array(B * S); // [B, S]: the tokens at positions from .. to-1
  rows.forEach((r, b) => targets.set(r.subarray(from, to), b * S));
  return noGrad(() =>
    tidy(() => {
      let hidden: Tensor; // [B, S, C]: the outputs at positions from-1 .. to-2
      if (P === 0) {
        const all = model.hidden(stackTokens(rows, 0, T)); // [B, T, C]
        hidden = from === 1 ? all : F.slice(all, 1, from - 1, T);
      } else {
        const U = prefixes.length;
        const prefixCache = new KVCache(model.config, U);
        const prefixHidden = model.hidden(stackTokens(prefixes, 0, P), prefixCache); // [U, P, C]
        const cache = prefixCache.gatherRows(rowPrefix);
        const rest = model.hidden(stackTokens(rows, P, T - P), cache); // [B, T-P, C]
        const parts: Tensor[] = [];
        if (from - 1 < P) {
          // The span starts inside the prefix: its outputs there, a copy per row.
          const n = P - (from - 1);
          const own = F.reshape(F.slice(prefixHidden, 1, from - 1, P), [U, -1]); // [U, n*C]
          const index = F.tensor(rowPrefix, [B], 'int32');
          parts.push(F.reshape(F.embedding(own, index), [B, n, -1])); // [B, n, C]
        }
        const skip = Math.max(0, from - 1 - P); // continuation outputs before the span
        parts.push(skip === 0 ? rest : F.slice(rest, 1, skip, T - P));
        hidden = parts.length === 1 ? parts[0]! : F.concat(parts, 1);
      }
      const logits = model.head(hidden); // [B, S, V]
      return F.crossEntropy(logits, F.tensor(targets, [B, S], 'int32'), 'none').toFloat32Array();
    }),
  );
}

/**
 * Checks the arguments of a span score (spanLogLikelihood and its shared-prefix form) on
 * sequences of L tokens, throwing what is wrong; returns L.
 */
export function checkSpanArguments(model: GPT, L: number, span: Span, batchSize: number): number {
  const { from, to } = span;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 1 && to > from && to <= L))
    throw new Error(`spanLogLikelihood: span [${from}, ${to}) must lie in [1, ${L}]`);
  if (to - 1 > model.config.blockSize)
    throw new Error(`spanLogLikelihood: ${to - 1} input tokens exceed the block size`);
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  return L;
}

/**
 * For each sequence (all of one length L >= to), the sum over t in [from, to) of
 * log p(sequence[t] | sequence[0..t)) under the model, in eval mode, shared prefixes run once
 * (see the file header). The same scores as `spanLogLikelihood`; `batchSize` sequences per batch.
 */
export function sharedPrefixSpanLogLikelihood(
  model: GPT,
  sequences: readonly Int32Array[],
  span: Span,
  batchSize = 64,
): Float64Array {
  const { from, to } = span;
  const out = new Float64Array(sequences.length);
  if (sequences.length === 0) return out;
  const L = checkSpanArguments(model, sequences[0]!.length, span, batchSize);
  sequences.forEach((s, i) => {
    if (s.length !== L)
      throw new Error(
        `spanLogLikelihood: sequence ${i} has ${s.length} tokens, sequence 0 has ${L}`,
      );
  });
  const T = to - 1;
  // Sorted on the tokens that matter (0 .. to-1); equal neighbours are one distinct sequence.
  const order = sequences.map((_, i) => i);
  order.sort((a, b) => compareTokens(sequences[a]!, sequences[b]!, to) || a - b);
  const distinct: number[] = []; // a representative of each distinct sequence, sorted
  const distinctOf = new Int32Array(sequences.length);
  const lcpList: number[] = [];
  order.forEach((i, k) => {
    const shared = k === 0 ? 0 : commonPrefix(sequences[order[k - 1]!]!, sequences[i]!, to);
    if (k === 0 || shared < to) {
      distinct.push(i);
      lcpList.push(Math.min(shared, T));
    }
    distinctOf[i] = distinct.length - 1;
  });
  const lcp = Int32Array.from(lcpList);
  const P = bestPrefixLength(lcp, T);
  const scores = new Float64Array(distinct.length);
  const S = to - from;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < distinct.length; start += batchSize) {
      const end = Math.min(start + batchSize, distinct.length);
      const rows = distinct.slice(start, end).map((i) => sequences[i]!);
      // The batch's distinct prefixes (neighbours in sorted order), and each row's one.
      const prefixes: Int32Array[] = [];
      const rowPrefix = new Int32Array(rows.length);
      if (P > 0)
        rows.forEach((r, b) => {
          if (b === 0 || lcp[start + b]! < P) prefixes.push(r);
          rowPrefix[b] = prefixes.length - 1;
        });
      const losses = batchLosses(model, rows, prefixes, rowPrefix, P, span);
      for (let b = 0; b < rows.length; b++) {
        let total = 0;
        for (let s = 0; s < S; s++) total -= losses[b * S + s]!;
        scores[start + b] = total;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  sequences.forEach((_, i) => (out[i] = scores[distinctOf[i]!]!));
  return out;
}
