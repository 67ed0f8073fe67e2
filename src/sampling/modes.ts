// The three sampling modes: text -> image, image -> text and unconditional. Each builds its
// prompts, decodes candidates generically (sampler.ts: the rules, temperature, top-k/top-p,
// guidance, the KV cache) and, with reranking, keeps the best of K per prompt through the model's
// own reverse-order score and the dataset's searches (rerank.ts, searches.ts).
// Unconditional candidates are drawn either by the model choosing the order, or caption first:
// the caption from p(caption) (`<bos> <end of image>`, the words at the word temperature), then
// its image as text -> image draws it, guidance included: an ancestral sample of
// p(caption) p(image | caption).

import type { GPT } from '../gpt/model';
import { CAPTION_LENGTH, type Vocab } from '../data/vocab';
import { IMAGE_TOKENS } from '../data/sequences';
import { deriveSeed } from '../nn/rng';
import { decodeCandidates, decodeStreams, type DecodeOptions } from './sampler';
import type { Sample } from './sample';
import { candidateSeed, checkRerank, rerankChoose, rerankContext } from './rerank';
import { rerankStages } from './searches';
import type { ModeSampling, SamplingMode } from './settings';

/**
 * What a mode takes: the decoding options, and any of the sampling settings (settings.ts):
 * reranking, the searches (with reranking only) and the caption-first draw (unconditional only).
 * An option left out takes the sampler's plain default (no reranking, no search).
 */
export interface ModeOptions extends DecodeOptions, Partial<ModeSampling> {
  /** Image -> text with shiftViews: the codes of each prompt image's shifted views (views.ts). */
  imageViews?: readonly (readonly ArrayLike<number>[])[];
}

/**
 * Samples of `count` prompts: `draw([seed])` without reranking; with K = opts.rerank candidates
 * (candidate c drawn with candidateSeed(seed, c), all K decoded together: `draw` returns one
 * sample set per seed), the best of each prompt's K, then the mode's searches.
 */
function drawReranked(
  model: GPT,
  vocab: Vocab,
  mode: SamplingMode,
  count: number,
  opts: ModeOptions,
  draw: (seeds: number[]) => Sample[][],
): Sample[] {
  const K = checkRerank(opts.rerank ?? 1);
  const seed = opts.seed ?? 0;
  if (K === 1) return draw([seed])[0]!;
  const ctx = rerankContext(model, vocab, opts);
  const stages = rerankStages(vocab, mode, opts, count);
  const candidates = draw(Array.from({ length: K }, (_, c) => candidateSeed(seed, c)));
  return rerankChoose(ctx, mode, candidates, stages);
}

/** Caption tokens from a caption string (validated) or 6 word tokens. */
function captionTokensOf(vocab: Vocab, caption: string | ArrayLike<number>, i: number): number[] {
  if (typeof caption === 'string') {
    try {
      return Array.from(vocab.encodeCaption(caption));
    } catch (e) {
      throw new Error(`caption ${i}: ${(e as Error).message}`);
    }
  }
  const tokens = Array.from(caption);
  if (tokens.length !== CAPTION_LENGTH || !tokens.every((t) => vocab.isWordToken(t))) {
    throw new Error(
      `caption ${i}: expected ${CAPTION_LENGTH} word tokens (${vocab.wordOffset}..` +
        `${vocab.bos - 1}), got [${tokens.join(', ')}]`,
    );
  }
  return tokens;
}

/** Prompts and unconditional contexts of text -> image (see `textToImage`). */
function textToImagePrompts(
  vocab: Vocab,
  captions: readonly (string | ArrayLike<number>)[],
): { prompts: Int32Array[]; uncond: Int32Array[] } {
  const prompts = captions.map((c, i) =>
    Int32Array.from([
      vocab.bos,
      vocab.endOfImage,
      ...captionTokensOf(vocab, c, i),
      vocab.endOfText,
    ]),
  );
  const uncond = prompts.map(() => Int32Array.from([vocab.bos, vocab.endOfText]));
  return { prompts, uncond };
}

/**
 * Text -> image: each caption (a string such as "dark green eight on bright cyan", or its 6 word
 * tokens) is the prompt `<bos> <end of image> caption <end of text>`; the model draws 49 codes.
 * With guidance, the unconditional context is `<bos> <end of text>`.
 */
export function textToImage(
  model: GPT,
  vocab: Vocab,
  captions: readonly (string | ArrayLike<number>)[],
  opts: ModeOptions = {},
): Sample[] {
  const { prompts, uncond } = textToImagePrompts(vocab, captions);
  return drawReranked(model, vocab, 'textToImage', prompts.length, opts, (seeds) =>
    decodeCandidates(model, vocab, prompts, uncond, seeds, opts),
  );
}

