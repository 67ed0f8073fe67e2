// Self-reranking: one model holds both orders, p(image | caption) and p(caption | image), so it can
// judge its own samples through the order it did not sample in, with no external CLIP (Chameleon,
// LlamaGen, minDALL-E and DALLE-pytorch rerank with one). For each prompt the sampler draws K
// candidates (candidate 0 with the caller's seed, so K = 1 is exactly the unreranked sample) and
// keeps the best:
// - text -> image: the image whose prompt caption is most likely read back off it,
//   log p(caption | image) (order 2, the 6 caption tokens);
// - image -> text: by default log p(image | caption) + log p(caption | image), the caption that
//   best explains the image and is best read off it ('both'); 'caption' and 'image' keep one term
//   (compared on the validation split in the README);
// - unconditional: the (image, caption) pair whose caption is most likely read back off its own
//   image, log p(caption | image): the two orders agree on it, whichever order drew the sample.
// - image -> text with `digitSearch`: the best candidate's caption is also scored with each of the
//   other nine digit words (the colours as sampled), and the best of all is kept. The digit is
//   where image -> text errs most, and p(image | caption) over all ten digits is a generative
//   classifier of the image's digit that sampling alone may never propose.
// - image -> text with `colourSearch`: then, the same way, the caption's foreground colour is
//   replaced by each of the other palette colours, and then its background colour: a model
//   trained mostly in the caption-first order reads colours better through p(image | caption)
//   than it writes them through p(caption | image) (the README's sweep on the validation split).
// - image -> text with `imageViews` (the `shiftViews` setting; views.ts): last, the caption's
//   digit is chosen once more, each of the ten digits scored against the image and its one-pixel
//   shifts and the scores summed over these views (`viewDigitVote`).
// - text -> image and unconditional with `digitSearch`: that generative classifier judges each
//   candidate too. Its score gains the log posterior of its caption's digit,
//   log p(image | caption) - log sum over the ten digits d of p(image | caption with d), the
//   colours as in the caption: how surely the caption-first order reads the digit that was asked
//   for (or, unconditionally, that was written) off the image. The caption term alone comes from
//   the image-first order, which an undertrained model reads digits with far less well (the
//   README's sweep on the validation split).
// A candidate without 6 words and 49 codes scores -Infinity; ties keep the earliest candidate.
// Scores are the model's own likelihoods (score.ts): temperature 1, no masks or guidance.

import { deriveSeed } from '../nn/rng';
import type { GPT } from '../gpt/model';
import type { Vocab } from '../data/vocab';
import { toSample, type Sample } from './sampler';
import { DIGIT_WORDS } from '../data/vocab';
import { PALETTE } from '../data/palette';
import { captionGivenImage, imageGivenCaption } from './score';

export type ImageToTextScore = 'both' | 'caption' | 'image';
export const IMAGE_TO_TEXT_SCORES: readonly ImageToTextScore[] = ['both', 'caption', 'image'];

/** Candidates per prompt must be a positive integer (1 = no reranking). */
export function checkRerank(k: number): number {
  if (!(Number.isInteger(k) && k >= 1 && k <= 1024))
    throw new Error(`rerank must be an integer in 1..1024 (1 = off), got ${k}`);
  return k;
}

/** Seed of candidate c: the caller's seed for c = 0, a derived stream for the others. */
export function candidateSeed(seed: number, c: number): number {
  return c === 0 ? seed : deriveSeed(seed, `mmgpt-rerank/${c}`);
}

function pairOf(vocab: Vocab, s: Sample): { captionTokens: number[]; imageCodes: Int32Array } {
  return { captionTokens: s.words.map((w) => vocab.wordToken(w)), imageCodes: s.imageCodes };
}

/** Each candidate's score, [K][N], for `mode` (see the file header). */
export function rerankScores(
  model: GPT,
  vocab: Vocab,
  mode: 'textToImage' | 'imageToText' | 'unconditional',
  candidates: readonly (readonly Sample[])[],
  opts: { imageToTextScore?: ImageToTextScore; batchSize?: number } = {},
): Float64Array[] {
  const rule = opts.imageToTextScore ?? 'both';
  if (!IMAGE_TO_TEXT_SCORES.includes(rule))
    throw new Error(
      `imageToTextScore must be one of ${IMAGE_TO_TEXT_SCORES.join(', ')}, got '${rule}'`,
    );
  const batchSize = opts.batchSize ?? 64;
  return candidates.map((samples) => {
    const pairs = samples.map((s) => pairOf(vocab, s));
    if (mode !== 'imageToText') return captionGivenImage(model, vocab, pairs, batchSize);
    return imageToTextPairScores(model, vocab, pairs, rule, batchSize);
  });
}

