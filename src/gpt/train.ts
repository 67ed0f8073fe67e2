// Training the multimodal GPT: presets, the loop, per-minibatch and per-epoch NLL, checkpoints
// and exact resume.
//
// Like minGPT's Trainer, the loop knows nothing of the model's insides: it feeds batches of
// 58-token sequences (half in each order), records the train NLL (nats per predicted token)
// of every minibatch and the test NLL over the whole test set in both orders at initialisation
// and after every epoch, and logs one line per interval. Every epoch (and on Ctrl-C) it writes a
// checkpoint atomically; `resume` continues so exactly that the final weights are bit-identical
// to an uninterrupted run's: the epoch's shuffle comes from a seed derived from (seed, epoch),
// the dropout RNG state and the optimiser moments are saved, and the LR is a function of step.
// One writer per run directory (runlock.ts). A non-finite loss or gradient norm stops training
// before the optimiser applies it (TrainingDivergedError names the step, the batch and the last
// good checkpoint, which is left as it was), so `resume` continues from sound weights.
// A checkpoint of another configuration is never resumed nor overwritten: the error names the
// fields that differ. `gptRunDir` names a run directory after its configuration's fingerprint,
// so that a changed hyperparameter trains into a directory of its own (notebook 03).

import * as fs from 'fs';
import * as path from 'path';
import * as F from '../engine/ops';
import { tidy, noGrad, keep } from '../engine/tensor';
import { getBackend } from '../engine/registry';
import { Rng, deriveSeed } from '../nn/rng';
import { Adam, AdamW, constantLr, warmupCosineLr } from '../nn/optim';
import type { Schedule } from '../nn/optim';
import { atomicWriteFile } from '../nn/safetensors';
import type { Vocab } from '../data/vocab';
import type { SequenceSource } from '../data/sequences';
import { HELD_OUT_PAIRS, VALIDATION_ITEMS, validateHoldout } from '../data/holdout';
import {
  SEQUENCE_LENGTH,
  TARGETS_PER_SEQUENCE,
  batchesPerEpoch,
  epochBatches,
  evaluationBatches,
} from '../data/sequences';
import { GPT, GPT_DEFAULTS } from './model';
import type { GptConfig } from './model';
import { acquireRunLock } from './runlock';
import type { RunLock } from './runlock';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  ConfigurationMismatchError,
  checkpointConfiguration,
  configurationDifferences,
  configurationFingerprint,
  loadCheckpoint,
  saveCheckpoint,
} from './checkpoint';
import type { Checkpoint } from './checkpoint';

export interface GptTrainConfig {
  epochs: number;
  batchSize: number;
  optimizer: 'adam' | 'adamw';
  lr: number;
  /** 'constant' (the original recipe) or linear warm-up then cosine decay to minLr. */
  schedule: 'constant' | 'cosine';
  warmupSteps: number;
  minLr: number;
  weightDecay: number;
  /** Global gradient-norm clip (0 = off). */
  clipNorm: number;
  seed: number;
  /** Rows per forward pass when evaluating the test set. */
  evalBatchSize: number;
  /** Progress line every this many steps. */
  logEvery: number;
  /** Use only the first N training / test items (0 = all); for tiny runs and tests. */
  trainLimit: number;
  testLimit: number;
  /** Training items carved off as the validation split (src/data/holdout.ts; 0 = none). */
  validationItems: number;
  /** Legible (fg, bg) pairs whose items are kept out of training (0 = none). */
  heldOutPairs: number;
  /** The share of each batch in the text-first order (absent: half; epochBatches). */
  textFirstShare?: number;
}

export interface GptPreset {
  model: Omit<GptConfig, 'vocabSize' | 'blockSize'>;
  train: GptTrainConfig;
}

const BASE_TRAIN: GptTrainConfig = {
  epochs: 30,
  batchSize: 32,
  optimizer: 'adam',
  lr: 1e-3,
  schedule: 'constant',
  warmupSteps: 0,
  minLr: 0,
  weightDecay: 0,
  clipNorm: 0,
  seed: 1337,
  evalBatchSize: 500,
  logEvery: 100,
  trainLimit: 0,
  testLimit: 0,
  validationItems: VALIDATION_ITEMS,
  heldOutPairs: 0,
};

