// GPT checkpoints: weights, config, optimiser state, RNG state and position in one safetensors
// file, written atomically (temp file + rename), as nanochat's checkpoint_manager does.
//
// Tensors: `model.<name>` (the state dict), `optim.m.<name>`, `optim.v.<name>` (Adam moments).
// Metadata key `mmgpt` holds JSON: format/version, the model config, the training config, the
// step, epoch and batch position, the RNG state, and the hash of the tokenizer that made the
// training tokens. A file that is missing, corrupt or of another format fails with a message
// that names it.

import { loadSafetensors, saveSafetensors } from '../nn/safetensors';
import type { SafetensorsContents } from '../nn/safetensors';
import { readStateTensors, stateTensors } from '../nn/state';
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
  const hasOptimizer = meta.optimizerStep !== null && meta.optimizerStep !== undefined;
  const { weights, optimizer } = readStateTensors(
    contents,
    hasOptimizer ? { step: meta.optimizerStep! } : null,
  );
  return { meta, weights, optimizer };
}
