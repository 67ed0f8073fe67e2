// A VQ-VAE read from safetensors contents: the checks of the metadata (format, version, config)
// and of the weights against the config, then the model. Pure code (no file system), so that a web
// page builds the tokenizer from fetched bytes; checkpoint.ts reads and writes the files.

import { Rng } from '../nn/rng';
import type { SafetensorsContents } from '../nn/safetensorsFormat';
import { VQVAE_DEFAULTS, VQVAE_LEGACY_FIELDS, validateVqVaeConfig } from './config';
import type { VqVaeConfig } from './config';
import { VqVae } from './model';

export const VQVAE_FORMAT = 'mmgpt-vqvae';
export const VQVAE_FORMAT_VERSION = 1;

/** A model and the file's metadata (the caller's extraMeta included). */
export interface LoadedVqVae {
  model: VqVae;
  /** Every metadata entry of the file (including the caller's extraMeta). */
  metadata: Record<string, string>;
}

/** The VQ-VAE that saveVqVae wrote, from the file's contents; errors name `fileName`. */
export function vqVaeFromContents(contents: SafetensorsContents, fileName: string): LoadedVqVae {
  const meta = contents.metadata;
  const fail = (problem: string): never => {
    throw new Error(`VQ-VAE checkpoint '${fileName}': ${problem}`);
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
    model.loadStateDict(dict, `VQ-VAE checkpoint '${fileName}'`);
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