/** GPT presets; the tokenizer's presets live with the VQ-VAE. */
export const GPT_PRESETS: Record<string, GptPreset> = {
  /** The original recipe (the original write-up's): 30 epochs, batch 32, Adam, lr 1e-3. */
  original: { model: { ...GPT_DEFAULTS }, train: { ...BASE_TRAIN } },
  /** Dropout 0.1, AdamW, warm-up + cosine: the best published recipe of the exercise. */
  best: {
    model: { ...GPT_DEFAULTS, dropout: 0.1 },
    train: {
      ...BASE_TRAIN,
      optimizer: 'adamw',
      lr: 2e-3,
      schedule: 'cosine',
      warmupSteps: 1000,
      minLr: 1e-4,
      weightDecay: 0.05,
      clipNorm: 1,
      heldOutPairs: HELD_OUT_PAIRS,
    },
  },
  /**
   * A usable model in minutes on a 2-core CPU: one epoch through the shipped tokenizer; the
   * default sampling (guidance and self-reranking) makes up for most of what it has not learnt.
   */
  quick: {
    model: { ...GPT_DEFAULTS },
    train: {
      ...BASE_TRAIN,
      epochs: 1,
      // Test NLL on the first 2,000 test items (at initialisation and at the end): on a slow
      // laptop the whole test set twice would cost minutes. The NLL does not compare with the 30-epoch runs'.
      testLimit: 2000,
      // The compositional test in every main job: 40 legible colour pairs never seen together.
      heldOutPairs: HELD_OUT_PAIRS,
      // Batch 32 (1,663 steps) rather than 64 (832 steps) at about the same cost per item: test
      // NLL 2.4792 against 2.4978, image -> text 74.7% against 69.0% (300 test items).
      batchSize: 32,
      optimizer: 'adamw',
      lr: 2e-3,
      schedule: 'cosine',
      warmupSteps: 300,
      minLr: 2e-4,
      weightDecay: 0.01,
      clipNorm: 1,
      // 90% of each batch in the caption-first order. One epoch teaches p(image | caption) too
      // little at half; it is what draws images and, through the digit and colour searches,
      // what reads them. Validation, 500 items, default sampling (bench/results/
      // quick-text-first-share-validation-500.md): text -> image 55.2% at half, 70.2% at 0.75,
      // 81.6% at 0.9, 58.8% at 1; image -> text 74.8%, 79.4%, 76.4% (with the colour search;
      // 16.6% without: the image-first order then writes colours badly), 0.0%.
      textFirstShare: 0.9,
    },
  },
  /** Seconds; for tests and MMGPT_TINY notebooks. */
  tiny: {
    model: { nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0 },
    train: {
      ...BASE_TRAIN,
      epochs: 2,
      batchSize: 16,
      lr: 3e-3,
      evalBatchSize: 64,
      logEvery: 10,
      trainLimit: 256,
      testLimit: 64,
    },
  },
};

/** The fingerprint of a preset's configuration (model and training; logEvery aside). */
export function presetFingerprint(preset: GptPreset): string {
  return configurationFingerprint({ model: preset.model, train: preset.train });
}

/** `<parent>/<name>-<fingerprint>`: a run directory of its own for each configuration. */
export function gptRunDir(parent: string, name: string, preset: GptPreset): string {
  return path.join(parent, `${name}-${presetFingerprint(preset)}`);
}

export function validateTrainConfig(c: GptTrainConfig): GptTrainConfig {
  const positiveInts = ['epochs', 'batchSize', 'evalBatchSize', 'logEvery'] as const;
  for (const k of positiveInts)
    if (!Number.isInteger(c[k]) || c[k] <= 0)
      throw new Error(`train config: ${k} must be a positive integer, got ${c[k]}`);
  if (c.evalBatchSize % 2 !== 0)
    throw new Error(
      `train config: evalBatchSize must be even (both orders of each item), got ${c.evalBatchSize}`,
    );
  if (!(c.lr > 0)) throw new Error(`train config: lr must be > 0, got ${c.lr}`);
  if (c.optimizer !== 'adam' && c.optimizer !== 'adamw')
    throw new Error(`train config: optimizer must be adam or adamw, got ${c.optimizer}`);
  if (c.schedule !== 'constant' && c.schedule !== 'cosine')
    throw new Error(`train config: schedule must be constant or cosine, got ${c.schedule}`);
  try {
    validateHoldout({ validationItems: c.validationItems, heldOutPairs: c.heldOutPairs });
  } catch (e) {
    throw new Error(`train config: ${(e as Error).message}`);
  }
  return c;
}

