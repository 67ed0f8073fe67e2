// The model steps of the sampler (gpt-fast's `prefill` / `decode_one_token`): one forward over
// the whole prompt fills the preallocated KVCache, then each step feeds one token per row.
// `openUncachedStream` re-runs the whole prefix every step: the reference the cache must match,
// and the speed baseline.
// Classifier-free guidance needs the logits of two contexts per row, the conditional and the
// unconditional one, of different lengths: `openGuidedStreams` runs both branches as one batched
// forward over [cond rows; uncond rows], each branch left-padded to the longer prefix with
// per-row positions and a key-padding mask (MMGPT_CFG_TWO_FORWARDS=1, or the uncached path: two
// streams, two forwards per step).
// Where the backend has CUDA graphs (and `graphs` is not false, nor MMGPT_CUDA_GRAPHS=0), the
// cached streams' decode steps are replays of one captured step (decodeGraph.ts); the prefill and
// everything on other backends run as before.
// Generation runs in eval mode (no dropout); the caller sets it.

import { noGrad, tidy } from '../engine/tensor';
import * as F from '../engine/ops';
import { GPT, KVCache } from '../gpt/model';
import { GraphedDecode } from './decodeGraph';

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

/** Opens a stream of `batch` prompts [B, P]; graphs false: never through a decode graph. */
export type OpenStream = (
  model: GPT,
  prompts: Int32Array,
  batch: number,
  graphs?: boolean,
) => LogitsStream;

/** prefill + decodeOne over a preallocated KVCache (with graphs: each step one replay). */
export const openCachedStream: OpenStream = (model, prompts, batch, graphs = true) => {
  const graphed = graphs ? GraphedDecode.open(model, batch) : null;
  if (graphed !== null) {
    const cache = graphed.cache;
    return {
      batch,
      start: () => prefill(model, prompts, batch, cache),
      next: (tokens) => graphed.step(tokens, new Int32Array(batch).fill(cache.pos)),
      dispose: () => graphed.close(),
    };
  }
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
 * The conditional and unconditional branches of CFG: one batched forward per step over both
 * (cached), or two streams, i.e. two forwards per step (the uncached reference, or
 * MMGPT_CFG_TWO_FORWARDS=1).
 */
export function openGuidedStreams(
  open: OpenStream,
  model: GPT,
  conditional: Int32Array,
  unconditional: Int32Array,
  batch: number,
  graphs = true,
): [LogitsStream, LogitsStream] {
  if (process.env.MMGPT_CFG_TWO_FORWARDS === '1' || open !== openCachedStream) {
    const cond = open(model, conditional, batch, graphs);
    try {
      return [cond, open(model, unconditional, batch, graphs)];
    } catch (e) {
      cond.dispose();
      throw e;
    }
  }
  return openPaddedGuidedStreams(model, conditional, unconditional, batch, graphs);
}

/** The prompts [cond rows; uncond rows], each branch left-padded to the longer prefix. */
function padBranches(
  model: GPT,
  conditional: Int32Array,
  unconditional: Int32Array,
  batch: number,
): { tokens: Int32Array; padding: Int32Array; length: number } {
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
  return { tokens, padding, length: P };
}

/**
 * Both branches in one KV cache of 2B rows, one forward per step: the conditional stream runs
 * it, and the unconditional stream hands out the other half of the same logits.
 */
function openPaddedGuidedStreams(
  model: GPT,
  conditional: Int32Array,
  unconditional: Int32Array,
  batch: number,
  graphs: boolean,
): [LogitsStream, LogitsStream] {
  const rows = 2 * batch;
  const { tokens, padding, length: P } = padBranches(model, conditional, unconditional, batch);
  const graphed = graphs ? GraphedDecode.open(model, rows, padding) : null;
  const cache = graphed?.cache ?? new KVCache(model.config, rows);
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
      return split(graphed ? graphed.step(both, positionsFor(1)) : run(both, 1));
    },
    dispose: () => (graphed ? graphed.close() : cache.dispose()),
  };
  const uncond: LogitsStream = {
    batch,
    start: () => pendingUncond!,
    next: () => pendingUncond!,
    dispose: () => undefined,
  };
  return [cond, uncond];
}
