// Tokenizer checkpoints: a VQ-VAE in one safetensors file, and its fingerprint.
//
// The file holds the weights, the codebook and its EMA state (float32) with the config, the
// restart Rng state and any caller metadata in `__metadata__`, written atomically; loading names
// the file and the problem when it is missing, corrupt, or not a VQ-VAE checkpoint, and checks
// the config against the weights' shapes before a model is built from it. The fingerprint hashes
// what determines the codes and the decoded images: tokenised-dataset caches key on it.

import * as crypto from 'crypto';
import * as fs from 'fs';
import { Rng } from '../nn/rng';
import { NamedArray, loadSafetensors, saveSafetensors } from '../nn/safetensors';
import { VQVAE_DEFAULTS, VQVAE_LEGACY_FIELDS, validateVqVaeConfig } from './config';
import type { VqVaeConfig } from './config';
import { CODES_PER_IMAGE, VqVae } from './model';

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
  checkWeightsMatchConfig(dict, config, fail);
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

/**
 * Fails unless the weights are the ones `config` describes: the config must be the one the
 * weights were made with before a model is built from it (a damaged config could otherwise ask
 * for gigabytes).
 */
function checkWeightsMatchConfig(
  dict: Record<string, { shape: number[] }>,
  config: VqVaeConfig,
  fail: (problem: string) => never,
): void {
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
