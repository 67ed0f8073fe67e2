// Training the VQ-VAE image tokenizer, and its training state for an exact resume.
//
// The trainer follows minGPT's Trainer: it shuffles with a seeded Rng, runs Adam steps on
// `model.trainingLoss` (which also moves the EMA codebook), and reports one line per interval
// through a `log` callback (step | loss | recon | perplexity | used codes | ms/step | ETA); it
// knows nothing of the model's insides. Every `checkpoint.every` steps it can save its whole
// state (weights, codebook and EMA state, Adam's moments, both Rng states, the step records), and
// a resume from that state ends where an uninterrupted run does.
// Randomness: one seed, split into named streams (deriveSeed): 'vqvae/init' for the weights and
// the restart stream, 'vqvae/shuffle' for the batch order.
// Evaluation (evaluate.ts) and the tokenizer's own checkpoints (checkpoint.ts) have files of
// their own; this module re-exports them for its importers.

import * as fs from 'fs';
import * as path from 'path';
import { tidy } from '../engine/tensor';
import type { Tensor } from '../engine/tensor';
import { add } from '../engine/ops';
import { Adam, Schedule, warmupCosineLr } from '../nn/optim';
import { Rng, deriveSeed } from '../nn/rng';
import { loadSafetensors, requireTensor, saveSafetensors } from '../nn/safetensors';
import { readStateTensors, stateTensors } from '../nn/state';
import { IMAGE_VALUES } from '../data/coloured';
import { VQVAE_DEFAULTS } from './config';
import type { VqVaeConfig } from './config';
import { checkSet } from './levels';
import type { ImageSet } from './levels';
import { VqVae } from './model';

// What this module exported before evaluation and checkpoints had files of their own.
export type { ImageSet } from './levels';
export type { VqVaeEvaluation } from './evaluate';
export { evaluateVqVae } from './evaluate';
export type { LoadedVqVae } from './checkpoint';
export {
  VQVAE_FORMAT,
  VQVAE_FORMAT_VERSION,
  loadVqVae,
  loadVqVaeCheckpoint,
  saveVqVae,
  vqVaeFingerprint,
} from './checkpoint';

export interface TrainVqVaeOptions {
  /** The training images. */
  train: ImageSet;
  /** Continue training this model (otherwise a new one is built from `config` and `seed`). */
  model?: VqVae;
  /** Default: VQVAE_DEFAULTS (1024 codes of dimension 64). */
  config?: VqVaeConfig;
  /** Seeds the weights, the restart stream and the shuffling. Default 0. */
  seed?: number;
  /** Default 128. */
  batchSize?: number;
  /** Passes over `train` (used when `steps` is not given). Default 1. */
  epochs?: number;
  /** Total optimiser steps; overrides `epochs`. */
  steps?: number;
  /** Peak learning rate of Adam. Default 2e-3. */
  lr?: number;
  /** Learning rate per 0-based step. Default: warm-up over 5% of the steps, cosine to lr/10. */
  schedule?: Schedule;
  /** A progress line every this many steps (and at the last step). Default 50. */
  logEvery?: number;
  log?: (line: string) => void;
  /** Called after every step with its record. */
  onStep?: (record: VqVaeStepRecord) => void;
  /**
   * Training state saved to `path` (atomically) every `every` steps: weights, codebook and EMA
   * state, Adam's moments, both Rng states and the step records. With `resume`, a state file
   * from the same settings is continued exactly (the result equals an uninterrupted run's); a
   * state from other settings is an error. A process that is killed loses at most `every` steps.
   */
  checkpoint?: { path: string; every: number; resume?: boolean };
  /**
   * A term added to each step's loss: given the decoder's logits [B, 12, 28, 28], the batch's
   * images and their indices in `train`, a scalar tensor. `name` goes into the settings a saved
   * state must match (and names the term in the log); its value is logged and recorded.
   */
  extraLoss?: {
    name: string;
    term: (logits: Tensor, images: Uint8Array, items: Int32Array) => Tensor;
  };
}

export interface VqVaeStepRecord {
  /** 1-based step number. */
  step: number;
  /** 0-based epoch the step belongs to. */
  epoch: number;
  lr: number;
  loss: number;
  reconLoss: number;
  commitLoss: number;
  perplexity: number;
  usedCodes: number;
  restarted: number;
  msPerStep: number;
  /** The value of `extraLoss` (absent without one). */
  extraLoss?: number;
}

export interface TrainVqVaeResult {
  model: VqVae;
  history: VqVaeStepRecord[];
  steps: number;
  wallMs: number;
}

