// Training, evaluation and checkpoints of the VQ-VAE image tokenizer.
//
// The trainer follows minGPT's Trainer: it shuffles with a seeded Rng, runs Adam steps on
// `model.trainingLoss` (which also moves the EMA codebook), and reports one line per interval
// through a `log` callback (step | loss | recon | perplexity | used codes | ms/step | ETA); it
// knows nothing of the model's insides. The evaluation reconstructs a split through the codes
// and reports per-pixel exact accuracy (all 3 channels right), per-value accuracy, codebook
// usage and perplexity on that split.
// Checkpoints are safetensors (weights + codebook + EMA state, float32) with the config, the
// restart Rng state and any caller metadata in `__metadata__`, written atomically; loading names
// the file and the problem when it is missing, corrupt, or not a VQ-VAE checkpoint.
// Randomness: one seed, split into named streams (deriveSeed): 'vqvae/init' for the weights and
// the restart stream, 'vqvae/shuffle' for the batch order.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tidy } from '../engine/tensor';
import type { Tensor } from '../engine/tensor';
import { add } from '../engine/ops';
import { Adam, Schedule, warmupCosineLr } from '../nn/optim';
import { Rng, deriveSeed } from '../nn/rng';
import { NamedArray, loadSafetensors, requireTensor, saveSafetensors } from '../nn/safetensors';
import { readStateTensors, stateTensors } from '../nn/state';
import { IMAGE_VALUES } from '../data/coloured';
import {
  CODES_PER_IMAGE,
  VQVAE_DEFAULTS,
  VQVAE_LEGACY_FIELDS,
  VqVae,
  VqVaeConfig,
  codeStatistics,
  validateVqVaeConfig,
} from './model';

/** Any set of images: a ColouredSplit fits. images: [count, 28, 28, 3] levels 0..3. */
export interface ImageSet {
  images: Uint8Array;
  count: number;
}

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

function checkSet(what: string, set: ImageSet): void {
  if (
    !Number.isInteger(set.count) ||
    set.count <= 0 ||
    set.images.length < set.count * IMAGE_VALUES
  ) {
    throw new Error(
      `${what}: need count > 0 and count * ${IMAGE_VALUES} image values, ` +
        `got count ${set.count} and ${set.images.length} values`,
    );
  }
}

