// The sampler: next-token choice (temperature, top-k, top-p under the rules' masks), batched
// generation with the KV cache, classifier-free guidance, and the three sampling modes.
//
// References:
// - nanochat `sample_next_token`: sampling is a pure function of the logits and a seeded RNG;
//   temperature 0 means argmax (no random number is drawn).
// - DALLE-pytorch `logits_mask`: the allowed-token mask (rules.ts) is applied first, then
//   temperature, then top-k, then top-p (HF's order), all on the allowed tokens only.
// - gpt-fast `prefill` / `decode_one_token`: one forward over the whole prompt fills the
//   preallocated KVCache, then each step feeds one token per row. `generateUncached` re-runs the
//   whole prefix every step: the reference the cache must match, and the speed baseline.
// - Classifier-free guidance (Ho & Salimans; as in Make-A-Scene / Parti for autoregressive
//   models), at no training cost because both orders are trained: for text -> image the
//   conditional context is `<bos> <end of image> caption(6) <end of text>` and the unconditional
//   one `<bos> <end of text>` (order 2 teaches p(image)); for image -> text the conditional one is
//   `<bos> <end of text> image(49) <end of image>` and the unconditional one `<bos> <end of image>`
//   (order 1 teaches p(text)). Every sampled token is appended to both. On log-probabilities:
//   guided = lc + (g - 1) (lc - lu) = lu + g (lc - lu), before the mask and top-k/top-p; the
//   first form makes g = 1 give exactly lc.
// Notable choices:
// - Batching CFG: the two branches have different prefix lengths and GPT.forward takes one start
//   position for the whole batch, so each step runs the conditional rows and the unconditional
//   rows as two batched forwards (one KV cache each). One forward for both needs per-row
//   positions and a key-padding mask in GPT.forward (left-padding the shorter branch); see the
//   note at `openGuidedStreams`.
// - Every row has its own RNG stream, derived from (seed, row index): sample i is the same
//   whether it is drawn alone or in a batch of any size, and cached and uncached generation draw
//   the same numbers (so on the js backend they give identical samples).
// - Rows that complete before the others are fed a dummy token and ignored (in our modes every
//   row completes at 58 tokens, so this only happens with custom prompts).
// - Generation runs in eval mode (no dropout) and restores the model's mode afterwards.

import { noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { GPT, KVCache } from '../gpt/model';
import { Rng, deriveSeed } from '../nn/rng';
import { CAPTION_LENGTH, Vocab, type Caption } from '../data/vocab';
import { IMAGE_TOKENS, type SequenceOrder } from '../data/sequences';
import { SamplingRules, parseSequence, type GrammarLevel, type SequenceState } from './rules';
import { candidateSeed, checkRerank, rerankChoose, type ImageToTextScore } from './rerank';

// ---- choosing one token ------------------------------------------------------------------------

export interface SamplingOptions {
  /** Softmax temperature; 0 = argmax (default 1). */
  temperature?: number;
  /** Keep only the k most likely allowed tokens (default 0 = off; Infinity is off too). */
  topK?: number;
  /** Keep the fewest most likely allowed tokens whose probability reaches p (default 1 = off). */
  topP?: number;
}

interface CheckedSamplingOptions {
  temperature: number;
  topK: number;
  topP: number;
}

/** Fills in defaults and rejects impossible settings with a message saying what is accepted. */
export function checkSamplingOptions(opts: SamplingOptions): CheckedSamplingOptions {
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (!(Number.isFinite(temperature) && temperature >= 0)) {
    throw new Error(`temperature must be a finite number >= 0 (0 = argmax), got ${temperature}`);
  }
  if (!((Number.isInteger(topK) && topK >= 0) || topK === Infinity)) {
    throw new Error(`topK must be an integer >= 1, or 0 for off, got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1] (1 = off), got ${topP}`);
  return { temperature, topK: topK === 0 ? Infinity : topK, topP };
}

/**
 * One token from `logits` [V] among the tokens `mask` allows (null = all), as a pure function of
 * the logits, the options and `rng`. Temperature 0 is argmax (lowest id on ties) and draws
 * nothing; otherwise exactly one uniform number is drawn.
 */
export function sampleToken(
  logits: Float32Array,
  mask: Uint8Array | null,
  opts: SamplingOptions,
  rng: Rng,
): number {
  const { temperature, topK, topP } = checkSamplingOptions(opts);
  const n = logits.length;
  if (mask !== null && mask.length !== n) {
    throw new Error(`sampleToken: mask has ${mask.length} entries, logits ${n}`);
  }
  const allowed = new Int32Array(n); // the allowed ids, in id order, in allowed[0 .. count)
  let count = 0;
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < n; i++) {
    if (mask !== null && mask[i] !== 1) continue;
    const x = logits[i]!;
    if (Number.isNaN(x)) throw new Error(`sampleToken: logit of token ${i} is NaN`);
    allowed[count++] = i;
    if (best < 0 || x > bestValue) {
      best = i;
      bestValue = x;
    }
  }
  if (count === 0) throw new Error('sampleToken: the mask allows no token');
  if (bestValue === -Infinity) {
    throw new Error('sampleToken: every allowed token has logit -Infinity');
  }
  if (temperature === 0) return best;

  let kept = allowed.subarray(0, count); // in id order unless top-k/top-p need them by value
  if (topK < count || topP < 1) {
    kept = kept.slice().sort((a, b) => {
      const xa = logits[a]!;
      const xb = logits[b]!;
      return xa > xb ? -1 : xa < xb ? 1 : a - b;
    });
    if (topK < kept.length) kept = kept.subarray(0, topK);
  }
  const weights = new Float64Array(kept.length);
  let total = 0;
  for (let j = 0; j < kept.length; j++) {
    const w = Math.exp((logits[kept[j]!]! - bestValue) / temperature);
    weights[j] = w;
    total += w;
  }
  let keptCount = kept.length;
  if (topP < 1) {
    // kept is sorted by value: keep the shortest head whose mass reaches topP of the total.
    let head = 0;
    for (let j = 0; j < kept.length; j++) {
      head += weights[j]!;
      if (head >= topP * total) {
        keptCount = j + 1;
        break;
      }
    }
    total = 0;
    for (let j = 0; j < keptCount; j++) total += weights[j]!;
  }
  const u = rng.uniform() * total;
  let cumulative = 0;
  let lastPositive = 0;
  for (let j = 0; j < keptCount; j++) {
    const w = weights[j]!;
    if (w > 0) lastPositive = j;
    cumulative += w;
    if (u < cumulative) return kept[j]!;
  }
  return kept[lastPositive]!; // u rounded up to the total
}

/** log softmax of one row of logits, in float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/**
 * Classifier-free guidance of one row: lc + (scale - 1) (lc - lu) with lc, lu the conditional and
 * unconditional log-probabilities (= lu + scale (lc - lu)). Scale 1 gives exactly lc, scale 0 the
 * unconditional distribution; above 1 it sharpens towards the condition.
 */
export function guidedLogits(
  conditional: Float32Array,
  unconditional: Float32Array,
  scale: number,
): Float32Array {
  if (conditional.length !== unconditional.length) {
    throw new Error(
      `guidedLogits: conditional has ${conditional.length} logits, unconditional ${unconditional.length}`,
    );
  }
  if (!Number.isFinite(scale)) throw new Error(`guidance scale must be finite, got ${scale}`);
  const lc = logSoftmax(conditional);
  const lu = logSoftmax(unconditional);
  const out = new Float32Array(lc.length);
  for (let i = 0; i < lc.length; i++) out[i] = lc[i]! + (scale - 1) * (lc[i]! - lu[i]!);
  return out;
}

// ---- model steps (gpt-fast's prefill / decode_one_token) ----------------------------------------

/** Logits of the last position of tokens [B, T] (forward with `cache`, or uncached): [B * V]. */
function lastLogits(model: GPT, tokens: Int32Array, batch: number, cache?: KVCache): Float32Array {
  const T = tokens.length / batch;
  if (!Number.isInteger(T) || T < 1) {
    throw new Error(`expected [${batch}, T] tokens (T >= 1), got ${tokens.length} values`);
  }
  return noGrad(() =>
    tidy(() => {
      const logits = model.forward(F.tensor(tokens, [batch, T], 'int32'), cache); // [B, T, V]
      const last = T === 1 ? logits : F.slice(logits, 1, T - 1, T); // [B, 1, V]
      return last.toFloat32Array(); // [B * V]
    }),
  );
}

/** Runs prompts [B, P] through the model, filling `cache` (from pos 0); last logits [B * V]. */
export function prefill(
  model: GPT,
  tokens: Int32Array,
  batch: number,
  cache: KVCache,
): Float32Array {
  if (cache.pos !== 0) throw new Error(`prefill: the cache must be empty, it holds ${cache.pos}`);
  return lastLogits(model, tokens, batch, cache);
}

/** Feeds one token per row ([B]) at cache.pos and advances it; logits [B * V]. */
export function decodeOne(model: GPT, tokens: Int32Array, cache: KVCache): Float32Array {
  if (tokens.length !== cache.batch) {
    throw new Error(`decodeOne: ${tokens.length} tokens for a cache of batch ${cache.batch}`);
  }
  return lastLogits(model, tokens, cache.batch, cache);
}

/** Next-token logits for a batch of equal-length prefixes, extended one token per row a step. */
export interface LogitsStream {
  readonly batch: number;
  /** Logits [B * V] after the prompts (called once, first). */
  start(): Float32Array;
  /** Appends tokens [B] and returns the logits [B * V] after them. */
  next(tokens: Int32Array): Float32Array;
  dispose(): void;
}

export type OpenStream = (model: GPT, prompts: Int32Array, batch: number) => LogitsStream;

/** prefill + decodeOne over a preallocated KVCache. */
export const openCachedStream: OpenStream = (model, prompts, batch) => {
  const cache = new KVCache(model.config, batch);
  return {
    batch,
    start: () => prefill(model, prompts, batch, cache),
    next: (tokens) => decodeOne(model, tokens, cache),
    dispose: () => cache.dispose(),
  };
};

/** The reference: every step re-runs the whole prefix [B, T] without a cache. */
export const openUncachedStream: OpenStream = (model, prompts, batch) => {
  let tokens = prompts.slice(); // [B, T]
  return {
    batch,
    start: () => lastLogits(model, tokens, batch),
    next: (step) => {
      const T = tokens.length / batch;
      const longer = new Int32Array(batch * (T + 1)); // [B, T + 1]
      for (let b = 0; b < batch; b++) {
        longer.set(tokens.subarray(b * T, (b + 1) * T), b * (T + 1));
        longer[b * (T + 1) + T] = step[b]!;
      }
      tokens = longer;
      return lastLogits(model, tokens, batch);
    },
    dispose: () => undefined,
  };
};

/**
 * The conditional and unconditional branches of CFG. Today: two streams (two KV caches), so two
 * batched forwards per step. With per-row positions and a key-padding mask in GPT.forward this
 * becomes one stream over [cond rows; uncond rows] with the shorter prefixes left-padded, i.e.
 * one forward per step; nothing else in the sampler changes.
 */
function openGuidedStreams(
  open: OpenStream,
  model: GPT,
  conditional: Int32Array,
  unconditional: Int32Array,
  batch: number,
): [LogitsStream, LogitsStream] {
  if (process.env.MMGPT_CFG_TWO_FORWARDS === '1' || open !== openCachedStream) {
    const cond = open(model, conditional, batch);
    try {
      return [cond, open(model, unconditional, batch)];
    } catch (e) {
      cond.dispose();
      throw e;
    }
  }
  // One forward over [cond rows; uncond rows], each branch left-padded to the longer prefix.
  const pc = conditional.length / batch;
  const pu = unconditional.length / batch;
  const P = Math.max(pc, pu);
  const rows = 2 * batch;
  const padding = new Int32Array(rows); // [2B]
  const tokens = new Int32Array(rows * P); // [2B, P]
  for (let b = 0; b < rows; b++) {
    const src = b < batch ? conditional : unconditional;
    const len = b < batch ? pc : pu;
    const r = b < batch ? b : b - batch;
    padding[b] = P - len;
    tokens.fill(model.config.vocabSize - 1, b * P, b * P + P - len); // any token: masked out
    tokens.set(src.subarray(r * len, (r + 1) * len), b * P + P - len);
  }
  const cache = new KVCache(model.config, rows);
  const positionsFor = (T: number): Int32Array => {
    const pos = new Int32Array(rows * T);
    for (let b = 0; b < rows; b++)
      for (let t = 0; t < T; t++) pos[b * T + t] = Math.max(0, cache.pos + t - padding[b]!);
    return pos;
  };
  const run = (input: Int32Array, T: number): Float32Array =>
    noGrad(() =>
      tidy(() => {
        const layout = { positions: positionsFor(T), padding };
        const logits = model.forward(F.tensor(input, [rows, T], 'int32'), cache, layout);
        const last = T === 1 ? logits : F.slice(logits, 1, T - 1, T);
        return last.toFloat32Array(); // [2B * V]
      }),
    );
  let pendingUncond: Float32Array | null = null;
  const V = model.config.vocabSize;
  const split = (all: Float32Array): Float32Array => {
    pendingUncond = all.subarray(batch * V);
    return all.subarray(0, batch * V);
  };
  const cond: LogitsStream = {
    batch,
    start: () => split(run(tokens, P)),
    next: (step) => {
      const both = new Int32Array(rows);
      both.set(step, 0);
      both.set(step, batch);
      return split(run(both, 1));
    },
    dispose: () => cache.dispose(),
  };
  const uncond: LogitsStream = {
    batch,
    start: () => pendingUncond!,
    next: () => pendingUncond!,
    dispose: () => undefined,
  };
  return [cond, uncond];
}

// ---- batched generation -----------------------------------------------------------------------

export interface GenerateOptions extends SamplingOptions {
  /** Temperature of caption words (default: `temperature`); image codes use `temperature`. */
  textTemperature?: number;
  /** Most new tokens per row (default: until every row is complete, within the block size). */
  maxTokens?: number;
  /** Classifier-free guidance scale (default 1 = off; needs `unconditionalPrompts`). */
  guidance?: number;
  /** The unconditional context of each prompt (all of one length), for guidance. */
  unconditionalPrompts?: readonly Int32Array[];
  /** Caption grammar on top of the seed's rules (default 'none'). */
  grammar?: GrammarLevel;
  /** Seed of the per-row RNG streams (default 0). */
  seed?: number;
  /** Global index of the first row, for the per-row RNG streams when batching (default 0). */
  firstRow?: number;
}

/** Each row's RNG: a named sub-stream of the seed, independent of batching. */
export function rowRng(seed: number, row: number): Rng {
  return new Rng(deriveSeed(seed, `mmgpt-sample/${row}`));
}

function stackPrompts(
  prompts: readonly Int32Array[],
  rules: SamplingRules,
  what: string,
): { tokens: Int32Array; length: number; states: SequenceState[] } {
  if (prompts.length === 0) throw new Error(`${what}: no prompts given`);
  const length = prompts[0]!.length;
  const tokens = new Int32Array(prompts.length * length); // [B, P]
  const states = prompts.map((p, b) => {
    if (p.length !== length) {
      throw new Error(
        `${what}: all prompts in a batch must have the same length; prompt 0 has ${length} ` +
          `tokens, prompt ${b} has ${p.length}`,
      );
    }
    if (p.length === 0 || p[0] !== rules.vocab.bos) {
      throw new Error(`${what}: prompt ${b} must start with <bos> (token ${rules.vocab.bos})`);
    }
    tokens.set(p, b * length);
    try {
      return rules.stateAfter(p);
    } catch (e) {
      throw new Error(`${what}: prompt ${b}: ${(e as Error).message}`);
    }
  });
  return { tokens, length, states };
}

function runGeneration(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  opts: GenerateOptions,
  open: OpenStream,
): Int32Array[] {
  const V = vocab.size;
  if (model.config.vocabSize !== V) {
    throw new Error(
      `generate: the model has ${model.config.vocabSize} tokens, the vocabulary ${V}`,
    );
  }
  const sampling = checkSamplingOptions(opts);
  const textSampling = checkSamplingOptions({
    ...opts,
    temperature: opts.textTemperature ?? sampling.temperature,
  });
  const rules = new SamplingRules(vocab, { grammar: opts.grammar });
  const cond = stackPrompts(prompts, rules, 'generate');
  const B = prompts.length;
  const blockSize = model.config.blockSize;
  const guidance = opts.guidance ?? 1;
  if (!Number.isFinite(guidance)) throw new Error(`guidance must be finite, got ${guidance}`);
  const guided = guidance !== 1;
  let uncond: { tokens: Int32Array; length: number } | null = null;
  if (guided) {
    const u = opts.unconditionalPrompts;
    if (u === undefined || u.length !== B) {
      throw new Error(
        `generate: guidance ${guidance} needs one unconditional prompt per prompt ` +
          `(${B}), got ${u === undefined ? 'none' : u.length}`,
      );
    }
    uncond = stackPrompts(u, new SamplingRules(vocab), 'generate (unconditional prompts)');
  }
  const longest = Math.max(cond.length, uncond?.length ?? 0);
  if (longest > blockSize) {
    throw new Error(`generate: prompts of ${longest} tokens exceed the block size ${blockSize}`);
  }
  const maxTokens = opts.maxTokens ?? Infinity;
  if (!(maxTokens === Infinity || (Number.isInteger(maxTokens) && maxTokens >= 0))) {
    throw new Error(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  }
  const seed = opts.seed ?? 0;
  const firstRow = opts.firstRow ?? 0;
  const rngs = Array.from({ length: B }, (_, b) => rowRng(seed, firstRow + b));
  const states = cond.states.slice();
  const generated: number[][] = Array.from({ length: B }, () => []);
  const active = (): boolean => states.some((s) => s.phase !== 'complete');
  if (maxTokens === 0 || !active()) return prompts.map((p) => p.slice());

  const wasTraining = model.training;
  model.eval();
  const [condStream, uncondStream] = uncond
    ? openGuidedStreams(open, model, cond.tokens, uncond.tokens, B)
    : [open(model, cond.tokens, B), null];
  try {
    let logits = condStream.start(); // [B * V]
    let uncondLogits = uncondStream ? uncondStream.start() : null; // [B * V]
    for (let produced = 1; ; produced++) {
      const step = new Int32Array(B); // [B]: the token each row appends
      for (let b = 0; b < B; b++) {
        const state = states[b]!;
        if (state.phase === 'complete') {
          step[b] = vocab.bos; // dummy input for a finished row; its outputs are ignored
          continue;
        }
        let row = logits.subarray(b * V, (b + 1) * V);
        if (uncondLogits)
          row = guidedLogits(row, uncondLogits.subarray(b * V, (b + 1) * V), guidance);
        const token = sampleToken(
          row,
          rules.maskFor(state),
          state.phase === 'text' ? textSampling : sampling,
          rngs[b]!,
        );
        states[b] = rules.advance(state, token);
        generated[b]!.push(token);
        step[b] = token;
      }
      // Feeding `step` puts it at position length + produced - 1, which must be < blockSize.
      if (!active() || produced >= maxTokens || longest + produced > blockSize) break;
      logits = condStream.next(step);
      if (uncondStream) uncondLogits = uncondStream.next(step);
    }
  } finally {
    condStream.dispose();
    uncondStream?.dispose();
    model.train(wasTraining);
  }
  return prompts.map((p, b) => Int32Array.from([...p, ...generated[b]!]));
}

/**
 * Batched generation with the KV cache: one prefill of the prompts (each starting with <bos>,
 * all of one length), then one-token decode steps, every token chosen under the rules' masks.
 * Returns each row's whole sequence (prompt + new tokens).
 */
export function generate(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  opts: GenerateOptions = {},
): Int32Array[] {
  return runGeneration(model, vocab, prompts, opts, openCachedStream);
}

/** Like `generate`, but re-runs the full prefix every step (reference and speed baseline). */
export function generateUncached(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  opts: GenerateOptions = {},
): Int32Array[] {
  return runGeneration(model, vocab, prompts, opts, openUncachedStream);
}

// ---- modes -----------------------------------------------------------------------------------

/** A sample and its parts. */
export interface Sample {
  /** The whole sequence, <bos> first. */
  tokens: Int32Array;
  /** 1: caption then image; 2: image then caption. */
  order: SequenceOrder | null;
  /** The image codes (49 when complete). */
  imageCodes: Int32Array;
  /** The caption words (6 when complete). */
  words: string[];
  /** The words, space-separated. */
  caption: string;
  /** Digit and palette colours when the caption is grammatical with palette colours, else null. */
  meaning: Caption | null;
  complete: boolean;
  /** With reranking: the score this sample won with, and how many candidates it beat. */
  rerank?: { score: number; candidates: number };
}

/** Splits a sampled sequence into a Sample. */
export function toSample(tokens: Int32Array, vocab: Vocab): Sample {
  const parsed = parseSequence(tokens, vocab);
  const wordTokens = parsed.words.map((w) => vocab.wordToken(w));
  return {
    tokens,
    order: parsed.order,
    imageCodes: parsed.imageCodes,
    words: parsed.words,
    caption: parsed.words.join(' '),
    meaning: wordTokens.length === CAPTION_LENGTH ? vocab.tryDecodeCaption(wordTokens) : null,
    complete: parsed.complete,
  };
}

export interface ModeOptions extends Omit<GenerateOptions, 'unconditionalPrompts' | 'firstRow'> {
  /** Rows per batched generation (default 64); samples do not depend on it. */
  batchSize?: number;
  /** false: the uncached reference path (default true). */
  cached?: boolean;
  /**
   * Self-reranking: draw this many candidates per prompt and keep the one the model scores best
   * through the reverse order (default 1 = off; see rerank.ts). Candidate 0 is the unreranked
   * sample, so K = 1 gives exactly the samples without reranking.
   */
  rerank?: number;
  /** How image -> text candidates are scored (default 'both'; see rerank.ts). */
  imageToTextScore?: ImageToTextScore;
  /**
   * With reranking. Image -> text: also score the best candidate's caption with each of the other
   * nine digits, and keep the best of all. Text -> image and unconditional: add to each
   * candidate's score the log posterior of its caption's digit over the ten digits, under
   * p(image | caption). Default false; see rerank.ts.
   */
  digitSearch?: boolean;
  /**
   * With reranking, image -> text only: after the digit search (if on), score the caption with
   * each other palette colour as foreground, then as background, keeping the best each time.
   * Default false; see rerank.ts.
   */
  colourSearch?: boolean;
  /**
   * With reranking, image -> text only: choose the digit last by its score summed over the image
   * and its one-pixel shifts (views.ts). The shifted images' codes come in `imageViews`, which
   * must then be given. Default false; see rerank.ts.
   */
  shiftViews?: boolean;
  /** Image -> text: the codes of each prompt image's shifted views (`shiftedViewCodes`). */
  imageViews?: readonly (readonly ArrayLike<number>[])[];
  /**
   * Unconditional only: draw each caption first, then its image as text -> image does (guidance
   * applies to the image; reranking keeps the best of K whole pairs). Default false: the model
   * chooses the order.
   */
  captionFirst?: boolean;
}

/** Samples of a mode: K candidates per prompt (K = opts.rerank), the best of each kept. */
function runModeReranked(
  model: GPT,
  vocab: Vocab,
  mode: 'textToImage' | 'imageToText' | 'unconditional',
  prompts: Int32Array[],
  unconditionalPrompts: Int32Array[] | null,
  opts: ModeOptions,
): Sample[] {
  const K = checkRerank(opts.rerank ?? 1);
  if (K === 1) return runMode(model, vocab, prompts, unconditionalPrompts, opts);
  const useViews = mode === 'imageToText' && opts.shiftViews === true;
  if (useViews) checkImageViews(vocab, opts.imageViews, prompts.length);
  const seed = opts.seed ?? 0;
  const candidates: Sample[][] = [];
  for (let c = 0; c < K; c++)
    candidates.push(
      runMode(model, vocab, prompts, unconditionalPrompts, {
        ...opts,
        seed: candidateSeed(seed, c),
      }),
    );
  return rerankChoose(model, vocab, mode, candidates, {
    imageToTextScore: opts.imageToTextScore,
    digitSearch: opts.digitSearch,
    colourSearch: opts.colourSearch,
    imageViews: useViews ? opts.imageViews : undefined,
    batchSize: opts.batchSize,
  });
}

/** shiftViews needs each prompt image's views: one list per prompt, each view 49 image codes. */
function checkImageViews(
  vocab: Vocab,
  views: ModeOptions['imageViews'],
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

function runMode(
  model: GPT,
  vocab: Vocab,
  prompts: Int32Array[],
  unconditionalPrompts: Int32Array[] | null,
  opts: ModeOptions,
): Sample[] {
  const batchSize = opts.batchSize ?? 64;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const run = opts.cached === false ? generateUncached : generate;
  const {
    batchSize: _b,
    cached: _c,
    rerank: _r,
    imageToTextScore: _s,
    digitSearch: _d,
    colourSearch: _cs,
    shiftViews: _sv,
    imageViews: _iv,
    captionFirst: _cf,
    ...generateOptions
  } = opts;
  void _sv;
  void _iv;
  void _cf;
  void _d;
  void _cs;
  void _b;
  void _c;
  void _r;
  void _s;
  const samples: Sample[] = [];
  for (let start = 0; start < prompts.length; start += batchSize) {
    const end = Math.min(start + batchSize, prompts.length);
    const sequences = run(model, vocab, prompts.slice(start, end), {
      ...generateOptions,
      unconditionalPrompts: unconditionalPrompts?.slice(start, end),
      firstRow: start,
    });
    for (const s of sequences) samples.push(toSample(s, vocab));
  }
  return samples;
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
  const prompts = captions.map((c, i) =>
    Int32Array.from([
      vocab.bos,
      vocab.endOfImage,
      ...captionTokensOf(vocab, c, i),
      vocab.endOfText,
    ]),
  );
  const uncond = prompts.map(() => Int32Array.from([vocab.bos, vocab.endOfText]));
  return runModeReranked(model, vocab, 'textToImage', prompts, uncond, opts);
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
  return runModeReranked(model, vocab, 'imageToText', prompts, uncond, opts);
}

/**
 * Unconditional: n sequences from `<bos>`; the model chooses the order under the masks. With
 * `captionFirst`, each caption is drawn first from p(caption) (`<bos> <end of image>`, the words
 * at the word temperature), then its image as text -> image draws it, with these options
 * (guidance included): an ancestral sample of p(caption) p(image | caption). Reranking draws K
 * such (caption, image) pairs and keeps the one whose caption is best read back off its image,
 * as for any unconditional candidates (rerank.ts).
 */
export function unconditional(
  model: GPT,
  vocab: Vocab,
  n: number,
  opts: ModeOptions = {},
): Sample[] {
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`n must be a positive integer, got ${n}`);
  if (opts.captionFirst === true) {
    // Each candidate a whole caption-first sample; reranked like any unconditional candidates.
    const K = checkRerank(opts.rerank ?? 1);
    const seed = opts.seed ?? 0;
    const candidates = Array.from({ length: K }, (_, c) =>
      captionThenImage(model, vocab, n, { ...opts, seed: candidateSeed(seed, c) }),
    );
    if (K === 1) return candidates[0]!;
    return rerankChoose(model, vocab, 'unconditional', candidates, {
      digitSearch: opts.digitSearch,
      batchSize: opts.batchSize,
    });
  }
  if ((opts.guidance ?? 1) !== 1) {
    throw new Error(
      `guidance needs a condition: use it with text -> image, image -> text or an unconditional ` +
        `caption drawn first (captionFirst), not with the model choosing the order`,
    );
  }
  const prompts = Array.from({ length: n }, () => Int32Array.from([vocab.bos]));
  return runModeReranked(model, vocab, 'unconditional', prompts, null, opts);
}

/** Seed of the image half of a caption-first unconditional sample (the caption takes `seed`). */
export function captionFirstImageSeed(seed: number): number {
  return deriveSeed(seed, 'mmgpt-unconditional/image');
}

/** One caption-first candidate per row: the captions, then their images by `textToImage`. */
function captionThenImage(model: GPT, vocab: Vocab, n: number, opts: ModeOptions): Sample[] {
  const prompt = Int32Array.from([vocab.bos, vocab.endOfImage]);
  const captions = runMode(
    model,
    vocab,
    Array.from({ length: n }, () => prompt),
    null,
    {
      ...opts,
      guidance: 1,
      maxTokens: CAPTION_LENGTH,
    },
  );
  const words = captions.map((c, i) => {
    const tokens = c.words.map((w) => vocab.wordToken(w));
    if (tokens.length !== CAPTION_LENGTH)
      throw new Error(`unconditional caption ${i}: ${tokens.length} words, not ${CAPTION_LENGTH}`);
    return tokens;
  });
  const seed = captionFirstImageSeed(opts.seed ?? 0);
  return textToImage(model, vocab, words, { ...opts, captionFirst: false, rerank: 1, seed });
}