/** "1h02m", "3m05s", "12s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** Trains a VQ-VAE with Adam on shuffled minibatches; see TrainVqVaeOptions for defaults. */
export function trainVqVae(opts: TrainVqVaeOptions): TrainVqVaeResult {
  const settings = runSettings(opts);
  const model = modelToTrain(opts, settings.seed);
  const shuffleRng = new Rng(deriveSeed(settings.seed, 'vqvae/shuffle'));
  const optimizer = new Adam(model.namedParameters(), { lr: settings.lr });
  const key = resumeKey(opts, model, settings);
  const trainer = new VqVaeTrainer(opts, settings, model, optimizer, shuffleRng, key);
  const { codebookSize: k, codeDim } = model.config;
  settings.log(
    `vqvae: ${model.numParameters()} parameters, codebook ${k} x ${codeDim}, ` +
      `${opts.train.count} images, batch ${settings.batchSize}, ${settings.totalSteps} steps ` +
      `(${(settings.totalSteps / settings.stepsPerEpoch).toFixed(2)} epochs)`,
  );
  checkCheckpointOptions(opts);
  trainer.resume();
  const started = performance.now();
  try {
    trainer.run(started);
  } finally {
    optimizer.dispose();
  }
  model.eval();
  return {
    model,
    history: trainer.history,
    steps: settings.totalSteps,
    wallMs: performance.now() - started,
  };
}

/** What trainVqVae runs with: the options' values or their defaults, checked. */
interface RunSettings {
  seed: number;
  batchSize: number;
  /** Full batches per pass over the images (the last partial batch is dropped). */
  stepsPerEpoch: number;
  totalSteps: number;
  lr: number;
  schedule: Schedule;
  logEvery: number;
  log: (line: string) => void;
}

function runSettings(opts: TrainVqVaeOptions): RunSettings {
  checkSet('trainVqVae', opts.train);
  const seed = opts.seed ?? 0;
  const batchSize = Math.min(opts.batchSize ?? 128, opts.train.count);
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new Error(`trainVqVae: batchSize must be a positive integer, got ${opts.batchSize}`);
  const stepsPerEpoch = Math.floor(opts.train.count / batchSize); // the last partial batch is dropped
  const totalSteps = opts.steps ?? stepsPerEpoch * (opts.epochs ?? 1);
  if (!Number.isInteger(totalSteps) || totalSteps <= 0)
    throw new Error(`trainVqVae: need a positive number of steps, got ${totalSteps}`);
  const lr = opts.lr ?? 2e-3;
  const schedule =
    opts.schedule ?? warmupCosineLr(lr, Math.floor(totalSteps * 0.05), totalSteps, lr / 10);
  const logEvery = opts.logEvery ?? 50;
  const log = opts.log ?? (() => undefined);
  return { seed, batchSize, stepsPerEpoch, totalSteps, lr, schedule, logEvery, log };
}

/** opts.model, or a new tokenizer from the config and the seed; in training mode. */
function modelToTrain(opts: TrainVqVaeOptions, seed: number): VqVae {
  const model =
    opts.model ?? new VqVae(opts.config ?? VQVAE_DEFAULTS, new Rng(deriveSeed(seed, 'vqvae/init')));
  if (model.reader !== null)
    throw new Error(
      'trainVqVae: this tokenizer carries a code-search reader; train one without it and add the reader with withCodeSearch',
    );
  model.train();
  return model;
}

/**
 * What a saved state must match to be continued (the schedule is a function, so opts.schedule
 * runs cannot be checked and are not resumable).
 */
function resumeKey(opts: TrainVqVaeOptions, model: VqVae, s: RunSettings): string {
  return JSON.stringify({
    config: model.config,
    seed: s.seed,
    batchSize: s.batchSize,
    totalSteps: s.totalSteps,
    lr: s.lr,
    trainCount: opts.train.count,
    ...(opts.extraLoss ? { extraLoss: opts.extraLoss.name } : {}),
  });
}

function checkCheckpointOptions(opts: TrainVqVaeOptions): void {
  const ckpt = opts.checkpoint;
  if (ckpt !== undefined && !(Number.isInteger(ckpt.every) && ckpt.every > 0))
    throw new Error(`trainVqVae: checkpoint.every must be a positive integer, got ${ckpt.every}`);
  if (ckpt !== undefined && opts.schedule !== undefined)
    throw new Error(
      'trainVqVae: checkpoints need the default schedule (a custom one cannot be checked on resume)',
    );
}

/** One trainVqVae call: the batch order, the step records and the steps that extend them. */
class VqVaeTrainer {
  history: VqVaeStepRecord[] = [];
  private firstStep = 0;
  /** The shuffle Rng's state before the current epoch's permutation was drawn. */
  private epochShuffleState: number[];
  private order: Int32Array = new Int32Array(0);
  private readonly batch: Uint8Array; // [B, 28, 28, 3]
  /** The batch's indices in opts.train. */
  private readonly batchItems: Int32Array;
  private intervalMs = 0;
  private intervalSteps = 0;

