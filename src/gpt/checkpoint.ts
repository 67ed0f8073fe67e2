// GPT checkpoints: weights, config, optimiser state, RNG state and position in one safetensors
// file, written atomically (temp file + rename), as nanochat's checkpoint_manager does.
//
// Tensors: `model.<name>` (the state dict), `optim.m.<name>`, `optim.v.<name>` (Adam moments).
// Metadata key `mmgpt` holds JSON: format/version, the model config, the training config, the
// step, epoch and batch position, the RNG state, and the hash of the tokenizer that made the
// training tokens. A file that is missing, corrupt or of another format fails with a message
// that names it.

import { loadSafetensors, saveSafetensors, requireTensor } from '../nn/safetensors';
import type { NamedArray, SafetensorsContents } from '../nn/safetensors';
import type { OptimizerState } from '../nn/optim';
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
  const tensors: Record<string, NamedArray> = {};
  for (const [n, t] of Object.entries(ckpt.weights))
    tensors[`model.${n}`] = { dtype: 'F32', shape: t.shape, data: t.data };
  if (ckpt.optimizer) {
    for (const [n, m] of Object.entries(ckpt.optimizer.m)) {
      const shape = ckpt.weights[n].shape;
      tensors[`optim.m.${n}`] = { dtype: 'F32', shape, data: m };
      tensors[`optim.v.${n}`] = { dtype: 'F32', shape, data: ckpt.optimizer.v[n] };
    }
  }
  saveSafetensors(filePath, tensors, {
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
  if (meta.format !== CHECKPOINT_FORMAT) {
    throw new Error(`${contents.fileName}: format '${meta.format}' is not '${CHECKPOINT_FORMAT}'`);
  }
  if (meta.version !== CHECKPOINT_VERSION) {
    throw new Error(
      `${contents.fileName}: checkpoint version ${meta.version} is not supported (this mmgpt reads version ${CHECKPOINT_VERSION})`,
    );
  }
  return meta;
}

export function loadCheckpoint(filePath: string): Checkpoint {
  const contents = loadSafetensors(filePath);
  const meta = readCheckpointMeta(contents);
  const weights: Checkpoint['weights'] = {};
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const key of Object.keys(contents.tensors)) {
    if (key.startsWith('model.')) {
      const t = requireTensor(contents, key, 'F32');
      weights[key.slice(6)] = { shape: t.shape, data: t.data };
    }
  }
  if (Object.keys(weights).length === 0)
    throw new Error(`${filePath}: checkpoint holds no model weights`);
  let optimizer: OptimizerState | null = null;
  if (meta.optimizerStep !== null && meta.optimizerStep !== undefined) {
    for (const [n, w] of Object.entries(weights)) {
      m[n] = requireTensor(contents, `optim.m.${n}`, 'F32', w.shape).data;
      v[n] = requireTensor(contents, `optim.v.${n}`, 'F32', w.shape).data;
    }
    optimizer = { step: meta.optimizerStep, m, v };
  }
  return { meta, weights, optimizer };
}