/** Each (caption, image) pair's image -> text score under `rule` (see the file header). */
function imageToTextPairScores(
  model: GPT,
  vocab: Vocab,
  pairs: readonly { captionTokens: number[]; imageCodes: ArrayLike<number> }[],
  rule: ImageToTextScore,
  batchSize: number,
): Float64Array {
  if (rule === 'caption') return captionGivenImage(model, vocab, pairs, batchSize);
  const image = imageGivenCaption(model, vocab, pairs, batchSize);
  if (rule === 'image') return image;
  const caption = captionGivenImage(model, vocab, pairs, batchSize);
  return image.map((x, i) => x + caption[i]!);
}

/** The best of K candidates per prompt (candidates[c][i]: candidate c of prompt i). */
export function rerankChoose(
  model: GPT,
  vocab: Vocab,
  mode: 'textToImage' | 'imageToText' | 'unconditional',
  candidates: readonly (readonly Sample[])[],
  opts: {
    imageToTextScore?: ImageToTextScore;
    batchSize?: number;
    digitSearch?: boolean;
    colourSearch?: boolean;
    imageViews?: readonly (readonly ArrayLike<number>[])[];
  } = {},
): Sample[] {
  const K = candidates.length;
  if (K === 0) throw new Error('rerank: no candidates');
  const n = candidates[0]!.length;
  if (candidates.some((c) => c.length !== n))
    throw new Error('rerank: every candidate set must have one sample per prompt');
  const scores = rerankScores(model, vocab, mode, candidates, opts);
  if (mode !== 'imageToText' && opts.digitSearch === true)
    candidates.forEach((samples, c) => {
      const posterior = digitPosterior(model, vocab, samples, opts.batchSize ?? 64);
      scores[c] = scores[c]!.map((x, i) => x + posterior[i]!);
    });
  const chosen: Sample[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
    chosen.push({ ...candidates[best]![i]!, rerank: { score: scores[best]![i]!, candidates: K } });
  }
  if (mode !== 'imageToText') return chosen;
  let result = chosen;
  if (opts.digitSearch === true) result = searchSlot(model, vocab, result, DIGIT_SLOT, opts);
  if (opts.colourSearch === true)
    for (const slot of COLOUR_SLOTS) result = searchSlot(model, vocab, result, slot, opts);
  if (opts.imageViews !== undefined)
    result = viewDigitVote(model, vocab, result, opts.imageViews, {
      ...opts,
      triedDigits: opts.digitSearch === true,
    });
  return result;
}

/** The digit word's position in a caption ("<shade> <colour> <digit> on <shade> <colour>"). */
const DIGIT_POSITION = 2;

/** The index in DIGIT_WORDS of a sample's caption digit; -1 without 6 words and a digit word. */
function captionDigit(s: Sample): number {
  if (s.words.length !== 6) return -1;
  return (DIGIT_WORDS as readonly string[]).indexOf(s.words[DIGIT_POSITION]!);
}

/** Sample `s` with its 6 caption words (the last 6 tokens) replaced by `words`. */
function withWords(vocab: Vocab, s: Sample, words: readonly string[]): Sample {
  const prompt = s.tokens.subarray(0, s.tokens.length - 6);
  return toSample(Int32Array.from([...prompt, ...words.map((w) => vocab.wordToken(w))]), vocab);
}

/** Caption words with the digit replaced by `digit`. */
function withDigit(words: readonly string[], digit: string): string[] {
  const out = words.slice();
  out[DIGIT_POSITION] = digit;
  return out;
}

/** Word positions of a caption that one search varies, and the words each alternative puts there. */
interface CaptionSlot {
  positions: readonly number[];
  alternatives: readonly (readonly string[])[];
  /** Search only captions whose slot already holds an alternative (else: every caption). */
  onlyIfValid: boolean;
}

const DIGIT_SLOT: CaptionSlot = {
  positions: [DIGIT_POSITION],
  alternatives: DIGIT_WORDS.map((w) => [w]),
  onlyIfValid: true,
};

/**
 * The foreground (words 0-1) and the background (words 4-5): every palette colour, also in place
 * of a shade and colour that name none (sampling without the palette grammar can write one).
 */
const COLOUR_SLOTS: readonly CaptionSlot[] = [
  [0, 1],
  [4, 5],
].map((positions) => ({
  positions,
  alternatives: PALETTE.map((c) => [c.shade, c.colour]),
  onlyIfValid: false,
}));

/**
 * Each chosen caption with the words of `slot` replaced by each other alternative, all scored in
 * one batched call; the best-scoring caption is kept (the chosen one keeps the score it won with).
 */
