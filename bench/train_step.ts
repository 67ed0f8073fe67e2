// The seed model's training step and batch-1 forward, timed on one of our backends.
//
// Library functions behind `mmgpt bench` (and the GPU variant of the same benchmark): the step is
// exactly the trainer's (src/gpt/train.ts): tidy(() => { loss = model.loss(tokens);
// loss.backward(); optimizer.update(lr); optimizer.zeroGrad(); loss.item() }) on random tokens of
// the seed model (4 layers, d_model 128, 4 heads, vocab 1058, 58-token sequences, Adam lr 1e-3).
// Timing follows the usual benchmark habits (llm.c, gpt-fast): warm-up steps first, then the
// median of the timed steps; `item()` / `sync()` end each step so asynchronous backends are timed
// to completion. When no step count is given, the number of timed steps is chosen from the
// warm-up's speed so that each measurement takes about `budgetMs`.
//
// `profileTrainStep` wraps every Backend method with a timer ("where the time goes"): kernels are
// split into forward and backward by the engine's grad mode (backward and the optimiser run with
// grad disabled; the optimiser is its own phase), and matmuls also by shape.

import * as os from 'os';
import * as F from '../src/engine/ops';
import { tidy, noGrad, isGradEnabled, memoryStats } from '../src/engine/tensor';
import { setBackend } from '../src/engine/registry';
import type { Backend, MatmulParams } from '../src/engine/backend';
import { Rng } from '../src/nn/rng';
import { Adam } from '../src/nn/optim';
import { GPT, GPT_DEFAULTS } from '../src/gpt/model';
import type { GptConfig } from '../src/gpt/model';
import { Vocab } from '../src/data/vocab';
import { SEQUENCE_LENGTH } from '../src/data/sequences';

/** The seed model: 4 layers, d_model 128, 4 heads, vocab 1058 (1024 codes + 31 words + 3), block 57. */
export const SEED_BENCH_CONFIG: GptConfig = {
  ...GPT_DEFAULTS,
  dropout: 0,
  vocabSize: new Vocab().size,
  blockSize: SEQUENCE_LENGTH - 1,
};

/** The seed recipe's learning rate (Adam, constant). */
export const SEED_LR = 1e-3;

export interface TrainStepOptions {
  /** Backend name (js | cpu | cuda); selected with setBackend before the model is built. */
  backend: string;
  batch: number;
  /** Timed steps; undefined = chosen from the warm-up's speed to fill `budgetMs`. */
  steps?: number;
  warmup?: number;
  /** Target wall time of the timed steps when `steps` is undefined. */
  budgetMs?: number;
  /** Bounds of the automatic step count. */
  minSteps?: number;
  maxSteps?: number;
  seed?: number;
  config?: GptConfig;
}

export interface TrainStepResult {
  backend: string;
  batch: number;
  /** Tokens per sequence fed to the model and targets predicted per sequence. */
  inputTokens: number;
  warmup: number;
  steps: number;
  /** Median ms per training step over the timed steps. */
  msPerStep: number;
  /** Every timed step's ms, in order. */
  msPerStepAll: number[];
  /** Predicted tokens per second: batch * 57 / median step time. */
  tokensPerSec: number;
  /** The loss of the last step (nats per token; ~ln(1058) = 6.96 at initialisation). */
  lastLoss: number;
  parameters: number;
  /** Peak bytes of live engine tensors during the run (the engine's own accounting). */
  enginePeakMb: number;
}

export interface ForwardOptions {
  backend: string;
  /** Timed forwards; undefined = fill `budgetMs`. */
  steps?: number;
  warmup?: number;
  budgetMs?: number;
  seed?: number;
  config?: GptConfig;
}