/**
 * Image -> text: each image's 49 codes form the prompt `<bos> <end of text> image <end of image>`;
 * the model writes the 6 words. With guidance, the unconditional context is `<bos> <end of image>`.
 */
export function imageToText(
  model: GPT,
  vocab: Vocab,
  imageCodes: readonly ArrayLike<number>[],
  opts: ModeOptions = {},
): Sample[] {
  const prompts = imageCodes.map((codes, i) => {
    const ids = Array.from(codes);
    if (ids.length !== IMAGE_TOKENS || !ids.every((t) => vocab.isImageToken(t))) {
      throw new Error(
        `image ${i}: expected ${IMAGE_TOKENS} image codes in 0..${vocab.imageCodes - 1}, got ` +
          `${ids.length} values` +
          (ids.length === IMAGE_TOKENS
            ? ` including ${ids.find((t) => !vocab.isImageToken(t))}`
            : ''),
      );
    }
    return Int32Array.from([vocab.bos, vocab.endOfText, ...ids, vocab.endOfImage]);
  });
  const uncond = prompts.map(() => Int32Array.from([vocab.bos, vocab.endOfImage]));
  return drawReranked(model, vocab, 'imageToText', prompts.length, opts, (seeds) =>
    decodeCandidates(model, vocab, prompts, uncond, seeds, opts),
  );
}

/**
 * Unconditional: n sequences from `<bos>`; the model chooses the order under the masks. With
 * `captionFirst`, each caption is drawn first, then its image (see the file header), with these
 * options (guidance included). Reranking draws K candidates (with captionFirst, K whole pairs)
 * and keeps the one whose caption is best read back off its image (rerank.ts).
 */
export function unconditional(
  model: GPT,
  vocab: Vocab,
  n: number,
  opts: ModeOptions = {},
): Sample[] {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`n must be a positive integer, got ${n}`);
  if (opts.captionFirst === true)
    return drawReranked(model, vocab, 'unconditional', n, opts, (seeds) =>
      captionThenImage(model, vocab, n, seeds, opts),
    );
  if ((opts.guidance ?? 1) !== 1) {
    throw new Error(
      `guidance needs a condition: use it with text -> image, image -> text or an unconditional ` +
        `caption drawn first (captionFirst), not with the model choosing the order`,
    );
  }
  const prompts = Array.from({ length: n }, () => Int32Array.from([vocab.bos]));
  return drawReranked(model, vocab, 'unconditional', n, opts, (seeds) =>
    decodeCandidates(model, vocab, prompts, null, seeds, opts),
  );
}

/** Seed of the image half of a caption-first unconditional sample (the caption takes `seed`). */
export function captionFirstImageSeed(seed: number): number {
  return deriveSeed(seed, 'mmgpt-unconditional/image');
}

/**
 * One caption-first sample per row and seed: the captions (under each seed), then their images
 * as text -> image draws (under each seed's image seed), every seed's rows decoded together.
 */
function captionThenImage(
  model: GPT,
  vocab: Vocab,
  n: number,
  seeds: readonly number[],
  opts: ModeOptions,
): Sample[][] {
  const prompt = Int32Array.from([vocab.bos, vocab.endOfImage]);
  const captionSets = decodeCandidates(
    model,
    vocab,
    Array.from({ length: n }, () => prompt),
    null,
    seeds,
    { ...opts, guidance: 1, maxTokens: CAPTION_LENGTH },
  );
  // The images of every set's captions, one list of n * K prompts: row c * n + i under the image
  // seed of set c, stream i (as each set decoded alone).
  const words = captionSets.flatMap((captions) =>
    captions.map((c, i) => {
      const tokens = c.words.map((w) => vocab.wordToken(w));
      if (tokens.length !== CAPTION_LENGTH)
        throw new Error(
          `unconditional caption ${i}: ${tokens.length} words, not ${CAPTION_LENGTH}`,
        );
      return tokens;
    }),
  );
  const { prompts, uncond } = textToImagePrompts(vocab, words);
  const streams = seeds.flatMap((seed) =>
    Array.from({ length: n }, (_, row) => ({ seed: captionFirstImageSeed(seed), row })),
  );
  const samples = decodeStreams(model, vocab, prompts, uncond, streams, opts);
  return seeds.map((_, c) => samples.slice(c * n, (c + 1) * n));
}
