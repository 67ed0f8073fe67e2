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
import { stateTensors } from '../nn/state';
import type { GPT } from './model';
import {
  checkpointFromContents,
  gptFromCheckpoint,
  type Checkpoint,
  type CheckpointMeta,
} from './checkpointContents';

// Reading a checkpoint from its contents (pure code, checkpointContents.ts), still importable from
// here.
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  checkpointFromContents,
  gptFromCheckpoint,
  readCheckpointMeta,
} from './checkpointContents';
export type { Checkpoint, CheckpointMeta } from './checkpointContents';

export function saveCheckpoint(filePath: string, ckpt: Checkpoint): void {
  saveSafetensors(filePath, stateTensors(ckpt.weights, ckpt.optimizer), {
    mmgpt: JSON.stringify({ ...ckpt.meta, optimizerStep: ckpt.optimizer?.step ?? null }),
  });
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

/** Loads a trained GPT from a checkpoint (for sampling, evaluation, export). */
export function loadGpt(filePath: string): {
  model: GPT;
  meta: ReturnType<typeof loadCheckpoint>['meta'];
} {
  const ckpt = loadCheckpoint(filePath);
  return { model: gptFromCheckpoint(ckpt, filePath), meta: ckpt.meta };
}
