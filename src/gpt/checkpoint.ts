// GPT checkpoints: weights, config, optimiser state, RNG state and position in one safetensors
// file, written atomically (temp file + rename), as nanochat's checkpoint_manager does.
//
// Tensors: `model.<name>` (the state dict), `optim.m.<name>`, `optim.v.<name>` (Adam moments).
// Metadata key `mmgpt` holds JSON: format/version, the model config, the training config, the
// step, epoch and batch position, the RNG state, and the hash of the tokenizer that made the
// training tokens. A file that is missing, corrupt or of another format fails with a message
// that names it. Every metadata field is type- and range-checked, and the model config is checked
// against the weights' shapes (wte, wpe, the layer count) before anything is built from it, so a
// damaged or hostile file cannot make a loader allocate more than the weights it holds.
// A run's configuration (model + training) has a short fingerprint that names its run directory
// where several configurations share a parent (notebook 03), and two configurations compare field
// by field, so a refused resume says which fields differ. `loadGpt` builds the GPT a checkpoint
// holds, for sampling, evaluation and export.

import { createHash } from 'crypto';
import { loadSafetensors, saveSafetensors } from '../nn/safetensors';
import type { SafetensorsContents } from '../nn/safetensors';
import { readStateTensors, stateTensors } from '../nn/state';
import type { OptimizerState } from '../nn/optim';
import { Rng } from '../nn/rng';
import { GPT, validateGptConfig } from './model';
import type { GptConfig } from './model';

export const CHECKPOINT_FORMAT = 'mmgpt-gpt-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  gptConfig: GptConfig;
  /** The training configuration (preset) the run uses; opaque to this module. */
  trainConfig: Record<string, unknown>;
  /** Optimiser steps taken. */
  step: number;
  /** Epoch being trained (0-based) and the next batch within it. */
  epoch: number;
  batchInEpoch: number;
  /** State of the model's RNG (dropout masks). */
  rngState: number[];
  tokenizerHash: string;
  /** True once the run has finished all its epochs. */
  complete: boolean;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  weights: Record<string, { shape: number[]; data: Float32Array }>;
  optimizer: OptimizerState | null;
}

export function saveCheckpoint(filePath: string, ckpt: Checkpoint): void {
  saveSafetensors(filePath, stateTensors(ckpt.weights, ckpt.optimizer), {
    mmgpt: JSON.stringify({ ...ckpt.meta, optimizerStep: ckpt.optimizer?.step ?? null }),
  });
}

export function readCheckpointMeta(
  contents: SafetensorsContents,
): CheckpointMeta & { optimizerStep: number | null } {
  const raw = contents.metadata.mmgpt;
  if (raw === undefined)
    throw new Error(`${contents.fileName}: not an mmgpt GPT checkpoint (no 'mmgpt' metadata)`);
  let meta: CheckpointMeta & { optimizerStep: number | null };
  try {
    meta = JSON.parse(raw);
  } catch (e) {
    throw new Error(
      `${contents.fileName}: checkpoint metadata is not valid JSON (${(e as Error).message})`,
    );
  }
  if (!isObject(meta))
    throw new Error(`${contents.fileName}: checkpoint metadata is not a JSON object`);
  if (meta.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${contents.fileName}: format '${meta.format}' is not '${CHECKPOINT_FORMAT}'`);
  }
  if (meta.version !== CHECKPOINT_VERSION) {
    throw new Error(
      `${contents.fileName}: checkpoint version ${meta.version} is not supported (this mmgpt reads version ${CHECKPOINT_VERSION})`,
    );
  }
  checkMetaFields(meta, contents.fileName);
  return meta;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Every field the loaders use has its type and range, or the error names the field. */
function checkMetaFields(meta: Record<string, unknown>, fileName: string): void {
  const bad = (field: string, accepted: string): never => {
    throw new Error(
      `${fileName}: checkpoint metadata field ${field} is ${JSON.stringify(meta[field]) ?? 'missing'}; expected ${accepted}`,
    );
  };
  if (!isObject(meta.gptConfig)) bad('gptConfig', 'an object');
  try {
    validateGptConfig(meta.gptConfig as unknown as GptConfig);
  } catch (e) {
    throw new Error(`${fileName}: checkpoint metadata: ${(e as Error).message}`);
  }
  if (!isObject(meta.trainConfig)) bad('trainConfig', 'an object');
  for (const field of ['step', 'epoch', 'batchInEpoch'])
    if (!isCount(meta[field])) bad(field, 'a non-negative integer');
  const rng = meta.rngState;
  if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((w) => isCount(w) && w < 2 ** 32))
    bad('rngState', 'four unsigned 32-bit integers');
  if (typeof meta.tokenizerHash !== 'string') bad('tokenizerHash', 'a string');
  if (typeof meta.complete !== 'boolean') bad('complete', 'true or false');
  if (
    meta.optimizerStep !== null &&
    meta.optimizerStep !== undefined &&
    !isCount(meta.optimizerStep)
  )
    bad('optimizerStep', 'null or a non-negative integer');
}

/**
 * The config must be the one the weights were made with: the embeddings' shapes give the
 * vocabulary, block and embedding sizes, the `h.<i>.` prefixes the layer count.
 */
function checkConfigMatchesWeights(
  config: GptConfig,
  weights: Checkpoint['weights'],
  fileName: string,
): void {
  const expect = (name: string, shape: number[]) => {
    const t = weights[name];
    if (
      t === undefined ||
      t.shape.length !== shape.length ||
      t.shape.some((d, i) => d !== shape[i])
    )
      throw new Error(
        `${fileName}: the weights do not match the checkpoint's gptConfig: '${name}' has shape ` +
          `[${t?.shape.join(', ') ?? 'missing'}], the config says [${shape.join(', ')}]`,
      );
  };
  expect('wte.weight', [config.vocabSize, config.nEmbd]);
  expect('wpe.weight', [config.blockSize, config.nEmbd]);
  const layers = new Set(
    Object.keys(weights)
      .map((n) => /^h\.(\d+)\./.exec(n)?.[1])
      .filter((i): i is string => i !== undefined),
  );
  if (layers.size !== config.nLayer || !layers.has(String(config.nLayer - 1)))
    throw new Error(
      `${fileName}: the weights hold ${layers.size} layers, the checkpoint's gptConfig says ${config.nLayer}`,
    );
}