/** Trains a VQ-VAE with Adam on shuffled minibatches; see TrainVqVaeOptions for defaults. */
export function trainVqVae(opts: TrainVqVaeOptions): TrainVqVaeResult {
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

  const model =
    opts.model ?? new VqVae(opts.config ?? VQVAE_DEFAULTS, new Rng(deriveSeed(seed, 'vqvae/init')));
  if (model.reader !== null)
    throw new Error(
      'trainVqVae: this tokenizer carries a code-search reader; train one without it and add the reader with withCodeSearch',
    );
  model.train();
  const shuffleRng = new Rng(deriveSeed(seed, 'vqvae/shuffle'));
  const optimizer = new Adam(model.namedParameters(), { lr });
  const batch = new Uint8Array(batchSize * IMAGE_VALUES); // [B, 28, 28, 3]
  const batchItems = new Int32Array(batchSize);
  let history: VqVaeStepRecord[] = [];
  const k = model.config.codebookSize;
  log(
    `vqvae: ${model.numParameters()} parameters, codebook ${k} x ${model.config.codeDim}, ` +
      `${opts.train.count} images, batch ${batchSize}, ${totalSteps} steps ` +
      `(${(totalSteps / stepsPerEpoch).toFixed(2)} epochs)`,
  );

  // What a saved state must match to be continued (the schedule is a function, so opts.schedule
  // runs cannot be checked and are not resumable).
  const settings = JSON.stringify({
    config: model.config,
    seed,
    batchSize,
    totalSteps,
    lr,
    trainCount: opts.train.count,
    ...(opts.extraLoss ? { extraLoss: opts.extraLoss.name } : {}),
  });
  const ckpt = opts.checkpoint;
  if (ckpt !== undefined && !(Number.isInteger(ckpt.every) && ckpt.every > 0))
    throw new Error(`trainVqVae: checkpoint.every must be a positive integer, got ${ckpt.every}`);
  if (ckpt !== undefined && opts.schedule !== undefined)
    throw new Error(
      'trainVqVae: checkpoints need the default schedule (a custom one cannot be checked on resume)',
    );
  let firstStep = 0;
  // The shuffle Rng's state before the current epoch's permutation was drawn.
  let epochShuffleState = shuffleRng.getState();
  let order: Int32Array = new Int32Array(0);
  if (ckpt?.resume === true && fs.existsSync(ckpt.path)) {
    const state = loadTrainingState(ckpt.path, settings, model, optimizer);
    firstStep = state.step;
    history = state.history;
    epochShuffleState = state.epochShuffleState;
    // Redraw the permutation of the epoch the last finished step belonged to; the Rng is then
    // where the uninterrupted run had it (a new epoch starting at firstStep draws its own).
    shuffleRng.setState(epochShuffleState);
    order = shuffleRng.permutation(opts.train.count);
    log(`vqvae: resumed ${ckpt.path} at step ${firstStep}/${totalSteps}`);
  }
  const saveState = (step: number) => {
    if (ckpt === undefined) return;
    saveTrainingState(ckpt.path, settings, step, epochShuffleState, model, optimizer, history);
  };

  const started = performance.now();
  let intervalMs = 0;
  let intervalSteps = 0;
  try {
    for (let step = firstStep; step < totalSteps; step++) {
      const epoch = Math.floor(step / stepsPerEpoch);
      const inEpoch = step % stepsPerEpoch;
      if (inEpoch === 0) {
        epochShuffleState = shuffleRng.getState();
        order = shuffleRng.permutation(opts.train.count);
      }
      for (let b = 0; b < batchSize; b++) {
        const i = order[inEpoch * batchSize + b]!;
        batchItems[b] = i;
        batch.set(
          opts.train.images.subarray(i * IMAGE_VALUES, (i + 1) * IMAGE_VALUES),
          b * IMAGE_VALUES,
        );
      }
      const stepLr = schedule(step);
      const t0 = performance.now();
      const result = tidy(() => {
        const out = model.trainingLoss(batch, batchSize);
        const extra = opts.extraLoss?.term(out.logits, batch, batchItems);
        (extra === undefined ? out.loss : add(out.loss, extra)).backward();
        optimizer.update(stepLr);
        optimizer.zeroGrad();
        const extraLoss = extra?.item();
        return { ...out, loss: out.reconLoss + out.commitLoss, extraLoss };
      });
      const ms = performance.now() - t0;
      intervalMs += ms;
      intervalSteps++;
      const record: VqVaeStepRecord = {
        step: step + 1,
        epoch,
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
      history.push(record);
      opts.onStep?.(record);
      if (!Number.isFinite(record.loss))
        throw new Error(`trainVqVae: the loss is ${record.loss} at step ${step + 1}`);
      if (record.extraLoss !== undefined && !Number.isFinite(record.extraLoss))
        throw new Error(
          `trainVqVae: the ${opts.extraLoss?.name} term is ${record.extraLoss} at step ${step + 1}`,
        );
      if (ckpt !== undefined && (step + 1) % ckpt.every === 0 && step + 1 < totalSteps)
        saveState(step + 1);
      if ((step + 1) % logEvery === 0 || step + 1 === totalSteps) {
        const msPerStep = intervalMs / intervalSteps;
        const elapsed = performance.now() - started;
        const eta = (elapsed / (step + 1 - firstStep)) * (totalSteps - step - 1);
        log(
          `step ${step + 1}/${totalSteps} | loss ${record.loss.toFixed(4)} | ` +
            `recon ${record.reconLoss.toFixed(4)} | ` +
            (record.extraLoss === undefined
              ? ''
              : `${opts.extraLoss?.name} ${record.extraLoss.toFixed(4)} | `) +
            `perplexity ${record.perplexity.toFixed(1)} | ` +
            `used ${record.usedCodes}/${k} | ${msPerStep.toFixed(1)} ms/step | ` +
            `ETA ${formatDuration(eta)}`,
        );
        intervalMs = 0;
        intervalSteps = 0;
      }
    }
  } finally {
    optimizer.dispose();
  }
  model.eval();
  return { model, history, steps: totalSteps, wallMs: performance.now() - started };
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

// ---- evaluation ----------------------------------------------------------------------------------

export interface VqVaeEvaluation {
  /** Images evaluated. */
  count: number;
  /** Fraction of pixels whose 3 channels are all reconstructed exactly. */
  pixelAccuracy: number;
  /** Fraction of channel values reconstructed exactly. */
  valueAccuracy: number;
  /** Fraction of images reconstructed exactly. */
  imageAccuracy: number;
  /** Distinct codes used on the set. */
  usedCodes: number;
  codebookSize: number;
  /** Perplexity of the set's code histogram. */
  perplexity: number;
  /** The codes of the set [count, 49] (for caching the tokenised dataset). */
  codes: Int32Array;
}

/** Encodes and decodes a set (or its first `limit` images) and compares with the originals. */
export function evaluateVqVae(
  model: VqVae,
  set: ImageSet,
  opts: {
    batchSize?: number;
    limit?: number;
    /** The set's codes [count, 49] if already encoded by this model (e.g. a token cache). */
    codes?: Int32Array;
  } = {},
): VqVaeEvaluation {
  checkSet('evaluateVqVae', set);
  const count = Math.min(set.count, opts.limit ?? set.count);
  const batchSize = opts.batchSize ?? 256;
  if (opts.codes !== undefined && opts.codes.length !== count * CODES_PER_IMAGE)
    throw new Error(
      `evaluateVqVae: codes hold ${opts.codes.length} values, ${count} images need ${count * CODES_PER_IMAGE}`,
    );
  const codes = opts.codes ?? model.encode(set.images, count, batchSize);
  const decoded = model.decode(codes, count, batchSize);
  let pixelsRight = 0;
  let valuesRight = 0;
  let imagesRight = 0;
  const pixelsPerImage = IMAGE_VALUES / 3;
  for (let n = 0; n < count; n++) {
    let imageRight = true;
    for (let p = 0; p < pixelsPerImage; p++) {
      const i = (n * pixelsPerImage + p) * 3;
      const r = decoded[i] === set.images[i] ? 1 : 0;
      const g = decoded[i + 1] === set.images[i + 1] ? 1 : 0;
      const b = decoded[i + 2] === set.images[i + 2] ? 1 : 0;
      valuesRight += r + g + b;
      if (r + g + b === 3) pixelsRight++;
      else imageRight = false;
    }
    if (imageRight) imagesRight++;
  }
  const { usedCodes, perplexity } = codeStatistics(codes, model.config.codebookSize);
  return {
    count,
    pixelAccuracy: pixelsRight / (count * pixelsPerImage),
    valueAccuracy: valuesRight / (count * IMAGE_VALUES),
    imageAccuracy: imagesRight / count,
    usedCodes,
    codebookSize: model.config.codebookSize,
    perplexity,
    codes,
  };
}

// ---- checkpoints ---------------------------------------------------------------------------------

export const VQVAE_FORMAT = 'mmgpt-vqvae';
export const VQVAE_FORMAT_VERSION = 1;
const RESERVED_KEYS = ['format', 'format_version', 'config', 'restart_rng', 'codes_per_image'];

/**
 * Writes the model (weights, codebook, EMA state) to a safetensors file atomically, with its
 * config and restart Rng state in the metadata; `extraMeta` adds string entries (step, metrics).
 */
export function saveVqVae(
  model: VqVae,
  filePath: string,
  extraMeta: Record<string, string> = {},
): void {
  for (const key of Object.keys(extraMeta)) {
    if (RESERVED_KEYS.includes(key))
      throw new Error(`saveVqVae: metadata key '${key}' is reserved (${RESERVED_KEYS.join(', ')})`);
  }
  const tensors: Record<string, NamedArray> = {};
  for (const [name, { shape, data }] of Object.entries(model.stateDict()))
    tensors[name] = { dtype: 'F32', shape, data };
  saveSafetensors(filePath, tensors, {
    ...extraMeta,
    format: VQVAE_FORMAT,
    format_version: String(VQVAE_FORMAT_VERSION),
    config: JSON.stringify(model.config),
    restart_rng: JSON.stringify(model.getRngState()),
    codes_per_image: String(CODES_PER_IMAGE),
  });
}

export interface LoadedVqVae {
  model: VqVae;
  /** Every metadata entry of the file (including the caller's extraMeta). */
  metadata: Record<string, string>;
}

/** Loads a checkpoint written by saveVqVae; errors name the file and what is wrong. */
export function loadVqVaeCheckpoint(filePath: string): LoadedVqVae {
  if (!fs.existsSync(filePath)) {
    throw new Error(
      `VQ-VAE checkpoint '${filePath}' does not exist (train a tokenizer first: trainVqVae + saveVqVae)`,
    );
  }
  let contents: ReturnType<typeof loadSafetensors>;
  try {
    contents = loadSafetensors(filePath);
  } catch (e) {
    throw new Error(`cannot load VQ-VAE checkpoint '${filePath}': ${(e as Error).message}`);
  }
  const meta = contents.metadata;
  const fail = (problem: string): never => {
    throw new Error(`VQ-VAE checkpoint '${filePath}': ${problem}`);
  };
  if (meta['format'] !== VQVAE_FORMAT) {
    fail(
      `not a VQ-VAE checkpoint (metadata format is ${JSON.stringify(meta['format'] ?? null)}, ` +
        `expected '${VQVAE_FORMAT}')`,
    );
  }
  const version = Number(meta['format_version']);
  if (!Number.isInteger(version) || version < 1 || version > VQVAE_FORMAT_VERSION) {
    fail(
      `format version ${meta['format_version']} is not supported (this build reads 1..${VQVAE_FORMAT_VERSION})`,
    );
  }
  let config: VqVaeConfig;
  try {
    config = validateVqVaeConfig({
      ...VQVAE_DEFAULTS,
      ...VQVAE_LEGACY_FIELDS,
      ...(JSON.parse(meta['config'] ?? '') as object),
    });
  } catch (e) {
    return fail(`bad config in the metadata: ${(e as Error).message}`);
  }
  const dict: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(contents.tensors)) {
    if (t.dtype !== 'F32') fail(`tensor '${name}' has dtype ${t.dtype}, expected F32`);
    dict[name] = { shape: t.shape, data: t.data as Float32Array };
  }
  // The config must be the one the weights were made with before a model is built from it (a
  // damaged config could otherwise ask for gigabytes).
  const expect = (name: string, shape: number[]) => {
    const t = dict[name];
    if (t === undefined || t.shape.join() !== shape.join())
      fail(
        `the weights do not match the config: '${name}' has shape [${t?.shape.join(', ') ?? 'missing'}], ` +
          `the config says [${shape.join(', ')}]`,
      );
  };
  expect('quantizer.codebook', [config.codebookSize, config.codeDim]);
  expect('encoder.conv.weight', [config.hiddenChannels, config.hiddenChannels, 3, 3]);
  const blocks = new Set(Object.keys(dict).map((n) => /^encoder\.res\.(\d+)\./.exec(n)?.[1]));
  blocks.delete(undefined);
  if (blocks.size !== config.residualBlocks)
    fail(
      `the weights hold ${blocks.size} residual blocks, the config says ${config.residualBlocks}`,
    );
  if (config.residualBlocks > 0)
    expect(`encoder.res.${config.residualBlocks - 1}.conv3.weight`, [
      config.residualChannels,
      config.hiddenChannels,
      3,
      3,
    ]);
  const model = new VqVae(config, new Rng(0));
  try {
    model.loadStateDict(dict, `VQ-VAE checkpoint '${filePath}'`);
    if (meta['restart_rng'] !== undefined)
      model.setRngState(JSON.parse(meta['restart_rng']) as number[]);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, metadata: { ...meta } };
}

/** Loads a tokenizer saved by saveVqVae (see loadVqVaeCheckpoint for the metadata too). */
export function loadVqVae(filePath: string): VqVae {
  return loadVqVaeCheckpoint(filePath).model;
}

/**
 * SHA-256 of what determines the codes and the decoded images: the config and every parameter
 * and the codebook (not the EMA state). Tokenised-dataset caches key on it.
 */
export function vqVaeFingerprint(model: VqVae): string {
  const hash = crypto.createHash('sha256');
  hash.update(JSON.stringify(model.config));
  const dict = model.stateDict();
  const names = Object.keys(dict)
    .filter((n) => n === 'quantizer.codebook' || !n.startsWith('quantizer.'))
    .sort();
  for (const name of names) {
    const { shape, data } = dict[name]!;
    hash.update(`${name}[${shape.join(',')}]`);
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}