export interface ForwardResult {
  backend: string;
  /** Sequence length of the forward (the full 57-position context of a 58-token sequence). */
  tokens: number;
  steps: number;
  /** Median ms of one batch-1 forward (logits for every position) without autograd. */
  msMedian: number;
  msAll: number[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Random tokens [batch, 58] drawn uniformly from the vocabulary. */
export function randomTokens(
  rng: Rng,
  batch: number,
  vocabSize: number,
  length: number,
): Int32Array {
  const data = new Int32Array(batch * length); // [B, T]
  for (let i = 0; i < data.length; i++) data[i] = rng.int(vocabSize);
  return data;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name} must be a positive integer, got ${value}`);
  return value;
}

/** Number of timed steps: the given count, or enough to fill the budget at the warm-up's speed. */
function chooseSteps(
  given: number | undefined,
  warmupMs: number[],
  budgetMs: number,
  minSteps: number,
  maxSteps: number,
): number {
  if (given !== undefined) return positiveInt('steps', given);
  const perStep = warmupMs.length > 0 ? median(warmupMs) : budgetMs;
  return Math.max(minSteps, Math.min(maxSteps, Math.round(budgetMs / Math.max(perStep, 1e-3))));
}

/** A seed-sized GPT, its Adam optimiser and a function running one timed training step. */
export function makeTrainStep(
  batch: number,
  config: GptConfig = SEED_BENCH_CONFIG,
  seed = 1337,
): { model: GPT; optimizer: Adam; step: () => number } {
  positiveInt('batch', batch);
  const rng = new Rng(seed);
  const model = new GPT(config, rng);
  model.train();
  const optimizer = new Adam(model.namedParameters(), { lr: SEED_LR });
  const length = config.blockSize + 1;
  // A few distinct batches, cycled: uploading them is part of the step, as in training.
  const batches = Array.from({ length: 4 }, () =>
    randomTokens(rng, batch, config.vocabSize, length),
  );
  let i = 0;
  const step = () =>
    tidy(() => {
      const tokens = F.tensor(batches[i++ % batches.length], [batch, length], 'int32'); // [B, 58]
      const loss = model.loss(tokens);
      loss.backward();
      optimizer.update(SEED_LR);
      optimizer.zeroGrad();
      return loss.item();
    });
  return { model, optimizer, step };
}

/** Times the seed model's full training step (forward, backward, Adam) on one backend. */
export function benchTrainStep(opts: TrainStepOptions): TrainStepResult {
  setBackend(opts.backend);
  const config = opts.config ?? SEED_BENCH_CONFIG;
  const warmup = opts.warmup ?? 2;
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new Error(`warmup must be a non-negative integer, got ${warmup}`);
  const { model, step } = makeTrainStep(opts.batch, config, opts.seed);
  let lastLoss = NaN;
  const warmupMs: number[] = [];
  for (let s = 0; s < warmup; s++) {
    const t0 = nowMs();
    lastLoss = step();
    warmupMs.push(nowMs() - t0);
  }
  const steps = chooseSteps(
    opts.steps,
    warmupMs,
    opts.budgetMs ?? 8000,
    opts.minSteps ?? 3,
    opts.maxSteps ?? 50,
  );
  const msPerStepAll: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = nowMs();
    lastLoss = step();
    msPerStepAll.push(nowMs() - t0);
  }
  const msPerStep = median(msPerStepAll);
  return {
    backend: opts.backend,
    batch: opts.batch,
    inputTokens: config.blockSize,
    warmup,
    steps,
    msPerStep,
    msPerStepAll,
    tokensPerSec: (opts.batch * config.blockSize * 1000) / msPerStep,
    lastLoss,
    parameters: model.numParameters(),
    enginePeakMb: memoryStats().peakBytes / 2 ** 20,
  };
}

/** Times a batch-1 forward of a full sequence (57 input positions) without autograd. */
export function benchForward(opts: ForwardOptions): ForwardResult {
  const backend = setBackend(opts.backend);
  const config = opts.config ?? SEED_BENCH_CONFIG;
  const rng = new Rng(opts.seed ?? 1337);
  const model = new GPT(config, rng);
  model.eval();
  const T = config.blockSize;
  const data = randomTokens(rng, 1, config.vocabSize, T);
  const once = () => {
    const t0 = nowMs();
    noGrad(() =>
      tidy(() => {
        model.forward(F.tensor(data, [1, T], 'int32')); // [1, T, V]
        backend.sync();
      }),
    );
    return nowMs() - t0;
  };
  const warmupMs: number[] = [];
  for (let s = 0; s < (opts.warmup ?? 5); s++) warmupMs.push(once());
  const steps = chooseSteps(opts.steps, warmupMs, opts.budgetMs ?? 2000, 5, 500);
  const msAll: number[] = [];
  for (let s = 0; s < steps; s++) msAll.push(once());
  return { backend: opts.backend, tokens: T, steps, msMedian: median(msAll), msAll };
}

// ---- the per-kernel profile -------------------------------------------------------------------

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

/** Runs `steps` training steps of the seed model with every kernel timed. */
export function profileTrainStep(opts: {
  backend: string;
  batch: number;
  steps?: number;
  warmup?: number;
  config?: GptConfig;
}): ProfileResult {
  const backend = setBackend(opts.backend);
  const config = opts.config ?? SEED_BENCH_CONFIG;
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
      optimizer.update(SEED_LR);
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

// ---- machine and memory ---------------------------------------------------------------------

export interface MachineInfo {
  cpu: string;
  cores: number;
  hostname: string;
  platform: string;
  node: string;
  memoryGb: number;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus.length > 0 ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** This process's peak resident set size so far, in MiB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