  constructor(
    private readonly opts: TrainVqVaeOptions,
    private readonly s: RunSettings,
    private readonly model: VqVae,
    private readonly optimizer: Adam,
    private readonly shuffleRng: Rng,
    /** What a saved state must match (see resumeKey). */
    private readonly resumeKey: string,
  ) {
    this.batch = new Uint8Array(s.batchSize * IMAGE_VALUES);
    this.batchItems = new Int32Array(s.batchSize);
    this.epochShuffleState = shuffleRng.getState();
  }

  /** Continues from opts.checkpoint's state file where it asks to and the file exists. */
  resume(): void {
    const ckpt = this.opts.checkpoint;
    if (!(ckpt?.resume === true && fs.existsSync(ckpt.path))) return;
    const state = loadTrainingState(ckpt.path, this.resumeKey, this.model, this.optimizer);
    this.firstStep = state.step;
    this.history = state.history;
    this.epochShuffleState = state.epochShuffleState;
    // Redraw the permutation of the epoch the last finished step belonged to; the Rng is then
    // where the uninterrupted run had it (a new epoch starting at firstStep draws its own).
    this.shuffleRng.setState(this.epochShuffleState);
    this.order = this.shuffleRng.permutation(this.opts.train.count);
    this.s.log(`vqvae: resumed ${ckpt.path} at step ${this.firstStep}/${this.s.totalSteps}`);
  }

  /** Steps firstStep .. totalSteps - 1; `started` is when the run's clock started (for the ETA). */
  run(started: number): void {
    const { totalSteps } = this.s;
    const ckpt = this.opts.checkpoint;
    for (let step = this.firstStep; step < totalSteps; step++) {
      this.drawBatch(step);
      const record = this.trainStep(step);
      this.history.push(record);
      this.opts.onStep?.(record);
      this.checkFinite(record);
      if (ckpt !== undefined && (step + 1) % ckpt.every === 0 && step + 1 < totalSteps)
        saveTrainingState(
          ckpt.path,
          this.resumeKey,
          step + 1,
          this.epochShuffleState,
          this.model,
          this.optimizer,
          this.history,
        );
      if ((step + 1) % this.s.logEvery === 0 || step + 1 === totalSteps)
        this.logProgress(record, started);
    }
  }

  /** Fills the batch of `step`, drawing a new permutation at each epoch's start. */
  private drawBatch(step: number): void {
    const { batchSize, stepsPerEpoch } = this.s;
    const inEpoch = step % stepsPerEpoch;
    if (inEpoch === 0) {
      this.epochShuffleState = this.shuffleRng.getState();
      this.order = this.shuffleRng.permutation(this.opts.train.count);
    }
    for (let b = 0; b < batchSize; b++) {
      const i = this.order[inEpoch * batchSize + b]!;
      this.batchItems[b] = i;
      this.batch.set(
        this.opts.train.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES),
        b * IMAGE_VALUES,
      );
    }
  }

  /** One optimiser step on the current batch; its record. */
  private trainStep(step: number): VqVaeStepRecord {
    const stepLr = this.s.schedule(step);
    const t0 = performance.now();
    const result = tidy(() => {
      const out = this.model.trainingLoss(this.batch, this.s.batchSize);
      const extra = this.opts.extraLoss?.term(out.logits, this.batch, this.batchItems);
      (extra === undefined ? out.loss : add(out.loss, extra)).backward();
      this.optimizer.update(stepLr);
      this.optimizer.zeroGrad();
      const extraLoss = extra?.item();
      return { ...out, loss: out.reconLoss + out.commitLoss, extraLoss };
    });
    const ms = performance.now() - t0;
    this.intervalMs += ms;
    this.intervalSteps++;
    return {
      step: step + 1,
      epoch: Math.floor(step / this.s.stepsPerEpoch),
      lr: stepLr,
      loss: result.loss,
      reconLoss: result.reconLoss,
      commitLoss: result.commitLoss,
      perplexity: result.perplexity,
      usedCodes: result.usage,
      restarted: result.restarted,
      msPerStep: ms,
      ...(result.extraLoss === undefined ? {} : { extraLoss: result.extraLoss }),
    };
  }

  private checkFinite(record: VqVaeStepRecord): void {
    if (!Number.isFinite(record.loss))
      throw new Error(`trainVqVae: the loss is ${record.loss} at step ${record.step}`);
    if (record.extraLoss !== undefined && !Number.isFinite(record.extraLoss))
      throw new Error(
        `trainVqVae: the ${this.opts.extraLoss?.name} term is ${record.extraLoss} at step ${record.step}`,
      );
  }

  /** The progress line of the interval that `record` ends. */
  private logProgress(record: VqVaeStepRecord, started: number): void {
    const { totalSteps } = this.s;
    const msPerStep = this.intervalMs / this.intervalSteps;
    const elapsed = performance.now() - started;
    const eta = (elapsed / (record.step - this.firstStep)) * (totalSteps - record.step);
    this.s.log(
      `step ${record.step}/${totalSteps} | loss ${record.loss.toFixed(4)} | ` +
        `recon ${record.reconLoss.toFixed(4)} | ` +
        (record.extraLoss === undefined
          ? ''
          : `${this.opts.extraLoss?.name} ${record.extraLoss.toFixed(4)} | `) +
        `perplexity ${record.perplexity.toFixed(1)} | ` +
        `used ${record.usedCodes}/${this.model.config.codebookSize} | ${msPerStep.toFixed(1)} ms/step | ` +
        `ETA ${formatDuration(eta)}`,
    );
    this.intervalMs = 0;
    this.intervalSteps = 0;
  }
}

