// A GPT training recipe: the fields of a run's training configuration, their validation, and
// what follows from them (the learning rate at each step, the items a run uses).
//
// The recipe is stored in every checkpoint beside the model config; the named recipes are the
// presets in train.ts. `schedule` is 'constant' (the original recipe) or a linear warm-up then a
// cosine ('cosine') or linear ('linear') decay to minLr, or held at its peak until a linear decay
// over the last `decayFraction` of the run ('wsd', warm-up/stable/decay); the learning rate is a function of the
// step alone, so a resumed run steps exactly as an uninterrupted one. `optimizer` 'muon' updates
// the 2-D weight matrices with Muon at muonLr and the rest with AdamW at lr (src/nn/muon.ts).

import { constantLr, warmupCosineLr, warmupLinearLr, warmupStableDecayLr } from '../nn/optim';
import type { Schedule } from '../nn/optim';
import { batchesPerEpoch } from '../data/sequences';
import type { SequenceSource } from '../data/sequences';
import { validateHoldout } from '../data/holdout';
import type { GptConfig } from './model';

export interface GptTrainConfig {
  epochs: number;
  /**
   * Stop after this many optimiser steps, part-way through an epoch (absent: after `epochs`
   * whole epochs); the schedule then ends at this step. The last epoch ends where it stops: its
   * test NLL and the complete checkpoint.
   */
  maxSteps?: number;
  batchSize: number;
  /** 'muon': Muon for the 2-D weight matrices (at muonLr), AdamW for the rest (at lr). */
  optimizer: 'adam' | 'adamw' | 'muon';
  lr: number;
  /** The matrices' peak learning rate under Muon (required with optimizer 'muon'). */
  muonLr?: number;
  /**
   * 'constant' (the original recipe), or linear warm-up then cosine or linear decay to minLr, or
   * 'wsd': warm-up, the peak held, then a linear decay over the last decayFraction of the steps.
   */
  schedule: 'constant' | 'cosine' | 'linear' | 'wsd';
  /** With schedule 'wsd': the share of the run's steps in its final decay (0 < share <= 1). */
  decayFraction?: number;
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

export function validateTrainConfig(c: GptTrainConfig): GptTrainConfig {
  const positiveInts = ['epochs', 'batchSize', 'evalBatchSize', 'logEvery'] as const;
  for (const k of positiveInts)
    if (!Number.isInteger(c[k]) || c[k] <= 0)
      throw new Error(`train config: ${k} must be a positive integer, got ${c[k]}`);
  if (c.evalBatchSize % 2 !== 0)
    throw new Error(
      `train config: evalBatchSize must be even (both orders of each item), got ${c.evalBatchSize}`,
    );
  if (c.maxSteps !== undefined && !(Number.isInteger(c.maxSteps) && c.maxSteps > 0))
    throw new Error(`train config: maxSteps must be a positive integer, got ${c.maxSteps}`);
  if (!(c.lr > 0)) throw new Error(`train config: lr must be > 0, got ${c.lr}`);
  if (!['adam', 'adamw', 'muon'].includes(c.optimizer))
    throw new Error(`train config: optimizer must be adam, adamw or muon, got ${c.optimizer}`);
  if (c.optimizer === 'muon' && !(c.muonLr !== undefined && c.muonLr > 0))
    throw new Error(`train config: optimizer muon needs muonLr > 0, got ${c.muonLr}`);
  if (!['constant', 'cosine', 'linear', 'wsd'].includes(c.schedule))
    throw new Error(
      `train config: schedule must be constant, cosine, linear or wsd, got ${c.schedule}`,
    );
  if (
    c.schedule === 'wsd' &&
    !(c.decayFraction !== undefined && c.decayFraction > 0 && c.decayFraction <= 1)
  )
    throw new Error(
      `train config: schedule wsd needs 0 < decayFraction <= 1, got ${c.decayFraction}`,
    );
  try {
    validateHoldout({ validationItems: c.validationItems, heldOutPairs: c.heldOutPairs });
  } catch (e) {
    throw new Error(`train config: ${(e as Error).message}`);
  }
  return c;
}

/** The first `n` items of `s` (n <= 0 or n >= s.count: all of them). */
export function limitSource(s: SequenceSource, n: number): SequenceSource {
  if (n <= 0 || n >= s.count) return s;
  return {
    count: n,
    captionTokens: s.captionTokens.slice(0, n * 6),
    imageTokens: s.imageTokens.slice(0, n * 49),
  };
}

/** The steps of a run on `trainCount` items: its epochs' batches, or maxSteps if fewer. */
export function totalTrainSteps(c: GptTrainConfig, trainCount: number): number {
  const steps = batchesPerEpoch(trainCount, c.batchSize) * c.epochs;
  return c.maxSteps === undefined ? steps : Math.min(steps, c.maxSteps);
}

/** The learning rate at each 0-based step of a run of `totalSteps` steps. */
export function scheduleFor(c: GptTrainConfig, totalSteps: number): Schedule {
  const warmup = Math.min(c.warmupSteps, totalSteps);
  if (c.schedule === 'constant') return constantLr(c.lr);
  if (c.schedule === 'linear') return warmupLinearLr(c.lr, warmup, totalSteps, c.minLr);
  if (c.schedule === 'wsd') {
    const decay = Math.max(
      1,
      Math.min(totalSteps - warmup, Math.round(c.decayFraction! * totalSteps)),
    );
    return warmupStableDecayLr(c.lr, warmup, decay, totalSteps, c.minLr);
  }
  return warmupCosineLr(c.lr, warmup, totalSteps, c.minLr);
}
