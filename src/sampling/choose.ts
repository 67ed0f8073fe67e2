// One decode step's choice of every row's token in the native addon (native/src/sampling.cc),
// where it loads: the log-sum-exps of guidance, the guided logits, the masks, the temperature and
// the draw, bit for bit what sampleToken and guidedLogits (sampler.ts) compute row by row. The
// rows of a step cross to the addon in one call instead of some 3,000 Math.exp calls per row in
// JavaScript (docs/performance.md). The caller draws each row's uniform number first, as
// sampleToken would (one per row at a temperature above 0, none at 0), and chooses in TypeScript
// any row the addon leaves (-1): a NaN logit, no allowed token, or every allowed logit -Infinity,
// where sampleToken throws its own error. Top-k and top-p are chosen in TypeScript only.

import type { HostSampler } from '../engine/backend';

/** One decode step of `rows` rows over a vocabulary of V tokens. */
export interface StepRows {
  /** [rows * V], the conditional logits. */
  logits: Float32Array;
  /** [rows * V], the unconditional logits with guidance; null without. */
  uncond: Float32Array | null;
  guidance: number;
  V: number;
  /** Each row's allowed-token mask; null: the row is complete (its token is ignored). */
  masks: readonly (Uint8Array | null)[];
  /** Each row's temperature (0: argmax). */
  temperature: Float64Array;
  /** Each row's uniform number in [0, 1) (unused at temperature 0). */
  uniform: Float64Array;
}

/** The rows' log-sum-exps, max + Math.log(sum exp(x - max)), as sampler.ts's logSumExp. */
function logSumExps(sampler: HostSampler, x: Float32Array, rows: number, V: number): Float64Array {
  const max = new Float64Array(rows);
  const sum = new Float64Array(rows);
  sampler.logSumExpParts(x, rows, V, max, sum);
  for (let r = 0; r < rows; r++) max[r] = max[r]! + Math.log(sum[r]!);
  return max;
}

/**
 * Each row's token (-2 for a complete row; -1 where the caller must choose in TypeScript), chosen
 * by the addon.
 */
export function chooseRows(sampler: HostSampler, step: StepRows): Int32Array {
  const rows = step.masks.length;
  const { V } = step;
  // The distinct masks of the step (a few shared objects), V bytes each, and each row's index.
  const index = new Map<Uint8Array, number>();
  const maskOf = new Int32Array(rows);
  step.masks.forEach((m, r) => {
    if (m === null) {
      maskOf[r] = -1;
      return;
    }
    let i = index.get(m);
    if (i === undefined) index.set(m, (i = index.size));
    maskOf[r] = i;
  });
  const table = new Uint8Array(index.size * V);
  index.forEach((i, m) => table.set(m, i * V));
  const guided = step.uncond !== null;
  const out = new Int32Array(rows);
  sampler.chooseTokens(
    step.logits,
    step.uncond,
    guided ? logSumExps(sampler, step.logits, rows, V) : null,
    guided ? logSumExps(sampler, step.uncond!, rows, V) : null,
    step.guidance,
    rows,
    V,
    table,
    maskOf,
    step.temperature,
    step.uniform,
    out,
  );
  return out;
}
