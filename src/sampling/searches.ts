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
import { PALETTE, isLegible, paletteIndex } from '../data/palette';
import { IMAGE_TOKENS } from '../data/sequences';
import { pairOf, toSample, type Sample } from './sample';
import { captionGivenImage, imageGivenCaption } from './score';
import { imageToTextPairScores } from './rerank';
import type { RerankContext, RerankStage } from './rerank';
import { settingError, type ModeSampling, type SamplingMode } from './settings';

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

/** Whether a variant's caption words may be tried (e.g. its colours legible together). */
type VariantFilter = (words: readonly string[]) => boolean;

/**
 * A caption whose foreground and background name palette colours legible together, as in every
 * image of the data, or one where either names none (nothing to hold the other to).
 */
const legibleColours: VariantFilter = (words) => {
  const fg = paletteIndex(words[0]!, words[1]!);
  const bg = paletteIndex(words[4]!, words[5]!);
  return fg < 0 || bg < 0 || isLegible(fg, bg);
};

/**
 * Each chosen caption with the words of `slot` replaced by each other alternative (those that
 * `allow` lets through).
 */
function slotVariants(
  vocab: Vocab,
  chosen: readonly Sample[],
  slot: CaptionSlot,
  allow: VariantFilter = () => true,
): { item: number; sample: Sample }[] {
  const variants: { item: number; sample: Sample }[] = [];
  chosen.forEach((s, item) => {
    if (s.words.length !== 6) return;
    const own = slot.positions.map((p) => s.words[p]);
    if (slot.onlyIfValid && !slot.alternatives.some((a) => a.every((w, j) => w === own[j]))) return;
    for (const alternative of slot.alternatives) {
      const words = s.words.slice();
      slot.positions.forEach((p, j) => (words[p] = alternative[j]!));
      if (words.every((w, j) => w === s.words[j]) || !allow(words)) continue;
      variants.push({ item, sample: withWords(vocab, s, words) });
    }
  });
  return variants;
}

/**
 * What one search scores: `pairs`, and its alternatives (`units`), each an alternative of caption
 * `item` whose score is the sum of its pairs' scores (a caption variant is one pair; a digit of
 * the shift views is the digit's caption against the image and each of its views).
 */
interface SearchUnits {
  pairs: { captionTokens: number[]; imageCodes: ArrayLike<number> }[];
  units: { item: number; pairs: number[] }[];
}

/** The sum of `scores` at `indices`, in order. */
function sumAt(scores: Float64Array, indices: readonly number[]): number {
  let total = 0;
  for (const i of indices) total += scores[i]!;
  return total;
}

/**
 * Which alternatives of a search get the whole score: the best `n` of each caption by
 * log p(caption | image), which is cheap (the captions of one image share its 52-token prefix and
 * add 5 tokens each) ('caption'); or by the whole score of each alternative's first pair ('first':
 * a digit against the image itself, before its shifted views). n = 0: every alternative.
 */
interface Shortlist {
  by: 'caption' | 'first';
  n: number;
}

/** The best `n` units of each item by `rank` (ties: the earlier unit), in unit order. */
function bestOfEachItem(units: SearchUnits['units'], rank: ArrayLike<number>, n: number): number[] {
  const byItem = new Map<number, number[]>();
  units.forEach((u, k) => {
    const list = byItem.get(u.item);
    if (list === undefined) byItem.set(u.item, [k]);
    else list.push(k);
  });
  const kept: number[] = [];
  for (const ks of byItem.values()) {
    ks.sort((a, b) => (rank[b]! > rank[a]! ? 1 : rank[b]! < rank[a]! ? -1 : a - b));
    kept.push(...ks.slice(0, n));
  }
  return kept.sort((a, b) => a - b);
}

/**
 * Each alternative's image -> text score under the context's rule: the sum of its pairs' scores,
 * for the alternatives the shortlist keeps (the others score -Infinity). A kept alternative scores
 * what it scores without the shortlist, up to the order of float32 sums in batched forwards.
 */