// ---- logs ----------------------------------------------------------------------------------------

export interface TrainLog {
  /** Train NLL (nats/dim) of every minibatch, in step order. */
  trainNll: number[];
  /** Test NLL over the whole test set (both orders): epoch 0 = at initialisation. */
  testNll: { epoch: number; step: number; nll: number; rssBytes?: number }[];
  /** Wall time of the training steps so far (ms), excluding evaluation. */
  trainMs: number;
}

// ---- evaluation ----------------------------------------------------------------------------------

/** Mean NLL per predicted token over every test item in both orders. */
export function evaluateNll(
  model: GPT,
  source: SequenceSource,
  vocab: Vocab,
  batchSize = 500,
): number {
  const wasTraining = model.training;
  model.eval();
  let total = 0;
  let count = 0;
  noGrad(() => {
    for (const batch of evaluationBatches(source, vocab, batchSize)) {
      total += tidy(() => {
        const tokens = F.tensor(batch.tokens, [batch.size, SEQUENCE_LENGTH], 'int32');
        return model.loss(tokens).item() * batch.size * TARGETS_PER_SEQUENCE;
      });
      count += batch.size * TARGETS_PER_SEQUENCE;
    }
  });
  model.train(wasTraining);
  return total / count;
}

// ---- training ------------------------------------------------------------------------------------

export interface TrainGptOptions {
  runDir: string;
  preset: GptPreset;
  vocab: Vocab;
  train: SequenceSource;
  test: SequenceSource;
  tokenizerHash: string;
  /** Continue from runDir/checkpoint.safetensors. */
  resume?: boolean;
  log?: (line: string) => void;
  /** Stop (saving a checkpoint) after this many steps in this call; simulates an interruption. */
  stopAfterSteps?: number;
  /**
   * Called after every optimiser step with its loss, and after every test evaluation
   * (initialisation and each epoch's end): what a live plot needs, without parsing log lines.
   */
  onProgress?: (event: TrainProgressEvent) => void;
  /** A lock on runDir the caller holds already (trainPipeline); otherwise trainGpt takes one. */
  runLock?: RunLock;
  /**
   * Read the step losses back every this many steps (one download for all of them) instead of
   * after every step; their log entries, checks and onProgress events then come in bursts.
   * Default: logEvery on the cuda backend (no host synchronisation inside a step), else 1.
   */
  lossReadEvery?: number;
}

export type TrainProgressEvent =
  | { kind: 'step'; step: number; epoch: number; loss: number; lr: number }
  | { kind: 'test'; step: number; epoch: number; testNll: number };

export interface TrainGptResult {
  model: GPT;
  log: TrainLog;
  finalTestNll: number;
  checkpointPath: string;
  /** False when stopped early (Ctrl-C or stopAfterSteps). */
  complete: boolean;
}

function limitSource(s: SequenceSource, n: number): SequenceSource {
  if (n <= 0 || n >= s.count) return s;
  return {
    count: n,
    captionTokens: s.captionTokens.slice(0, n * 6),
    imageTokens: s.imageTokens.slice(0, n * 49),
  };
}

function scheduleFor(c: GptTrainConfig, totalSteps: number): Schedule {
  return c.schedule === 'constant'
    ? constantLr(c.lr)
    : warmupCosineLr(c.lr, Math.min(c.warmupSteps, totalSteps), totalSteps, c.minLr);
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const LOG_FILE = 'log.json';

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

/**
 * Trains (or resumes) a GPT; writes runDir/checkpoint.safetensors and runDir/log.json.
 * Holds the run directory's lock meanwhile (or the caller's, opts.runLock).
 */
export async function trainGpt(opts: TrainGptOptions): Promise<TrainGptResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  validateTrainConfig({ ...opts.preset.train });
  const lock = opts.runLock ?? acquireRunLock(opts.runDir, log);
  try {
    return await trainGptLocked(opts, log);
  } finally {
    if (opts.runLock === undefined) lock.release();
  }
}

