// Scoring sequences under the model: the log-likelihood of a span of tokens given everything
// before it, for whole batches of candidates at once. This is what self-reranking runs on: one
// model holds both orders, so p(caption | image) is the order-2 sequence's caption span and
// p(image | caption) the order-1 sequence's image span.
//
// Notable choices:
// - Teacher forcing: every token of a candidate is known, so one forward over [B, T] gives the
//   next-token distribution at every position. Candidates are scored in batches of `batchSize`
//   rows.
// - Shared prefixes run once (prefix.ts): the rerankers score many sequences that differ only
//   after a common start (the captions of one image in the image-first order share its 52-token
//   prefix; the searches' variants of one caption share the words before the changed one; the
//   shifted views of one caption share the caption). Each distinct prefix runs into a KV cache
//   and each sequence continues from a copy of it: the same scores as teacher forcing each whole
//   sequence (tested), in a fraction of the time (docs/performance.md).
// - The likelihood is the model's own: log-softmax over the whole vocabulary at temperature 1,
//   with no sampling mask, guidance or top-k; so it equals the per-token NLL that training and
//   `evaluateNll` measure (tested against a direct computation).
// - The head (final layer norm and lm_head) runs only at the positions that predict the span, and
//   the per-token losses come from the backend's cross-entropy kernel (float32 each); they are
//   summed in float64 on the host, rather than the whole [B, T, vocab] logits copied to the host
//   and log-softmaxed there.

import { noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import type { GPT } from '../gpt/model';
import { checkSpanArguments, sharedPrefixSpanLogLikelihood } from './prefix';
import type { Vocab } from '../data/vocab';
import { CAPTION_LENGTH } from '../data/vocab';
import {
  IMAGE_TOKENS,
  SEQUENCE_LAYOUT,
  SEQUENCE_LENGTH,
  TEXT_TO_IMAGE,
  IMAGE_TO_TEXT,
  type SequenceOrder,
} from '../data/sequences';

/** Positions [from, to) of a sequence whose tokens are scored (from >= 1). */
export interface Span {
  from: number;
  to: number;
}

/**
 * For each sequence (all of one length L >= to), the sum over t in [from, to) of
 * log p(sequence[t] | sequence[0..t)) under the model, in eval mode.
 */
export function spanLogLikelihood(
  model: GPT,
  sequences: readonly Int32Array[],
  span: Span,
  batchSize = 64,
): Float64Array {
  const { from, to } = span;
  const out = new Float64Array(sequences.length);
  if (sequences.length === 0) return out;
  const L = checkSpanArguments(model, sequences[0]!.length, span, batchSize);
  const T = to - 1; // input tokens 0 .. to-2 predict tokens 1 .. to-1
  const S = to - from; // scored tokens per sequence
  const wasTraining = model.training;
  model.eval();
  try {
    for (let start = 0; start < sequences.length; start += batchSize) {
      const end = Math.min(start + batchSize, sequences.length);
      const B = end - start;
      const input = new Int32Array(B * T); // [B, T]
      for (let b = 0; b < B; b++) {
        const seq = sequences[start + b]!;
        if (seq.length !== L)
          throw new Error(
            `spanLogLikelihood: sequence ${start + b} has ${seq.length} tokens, sequence 0 has ${L}`,
          );
        input.set(seq.subarray(0, T), b * T);
      }
      const targets = new Int32Array(B * S); // [B, S]: the tokens at positions from .. to-1
      for (let b = 0; b < B; b++) targets.set(sequences[start + b]!.subarray(from, to), b * S);
      const losses = noGrad(() =>
        tidy(() => {
          const hidden = model.hidden(F.tensor(input, [B, T], 'int32')); // [B, T, C]
          // The outputs at positions from-1 .. to-2 predict the span's tokens.
          const span = from === 1 ? hidden : F.slice(hidden, 1, from - 1, T); // [B, S, C]
          const logits = model.head(span); // [B, S, V]
          return F.crossEntropy(logits, F.tensor(targets, [B, S], 'int32'), 'none') // [B, S]
            .toFloat32Array();
        }),
      );
      for (let b = 0; b < B; b++) {
        let total = 0;
        for (let s = 0; s < S; s++) total -= losses[b * S + s]!;
        out[start + b] = total;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** The 58-token sequence of (caption, image) in `order`. */
export function pairSequence(
  vocab: Vocab,
  order: SequenceOrder,
  captionTokens: ArrayLike<number>,
  imageCodes: ArrayLike<number>,
): Int32Array {
  if (captionTokens.length !== CAPTION_LENGTH || imageCodes.length !== IMAGE_TOKENS)
    throw new Error(
      `pairSequence: need ${CAPTION_LENGTH} caption tokens and ${IMAGE_TOKENS} image codes, got ` +
        `${captionTokens.length} and ${imageCodes.length}`,
    );
  const layout = SEQUENCE_LAYOUT[order];
  const seq = new Int32Array(SEQUENCE_LENGTH);
  seq[0] = vocab.bos;
  seq[layout.marker] = order === TEXT_TO_IMAGE ? vocab.endOfImage : vocab.endOfText;
  seq[layout.separator] = order === TEXT_TO_IMAGE ? vocab.endOfText : vocab.endOfImage;
  seq.set(Array.from(captionTokens), layout.textStart);
  seq.set(Array.from(imageCodes), layout.imageStart);
  return seq;
}

/** Span of the caption in an order-2 sequence: log p(caption | image). */
export const CAPTION_GIVEN_IMAGE: Span = {
  from: SEQUENCE_LAYOUT[IMAGE_TO_TEXT].textStart,
  to: SEQUENCE_LAYOUT[IMAGE_TO_TEXT].textStart + CAPTION_LENGTH,
};
/** Span of the image in an order-1 sequence: log p(image | caption). */
export const IMAGE_GIVEN_CAPTION: Span = {
  from: SEQUENCE_LAYOUT[TEXT_TO_IMAGE].imageStart,
  to: SEQUENCE_LAYOUT[TEXT_TO_IMAGE].imageStart + IMAGE_TOKENS,
};

/**
 * log p(caption | image) of each (caption tokens, image codes) pair; -Infinity if incomplete.
 * Pairs with the same image share its prefix `<bos> <end of text> image <end of image>`, which
 * runs once (`sharedPrefixSpanLogLikelihood`): the rerankers score many captions per image.
 */
export function captionGivenImage(
  model: GPT,
  vocab: Vocab,
  pairs: readonly { captionTokens: ArrayLike<number>; imageCodes: ArrayLike<number> }[],
  batchSize = 64,
): Float64Array {
  return scorePairs(model, vocab, pairs, IMAGE_TO_TEXT, CAPTION_GIVEN_IMAGE, batchSize);
}

/** log p(image | caption) of each pair; -Infinity if incomplete. */
export function imageGivenCaption(
  model: GPT,
  vocab: Vocab,
  pairs: readonly { captionTokens: ArrayLike<number>; imageCodes: ArrayLike<number> }[],
  batchSize = 64,
): Float64Array {
  return scorePairs(model, vocab, pairs, TEXT_TO_IMAGE, IMAGE_GIVEN_CAPTION, batchSize);
}

/** A pair's 6 word tokens and 49 image codes as arrays, or null if it is not complete. */
function completePair(
  vocab: Vocab,
  p: { captionTokens: ArrayLike<number>; imageCodes: ArrayLike<number> },
): { words: number[]; codes: number[] } | null {
  const words = Array.from(p.captionTokens);
  const codes = Array.from(p.imageCodes);
  const complete =
    words.length === CAPTION_LENGTH &&
    words.every((t) => vocab.isWordToken(t)) &&
    codes.length === IMAGE_TOKENS &&
    codes.every((t) => vocab.isImageToken(t));
  return complete ? { words, codes } : null;
}

/** The span scores of each complete pair's sequence in `order`; -Infinity if incomplete. */
function scorePairs(
  model: GPT,
  vocab: Vocab,
  pairs: readonly { captionTokens: ArrayLike<number>; imageCodes: ArrayLike<number> }[],
  order: SequenceOrder,
  span: Span,
  batchSize: number,
): Float64Array {
  const out = new Float64Array(pairs.length).fill(-Infinity);
  const complete: number[] = [];
  const sequences: Int32Array[] = [];
  pairs.forEach((p, i) => {
    const tokens = completePair(vocab, p);
    if (tokens === null) return;
    complete.push(i);
    sequences.push(pairSequence(vocab, order, tokens.words, tokens.codes));
  });
  const scores = sharedPrefixSpanLogLikelihood(model, sequences, span, batchSize);
  complete.forEach((i, k) => (out[i] = scores[k]!));
  return out;
}
