// The training step of the original recipe's model and its batch-1 forward, timed on one of our
// backends: what `mmgpt bench` measures in each of its child processes (bench/run_backend.ts).
//
// The step is exactly the trainer's (src/gpt/train.ts): tidy(() => { loss = model.loss(tokens);
// loss.backward(); optimizer.update(lr); optimizer.zeroGrad(); loss.item() }) on random tokens of
// the original recipe's model (4 layers, d_model 128, 4 heads, vocab 1058, 58-token sequences,
// Adam lr 1e-3). Timing follows the usual benchmark habits (llm.c, gpt-fast): warm-up steps
// first, then the median of the timed steps; `item()` / `sync()` end each step so asynchronous
// backends are timed to completion. When no step count is given, the number of timed steps is
// chosen from the warm-up's speed so that each measurement takes about `budgetMs`.
// profile.ts times the same step kernel by kernel.

import * as os from 'os';
import * as F from '../engine/ops';
import { tidy, noGrad, memoryStats } from '../engine/tensor';
import { setBackend } from '../engine/registry';
import { Rng } from '../nn/rng';
import { Adam } from '../nn/optim';
import { GPT, GPT_DEFAULTS } from '../gpt/model';
import type { GptConfig } from '../gpt/model';
import { Vocab } from '../data/vocab';
import { SEQUENCE_LENGTH } from '../data/sequences';

/**
 * The original recipe's model: 4 layers, d_model 128, 4 heads, vocab 1058 (1024 codes + 31
 * words + 3), block 57.
 */
export const ORIGINAL_MODEL_CONFIG: GptConfig = {
  ...GPT_DEFAULTS,
  dropout: 0,
  vocabSize: new Vocab().size,
  blockSize: SEQUENCE_LENGTH - 1,
};

/** The original recipe's learning rate (Adam, constant). */
export const ORIGINAL_LR = 1e-3;

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

/** The timings of a run of training steps: ours, or a peer's (bench/tfjs_step.ts). */
export interface StepTimings {
  backend: string;
  batch: number;
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
}

export interface TrainStepResult extends StepTimings {
  /** Tokens per sequence fed to the model and targets predicted per sequence. */
  inputTokens: number;
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

/** The median of `values` (NaN for none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A monotonic clock in ms. */
export function nowMs(): number {
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

export function positiveInt(name: string, value: number): number {
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

/** The original recipe's GPT, its Adam optimiser and a function running one timed training step. */
export function makeTrainStep(
  batch: number,
  config: GptConfig = ORIGINAL_MODEL_CONFIG,
  seed = 1337,
): { model: GPT; optimizer: Adam; step: () => number } {
  positiveInt('batch', batch);
  const rng = new Rng(seed);
  const model = new GPT(config, rng);
  model.train();
  const optimizer = new Adam(model.namedParameters(), { lr: ORIGINAL_LR });
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
      optimizer.update(ORIGINAL_LR);
      optimizer.zeroGrad();
      return loss.item();
    });
  return { model, optimizer, step };
}

/** Times the original recipe's full training step (forward, backward, Adam) on one backend. */
export function benchTrainStep(opts: TrainStepOptions): TrainStepResult {
  setBackend(opts.backend);
  const config = opts.config ?? ORIGINAL_MODEL_CONFIG;
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
  const config = opts.config ?? ORIGINAL_MODEL_CONFIG;
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

// ---- machine and memory ---------------------------------------------------------------------

export interface MachineInfo {
  cpu: string;
  cores: number;
  hostname: string;
  platform: string;
  node: string;
  memoryGb: number;
}

/** The processor, cores, host, OS, Node and memory of this machine. */
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