async function trainGptLocked(
  opts: TrainGptOptions,
  log: (line: string) => void,
): Promise<TrainGptResult> {
  const trainCfg = validateTrainConfig({ ...opts.preset.train });
  const train = limitSource(opts.train, trainCfg.trainLimit);
  const test = limitSource(opts.test, trainCfg.testLimit);
  const gptConfig: GptConfig = {
    ...opts.preset.model,
    vocabSize: opts.vocab.size,
    blockSize: SEQUENCE_LENGTH - 1,
  };
  const ckptPath = path.join(opts.runDir, CHECKPOINT_FILE);
  const logPath = path.join(opts.runDir, LOG_FILE);

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
  const optimizer =
    trainCfg.optimizer === 'adamw' ? new AdamW(params, optOpts) : new Adam(params, optOpts);
  const stepsPerEpoch = batchesPerEpoch(train.count, trainCfg.batchSize);
  const totalSteps = stepsPerEpoch * trainCfg.epochs;
  const lrAt = scheduleFor(trainCfg, totalSteps);

  let epoch = 0;
  let batchInEpoch = 0;
  let trainLog: TrainLog = { trainNll: [], testNll: [], trainMs: 0 };
  /** The checkpoint this run last wrote or resumed from: what a numerical fault leaves intact. */
  let lastGood: { step: number; epoch: number; batchInEpoch: number } | null = null;

  const requested = { model: gptConfig, train: trainCfg };
  if (!opts.resume) refuseToOverwrite(ckptPath, requested);
  if (opts.resume) {
    if (!fs.existsSync(ckptPath))
      throw new Error(`--resume: no checkpoint at ${ckptPath}; start without --resume`);
    const ckpt = loadCheckpoint(ckptPath);
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
    if (ckpt.meta.tokenizerHash !== opts.tokenizerHash) {
      throw new Error(
        `--resume: ${ckptPath} was trained on tokens of tokenizer ${ckpt.meta.tokenizerHash}, not ${opts.tokenizerHash}`,
      );
    }
    model.loadStateDict(ckpt.weights, ckptPath);
    if (!ckpt.optimizer)
      throw new Error(`${ckptPath}: has no optimiser state; cannot resume training from it`);
    optimizer.loadState(ckpt.optimizer, ckptPath);
    modelRng.setState(ckpt.meta.rngState);
    epoch = ckpt.meta.epoch;
    batchInEpoch = ckpt.meta.batchInEpoch;
    lastGood = { step: ckpt.meta.step, epoch, batchInEpoch };
    if (fs.existsSync(logPath)) {
      const saved = JSON.parse(fs.readFileSync(logPath, 'utf8')) as TrainLog;
      trainLog = {
        trainNll: saved.trainNll.slice(0, ckpt.meta.step),
        testNll: saved.testNll.filter((e) => e.step <= ckpt.meta.step),
        trainMs: saved.trainMs,
      };
    }
    log(
      `resumed ${ckptPath} at epoch ${epoch + 1}, batch ${batchInEpoch}, step ${ckpt.meta.step}${ckpt.meta.complete ? ' (already complete)' : ''}`,
    );
  }

  const save = (complete: boolean) => {
    saveCheckpoint(ckptPath, {
      meta: {
        format: CHECKPOINT_FORMAT,
        version: CHECKPOINT_VERSION,
        gptConfig,
        trainConfig: trainCfg as unknown as Record<string, unknown>,
        step: optimizer.step,
        epoch,
        batchInEpoch,
        rngState: modelRng.getState(),
        tokenizerHash: opts.tokenizerHash,
        complete,
      },
      weights: model.stateDict(),
      optimizer: optimizer.state(),
    });
    atomicWriteFile(logPath, JSON.stringify(trainLog));
    lastGood = { step: optimizer.step, epoch, batchInEpoch };
  };

  /**
   * The error for a non-finite value met at a step (by default the next one, of which nothing has
   * been applied); `batch` is 1-based within the current epoch.
   */
  const diverged = (
    what: string,
    step = optimizer.step + 1,
    batch = batchInEpoch + 1,
  ): TrainingDivergedError => {
    const where = `step ${step} (epoch ${epoch + 1}, batch ${batch} of ${stepsPerEpoch})`;
    const resumeHint =
      lastGood === null
        ? `No checkpoint saved by this run yet, so start again (with a lower lr, or clipNorm)`
        : `Last good checkpoint: ${ckptPath} (step ${lastGood.step}, epoch ${lastGood.epoch + 1}, ` +
          `batch ${lastGood.batchInEpoch}), left intact; continue from it with --resume ` +
          `(if the fault recurs there, lower the lr or set clipNorm)`;
    return new TrainingDivergedError(
      `training stopped at ${where}: ${what}. ${resumeHint}`,
      step,
      epoch + 1,
      batch,
      lastGood === null ? null : ckptPath,
    );
  };

  log(
    `gpt: ${model.numParameters().toLocaleString('en-US')} parameters, backend ${getBackend().name}, ${train.count} train / ${test.count} test items, ${stepsPerEpoch} steps/epoch x ${trainCfg.epochs} epochs`,
  );
  if (trainLog.testNll.length === 0) {
    const nll = evaluateNll(model, test, opts.vocab, trainCfg.evalBatchSize);
    trainLog.testNll.push({ epoch: 0, step: 0, nll });
    opts.onProgress?.({ kind: 'test', step: 0, epoch: 0, testNll: nll });
    log(`epoch 0 | test NLL ${nll.toFixed(4)} nats/dim (initialisation)`);
  }

  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log('interrupt: saving a checkpoint after this step (Ctrl-C again to quit without saving)');
  };
  process.on('SIGINT', onSigint);
  let stepsThisCall = 0;
  const lossReadEvery = Math.max(
    1,
    Math.floor(opts.lossReadEvery ?? (getBackend().name === 'cuda' ? trainCfg.logEvery : 1)),
  );
  // Step losses wait on the backend ([lossReadEvery] floats) until the next read-back.
  const pendingLosses = keep(F.zeros([lossReadEvery]));
  const pendingSteps: { step: number; epoch: number; batch: number; lr: number }[] = [];
  // Reading every step's loss anyway, the cpu and js backends check it before each update.
  const checkEveryStep = lossReadEvery === 1;
  /** Reads the pending losses back, records them and reports them; returns the last one. */
  const readLosses = (): number => {
    if (pendingSteps.length === 0) return trainLog.trainNll[trainLog.trainNll.length - 1] ?? NaN;
    const values = pendingLosses.toFloat32Array();
    let last = NaN;
    pendingSteps.forEach((s, i) => {
      last = values[i];
      if (!Number.isFinite(last))
        throw diverged(
          `the loss is ${last} (read back ${pendingSteps.length - i - 1} steps later)`,
          s.step,
          s.batch,
        );
      trainLog.trainNll.push(last);
      opts.onProgress?.({ kind: 'step', step: s.step, epoch: s.epoch, loss: last, lr: s.lr });
    });
    pendingSteps.length = 0;
    return last;
  };
  const tokensPerStep = trainCfg.batchSize * TARGETS_PER_SEQUENCE;
  const callStart = Date.now();
  const trainMsAtStart = trainLog.trainMs;
  try {
    model.train();
    while (epoch < trainCfg.epochs) {
      const epochRng = new Rng(deriveSeed(trainCfg.seed, `epoch-${epoch}`));
      let intervalStart = Date.now();
      let intervalSteps = 0;
      for (const batch of epochBatches(train, opts.vocab, epochRng, trainCfg.batchSize, {
        startBatch: batchInEpoch,
        textFirstShare: trainCfg.textFirstShare,
      })) {
        const t0 = Date.now();
        const lr = lrAt(optimizer.step);
        // Where losses are read every step (cpu, js) the loss and the gradient norm are checked
        // before the update, so a non-finite value never reaches the weights or the optimiser
        // moments; where they are read in bursts (cuda: no host synchronisation inside a step)
        // a non-finite loss is caught at the next read, before anything is saved.
        const fault = tidy(() => {
          const tokens = F.tensor(batch.tokens, [batch.size, SEQUENCE_LENGTH], 'int32');
          const l = model.loss(tokens);
          if (checkEveryStep) {
            const lossValue = l.item();
            if (!Number.isFinite(lossValue)) return { loss: lossValue, gradNorm: NaN };
            l.backward();
            const norm = optimizer.gradNorm();
            if (!Number.isFinite(norm)) {
              optimizer.zeroGrad();
              return { loss: lossValue, gradNorm: norm };
            }
          } else l.backward();
          optimizer.update(lr);
          optimizer.zeroGrad();
          F.writeInto(pendingLosses, F.reshape(l, [1]), 0, pendingSteps.length);
          return null;
        });
        if (fault !== null) {
          if (!Number.isFinite(fault.loss))
            throw diverged(`the loss is ${fault.loss}; the weights were not updated with it`);
          throw diverged(
            `the gradient norm is ${fault.gradNorm} (loss ${fault.loss.toFixed(4)}); the weights were not updated with it`,
          );
        }
        pendingSteps.push({ step: optimizer.step, epoch: epoch + 1, batch: batchInEpoch + 1, lr });
        if (pendingSteps.length === lossReadEvery) readLosses();
        trainLog.trainMs += Date.now() - t0;
        batchInEpoch++;
        stepsThisCall++;
        intervalSteps++;
        if (optimizer.step % trainCfg.logEvery === 0) {
          const loss = readLosses();
          const msPerStep = (Date.now() - intervalStart) / intervalSteps;
          const done = optimizer.step;
          const avgMs = (trainLog.trainMs - trainMsAtStart) / Math.max(1, stepsThisCall);
          log(
            `epoch ${epoch + 1}/${trainCfg.epochs} | step ${batchInEpoch}/${stepsPerEpoch} (${done}) | loss ${loss.toFixed(4)} | lr ${lr.toExponential(2)} | ` +
              `${msPerStep.toFixed(1)} ms/step | ${Math.round((tokensPerStep * 1000) / msPerStep).toLocaleString('en-US')} tok/s | ETA ${formatDuration(avgMs * (totalSteps - done) * 1.08)}`,
          );
          intervalStart = Date.now();
          intervalSteps = 0;
        }
        // Let signal handlers run (a synchronous loop would never see Ctrl-C).
        await new Promise((r) => setImmediate(r));
        if (
          interrupted ||
          (opts.stopAfterSteps !== undefined && stepsThisCall >= opts.stopAfterSteps)
        ) {
          readLosses();
          save(false);
          log(
            `stopped at epoch ${epoch + 1}, batch ${batchInEpoch}, step ${optimizer.step}; checkpoint ${ckptPath} (continue with --resume)`,
          );
          return {
            model,
            log: trainLog,
            finalTestNll: trainLog.testNll[trainLog.testNll.length - 1].nll,
            checkpointPath: ckptPath,
            complete: false,
          };
        }
      }
      readLosses();
      const nll = evaluateNll(model, test, opts.vocab, trainCfg.evalBatchSize);
      if (!Number.isFinite(nll))
        throw diverged(
          `the test NLL after it is ${nll}, so the epoch's weights are not saved`,
          optimizer.step,
          batchInEpoch,
        );
      epoch++;
      batchInEpoch = 0;
      // The process's resident memory at every epoch end: it must stay flat over a long run.
      const rssBytes = process.memoryUsage().rss;
      trainLog.testNll.push({ epoch, step: optimizer.step, nll, rssBytes });
      opts.onProgress?.({ kind: 'test', step: optimizer.step, epoch, testNll: nll });
      const recent = trainLog.trainNll.slice(-stepsPerEpoch);
      const trainMean = recent.reduce((a, b) => a + b, 0) / recent.length;
      log(
        `epoch ${epoch} | train NLL ${trainMean.toFixed(4)} | test NLL ${nll.toFixed(4)} nats/dim | RSS ${(rssBytes / 2 ** 20).toFixed(0)} MiB | ${formatDuration(Date.now() - callStart)} elapsed`,
      );
      save(epoch >= trainCfg.epochs);
    }
  } finally {
    process.off('SIGINT', onSigint);
    pendingLosses.dispose();
  }
  return {
    model,
    log: trainLog,
    finalTestNll: trainLog.testNll[trainLog.testNll.length - 1].nll,
    checkpointPath: ckptPath,
    complete: true,
  };
}

/** The GPT a checkpoint holds, in eval mode; `source` names it in errors. */
export function gptFromCheckpoint(ckpt: Checkpoint, source: string): GPT {
  const model = new GPT(ckpt.meta.gptConfig, new Rng(0));
  try {
    model.loadStateDict(ckpt.weights, source);
  } catch (e) {
    for (const p of model.parameters()) p.dispose();
    throw e;
  }
  model.eval();
  return model;
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

/** Loads a trained GPT from a checkpoint (for sampling, evaluation, export). */
export function loadGpt(filePath: string): {
  model: GPT;
  meta: ReturnType<typeof loadCheckpoint>['meta'];
} {
  const ckpt = loadCheckpoint(filePath);
  return { model: gptFromCheckpoint(ckpt, filePath), meta: ckpt.meta };
}
