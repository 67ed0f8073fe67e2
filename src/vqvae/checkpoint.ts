// Tokenizer checkpoints: a VQ-VAE in one safetensors file, and its fingerprint.
//
// The file holds the weights, the codebook and its EMA state (float32) with the config, the
// restart Rng state and any caller metadata in `__metadata__`, written atomically; loading names
// the file and the problem when it is missing, corrupt, or not a VQ-VAE checkpoint, and checks
// the config against the weights' shapes before a model is built from it. The fingerprint hashes
// what determines the codes and the decoded images: tokenised-dataset caches key on it.

import * as crypto from 'crypto';
import * as fs from 'fs';
import { NamedArray, loadSafetensors, saveSafetensors } from '../nn/safetensors';
import { CODES_PER_IMAGE, VqVae } from './model';
import {
  VQVAE_FORMAT,
  VQVAE_FORMAT_VERSION,
  vqVaeFromContents,
  type LoadedVqVae,
} from './checkpointContents';

// The format and reading a model from its contents (pure code), still importable from here.
export { VQVAE_FORMAT, VQVAE_FORMAT_VERSION } from './checkpointContents';
export type { LoadedVqVae } from './checkpointContents';

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
  return vqVaeFromContents(contents, filePath);
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
