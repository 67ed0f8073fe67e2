// The model as a web page runs it: the GPT and its tokenizer built from the bytes of
// checkpoint.safetensors and vqvae.safetensors, and the three sampling modes with the sampling
// presets, returning images as 28 x 28 x 3 arrays of levels 0-3. Pure code (no Node built-in):
// the page's bundle (bundle.ts) imports it, and so can Node.
//
// Each mode calls the library exactly as `mmgpt sample` does (src/pipeline/figures.ts,
// `drawSamples`): the default sampling preset with the explicit settings over it, the seed and the
// batch size, n copies of the prompt. The same seed and settings on the same backend therefore
// give the same samples as `mmgpt sample`.
// Image -> text also lists the best captions that differ from the chosen one in the digit only:
// with the shift-views search, the digit captions it scored over the image and its one-pixel
// shifts (the sample's rerank alternatives); without it, each of the ten digits with the chosen
// colours, scored as reranking scores image -> text candidates (log p(image | caption) +
// log p(caption | image) by default).

import { CAPTION_LENGTH, DIGIT_WORDS, Vocab, captionText, parseCaption } from '../data/vocab';
import { IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_VALUES, LEVELS } from '../data/images';
import { IMAGE_TOKENS } from '../data/sequences';
import { decodeSafetensors } from '../nn/safetensorsFormat';
import type { GPT } from '../gpt/model';
import { checkpointFromContents, gptFromCheckpoint } from '../gpt/checkpointContents';
import type { CheckpointMeta } from '../gpt/checkpointContents';
import type { VqVae } from '../vqvae/model';
import { vqVaeFromContents } from '../vqvae/checkpointContents';
import { imageToText, textToImage, unconditional } from '../sampling/modes';
import { SAMPLING_CHOICE_DEFAULTS, modeOptions, type SamplingOverrides } from '../sampling/presets';
import { imageToTextPairScores, rerankContext } from '../sampling/rerank';
import type { Sample } from '../sampling/sample';
import type { SamplingMode } from '../sampling/settings';
import { withImageViews } from '../sampling/views';

/** An image as the page's API gives and takes it: [28][28][3] levels 0..3. */
export type LevelImage = number[][][];

/** A trained GPT with its tokenizer and vocabulary. */
export interface SiteModel {
  model: GPT;
  tokenizer: VqVae;
  vocab: Vocab;
  meta: CheckpointMeta;
}

/**
 * The GPT and its tokenizer from the files' bytes; errors name the file and what is wrong (a
 * corrupt or truncated file, a tokenizer whose vocabulary the GPT was not trained with).
 */
export function siteModelFromBytes(
  checkpoint: { name: string; bytes: Uint8Array },
  tokenizer: { name: string; bytes: Uint8Array },
): SiteModel {
  const ckpt = checkpointFromContents(decodeSafetensors(checkpoint.bytes, checkpoint.name));
  const vqvae = vqVaeFromContents(
    decodeSafetensors(tokenizer.bytes, tokenizer.name),
    tokenizer.name,
  );
  const model = gptFromCheckpoint(ckpt, checkpoint.name);
  const vocab = new Vocab(vqvae.model.config.codebookSize);
  if (model.config.vocabSize !== vocab.size)
    throw new Error(
      `${checkpoint.name} has a vocabulary of ${model.config.vocabSize} tokens, but the ` +
        `${vqvae.model.config.codebookSize} codes of ${tokenizer.name} make ${vocab.size}`,
    );
  return { model, tokenizer: vqvae.model, vocab, meta: ckpt.meta };
}

/** What a caller sets: the seed and the knobs of `mmgpt sample` (the preset's value otherwise). */
export interface SiteSampleOptions {
  seed?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  guidance?: number;
  rerank?: number;
  /** Rows per batched generation (samples do not depend on it; default 128). */
  batchSize?: number;
}

/** The sampler's options for `mode`: the default preset with `options` over it. */
function samplerOptions(options: SiteSampleOptions, mode: SamplingMode) {
  const overrides: SamplingOverrides = {
    temperature: options.temperature,
    topK: options.topK,
    topP: options.topP,
    guidance: mode === 'unconditional' ? undefined : options.guidance,
    rerank: options.rerank,
  };
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  return modeOptions(
    {
      samplingPreset: 'default',
      overrides,
      seed,
      batchSize: options.batchSize ?? SAMPLING_CHOICE_DEFAULTS.batchSize,
    },
    mode,
  );
}

/** Flat levels [28 * 28 * 3] as [28][28][3]. */
function nestedImage(flat: ArrayLike<number>, offset = 0): LevelImage {
  return Array.from({ length: IMAGE_SIZE }, (_, y) =>
    Array.from({ length: IMAGE_SIZE }, (_, x) =>
      Array.from(
        { length: IMAGE_CHANNELS },
        (_, c) => flat[offset + (y * IMAGE_SIZE + x) * IMAGE_CHANNELS + c]!,
      ),
    ),
  );
}

/** [28][28][3] levels as flat [28 * 28 * 3]; throws saying what is wrong with the shape or a value. */
export function flatImage(image: LevelImage): Uint8Array {
  const out = new Uint8Array(IMAGE_VALUES);
  const shapeError = () =>
    new Error(`an image is [${IMAGE_SIZE}][${IMAGE_SIZE}][${IMAGE_CHANNELS}] levels 0..3`);
  if (!Array.isArray(image) || image.length !== IMAGE_SIZE) throw shapeError();
  image.forEach((row, y) => {
    if (!Array.isArray(row) || row.length !== IMAGE_SIZE) throw shapeError();
    row.forEach((pixel, x) => {
      if (!Array.isArray(pixel) || pixel.length !== IMAGE_CHANNELS) throw shapeError();
      pixel.forEach((v, c) => {
        if (!(Number.isInteger(v) && v >= 0 && v < LEVELS))
          throw new Error(`image[${y}][${x}][${c}] is ${v}: levels are integers 0..${LEVELS - 1}`);
        out[(y * IMAGE_SIZE + x) * IMAGE_CHANNELS + c] = v;
      });
    });
  });
  return out;
}

