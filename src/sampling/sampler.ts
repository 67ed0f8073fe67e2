// The sampler: next-token choice (temperature, top-k, top-p under the rules' masks), classifier-
// free guidance, and batched generation with the KV cache (streams.ts), the same for every mode.
// What is specific to this dataset (the searches over digits, colours and shifted views) comes
// after decoding, as rerank stages (searches.ts); the modes put the two together (modes.ts).
//
// References:
// - nanochat `sample_next_token`: sampling is a pure function of the logits and a seeded RNG;
//   temperature 0 means argmax (no random number is drawn).
// - DALLE-pytorch `logits_mask`: the allowed-token mask (rules.ts) is applied first, then
//   temperature, then top-k, then top-p (HF's order), all on the allowed tokens only.
// - gpt-fast `prefill` / `decode_one_token` (streams.ts): one forward over the whole prompt
//   fills the preallocated KVCache, then each step feeds one token per row. `generateUncached`
//   re-runs the whole prefix every step: the reference the cache must match.
// - Classifier-free guidance (Ho & Salimans; as in Make-A-Scene / Parti for autoregressive
//   models), at no training cost because both orders are trained: for text -> image the
//   conditional context is `<bos> <end of image> caption(6) <end of text>` and the unconditional
//   one `<bos> <end of text>` (order 2 teaches p(image)); for image -> text the conditional one is
//   `<bos> <end of text> image(49) <end of image>` and the unconditional one `<bos> <end of image>`
//   (order 1 teaches p(text)). Every sampled token is appended to both. On log-probabilities:
//   guided = lc + (g - 1) (lc - lu) = lu + g (lc - lu), before the mask and top-k/top-p; the
//   first form makes g = 1 give exactly lc.
// Notable choices:
// - Every row has its own RNG stream, derived from (seed, row index): sample i is the same
//   whether it is drawn alone or in a batch of any size, and cached and uncached generation draw
//   the same numbers (so on the js backend they give identical samples).
// - Rows that complete before the others are fed a dummy token and ignored (in our modes every
//   row completes at 58 tokens, so this only happens with custom prompts).
// - Generation runs in eval mode (no dropout) and restores the model's mode afterwards.
// - On the cuda backend each cached decode step is one replay of a CUDA graph (decodeGraph.ts;
//   `graphs: false` or MMGPT_CUDA_GRAPHS=0: step by step), with the same samples; the logits of
//   each step cross to the host, where the token is chosen.

import type { GPT } from '../gpt/model';
import { Rng, deriveSeed } from '../nn/rng';
import type { Vocab } from '../data/vocab';
import { SamplingRules, type GrammarLevel, type SequenceState } from './rules';
import { toSample, type Sample } from './sample';
import { openCachedStream, openGuidedStreams, openUncachedStream } from './streams';
import type { LogitsStream, OpenStream } from './streams';
import { chooseRows } from './choose';
import { hostSampler } from '../engine/registry';
import type { HostSampler } from '../engine/backend';

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

/** Scratch rows of sampleToken, reused from call to call (it runs once per row and step). */
let allowedScratch = new Int32Array(0);
let weightScratch = new Float64Array(0);

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
  if (allowedScratch.length < n) {
    allowedScratch = new Int32Array(n);
    weightScratch = new Float64Array(n);
  }
  const allowed = allowedScratch; // the allowed ids, in id order, in allowed[0 .. count)
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
  const weights = weightScratch.subarray(0, kept.length);
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

/** log sum exp of one row of logits, in float64: log softmax's normaliser. */
function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return max + Math.log(sum);
}

/** log softmax of one row of logits, in float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  const lse = logSumExp(logits);
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
  // The two log softmaxes, lc = x - lse(x), computed as they are used.
  const lseC = logSumExp(conditional);
  const lseU = logSumExp(unconditional);
  const out = new Float32Array(conditional.length);
  for (let i = 0; i < out.length; i++) {
    const lc = conditional[i]! - lseC;
    out[i] = lc + (scale - 1) * (lc - (unconditional[i]! - lseU));
  }
  return out;
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
  /** Caption grammar on top of the original rules (default 'none'). */
  grammar?: GrammarLevel;
  /** Seed of the per-row RNG streams (default 0). */
  seed?: number;
  /**
   * Each row's RNG stream as (seed, row index), in place of `seed` (whose row b draws stream b):
   * the rows of one batch of a longer list, or drawn under different seeds (the reranking
   * candidates of decodeCandidates).
   */
  rowStreams?: readonly RowStream[];
  /**
   * false: decode step by step even where the backend has CUDA graphs (default true: each cached
   * decode step is one replay of the captured step, decodeGraph.ts; the same samples).
   */
  graphs?: boolean;
}

/** Which RNG stream a row draws from: rowRng(seed, row). */
export interface RowStream {
  seed: number;
  row: number;
}

