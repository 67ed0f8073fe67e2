// Optimisers (Adam, AdamW), gradient-norm clipping and learning-rate schedules.
//
// The update is one multi-tensor backend call over every parameter (Backend.adamMulti), with
// the global-norm clipping fused into it: the norm is one reduction on the backend and the
// gradient scale is applied inside the update, so a step reads nothing back to the host (the
// norm is downloaded only when `lastGradNorm` is read). Optimiser state (m, v, step) is exported
// for checkpoints and restored exactly.

import type { AdamTensors } from '../engine/backend';
import type { Tensor } from '../engine/tensor';
import { keep } from '../engine/tensor';
import * as F from '../engine/ops';

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW (decoupled weight decay) if true; Adam with L2 added to the gradient otherwise. */
  decoupled?: boolean;
  /** Clip the global gradient norm to this value (0 or undefined: no clipping). */
  clipNorm?: number;
  /** Parameters whose name matches get no weight decay (e.g. biases, LayerNorm, embeddings). */
  noDecay?: (name: string) => boolean;
}

/** What a training loop needs of an optimiser (Adam, AdamW, Muon). */
export interface Optimizer {
  /** Optimiser steps taken. */
  readonly step: number;
  /** Global L2 norm of all gradients. */
  gradNorm(): number;
  /** One update of every parameter that has a gradient, at the schedule's `lr`. */
  update(lr?: number): void;
  zeroGrad(): void;
  state(): OptimizerState;
  loadState(state: OptimizerState, source?: string): void;
  dispose(): void;
}

export interface OptimizerState {
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

export class Adam implements Optimizer {
  step = 0;
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  readonly clipNorm: number;
  private readonly m: Tensor[];
  private readonly v: Tensor[];
  private readonly decay: boolean[];
  /** [1] the global gradient norm of the last clipped step, written by the backend. */
  private readonly normBuf: Tensor;

  constructor(
    private readonly params: readonly [string, Tensor][],
    opts: AdamOptions,
  ) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.decoupled = opts.decoupled ?? false;
    this.clipNorm = opts.clipNorm ?? 0;
    this.m = params.map(([, p]) => keep(F.zeros(p.shape)));
    this.v = params.map(([, p]) => keep(F.zeros(p.shape)));
    this.decay = params.map(([n]) => !(opts.noDecay?.(n) ?? false));
    this.normBuf = keep(F.zeros([1]));
  }

  /** The global gradient norm before clipping, from the last step (0 without clipping). */
  get lastGradNorm(): number {
    return this.normBuf.item();
  }

  /** Global L2 norm of all gradients. */
  gradNorm(): number {
    let s = 0;
    for (const [, p] of this.params) if (p.grad) s += F.sumOfSquares(p.grad);
    return Math.sqrt(s);
  }

  /** One update of every parameter that has a gradient; `lr` overrides the current rate. */
  update(lr = this.lr): void {
    this.step++;
    this.lr = lr;
    const t: AdamTensors = { params: [], grads: [], m: [], v: [], sizes: [], weightDecays: [] };
    this.params.forEach(([, p], i) => {
      if (!p.grad) return;
      t.params.push(p.buf);
      t.grads.push(p.grad.buf);
      t.m.push(this.m[i].buf);
      t.v.push(this.v[i].buf);
      t.sizes.push(p.size);
      t.weightDecays.push(this.decay[i] ? this.weightDecay : 0);
    });
    const adamParams = {
      lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: 0,
      decoupled: this.decoupled,
      step: this.step,
      gradScale: 1,
    };
    this.normBuf.backend.adamMulti(t, adamParams, this.clipNorm, this.normBuf.buf);
  }

  zeroGrad(): void {
    for (const [, p] of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  state(): OptimizerState {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    this.params.forEach(([n], i) => {
      m[n] = this.m[i].toFloat32Array();
      v[n] = this.v[i].toFloat32Array();
    });
    return { step: this.step, m, v };
  }

  loadState(state: OptimizerState, source = 'optimiser state'): void {
    this.params.forEach(([n, p], i) => {
      for (const [which, src, dst] of [
        ['m', state.m[n], this.m[i]],
        ['v', state.v[n], this.v[i]],
      ] as const) {
        if (!src || src.length !== p.size)
          throw new Error(`${source}: ${which} for '${n}' is missing or has the wrong size`);
        const tmp = dst.backend.upload(src);
        dst.backend.copyBlock(tmp, dst.buf, 1, 1, 0, 1, 0, 1, p.size, false);
        dst.backend.free(tmp);
      }
    });
    this.step = state.step;
  }

  dispose(): void {
    this.m.forEach((t) => t.dispose());
    this.v.forEach((t) => t.dispose());
    this.normBuf.dispose();
  }
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export class AdamW extends Adam {
  constructor(params: readonly [string, Tensor][], opts: AdamOptions) {
    super(params, { weightDecay: 0.01, ...opts, decoupled: true });
  }
}

// ---- schedules -----------------------------------------------------------------------------------

/** A learning rate as a function of the 0-based step. */
export type Schedule = (step: number) => number;

export function constantLr(lr: number): Schedule {
  return () => lr;
}

/** Linear warm-up from 0 to `lr` over `warmupSteps`, then linear decay to `minLr` at `totalSteps`. */
export function warmupLinearLr(
  lr: number,
  warmupSteps: number,
  totalSteps: number,
  minLr = 0,
): Schedule {
  return warmupStableDecayLr(lr, warmupSteps, totalSteps - warmupSteps, totalSteps, minLr);
}

/**
 * Warm-up, stable, decay: linear warm-up from 0 to `lr` over `warmupSteps`, `lr` held until the
 * last `decaySteps` steps, then linear decay to `minLr` at `totalSteps` (the learning rate stays
 * at its peak for most of a short run and anneals at its end).
 */
export function warmupStableDecayLr(
  lr: number,
  warmupSteps: number,
  decaySteps: number,
  totalSteps: number,
  minLr = 0,
): Schedule {
  const warm = warmupCosineLr(lr, warmupSteps, totalSteps, minLr); // checks the arguments
  if (!(Number.isInteger(decaySteps) && decaySteps >= 0 && decaySteps <= totalSteps - warmupSteps))
    throw new Error(
      `warmupStableDecayLr: need 0 <= decaySteps (${decaySteps}) <= total - warmup (${totalSteps - warmupSteps})`,
    );
  const decayFrom = totalSteps - decaySteps;
  return (step: number) => {
    if (step < warmupSteps) return warm(step);
    if (step < decayFrom) return lr;
    const progress = Math.min(1, (step - decayFrom) / Math.max(1, decaySteps));
    return lr + (minLr - lr) * progress;
  };
}

/** Linear warm-up from 0 to `lr` over `warmupSteps`, then cosine decay to `minLr` at `totalSteps`. */
export function warmupCosineLr(
  lr: number,
  warmupSteps: number,
  totalSteps: number,
  minLr = 0,
): Schedule {
  if (!(totalSteps > 0) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new Error(
      `warmupCosineLr: need 0 <= warmup (${warmupSteps}) <= total (${totalSteps}), total > 0`,
    );
  }
  return (step: number) => {
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}
