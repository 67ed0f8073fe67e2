// Training state as safetensors entries, shared by the GPT checkpoints (src/gpt/checkpoint.ts) and
// the tokenizer's training state (src/vqvae/train.ts): `model.<name>` for every entry of a state
// dict, `optim.m.<name>` and `optim.v.<name>` for Adam's moments of the parameters that have them.

import { requireTensor } from './safetensorsFormat';
import type { NamedArray, SafetensorsContents } from './safetensorsFormat';
import type { OptimizerState } from './optim';

export type StateDict = Record<string, { shape: number[]; data: Float32Array }>;

/** A state dict and (optionally) Adam's state as named float32 tensors. */
export function stateTensors(
  weights: StateDict,
  optimizer: OptimizerState | null,
): Record<string, NamedArray> {
  const tensors: Record<string, NamedArray> = {};
  for (const [n, t] of Object.entries(weights))
    tensors[`model.${n}`] = { dtype: 'F32', shape: t.shape, data: t.data };
  if (optimizer) {
    for (const [n, m] of Object.entries(optimizer.m)) {
      const w = weights[n];
      if (w === undefined) throw new Error(`optimiser state for '${n}', which has no weight`);
      tensors[`optim.m.${n}`] = { dtype: 'F32', shape: w.shape, data: m };
      tensors[`optim.v.${n}`] = { dtype: 'F32', shape: w.shape, data: optimizer.v[n]! };
    }
  }
  return tensors;
}

/**
 * The inverse of stateTensors. Every `model.*` entry must be float32 and there must be at least
 * one. With `optimizer`, Adam's moments are read (shapes checked against their weights) for
 * `optimizer.names` (default: every weight) and returned with `optimizer.step`.
 */
export function readStateTensors(
  contents: SafetensorsContents,
  optimizer: { step: number; names?: readonly string[] } | null,
): { weights: StateDict; optimizer: OptimizerState | null } {
  const weights: StateDict = {};
  for (const key of Object.keys(contents.tensors)) {
    if (key.startsWith('model.')) {
      const t = requireTensor(contents, key, 'F32');
      weights[key.slice('model.'.length)] = { shape: t.shape, data: t.data };
    }
  }
  if (Object.keys(weights).length === 0)
    throw new Error(`${contents.fileName}: checkpoint holds no model weights`);
  if (optimizer === null) return { weights, optimizer: null };
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const n of optimizer.names ?? Object.keys(weights)) {
    const shape = weights[n]?.shape;
    m[n] = requireTensor(contents, `optim.m.${n}`, 'F32', shape).data;
    v[n] = requireTensor(contents, `optim.v.${n}`, 'F32', shape).data;
  }
  return { weights, optimizer: { step: optimizer.step, m, v } };
}