/** Each row's RNG: a named sub-stream of the seed, independent of batching. */
export function rowRng(seed: number, row: number): Rng {
  return new Rng(deriveSeed(seed, `mmgpt-sample/${row}`));
}

/** Prompts of one length stacked into [B, P], with the rules' state after each. */
interface StackedPrompts {
  tokens: Int32Array;
  length: number;
  states: SequenceState[];
}

function stackPrompts(
  prompts: readonly Int32Array[],
  rules: SamplingRules,
  what: string,
): StackedPrompts {
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

/** The checked settings and stacked prompts of one generation. */
interface GenerationPlan {
  sampling: CheckedSamplingOptions;
  textSampling: CheckedSamplingOptions;
  rules: SamplingRules;
  cond: StackedPrompts;
  uncond: StackedPrompts | null;
  guidance: number;
  /** The longer prompt length of the two branches. */
  longest: number;
  maxTokens: number;
  rngs: Rng[];
}

/** Checks everything a generation needs, each error saying what is accepted. */
function planGeneration(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  opts: GenerateOptions,
): GenerationPlan {
  if (model.config.vocabSize !== vocab.size) {
    throw new Error(
      `generate: the model has ${model.config.vocabSize} tokens, the vocabulary ${vocab.size}`,
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
  const guidance = opts.guidance ?? 1;
  if (!Number.isFinite(guidance)) throw new Error(`guidance must be finite, got ${guidance}`);
  let uncond: StackedPrompts | null = null;
  if (guidance !== 1) {
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
  if (longest > model.config.blockSize) {
    throw new Error(
      `generate: prompts of ${longest} tokens exceed the block size ${model.config.blockSize}`,
    );
  }
  const maxTokens = opts.maxTokens ?? Infinity;
  if (!(maxTokens === Infinity || (Number.isInteger(maxTokens) && maxTokens >= 0))) {
    throw new Error(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  }
  const seed = opts.seed ?? 0;
  const streams = opts.rowStreams;
  if (streams !== undefined && streams.length !== B)
    throw new Error(`generate: ${B} prompts but ${streams.length} row streams`);
  const rngs = Array.from({ length: B }, (_, b) =>
    streams === undefined ? rowRng(seed, b) : rowRng(streams[b]!.seed, streams[b]!.row),
  );
  return { sampling, textSampling, rules, cond, uncond, guidance, longest, maxTokens, rngs };
}

/** The sampling options of a row in `state`: the words' or the image codes'. */
function samplingFor(plan: GenerationPlan, state: SequenceState): CheckedSamplingOptions {
  return state.phase === 'text' ? plan.textSampling : plan.sampling;
}

/**
 * Every row's token of one step by the addon (choose.ts), each row's uniform number drawn here
 * first, as sampleToken draws it: one at a temperature above 0, none at 0.
 */
function chooseNatively(
  sampler: HostSampler,
  plan: GenerationPlan,
  states: readonly SequenceState[],
  logits: Float32Array,
  uncondLogits: Float32Array | null,
  V: number,
): Int32Array {
  const B = states.length;
  const temperature = new Float64Array(B);
  const uniform = new Float64Array(B);
  const masks = states.map((state, b) => {
    if (state.phase === 'complete') return null;
    const t = samplingFor(plan, state).temperature;
    temperature[b] = t;
    if (t !== 0) uniform[b] = plan.rngs[b]!.uniform();
    return plan.rules.maskFor(state);
  });
  return chooseRows(sampler, {
    logits,
    uncond: uncondLogits,
    guidance: plan.guidance,
    V,
    masks,
    temperature,
    uniform,
  });
}

/** The decoding loop: one token per unfinished row a step; returns each row's new tokens. */
function decodeRows(
  plan: GenerationPlan,
  vocab: Vocab,
  blockSize: number,
  condStream: LogitsStream,
  uncondStream: LogitsStream | null,
): number[][] {
  const V = vocab.size;
  const B = plan.rngs.length;
  const states = plan.cond.states.slice();
  const generated: number[][] = Array.from({ length: B }, () => []);
  const active = (): boolean => states.some((s) => s.phase !== 'complete');
  let logits = condStream.start(); // [B * V]
  let uncondLogits = uncondStream ? uncondStream.start() : null; // [B * V]
  // The addon chooses every row of a step at once where it loads (choose.ts), except with top-k
  // or top-p; a row it leaves (-1) is chosen here, which throws sampleToken's error.
  const native = [plan.sampling, plan.textSampling].every(
    (o) => o.topK === Infinity && o.topP === 1,
  )
    ? hostSampler()
    : null;
  const chooseHere = (b: number): number => {
    const state = states[b]!;
    let row = logits.subarray(b * V, (b + 1) * V);
    if (uncondLogits)
      row = guidedLogits(row, uncondLogits.subarray(b * V, (b + 1) * V), plan.guidance);
    return sampleToken(row, plan.rules.maskFor(state), samplingFor(plan, state), plan.rngs[b]!);
  };
  for (let produced = 1; ; produced++) {
    const step = new Int32Array(B); // [B]: the token each row appends
    const chosen = native && chooseNatively(native, plan, states, logits, uncondLogits, V);
    for (let b = 0; b < B; b++) {
      const state = states[b]!;
      if (state.phase === 'complete') {
        step[b] = vocab.bos; // dummy input for a finished row; its outputs are ignored
        continue;
      }
      const token = chosen && chosen[b]! >= 0 ? chosen[b]! : chooseHere(b);
      states[b] = plan.rules.advance(state, token);
      generated[b]!.push(token);
      step[b] = token;
    }
    // Feeding `step` puts it at position length + produced - 1, which must be < blockSize.
    if (!active() || produced >= plan.maxTokens || plan.longest + produced > blockSize) break;
    logits = condStream.next(step);
    if (uncondStream) uncondLogits = uncondStream.next(step);
  }
  return generated;
}

function runGeneration(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  opts: GenerateOptions,
  open: OpenStream,
): Int32Array[] {
  const plan = planGeneration(model, vocab, prompts, opts);
  const B = prompts.length;
  const unfinished = plan.cond.states.some((s) => s.phase !== 'complete');
  if (plan.maxTokens === 0 || !unfinished) return prompts.map((p) => p.slice());

  const wasTraining = model.training;
  model.eval();
  const graphs = opts.graphs !== false;
  const [condStream, uncondStream] = plan.uncond
    ? openGuidedStreams(open, model, plan.cond.tokens, plan.uncond.tokens, B, graphs)
    : [open(model, plan.cond.tokens, B, graphs), null];
  try {
    const generated = decodeRows(plan, vocab, model.config.blockSize, condStream, uncondStream);
    return prompts.map((p, b) => Int32Array.from([...p, ...generated[b]!]));
  } finally {
    condStream.dispose();
    uncondStream?.dispose();
    model.train(wasTraining);
  }
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

// ---- decoding prompts in batches ---------------------------------------------------------------

/** What decoding a list of prompts takes: the generation settings and the batching. */
export interface DecodeOptions extends Omit<
  GenerateOptions,
  'unconditionalPrompts' | 'rowStreams'
> {
  /** Rows per batched generation (default 64); samples do not depend on it. */
  batchSize?: number;
  /** false: the uncached reference path (default true). */
  cached?: boolean;
}

/**
 * Samples of `prompts` (with their unconditional contexts for guidance, or null), generated in
 * batches of `batchSize` rows; row i takes RNG stream i whatever the batching.
 */
export function decodePrompts(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  unconditionalPrompts: readonly Int32Array[] | null,
  opts: DecodeOptions,
): Sample[] {
  return decodeCandidates(model, vocab, prompts, unconditionalPrompts, [opts.seed ?? 0], opts)[0]!;
}

/**
 * One set of samples of `prompts` per seed: set c is exactly decodePrompts under seeds[c], but
 * the sets are decoded together, in batches of `batchSize` rows over all of them, so that
 * reranking's K candidates share each decode step's products.
 */
export function decodeCandidates(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  unconditionalPrompts: readonly Int32Array[] | null,
  seeds: readonly number[],
  opts: DecodeOptions,
): Sample[][] {
  const n = prompts.length;
  const rows = seeds.flatMap((seed) => prompts.map((_, row) => ({ seed, row })));
  const samples = decodeStreams(
    model,
    vocab,
    seeds.flatMap(() => prompts),
    unconditionalPrompts && seeds.flatMap(() => unconditionalPrompts),
    rows,
    opts,
  );
  return seeds.map((_, c) => samples.slice(c * n, (c + 1) * n));
}

/**
 * The samples of rows that each have their own prompt (all of one length), unconditional context
 * and RNG stream, generated in batches of `batchSize` rows: row j draws from
 * rowRng(streams[j].seed, streams[j].row), so its sample does not depend on the batching.
 */
export function decodeStreams(
  model: GPT,
  vocab: Vocab,
  prompts: readonly Int32Array[],
  unconditionalPrompts: readonly Int32Array[] | null,
  streams: readonly RowStream[],
  opts: DecodeOptions,
): Sample[] {
  const batchSize = opts.batchSize ?? 64;
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  }
  if (streams.length !== prompts.length)
    throw new Error(`decode: ${prompts.length} prompts but ${streams.length} row streams`);
  const run = opts.cached === false ? generateUncached : generate;
  const samples: Sample[] = [];
  for (let start = 0; start < prompts.length; start += batchSize) {
    const end = Math.min(start + batchSize, prompts.length);
    const sequences = run(model, vocab, prompts.slice(start, end), {
      ...opts,
      unconditionalPrompts: unconditionalPrompts?.slice(start, end),
      rowStreams: streams.slice(start, end),
    });
    for (const s of sequences) samples.push(toSample(s, vocab));
  }
  return samples;
}
