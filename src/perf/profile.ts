// Where the time of a training step goes, kernel by kernel: `mmgpt bench --profile`.
//
// profileTrainStep wraps every Backend method with a timer: kernels are split into forward and
// backward by the engine's grad mode (backward and the optimiser run with grad disabled; the
// optimiser is its own phase), and matmuls also by shape. formatProfile prints the tables.

import * as F from '../engine/ops';
import { tidy, isGradEnabled } from '../engine/tensor';
import { setBackend } from '../engine/registry';
import type { Backend, MatmulParams } from '../engine/backend';
import { Rng } from '../nn/rng';
import type { GptConfig } from '../gpt/model';
import { fmtMs, table } from './format';
import {
  ORIGINAL_LR,
  ORIGINAL_MODEL_CONFIG,
  makeTrainStep,
  median,
  nowMs,
  positiveInt,
  randomTokens,
} from './train_step';

export interface KernelStat {
  /** Kernel name, with its phase: `matmul (fwd)`, `layerNorm (bwd)`, `adam (opt)`, ... */
  name: string;
  calls: number;
  totalMs: number;
  /** Floating-point operations summed over the calls (matmuls only; 0 elsewhere). */
  flops: number;
}

export interface ProfileResult {
  backend: string;
  batch: number;
  steps: number;
  /** Median ms per step of the profiled (slightly slower) steps. */
  msPerStep: number;
  /** Mean ms per step (the phases and kernel shares are means: they add up to this). */
  msPerStepMean: number;
  /** Mean ms per step of each phase: forward (model.loss), backward, optimizer, rest. */
  phases: { forward: number; backward: number; optimizer: number; other: number };
  /** Per kernel and phase, sorted by total time (ms summed over all profiled steps). */
  kernels: KernelStat[];
  /** Matmuls by shape class, sorted by total time. */
  matmulShapes: KernelStat[];
  /** Total kernel time / total step time: the rest is engine overhead (JS, allocation, autograd). */
  kernelFraction: number;
}

type Phase = 'fwd' | 'bwd' | 'opt';

/** A matmul's shape class: stored shapes of A and B (^T: used transposed), batch count. */
function matmulShape(p: MatmulParams): string {
  const a = p.transA ? `${p.k}x${p.m}^T` : `${p.m}x${p.k}`;
  const b = p.transB ? `${p.n}x${p.k}^T` : `${p.k}x${p.n}`;
  const batch = p.batch > 1 ? `${p.batch}x ` : '';
  return `${batch}[${a}] @ [${b}]${p.accumulate ? ' +=' : ''}`;
}

/**
 * Replaces every method of `backend` by a timing wrapper (in place: tensors hold the backend
 * object itself, so a separate Proxy would not be seen by tensors made before it); returns the
 * statistics and a function restoring the original methods. Asynchronous backends (cuda) are
 * synchronised after each call so the time is the kernel's.
 */
export function instrumentBackend(
  backend: Backend,
  phaseOf: () => Phase,
): {
  kernels: Map<string, KernelStat>;
  matmuls: Map<string, KernelStat>;
  /** Time inside outermost backend calls (a method that calls another is counted once). */
  outerMs: () => number;
  restore: () => void;
} {
  const kernels = new Map<string, KernelStat>();
  const matmuls = new Map<string, KernelStat>();
  const target = backend as unknown as Record<string, unknown>;
  const originals = new Map<string, unknown>();
  const syncEach = backend.name === 'cuda';
  // A backend method may call another through `this` (the wrapper): the table counts both, the
  // kernel share of the step counts only the outermost.
  let depth = 0;
  let outer = 0;
  const record = (map: Map<string, KernelStat>, name: string, ms: number, flops: number) => {
    let s = map.get(name);
    if (s === undefined) map.set(name, (s = { name, calls: 0, totalMs: 0, flops: 0 }));
    s.calls++;
    s.totalMs += ms;
    s.flops += flops;
  };
  const names = new Set<string>();
  for (let o: object | null = backend; o !== null && o !== Object.prototype;) {
    Object.getOwnPropertyNames(o).forEach((n) => names.add(n));
    o = Object.getPrototypeOf(o) as object | null;
  }
  for (const name of names) {
    const original = target[name];
    if (name === 'constructor' || typeof original !== 'function') continue;
    const fn = original as (...args: unknown[]) => unknown;
    originals.set(name, Object.prototype.hasOwnProperty.call(target, name) ? original : undefined);
    target[name] = (...args: unknown[]) => {
      const t0 = nowMs();
      depth++;
      let out: unknown;
      try {
        out = fn.apply(backend, args);
        if (syncEach && name !== 'sync') backend.sync();
      } finally {
        depth--;
      }
      const ms = nowMs() - t0;
      if (depth === 0) outer += ms;
      const phase = phaseOf();
      if (name === 'matmul') {
        const p = args[3] as MatmulParams;
        const flops = 2 * p.batch * p.m * p.n * p.k;
        record(kernels, `${name} (${phase})`, ms, flops);
        record(matmuls, `${phase} ${matmulShape(p)}`, ms, flops);
      } else {
        record(kernels, `${name} (${phase})`, ms, 0);
      }
      return out;
    };
  }
  const restore = () => {
    originals.forEach((original, name) => {
      if (original === undefined) delete target[name];
      else target[name] = original;
    });
  };
  return { kernels, matmuls, outerMs: () => outer, restore };
}