/** A checkpoint from safetensors contents already read (loadCheckpoint reads the file). */
export function checkpointFromContents(contents: SafetensorsContents): Checkpoint {
  const meta = readCheckpointMeta(contents);
  const hasOptimizer = meta.optimizerStep !== null && meta.optimizerStep !== undefined;
  const { weights, optimizer } = readStateTensors(
    contents,
    hasOptimizer ? { step: meta.optimizerStep! } : null,
  );
  checkConfigMatchesWeights(meta.gptConfig, weights, contents.fileName);
  return { meta, weights, optimizer };
}

export function loadCheckpoint(filePath: string): Checkpoint {
  return checkpointFromContents(loadSafetensors(filePath));
}

// ---- configurations ------------------------------------------------------------------------------

/** Training settings that do not change the weights: a run may resume with other values. */
export const COSMETIC_TRAIN_FIELDS: readonly string[] = ['logEvery'];

/** What a run was (or is to be) trained with: the model and the training configuration. */
export interface RunConfiguration {
  /** Model fields (a full GptConfig, or a preset's model without vocabSize/blockSize). */
  model: object;
  train: object;
}

function withoutCosmetic(train: object): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(train as Record<string, unknown>) };
  for (const k of COSMETIC_TRAIN_FIELDS) delete out[k];
  return out;
}

/** JSON with object keys sorted, so that equal configurations give equal text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A short hash (10 hex digits) of a configuration, ignoring COSMETIC_TRAIN_FIELDS: equal for
 * configurations that train the same weights, different when any other field differs.
 */
export function configurationFingerprint(config: RunConfiguration): string {
  const text = canonicalJson({ model: config.model, train: withoutCosmetic(config.train) });
  return createHash('sha256').update(text).digest('hex').slice(0, 10);
}

/**
 * The fields in which two configurations differ, as `model.nLayer: 2 in the checkpoint,
 * 3 requested` (`saved` is the checkpoint's); COSMETIC_TRAIN_FIELDS are not compared.
 */
export function configurationDifferences(
  saved: RunConfiguration,
  requested: RunConfiguration,
): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined ? 'absent' : canonicalJson(v));
  const compare = (prefix: string, a: Record<string, unknown>, b: Record<string, unknown>) => {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      if (canonicalJson(a[k]) !== canonicalJson(b[k]))
        out.push(`${prefix}.${k}: ${show(a[k])} in the checkpoint, ${show(b[k])} requested`);
    }
  };
  compare(
    'model',
    saved.model as Record<string, unknown>,
    requested.model as Record<string, unknown>,
  );
  compare('train', withoutCosmetic(saved.train), withoutCosmetic(requested.train));
  return out;
}

/** A checkpoint of another configuration than the one requested (resume or overwrite refused). */
export class ConfigurationMismatchError extends Error {
  constructor(
    message: string,
    /** configurationDifferences(checkpoint, requested). */
    readonly differences: string[],
  ) {
    super(message);
    this.name = 'ConfigurationMismatchError';
  }
}

/** The configuration a checkpoint was trained with. */
export function checkpointConfiguration(meta: CheckpointMeta): RunConfiguration {
  return { model: meta.gptConfig, train: meta.trainConfig };
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

/** Loads a trained GPT from a checkpoint (for sampling, evaluation, export). */
export function loadGpt(filePath: string): {
  model: GPT;
  meta: ReturnType<typeof loadCheckpoint>['meta'];
} {
  const ckpt = loadCheckpoint(filePath);
  return { model: gptFromCheckpoint(ckpt, filePath), meta: ckpt.meta };
}