function unitScores(ctx: RerankContext, search: SearchUnits, shortlist: Shortlist): Float64Array {
  const { model, vocab, batchSize, imageToTextScore: rule } = ctx;
  const { pairs, units } = search;
  if (shortlist.n === 0 || (shortlist.by === 'caption' && rule === 'caption')) {
    const scores = imageToTextPairScores(ctx, pairs);
    return Float64Array.from(units, (u) => sumAt(scores, u.pairs));
  }
  const scores = new Float64Array(pairs.length);
  const scoreAt = (indices: number[], part: 'whole' | 'image') => {
    const chosen = indices.map((p) => pairs[p]!);
    const s =
      part === 'whole'
        ? imageToTextPairScores(ctx, chosen)
        : imageGivenCaption(model, vocab, chosen, batchSize);
    indices.forEach((p, j) => (scores[p] = part === 'whole' ? s[j]! : scores[p]! + s[j]!));
  };
  let kept: number[];
  if (shortlist.by === 'caption') {
    // rule 'both' or 'image': the caption term of every pair, then the image term of the kept.
    scores.set(captionGivenImage(model, vocab, pairs, batchSize));
    kept = bestOfEachItem(
      units,
      Float64Array.from(units, (u) => sumAt(scores, u.pairs)),
      shortlist.n,
    );
    if (rule === 'image') for (const k of kept) for (const p of units[k]!.pairs) scores[p] = 0;
    scoreAt(
      kept.flatMap((k) => units[k]!.pairs),
      'image',
    );
  } else {
    const firsts = units.map((u) => u.pairs[0]!);
    scoreAt(firsts, 'whole');
    kept = bestOfEachItem(
      units,
      Float64Array.from(firsts, (p) => scores[p]!),
      shortlist.n,
    );
    scoreAt(
      kept.flatMap((k) => units[k]!.pairs.slice(1)),
      'whole',
    );
  }
  const out = new Float64Array(units.length).fill(-Infinity);
  for (const k of kept) out[k] = sumAt(scores, units[k]!.pairs);
  return out;
}

/**
 * The variants of `slot` of every chosen caption that `allow` lets through, all scored in one
 * batched call (with the shortlist); the best-scoring caption is kept (the chosen one keeps the
 * score it won with, unless `allow` would not let it through: then any variant replaces it).
 */
