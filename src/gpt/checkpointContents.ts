// A GPT checkpoint read from safetensors contents, and the GPT it holds: pure code (no file
// system), so that a web page builds the model from fetched bytes. The file's layout and its
// checks are described in checkpoint.ts, which reads and writes the files.

import type { SafetensorsContents } from '../nn/safetensorsFormat';
import { readStateTensors } from '../nn/state';
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
