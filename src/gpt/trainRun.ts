// A GPT training run and its directory: the model and optimiser a recipe builds, where the run
// stands (epoch, batch, logs), and its two files, runDir/checkpoint.safetensors and
// runDir/log.json.
//
// A run starts fresh or resumes from its checkpoint: weights, optimiser moments, the dropout RNG's
// state and the position (epoch, batch) come back, and the log is cut to the checkpoint's step.
// A checkpoint of another configuration or tokenizer is never resumed, and a fresh run never
// overwrites one of another configuration: the error names the fields that differ. The
// checkpoint this run last wrote or resumed from is its last good one: a numerical fault
// (TrainingDivergedError) names it and leaves it as it was, so `resume` continues from sound
// weights.

import * as fs from 'fs';
import * as path from 'path';
import { Rng, deriveSeed } from '../nn/rng';
import { Adam, AdamW } from '../nn/optim';
import type { AdamOptions, Optimizer, Schedule } from '../nn/optim';
import type { Tensor } from '../engine/tensor';
import { Muon } from '../nn/muon';
import { atomicWriteFile } from '../nn/safetensors';
import type { Vocab } from '../data/vocab';
import type { SequenceSource } from '../data/sequences';
import { SEQUENCE_LENGTH, batchesPerEpoch } from '../data/sequences';
import { GPT } from './model';
import type { GptConfig } from './model';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  ConfigurationMismatchError,
  checkpointConfiguration,
  configurationDifferences,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint';
import type { Checkpoint } from './checkpoint';
import { limitSource, scheduleFor, totalTrainSteps, validateTrainConfig } from './recipe';
import type { GptPreset, GptTrainConfig } from './recipe';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const LOG_FILE = 'log.json';

export interface TrainLog {
  /** Train NLL (nats/dim) of every minibatch, in step order. */
  trainNll: number[];
  /** Test NLL over the whole test set (both orders): epoch 0 = at initialisation. */
  testNll: { epoch: number; step: number; nll: number; rssBytes?: number }[];
  /** Wall time of the training steps so far (ms), excluding evaluation. */
  trainMs: number;
}

/** Training met a non-finite loss, gradient norm or test NLL and stopped before applying it. */
export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly epoch: number,
    readonly batch: number,
    /** The checkpoint to resume from, or null when this run has saved none yet. */
    readonly lastGoodCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** What a run is made of: the recipe, the data and the directory. */
export interface RunInputs {
  runDir: string;
  preset: GptPreset;
  vocab: Vocab;
  train: SequenceSource;
  test: SequenceSource;
  tokenizerHash: string;
  /** Continue from runDir/checkpoint.safetensors. */
  resume?: boolean;
}

/** A run: what the recipe built, and where the run stands (the mutable fields). */
export interface GptRun {
  readonly trainCfg: GptTrainConfig;
  readonly gptConfig: GptConfig;
  /** The items the run trains and tests on (trainLimit, testLimit applied). */
  readonly train: SequenceSource;
  readonly test: SequenceSource;
  readonly vocab: Vocab;
  readonly tokenizerHash: string;
  readonly ckptPath: string;
  readonly logPath: string;
  /** Initialises the weights, then draws the dropout masks. */
  readonly modelRng: Rng;
  readonly model: GPT;
  readonly optimizer: Optimizer;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly lrAt: Schedule;
  /** The epoch being trained (0-based) and the next batch within it. */
  epoch: number;
  batchInEpoch: number;
  trainLog: TrainLog;
  /** The checkpoint this run last wrote or resumed from: what a numerical fault leaves intact. */
  lastGood: { step: number; epoch: number; batchInEpoch: number } | null;
}

/** The run that `inputs` describe, fresh or resumed from its checkpoint (`inputs.resume`). */
export function openRun(inputs: RunInputs, log: (line: string) => void): GptRun {
  const run = createRun(inputs);
  const requested = { model: run.gptConfig, train: run.trainCfg };
  if (!inputs.resume) refuseToOverwrite(run.ckptPath, requested);
  if (inputs.resume) resumeRun(run, log);
  return run;
}