function searchSlot(
  ctx: RerankContext,
  chosen: readonly Sample[],
  slot: CaptionSlot,
  shortlist = 0,
  allow?: VariantFilter,
): Sample[] {
  const variants = slotVariants(ctx.vocab, chosen, slot, allow);
  if (variants.length === 0) return chosen.slice();
  const search = {
    pairs: variants.map((v) => pairOf(ctx.vocab, v.sample)),
    units: variants.map((v, k) => ({ item: v.item, pairs: [k] })),
  };
  const scores = unitScores(ctx, search, { by: 'caption', n: shortlist });
  // Every caption counts the candidates it was chosen among: its own and the variants tried.
  const candidates = chosen.map((s) => s.rerank!.candidates);
  variants.forEach((v) => candidates[v.item]++);
  const result = chosen.map((s, i) => ({
    ...s,
    rerank: { score: s.rerank!.score, candidates: candidates[i]! },
  }));
  // A chosen caption that `allow` would not let through gives way to any variant that it does.
  const toBeat = chosen.map((s) =>
    allow === undefined || s.words.length !== 6 || allow(s.words) ? s.rerank!.score : -Infinity,
  );
  variants.forEach((v, k) => {
    if (scores[k]! > toBeat[v.item]!) {
      toBeat[v.item] = scores[k]!;
      result[v.item] = {
        ...v.sample,
        rerank: { score: scores[k]!, candidates: candidates[v.item]! },
      };
    }
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
 * digit with the best sum is kept, the colours as chosen. The kept caption's score is that sum,
 * and its `alternatives` are the digit captions scored over every view, best first. Its candidate
 * count grows by the nine other digits unless the digit search already tried them. With a
 * shortlist, only the best `shortlist` digits against the image itself are scored on the views.
 */
export function viewDigitVote(
  ctx: RerankContext,
  chosen: readonly Sample[],
  imageViews: readonly (readonly ArrayLike<number>[])[],
  triedDigits: boolean,
  shortlist = 0,
): Sample[] {
  if (imageViews.length !== chosen.length)
    throw new Error(
      `imageViews: one list of views per prompt image, got ${imageViews.length} for ${chosen.length}`,
    );
  const { vocab } = ctx;
  const D = DIGIT_WORDS.length;
  const items: number[] = [];
  const search: SearchUnits = { pairs: [], units: [] };
  chosen.forEach((s, i) => {
    if (captionDigit(s) < 0) return;
    items.push(i);
    const all = [s.imageCodes, ...imageViews[i]!];
    for (const digit of DIGIT_WORDS) {
      const captionTokens = withDigit(s.words, digit).map((w) => vocab.wordToken(w));
      const unit = { item: i, pairs: [] as number[] };
      for (const imageCodes of all) {
        unit.pairs.push(search.pairs.length);
        search.pairs.push({ captionTokens, imageCodes });
      }
      search.units.push(unit);
    }
  });
  // [items x D]: each digit's sum over the image and its views
  const scores = unitScores(ctx, search, { by: 'first', n: shortlist });
  const result = chosen.slice();
  items.forEach((i, k) => {
    let best = -1;
    let bestScore = -Infinity;
    for (let d = 0; d < D; d++) {
      const sum = scores[k * D + d]!;
      if (sum > bestScore) {
        bestScore = sum;
        best = d;
      }
    }
    if (best < 0) return; // no complete pair to score: the caption stays as chosen
    const s = chosen[i]!;
    const candidates = (s.rerank?.candidates ?? 1) + (triedDigits ? 0 : D - 1);
    const sample = withWords(vocab, s, withDigit(s.words, DIGIT_WORDS[best]!));
    const alternatives = DIGIT_WORDS.flatMap((digit, d) =>
      scores[k * D + d]! === -Infinity
        ? []
        : [{ caption: withDigit(s.words, digit).join(' '), score: scores[k * D + d]! }],
    ).sort((a, b) => b.score - a.score);
    result[i] = { ...sample, rerank: { score: bestScore, candidates, alternatives } };
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

/**
 * The foreground colour, then the background colour. With a shortlist (one per slot), only the
 * best colours of each caption by log p(caption | image) get the whole score; with `legible`,
 * only colours legible on the caption's other colour are tried.
 */
export function colourSearchStages(
  shortlists: readonly [number, number] = [0, 0],
  legible = false,
): RerankStage[] {
  return COLOUR_SLOTS.map((slot, i) => ({
    kind: 'search',
    name: i === 0 ? 'foreground colour search' : 'background colour search',
    search: (ctx, chosen) =>
      searchSlot(ctx, chosen, slot, shortlists[i], legible ? legibleColours : undefined),
  }));
}

/** The colour search over every colour. */
export const COLOUR_SEARCH: readonly RerankStage[] = colourSearchStages();

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

/**
 * The shift-views stage over the prompt images' views (checked: one list per prompt); with a
 * shortlist, only the best `shortlist` digits against the image itself are scored on its views.
 */
export function shiftViewsStage(
  vocab: Vocab,
  imageViews: readonly (readonly ArrayLike<number>[])[] | undefined,
  prompts: number,
  triedDigits: boolean,
  shortlist = 0,
): RerankStage {
  checkImageViews(vocab, imageViews, prompts);
  return {
    kind: 'search',
    name: 'shift views',
    search: (ctx, chosen) => viewDigitVote(ctx, chosen, imageViews, triedDigits, shortlist),
  };
}

/** The searches a mode's settings ask for, and what they need. */
export type SearchSettings = Partial<
  Pick<
    ModeSampling,
    | 'digitSearch'
    | 'colourSearch'
    | 'foregroundShortlist'
    | 'backgroundShortlist'
    | 'legibleSearch'
    | 'shiftViews'
    | 'viewShortlist'
  >
> & {
  /** Image -> text with shiftViews: the codes of each prompt image's shifted views. */
  imageViews?: readonly (readonly ArrayLike<number>[])[];
};

/** The settings the searches read (checked against the settings table when given). */
const SEARCH_SETTINGS = [
  'digitSearch',
  'colourSearch',
  'foregroundShortlist',
  'backgroundShortlist',
  'legibleSearch',
  'shiftViews',
  'viewShortlist',
] as const satisfies readonly (keyof ModeSampling)[];

/** The rerank stages of `mode` under its settings (checked), in order, for `prompts` prompts. */
export function rerankStages(
  vocab: Vocab,
  mode: SamplingMode,
  s: SearchSettings,
  prompts: number,
): RerankStage[] {
  for (const key of SEARCH_SETTINGS) {
    const error = s[key] === undefined ? null : settingError(key, s[key]);
    if (error !== null) throw new Error(error);
  }
  const digitSearch = s.digitSearch === true;
  if (mode !== 'imageToText') return digitSearch ? [DIGIT_POSTERIOR] : [];
  const stages: RerankStage[] = [];
  if (digitSearch) stages.push(DIGIT_SEARCH);
  if (s.colourSearch === true)
    stages.push(
      ...colourSearchStages(
        [s.foregroundShortlist ?? 0, s.backgroundShortlist ?? 0],
        s.legibleSearch === true,
      ),
    );
  if (s.shiftViews === true)
    stages.push(shiftViewsStage(vocab, s.imageViews, prompts, digitSearch, s.viewShortlist ?? 0));
  return stages;
}