/** Runs `steps` training steps of the original recipe's model with every kernel timed. */
export function profileTrainStep(opts: {
  backend: string;
  batch: number;
  steps?: number;
  warmup?: number;
  config?: GptConfig;
}): ProfileResult {
  const backend = setBackend(opts.backend);
  const config = opts.config ?? ORIGINAL_MODEL_CONFIG;
  const { model, optimizer } = makeTrainStep(opts.batch, config);
  const rng = new Rng(7);
  const length = config.blockSize + 1;
  let inOptimizer = false;
  const phaseOf = (): Phase => (inOptimizer ? 'opt' : isGradEnabled() ? 'fwd' : 'bwd');
  const phaseMs = { forward: 0, backward: 0, optimizer: 0, other: 0 };
  const stepMs: number[] = [];
  const tokens = randomTokens(rng, opts.batch, config.vocabSize, length);
  const runStep = (timed: boolean) => {
    const t0 = nowMs();
    let t1 = t0;
    let t2 = t0;
    let t3 = t0;
    tidy(() => {
      const batchTokens = F.tensor(tokens, [opts.batch, length], 'int32'); // [B, 58]
      const loss = model.loss(batchTokens);
      backend.sync();
      t1 = nowMs();
      loss.backward();
      backend.sync();
      t2 = nowMs();
      inOptimizer = true;
      optimizer.update(ORIGINAL_LR);
      optimizer.zeroGrad();
      backend.sync();
      inOptimizer = false;
      t3 = nowMs();
      return loss.item();
    });
    const t4 = nowMs();
    if (!timed) return;
    phaseMs.forward += t1 - t0;
    phaseMs.backward += t2 - t1;
    phaseMs.optimizer += t3 - t2;
    phaseMs.other += t4 - t3;
    stepMs.push(t4 - t0);
  };
  for (let s = 0; s < (opts.warmup ?? 1); s++) runStep(false);
  const steps = positiveInt('steps', opts.steps ?? 5);
  const { kernels, matmuls, outerMs, restore } = instrumentBackend(backend, phaseOf);
  try {
    for (let s = 0; s < steps; s++) runStep(true);
  } finally {
    restore();
  }
  const byTime = (m: Map<string, KernelStat>) =>
    [...m.values()].sort((a, b) => b.totalMs - a.totalMs);
  const kernelList = byTime(kernels);
  const kernelMs = outerMs();
  const totalMs = stepMs.reduce((s, v) => s + v, 0);
  return {
    backend: opts.backend,
    batch: opts.batch,
    steps,
    msPerStep: median(stepMs),
    msPerStepMean: totalMs / steps,
    phases: {
      forward: phaseMs.forward / steps,
      backward: phaseMs.backward / steps,
      optimizer: phaseMs.optimizer / steps,
      other: phaseMs.other / steps,
    },
    kernels: kernelList,
    matmulShapes: byTime(matmuls),
    kernelFraction: totalMs > 0 ? kernelMs / totalMs : 0,
  };
}

// ---- the tables ------------------------------------------------------------------------------

/** Table rows of the `limit` slowest kernels: calls and ms per step, share, MFLOP, GFLOP/s. */
function kernelRows(
  stats: KernelStat[],
  steps: number,
  totalMs: number,
  limit: number,
): string[][] {
  return stats
    .slice(0, limit)
    .map((k) => [
      k.name,
      String(Math.round((100 * k.calls) / steps) / 100),
      fmtMs(k.totalMs / steps),
      `${((100 * k.totalMs) / totalMs).toFixed(1)}%`,
      k.flops > 0 ? (k.flops / k.calls / 1e6).toFixed(1) : '',
      k.flops > 0 && k.totalMs > 0 ? (k.flops / (k.totalMs * 1e6)).toFixed(1) : '',
    ]);
}

/** The profile as text: the phases, then the kernels and the matmul shapes by time. */
export function formatProfile(p: ProfileResult): string {
  const total = p.msPerStepMean * p.steps;
  const ph = p.phases;
  const header = ['calls/step', 'ms/step', 'share', 'MFLOP/call', 'GFLOP/s'];
  return [
    `profile: backend ${p.backend}, batch ${p.batch}, ${p.steps} steps, ${fmtMs(p.msPerStep)} ms/step median, ${fmtMs(p.msPerStepMean)} mean (with timers)`,
    `phases (mean ms/step): forward ${fmtMs(ph.forward)} ms | backward ${fmtMs(ph.backward)} ms | optimizer ${fmtMs(ph.optimizer)} ms | other ${fmtMs(ph.other)} ms`,
    `kernels account for ${(100 * p.kernelFraction).toFixed(1)}% of the step; the rest is engine overhead (autograd graph, JS, timers)`,
    '',
    table(['kernel (phase)', ...header], kernelRows(p.kernels, p.steps, total, 40)),
    '',
    'matmul by shape class (phase, stored shapes; ^T = used transposed; N x = batched)',
    table(['matmul', ...header], kernelRows(p.matmulShapes, p.steps, total, 25)),
  ].join('\n');
}