/** A fresh run: the model initialised from the recipe's seed, the optimiser, the schedule. */
function createRun(inputs: RunInputs): GptRun {
  const trainCfg = validateTrainConfig({ ...inputs.preset.train });
  const train = limitSource(inputs.train, trainCfg.trainLimit);
  const test = limitSource(inputs.test, trainCfg.testLimit);
  const gptConfig: GptConfig = {
    ...inputs.preset.model,
    vocabSize: inputs.vocab.size,
    blockSize: SEQUENCE_LENGTH - 1,
  };
  const modelRng = new Rng(deriveSeed(trainCfg.seed, 'gpt-init'));
  const model = new GPT(gptConfig, modelRng);
  const params = model.namedParameters();
  const noDecay = (n: string) =>
    !n.endsWith('.weight') || n.includes('ln_') || n.startsWith('wte') || n.startsWith('wpe');
  const optOpts = {
    lr: trainCfg.lr,
    weightDecay: trainCfg.weightDecay,
    clipNorm: trainCfg.clipNorm,
    noDecay,
  };
  const optimizer = makeOptimizer(trainCfg, params, optOpts);
  const stepsPerEpoch = batchesPerEpoch(train.count, trainCfg.batchSize);
  const totalSteps = totalTrainSteps(trainCfg, train.count);
  return {
    trainCfg,
    gptConfig,
    train,
    test,
    vocab: inputs.vocab,
    tokenizerHash: inputs.tokenizerHash,
    ckptPath: path.join(inputs.runDir, CHECKPOINT_FILE),
    logPath: path.join(inputs.runDir, LOG_FILE),
    modelRng,
    model,
    optimizer,
    stepsPerEpoch,
    totalSteps,
    lrAt: scheduleFor(trainCfg, totalSteps),
    epoch: 0,
    batchInEpoch: 0,
    trainLog: { trainNll: [], testNll: [], trainMs: 0 },
    lastGood: null,
  };
}

/**
 * The recipe's optimiser. Under Muon the matrices are the blocks' 2-D weights; the embeddings
 * and the output head stay with AdamW, as in the speedrun records.
 */
function makeOptimizer(
  trainCfg: GptTrainConfig,
  params: [string, Tensor][],
  optOpts: AdamOptions,
): Optimizer {
  if (trainCfg.optimizer === 'adamw') return new AdamW(params, optOpts);
  if (trainCfg.optimizer === 'adam') return new Adam(params, optOpts);
  const isMatrix = (n: string, p: Tensor) => p.rank === 2 && n.startsWith('h.');
  return new Muon(params, { ...optOpts, muonLr: trainCfg.muonLr!, isMatrix });
}

/** Puts `run` where its checkpoint left off, after checking it is this run's. */
function resumeRun(run: GptRun, log: (line: string) => void): void {
  const { ckptPath } = run;
  if (!fs.existsSync(ckptPath))
    throw new Error(`--resume: no checkpoint at ${ckptPath}; start without --resume`);
  const ckpt = loadCheckpoint(ckptPath);
  const requested = { model: run.gptConfig, train: run.trainCfg };
  const differences = configurationDifferences(checkpointConfiguration(ckpt.meta), requested);
  if (differences.length > 0) {
    throw new ConfigurationMismatchError(
      `--resume: ${ckptPath} was trained with another configuration; it differs in ` +
        `${differences.length} field(s):\n  ${differences.join('\n  ')}\n` +
        'Resume with the configuration it was trained with, or train this one into another ' +
        'run directory (mmgpt train --run-dir DIR; notebook 03 names one per configuration).',
      differences,
    );
  }
  if (ckpt.meta.tokenizerHash !== run.tokenizerHash) {
    throw new Error(
      `--resume: ${ckptPath} was trained on tokens of tokenizer ${ckpt.meta.tokenizerHash}, not ${run.tokenizerHash}`,
    );
  }
  run.model.loadStateDict(ckpt.weights, ckptPath);
  if (!ckpt.optimizer)
    throw new Error(`${ckptPath}: has no optimiser state; cannot resume training from it`);
  run.optimizer.loadState(ckpt.optimizer, ckptPath);
  run.modelRng.setState(ckpt.meta.rngState);
  run.epoch = ckpt.meta.epoch;
  run.batchInEpoch = ckpt.meta.batchInEpoch;
  run.lastGood = { step: ckpt.meta.step, epoch: run.epoch, batchInEpoch: run.batchInEpoch };
  if (fs.existsSync(run.logPath)) {
    const saved = JSON.parse(fs.readFileSync(run.logPath, 'utf8')) as TrainLog;
    run.trainLog = {
      trainNll: saved.trainNll.slice(0, ckpt.meta.step),
      testNll: saved.testNll.filter((e) => e.step <= ckpt.meta.step),
      trainMs: saved.trainMs,
    };
  }
  log(
    `resumed ${ckptPath} at epoch ${run.epoch + 1}, batch ${run.batchInEpoch}, step ${ckpt.meta.step}${ckpt.meta.complete ? ' (already complete)' : ''}`,
  );
}

