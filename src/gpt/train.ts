// Training the multimodal GPT: the named recipes (presets), their run directories, and trainGpt,
// which trains (or resumes) one run with the run directory locked.
//
// The pieces: recipe.ts (the training configuration and its validation, the learning-rate
// schedule), trainRun.ts (the model and optimiser a recipe builds, resume, checkpoints, the
// divergence error), trainLoop.ts (the epochs, steps, logs and test NLLs), evaluate.ts (the test
// NLL). One writer per run directory (runlock.ts). `gptRunDir` names a run directory after its
// configuration's fingerprint, so that a changed hyperparameter trains into a directory of its
// own (notebook 03). This module re-exports what its importers used from it before the pieces
// had files of their own.

import * as path from 'path';
import { HELD_OUT_PAIRS, VALIDATION_ITEMS } from '../data/holdout';
import { GPT_DEFAULTS } from './model';
import { acquireRunLock } from './runlock';
import type { RunLock } from './runlock';
import { configurationFingerprint } from './checkpoint';
import { validateTrainConfig } from './recipe';
import type { GptPreset, GptTrainConfig } from './recipe';
import { runTraining } from './trainLoop';
import type { TrainGptResult, TrainLoopOptions } from './trainLoop';

export type { GptPreset, GptTrainConfig } from './recipe';
export { totalTrainSteps, validateTrainConfig } from './recipe';
export { evaluateNll } from './evaluate';
export type { TrainLog } from './trainRun';
export { CHECKPOINT_FILE, LOG_FILE, TrainingDivergedError } from './trainRun';
export type { TrainGptResult, TrainProgressEvent } from './trainLoop';
export { gptFromCheckpoint, loadGpt } from './checkpoint';

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
   * A usable model in minutes on a 2-core CPU, through the shipped tokenizer; the default sampling
   * (guidance and self-reranking) makes up for much of what it has not learnt. The speedrun's
   * record (bench/speedrun.ts, bench/results/speedrun.md): each change was kept for its scores
   * and NLL on the validation split at the same number of steps.
   */
  quick: {
    model: { ...GPT_DEFAULTS },
    train: {
      ...BASE_TRAIN,
      // A schedule of 1,800 steps (1.08 epochs of batch 32): the speedrun's first point over 95%
      // in every mode on the validation split came at step 1,500 of it, with the learning rates
      // and the order share below; the preset runs the schedule to its end.
      epochs: 2,
      maxSteps: 1800,
      // Test NLL on the first 2,000 test items (at initialisation and at the end): on a slow
      // laptop the whole test set twice would cost minutes. The NLL does not compare with the
      // 30-epoch runs'.
      testLimit: 2000,
      // The compositional test in every main job: 40 legible colour pairs never seen together.
      heldOutPairs: HELD_OUT_PAIRS,
      // Batch 32 rather than 64, at about the same cost per item: the lower test NLL and the
      // better image -> text of the two (docs/).
      batchSize: 32,
      // Muon (orthogonalised momentum) for the blocks' weight matrices at 0.005, AdamW for the
      // embeddings, the output head, gains and biases at 9e-3: against Muon 0.02 and AdamW 2e-3
      // (record 2), a schedule of 2,100 steps ended at a validation NLL of 2.241 instead of
      // 2.374 (speedrun.md, with the sweep of both rates).
      optimizer: 'muon',
      muonLr: 0.005,
      lr: 9e-3,
      // A short warm-up, then a linear decay to 0: the whole run anneals towards its last step.
      schedule: 'linear',
      warmupSteps: 100,
      minLr: 0,
      weightDecay: 0.01,
      clipNorm: 1,
      // 85% of each batch in the caption-first order. A short run teaches p(image | caption) too
      // little at half; it is what draws images and, through the digit and colour searches,
      // what reads them (bench/results/quick-text-first-share-validation-500.md: 0.9 was the best
      // of 0.5 / 0.75 / 0.9 / 1 under AdamW). At the rates above 0.85 ended a 2,100-step
      // schedule at a validation NLL of 2.199 against 0.9's 2.260 (speedrun.md).
      textFirstShare: 0.85,
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

export interface TrainGptOptions extends TrainLoopOptions {
  /** A lock on runDir the caller holds already (trainPipeline); otherwise trainGpt takes one. */
  runLock?: RunLock;
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
    return await runTraining(opts, log);
  } finally {
    if (opts.runLock === undefined) lock.release();
  }
}