/** The images of samples decoded by the tokenizer, each [28][28][3]. */
function decodedImages(m: SiteModel, samples: readonly Sample[]): LevelImage[] {
  const codes = new Int32Array(samples.length * IMAGE_TOKENS); // [count, 49]
  samples.forEach((s, i) => codes.set(s.imageCodes.subarray(0, IMAGE_TOKENS), i * IMAGE_TOKENS));
  const flat = m.tokenizer.decode(codes, samples.length); // [count, 28, 28, 3]
  return samples.map((_, i) => nestedImage(flat, i * IMAGE_VALUES));
}

/** n images of `caption` (checked: an unknown word names the accepted ones). */
export function siteTextToImage(
  m: SiteModel,
  caption: string,
  n: number,
  options: SiteSampleOptions = {},
): { caption: string; images: LevelImage[]; samples: Sample[] } {
  checkCount(n);
  const c = parseCaption(caption);
  const prompt = captionText(c.digit, c.fg, c.bg);
  const opts = samplerOptions(options, 'textToImage');
  const samples = textToImage(
    m.model,
    m.vocab,
    Array.from({ length: n }, () => prompt),
    opts,
  );
  return { caption: prompt, images: decodedImages(m, samples), samples };
}

/** A caption and its score. */
export interface CaptionCandidate {
  caption: string;
  /** The image -> text score (see the file header), in nats. */
  score: number;
  /** Its share among the digit captions scored: exp(score) normalised over them. */
  probability: number;
}

/** The caption of one image, and the top `top` digit captions with their scores. */
export function siteImageToText(
  m: SiteModel,
  image: LevelImage | Uint8Array,
  options: SiteSampleOptions = {},
  top = 3,
): { caption: string; candidates: CaptionCandidate[]; sample: Sample } {
  const levels = image instanceof Uint8Array ? checkFlat(image) : flatImage(image);
  const opts = samplerOptions(options, 'imageToText');
  const codes = m.tokenizer.encode(levels, 1); // [1, 49]
  const withViews = withImageViews(opts, m.tokenizer, levels, 1);
  const [sample] = imageToText(m.model, m.vocab, [codes], withViews);
  const views = withViews.imageViews?.[0] ?? [];
  const scored = sample!.rerank?.alternatives;
  const candidates = (
    scored !== undefined ? withShares(scored) : digitCandidates(m, sample!, [codes, ...views], opts)
  ).slice(0, top);
  return { caption: sample!.caption, candidates, sample: sample! };
}

/** The ten digit captions of a sample's colours, best first (none without 6 words). */
function digitCandidates(
  m: SiteModel,
  sample: Sample,
  views: readonly ArrayLike<number>[],
  opts: { imageToTextScore?: 'both' | 'caption' | 'image'; batchSize?: number },
): CaptionCandidate[] {
  if (sample.words.length !== CAPTION_LENGTH) return [];
  const ctx = rerankContext(m.model, m.vocab, opts);
  const captions = DIGIT_WORDS.map((digit) => {
    const words = sample.words.slice();
    words[2] = digit;
    return words;
  });
  const pairs = captions.flatMap((words) =>
    views.map((imageCodes) => ({
      captionTokens: words.map((w) => m.vocab.wordToken(w)),
      imageCodes,
    })),
  );
  const scores = imageToTextPairScores(ctx, pairs); // [10 x views]
  const sums = captions.map((_, d) => {
    let sum = 0;
    for (let v = 0; v < views.length; v++) sum += scores[d * views.length + v]!;
    return sum;
  });
  return withShares(captions.map((words, d) => ({ caption: words.join(' '), score: sums[d]! })));
}

/** Captions and scores with each one's share exp(score) normalised over them, best first. */
function withShares(scored: readonly { caption: string; score: number }[]): CaptionCandidate[] {
  const max = Math.max(...scored.map((c) => c.score));
  const total = scored.reduce((t, c) => t + Math.exp(c.score - max), 0);
  return scored
    .map((c) => ({ ...c, probability: Math.exp(c.score - max) / total }))
    .sort((a, b) => b.score - a.score);
}

/** n unconditional image/caption pairs. */
export function siteUnconditional(
  m: SiteModel,
  n: number,
  options: SiteSampleOptions = {},
): { images: LevelImage[]; captions: string[]; samples: Sample[] } {
  checkCount(n);
  const samples = unconditional(m.model, m.vocab, n, samplerOptions(options, 'unconditional'));
  return { images: decodedImages(m, samples), captions: samples.map((s) => s.caption), samples };
}

function checkCount(n: number): void {
  if (!(Number.isInteger(n) && n >= 1 && n <= 64))
    throw new Error(`n must be an integer in 1..64, got ${n}`);
}

function checkFlat(levels: Uint8Array): Uint8Array {
  if (levels.length !== IMAGE_VALUES || levels.some((v) => v >= LEVELS))
    throw new Error(`an image is ${IMAGE_VALUES} levels 0..${LEVELS - 1} ([28, 28, 3])`);
  return levels;
}
