// Self-reranking: one model holds both orders, p(image | caption) and p(caption | image), so it can
// judge its own samples through the order it did not sample in, with no external CLIP (Chameleon,
// LlamaGen, minDALL-E and DALLE-pytorch rerank with one). For each prompt the modes draw K
// candidates (candidate 0 with the caller's seed, so K = 1 is exactly the unreranked sample) and
// keep the best:
// - text -> image: the image whose prompt caption is most likely read back off it,
//   log p(caption | image) (order 2, the 6 caption tokens);
// - image -> text: by default log p(image | caption) + log p(caption | image), the caption that
//   best explains the image and is best read off it ('both'); 'caption' and 'image' keep one term
//   (compared on the validation split in docs/sampling.md);
// - unconditional: the (image, caption) pair whose caption is most likely read back off its own
//   image, log p(caption | image): the two orders agree on it, whichever order drew the sample.
// What is specific to the data comes as rerank stages (searches.ts): a `score` stage adds a term
// to every candidate's score before the best is kept; a `search` stage then replaces the kept
// samples by better-scoring variants of them.
// A candidate without 6 words and 49 codes scores -Infinity; ties keep the earliest candidate.
// Scores are the model's own likelihoods (score.ts): temperature 1, no masks or guidance.

import { deriveSeed } from '../nn/rng';
import type { GPT } from '../gpt/model';
import type { Vocab } from '../data/vocab';
import { pairOf, type Sample } from './sample';
import { captionGivenImage, imageGivenCaption } from './score';
import { IMAGE_TO_TEXT_SCORES, type ImageToTextScore, type SamplingMode } from './settings';

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

/** What reranking scores with: the model, and how image -> text candidates are scored. */
export interface RerankContext {
  model: GPT;
  vocab: Vocab;
  imageToTextScore: ImageToTextScore;
  /** Rows per scoring batch. */
  batchSize: number;
}

/** A step of reranking specific to the data (searches.ts); see the file header. */
export type RerankStage =
  | {
      kind: 'score';
      name: string;
      /** A term added to each candidate's score, one per sample of a candidate set. */
      score(ctx: RerankContext, samples: readonly Sample[]): Float64Array;
    }
  | {
      kind: 'search';
      name: string;
      /** The kept samples, each replaced by a better-scoring variant where one is found. */
      search(ctx: RerankContext, chosen: readonly Sample[]): Sample[];
    };

/** The context of `opts`' settings (defaults: 'both', 64 rows), the score checked. */
export function rerankContext(
  model: GPT,
  vocab: Vocab,
  opts: { imageToTextScore?: ImageToTextScore; batchSize?: number },
): RerankContext {
  const imageToTextScore = opts.imageToTextScore ?? 'both';
  if (!IMAGE_TO_TEXT_SCORES.includes(imageToTextScore))
    throw new Error(
      `imageToTextScore must be one of ${IMAGE_TO_TEXT_SCORES.join(', ')}, got '${imageToTextScore}'`,
    );
  return { model, vocab, imageToTextScore, batchSize: opts.batchSize ?? 64 };
}

/**
 * Each candidate's score, [K][N], for `mode` (see the file header): the K candidate sets scored
 * in one call, so that the candidates of one prompt share what they can (score.ts).
 */
export function rerankScores(
  ctx: RerankContext,
  mode: SamplingMode,
  candidates: readonly (readonly Sample[])[],
): Float64Array[] {
  const { model, vocab, batchSize } = ctx;
  const pairs = candidates.flatMap((samples) => samples.map((s) => pairOf(vocab, s)));
  const scores =
    mode === 'imageToText'
      ? imageToTextPairScores(ctx, pairs)
      : captionGivenImage(model, vocab, pairs, batchSize);
  let start = 0;
  return candidates.map((samples) => {
    const own = scores.slice(start, start + samples.length);
    start += samples.length;
    return own;
  });
}

/** Each (caption, image) pair's image -> text score under the context's rule. */
export function imageToTextPairScores(
  ctx: RerankContext,
  pairs: readonly { captionTokens: number[]; imageCodes: ArrayLike<number> }[],
): Float64Array {
  const { model, vocab, batchSize, imageToTextScore: rule } = ctx;
  if (rule === 'caption') return captionGivenImage(model, vocab, pairs, batchSize);
  const image = imageGivenCaption(model, vocab, pairs, batchSize);
  if (rule === 'image') return image;
  const caption = captionGivenImage(model, vocab, pairs, batchSize);
  return image.map((x, i) => x + caption[i]!);
}

/**
 * The best of K candidates per prompt (candidates[c][i]: candidate c of prompt i), scored for
 * `mode` with the score stages' terms added, then refined by the search stages in order.
 */
export function rerankChoose(
  ctx: RerankContext,
  mode: SamplingMode,
  candidates: readonly (readonly Sample[])[],
  stages: readonly RerankStage[] = [],
): Sample[] {
  const K = candidates.length;
  if (K === 0) throw new Error('rerank: no candidates');
  const n = candidates[0]!.length;
  if (candidates.some((c) => c.length !== n))
    throw new Error('rerank: every candidate set must have one sample per prompt');
  const scores = rerankScores(ctx, mode, candidates);
  for (const stage of stages)
    if (stage.kind === 'score')
      candidates.forEach((samples, c) => {
        const term = stage.score(ctx, samples);
        scores[c] = scores[c]!.map((x, i) => x + term[i]!);
      });
  let chosen: Sample[] = [];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < K; c++) if (scores[c]![i]! > scores[best]![i]!) best = c;
    chosen.push({ ...candidates[best]![i]!, rerank: { score: scores[best]![i]!, candidates: K } });
  }
  for (const stage of stages) if (stage.kind === 'search') chosen = stage.search(ctx, chosen);
  return chosen;
}