/**
 * Throws ConfigurationMismatchError when ckptPath holds a readable checkpoint of another
 * configuration (a fresh run there would overwrite it); an unreadable file may be overwritten.
 */
function refuseToOverwrite(
  ckptPath: string,
  requested: { model: GptConfig; train: GptTrainConfig },
): void {
  if (!fs.existsSync(ckptPath)) return;
  let existing: Checkpoint;
  try {
    existing = loadCheckpoint(ckptPath);
  } catch {
    return;
  }
  const differences = configurationDifferences(checkpointConfiguration(existing.meta), requested);
  if (differences.length === 0) return;
  throw new ConfigurationMismatchError(
    `${ckptPath} holds a checkpoint of another configuration; training this one there would ` +
      `overwrite it. It differs in ${differences.length} field(s):\n  ${differences.join('\n  ')}\n` +
      'Train into another run directory (mmgpt train --run-dir DIR), or delete that one.',
    differences,
  );
}

/** Writes the checkpoint and the log (each atomically); they become the last good checkpoint. */
export function saveRun(run: GptRun, complete: boolean): void {
  saveCheckpoint(run.ckptPath, {
    meta: {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      gptConfig: run.gptConfig,
      trainConfig: run.trainCfg as unknown as Record<string, unknown>,
      step: run.optimizer.step,
      epoch: run.epoch,
      batchInEpoch: run.batchInEpoch,
      rngState: run.modelRng.getState(),
      tokenizerHash: run.tokenizerHash,
      complete,
    },
    weights: run.model.stateDict(),
    optimizer: run.optimizer.state(),
  });
  atomicWriteFile(run.logPath, JSON.stringify(run.trainLog));
  run.lastGood = { step: run.optimizer.step, epoch: run.epoch, batchInEpoch: run.batchInEpoch };
}

/**
 * The error for a non-finite value met at a step (by default the next one, of which nothing has
 * been applied); `batch` is 1-based within the current epoch.
 */
export function divergedError(
  run: GptRun,
  what: string,
  step = run.optimizer.step + 1,
  batch = run.batchInEpoch + 1,
): TrainingDivergedError {
  const { ckptPath, lastGood } = run;
  const where = `step ${step} (epoch ${run.epoch + 1}, batch ${batch} of ${run.stepsPerEpoch})`;
  const resumeHint =
    lastGood === null
      ? `No checkpoint saved by this run yet, so start again (with a lower lr, or clipNorm)`
      : `Last good checkpoint: ${ckptPath} (step ${lastGood.step}, epoch ${lastGood.epoch + 1}, ` +
        `batch ${lastGood.batchInEpoch}), left intact; continue from it with --resume ` +
        `(if the fault recurs there, lower the lr or set clipNorm)`;
  return new TrainingDivergedError(
    `training stopped at ${where}: ${what}. ${resumeHint}`,
    step,
    run.epoch + 1,
    batch,
    lastGood === null ? null : ckptPath,
  );
}
