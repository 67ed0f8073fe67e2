// The dataset's searches, as rerank stages (rerank.ts) applied after generic decoding. A caption
// is "<shade> <colour> <digit> on <shade> <colour>", and p(image | caption) over all the values
// of one slot is a generative classifier of that attribute that sampling alone may never propose:
// - digit search, image -> text: the best candidate's caption is also scored with each of the
//   other nine digit words (the colours as sampled), and the best of all is kept. The digit is
//   where image -> text errs most.
// - colour search, image -> text: then, the same way, the caption's foreground colour is replaced
//   by each of the other palette colours, and then its background colour: a model trained mostly
//   in the caption-first order reads colours better through p(image | caption) than it writes
//   them through p(caption | image).
// - shift views, image -> text: last, the caption's digit is chosen once more, each of the ten
//   digits scored against the image and its one-pixel shifts (views.ts) and the scores summed
//   over these views (`viewDigitVote`).
// - digit posterior, text -> image and unconditional (the digit search of these modes): each
//   candidate's score gains the log posterior of its caption's digit,
//   log p(image | caption) - log sum over the ten digits d of p(image | caption with d), the
//   colours as in the caption: how surely the caption-first order reads the digit that was asked
//   for (or, unconditionally, that was written) off the image. The caption term alone comes from
//   the image-first order, which an undertrained model reads digits with far less well.
// What each gains on the validation split is in docs/sampling.md.

import type { GPT } from '../gpt/model';
import { DIGIT_WORDS, type Vocab } from '../data/vocab';
import { PALETTE } from '../data/palette';
import { IMAGE_TOKENS } from '../data/sequences';
import { toSample, type Sample } from './sample';
import { imageGivenCaption } from './score';
import { imageToTextPairScores, rerankScores } from './rerank';
import type { RerankContext, RerankStage } from './rerank';
import type { ModeSampling, SamplingMode } from './settings';

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

/** Each chosen caption with the words of `slot` replaced by each other alternative. */
function slotVariants(
  vocab: Vocab,
  chosen: readonly Sample[],
  slot: CaptionSlot,
): { item: number; sample: Sample }[] {
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
  return variants;
}

/**
 * The variants of `slot` of every chosen caption, all scored in one batched call; the
 * best-scoring caption is kept (the chosen one keeps the score it won with).
 */
function searchSlot(ctx: RerankContext, chosen: readonly Sample[], slot: CaptionSlot): Sample[] {
  const variants = slotVariants(ctx.vocab, chosen, slot);
  if (variants.length === 0) return chosen.slice();
  const [scores] = rerankScores(ctx, 'imageToText', [variants.map((v) => v.sample)]);
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
  ctx: RerankContext,
  chosen: readonly Sample[],
  imageViews: readonly (readonly ArrayLike<number>[])[],
  triedDigits: boolean,
): Sample[] {
  if (imageViews.length !== chosen.length)
    throw new Error(
      `imageViews: one list of views per prompt image, got ${imageViews.length} for ${chosen.length}`,
    );
  const { vocab } = ctx;
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
  const scores = imageToTextPairScores(ctx, pairs);
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
    const candidates = (s.rerank?.candidates ?? 1) + (triedDigits ? 0 : D - 1);
    const sample = withWords(vocab, s, withDigit(s.words, DIGIT_WORDS[best]!));
    result[i] = { ...sample, rerank: { score: bestScore, candidates } };
  });
  return result;
}

// ---- the stages ------------------------------------------------------------------------------

export const DIGIT_POSTERIOR: RerankStage = {
  kind: 'score',
  name: 'digit posterior',
  score: (ctx, samples) => digitPosterior(ctx.model, ctx.vocab, samples, ctx.batchSize),
};

export const DIGIT_SEARCH: RerankStage = {
  kind: 'search',
  name: 'digit search',
  search: (ctx, chosen) => searchSlot(ctx, chosen, DIGIT_SLOT),
};

/** The foreground colour, then the background colour. */
export const COLOUR_SEARCH: readonly RerankStage[] = COLOUR_SLOTS.map((slot, i) => ({
  kind: 'search',
  name: i === 0 ? 'foreground colour search' : 'background colour search',
  search: (ctx, chosen) => searchSlot(ctx, chosen, slot),
}));

/** Shift views needs each prompt image's views: one list per prompt, each view 49 image codes. */
function checkImageViews(
  vocab: Vocab,
  views: readonly (readonly ArrayLike<number>[])[] | undefined,
  prompts: number,
): asserts views is readonly (readonly ArrayLike<number>[])[] {
  if (views === undefined)
    throw new Error(
      'shiftViews needs the codes of each image shifted by one pixel: pass imageViews ' +
        '(shiftedViewCodes(tokenizer, images, count) in src/sampling/views.ts), or turn ' +
        'shiftViews off',
    );
  if (views.length !== prompts)
    throw new Error(`imageViews: one list of views per image, got ${views.length} for ${prompts}`);
  views.forEach((list, i) =>
    list.forEach((codes, v) => {
      if (codes.length !== IMAGE_TOKENS || !Array.from(codes).every((t) => vocab.isImageToken(t)))
        throw new Error(
          `imageViews[${i}][${v}]: expected ${IMAGE_TOKENS} image codes in 0..${vocab.imageCodes - 1}`,
        );
    }),
  );
}

/** The shift-views stage over the prompt images' views (checked: one list per prompt). */
export function shiftViewsStage(
  vocab: Vocab,
  imageViews: readonly (readonly ArrayLike<number>[])[] | undefined,
  prompts: number,
  triedDigits: boolean,
): RerankStage {
  checkImageViews(vocab, imageViews, prompts);
  return {
    kind: 'search',
    name: 'shift views',
    search: (ctx, chosen) => viewDigitVote(ctx, chosen, imageViews, triedDigits),
  };
}

/** The searches a mode's settings ask for, and what they need. */
export type SearchSettings = Partial<
  Pick<ModeSampling, 'digitSearch' | 'colourSearch' | 'shiftViews'>
> & {
  /** Image -> text with shiftViews: the codes of each prompt image's shifted views. */
  imageViews?: readonly (readonly ArrayLike<number>[])[];
};

/** The rerank stages of `mode` under its settings, in order, for `prompts` prompts. */
export function rerankStages(
  vocab: Vocab,
  mode: SamplingMode,
  s: SearchSettings,
  prompts: number,
): RerankStage[] {
  const digitSearch = s.digitSearch === true;
  if (mode !== 'imageToText') return digitSearch ? [DIGIT_POSTERIOR] : [];
  const stages: RerankStage[] = [];
  if (digitSearch) stages.push(DIGIT_SEARCH);
  if (s.colourSearch === true) stages.push(...COLOUR_SEARCH);
  if (s.shiftViews === true)
    stages.push(shiftViewsStage(vocab, s.imageViews, prompts, digitSearch));
  return stages;
}