// ---- training state (resume) ---------------------------------------------------------------------

const TRAINING_STATE_FORMAT = 'mmgpt-vqvae-training-state';

/** Thrown by a resume from a training state that a run with other settings saved. */
export class TrainingStateMismatchError extends Error {
  override name = 'TrainingStateMismatchError';
}
/** The numeric fields of a VqVaeStepRecord, in the column order of the saved history. */
const HISTORY_COLUMNS = [
  'step',
  'epoch',
  'lr',
  'loss',
  'reconLoss',
  'commitLoss',
  'perplexity',
  'usedCodes',
  'restarted',
  'msPerStep',
] as const;

function saveTrainingState(
  filePath: string,
  settings: string,
  step: number,
  epochShuffleState: number[],
  model: VqVae,
  optimizer: Adam,
  history: VqVaeStepRecord[],
): void {
  const optimState = optimizer.state();
  const tensors = stateTensors(model.stateDict(), optimState);
  // The records are for logs and curves: float32 is enough, and step, epoch and counts stay
  // exact (integers below 2^24).
  const rows = new Float32Array(history.length * HISTORY_COLUMNS.length);
  history.forEach((r, i) =>
    HISTORY_COLUMNS.forEach((c, j) => (rows[i * HISTORY_COLUMNS.length + j] = r[c])),
  );
  tensors['history'] = {
    dtype: 'F32',
    shape: [history.length, HISTORY_COLUMNS.length],
    data: rows,
  };
  fs.mkdirSync(path.dirname(filePath), { recursive: true });
  saveSafetensors(filePath, tensors, {
    format: TRAINING_STATE_FORMAT,
    settings,
    step: String(step),
    optimizer_step: String(optimState.step),
    epoch_shuffle_rng: JSON.stringify(epochShuffleState),
    restart_rng: JSON.stringify(model.getRngState()),
  });
}

function loadTrainingState(
  filePath: string,
  settings: string,
  model: VqVae,
  optimizer: Adam,
): { step: number; epochShuffleState: number[]; history: VqVaeStepRecord[] } {
  let contents: ReturnType<typeof loadSafetensors>;
  try {
    contents = loadSafetensors(filePath);
  } catch (e) {
    throw new Error(
      `cannot resume from '${filePath}': ${(e as Error).message}; delete it to start again`,
    );
  }
  const meta = contents.metadata;
  if (meta['format'] !== TRAINING_STATE_FORMAT)
    throw new Error(
      `'${filePath}' is not a VQ-VAE training state (format ${meta['format']}); delete it to start again`,
    );
  if (meta['settings'] !== settings) {
    throw new TrainingStateMismatchError(
      `'${filePath}' was saved by a run with other settings:\n  saved:     ${meta['settings']}\n  requested: ${settings}\n` +
        `delete it to start again`,
    );
  }
  const names = model.namedParameters().map(([name]) => name); // the quantizer's buffers have no moments
  const { weights, optimizer: optimState } = readStateTensors(contents, {
    step: Number(meta['optimizer_step']),
    names,
  });
  model.loadStateDict(weights, filePath);
  model.setRngState(JSON.parse(meta['restart_rng'] ?? 'null') as number[]);
  optimizer.loadState(optimState!, filePath);
  const rows = requireTensor(contents, 'history', 'F32').data;
  const width = HISTORY_COLUMNS.length;
  const history: VqVaeStepRecord[] = [];
  for (let i = 0; i < rows.length / width; i++) {
    const r = {} as Record<(typeof HISTORY_COLUMNS)[number], number>;
    HISTORY_COLUMNS.forEach((c, j) => (r[c] = rows[i * width + j]!));
    history.push(r);
  }
  return {
    step: Number(meta['step']),
    epochShuffleState: JSON.parse(meta['epoch_shuffle_rng'] ?? 'null') as number[],
    history,
  };
}