function searchSlot(
  model: GPT,
  vocab: Vocab,
  chosen: Sample[],
  slot: CaptionSlot,
  opts: { imageToTextScore?: ImageToTextScore; batchSize?: number },
): Sample[] {
  const variants: { item: number; sample: Sample }[] = [];
  chosen.forEach((s, item) => {
    if (s.words.length !== 6) return;
    const own = slot.positions.map((p) => s.words[p]);
    if (slot.onlyIfValid && !slot.alternatives.some((a) => a.every((w, j) => w === own[j]))) return;
    for (const alternative of slot.alternatives) {
      const words = s.words.slice();
      slot.positions.forEach((p, j) => (words[p] = alternative[j]!));
      if (words.every((w, j) => w === s.words[j])) continue;
      variants.push({ item, sample: withWords(vocab, s, words) });
    }
  });
  if (variants.length === 0) return chosen;
  const [scores] = rerankScores(model, vocab, 'imageToText', [variants.map((v) => v.sample)], opts);
  // Every caption counts the candidates it was chosen among: its own and the variants tried.
  const candidates = chosen.map((s) => s.rerank!.candidates);
  variants.forEach((v) => candidates[v.item]++);
  const result = chosen.map((s, i) => ({
    ...s,
    rerank: { score: s.rerank!.score, candidates: candidates[i]! },
  }));
  variants.forEach((v, k) => {
    if (scores![k]! > result[v.item]!.rerank.score)
      result[v.item] = {
        ...v.sample,
        rerank: { score: scores![k]!, candidates: candidates[v.item]! },
      };
  });
  return result;
}

/**
 * For each sample, log p(image | caption) - log sum_d p(image | caption with digit d): the log
 * posterior of its caption's digit under the caption-first order, the ten digit captions equally
 * likely a priori (-Infinity without 6 words, a digit word and 49 codes). One batched call.
 */
export function digitPosterior(
  model: GPT,
  vocab: Vocab,
  samples: readonly Sample[],
  batchSize = 64,
): Float64Array {
  const out = new Float64Array(samples.length).fill(-Infinity);
  const items: number[] = [];
  const pairs: { captionTokens: number[]; imageCodes: Int32Array }[] = [];
  samples.forEach((s, i) => {
    if (captionDigit(s) < 0) return;
    items.push(i);
    for (const digit of DIGIT_WORDS)
      pairs.push({
        captionTokens: withDigit(s.words, digit).map((w) => vocab.wordToken(w)),
        imageCodes: s.imageCodes,
      });
  });
  const scores = imageGivenCaption(model, vocab, pairs, batchSize); // [items x 10]
  const D = DIGIT_WORDS.length;
  items.forEach((i, k) => {
    const own = scores[k * D + captionDigit(samples[i]!)]!;
    if (own === -Infinity) return;
    let max = -Infinity;
    for (let d = 0; d < D; d++) max = Math.max(max, scores[k * D + d]!);
    let sum = 0;
    for (let d = 0; d < D; d++) sum += Math.exp(scores[k * D + d]! - max);
    out[i] = own - max - Math.log(sum);
  });
  return out;
}

/**
 * The last image -> text step with the prompt images' other views (views.ts): each chosen caption
 * with a digit word is scored with each of the ten digits against the image and every one of its
 * views (`imageViews[i]`: codes of prompt i's views), the scores summed over the views, and the
 * digit with the best sum is kept, the colours as chosen. The kept caption's score is that sum.
 * Its candidate count grows by the nine other digits unless the digit search already tried them.
 */
export function viewDigitVote(
  model: GPT,
  vocab: Vocab,
  chosen: readonly Sample[],
  imageViews: readonly (readonly ArrayLike<number>[])[],
  opts: { imageToTextScore?: ImageToTextScore; batchSize?: number; triedDigits?: boolean } = {},
): Sample[] {
  if (imageViews.length !== chosen.length)
    throw new Error(
      `imageViews: one list of views per prompt image, got ${imageViews.length} for ${chosen.length}`,
    );
  const D = DIGIT_WORDS.length;
  const items: number[] = [];
  const pairs: { captionTokens: number[]; imageCodes: ArrayLike<number> }[] = [];
  chosen.forEach((s, i) => {
    if (captionDigit(s) < 0) return;
    items.push(i);
    const all = [s.imageCodes, ...imageViews[i]!];
    for (const digit of DIGIT_WORDS) {
      const captionTokens = withDigit(s.words, digit).map((w) => vocab.wordToken(w));
      for (const imageCodes of all) pairs.push({ captionTokens, imageCodes });
    }
  });
  const scores = imageToTextPairScores(
    model,
    vocab,
    pairs,
    opts.imageToTextScore ?? 'both',
    opts.batchSize ?? 64,
  );
  const result = chosen.slice();
  let k = 0;
  items.forEach((i) => {
    const nViews = 1 + imageViews[i]!.length; // the image itself and its views
    let best = -1;
    let bestScore = -Infinity;
    for (let d = 0; d < D; d++) {
      let sum = 0;
      for (let v = 0; v < nViews; v++) sum += scores[k++]!;
      if (sum > bestScore) {
        bestScore = sum;
        best = d;
      }
    }
    if (best < 0) return; // no complete pair to score: the caption stays as chosen
    const s = chosen[i]!;
    const candidates = (s.rerank?.candidates ?? 1) + (opts.triedDigits === true ? 0 : D - 1);
    const sample = withWords(vocab, s, withDigit(s.words, DIGIT_WORDS[best]!));
    result[i] = { ...sample, rerank: { score: bestScore, candidates } };
  });
  return result;
}
