// The checkpoint and its config metadata under a seeded mutation fuzz: bytes of the whole file
// mutated, and the `mmgpt` metadata JSON mutated (fields set to extremes, deleted, retyped, the
// text cut or flipped). Every case either loads a model that matches its weights or fails with an
// Error naming the file: never a crash, a hang, or a model allocated from a config the weights do
// not back (nEmbd 1e9 would ask for gigabytes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/engine/registry';
import { Rng } from '../../src/nn/rng';
import { decodeSafetensors, encodeSafetensors } from '../../src/nn/safetensors';
import { stateTensors } from '../../src/nn/state';
import { GPT } from '../../src/gpt/model';
import type { GptConfig } from '../../src/gpt/model';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  checkpointFromContents,
} from '../../src/gpt/checkpoint';
import type { CheckpointMeta } from '../../src/gpt/checkpoint';
import { gptFromCheckpoint } from '../../src/gpt/train';
import { fuzzLoader, mutate } from '../fuzz';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

const gptConfig: GptConfig = {
  vocabSize: 20,
  blockSize: 8,
  nLayer: 2,
  nHead: 2,
  nEmbd: 8,
  dropout: 0,
};
const model = new GPT(gptConfig, new Rng(1));
const weights = model.stateDict();
const moments = (fill: number) =>
  Object.fromEntries(
    Object.entries(weights).map(([n, w]) => [n, new Float32Array(w.data.length).fill(fill)]),
  );
const meta: CheckpointMeta = {
  format: CHECKPOINT_FORMAT,
  version: CHECKPOINT_VERSION,
  gptConfig,
  trainConfig: { epochs: 2, batchSize: 8, lr: 0.001, testLimit: 8 },
  step: 7,
  epoch: 1,
  batchInEpoch: 3,
  rngState: new Rng(0).getState(),
  tokenizerHash: 'abc123',
  complete: false,
};
const tensors = stateTensors(weights, { step: 7, m: moments(0.1), v: moments(0.2) });
const encode = (metaJson: string) => encodeSafetensors(tensors, { mmgpt: metaJson });
const goodJson = JSON.stringify({ ...meta, optimizerStep: 7 });

/** What mmgpt does with a checkpoint file's bytes: decode, read the checkpoint, build the GPT. */
function load(input: Buffer, name: string): void {
  const ckpt = checkpointFromContents(decodeSafetensors(input, name));
  const loaded = gptFromCheckpoint(ckpt, name);
  assert.equal(loaded.numParameters(), model.numParameters());
  for (const p of loaded.parameters()) p.dispose();
}

const EXTREMES: unknown[] = [
  0,
  -1,
  1.5,
  1e9,
  2 ** 53 + 2,
  1e308,
  -1e308,
  'x',
  '',
  null,
  true,
  [],
  {},
  [1, 2, 3, 4],
];

/** Every path to a value in the metadata: ['gptConfig', 'nEmbd'], ['rngState', 2], ... */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const keys: (string | number)[] = Array.isArray(value)
    ? value.map((_, i) => i)
    : Object.keys(value);
  return [
    prefix,
    ...keys.flatMap((k) => paths((value as Record<string, unknown>)[k], [...prefix, k])),
  ];
}

/** The metadata with one value replaced (or deleted), as JSON. */
function mutateMeta(rng: Rng): string {
  const copy = JSON.parse(goodJson) as Record<string, unknown>;
  const all = paths(copy).filter((p) => p.length > 0);
  const where = all[rng.int(all.length)]!;
  let parent = copy as Record<string | number, unknown>;
  for (const k of where.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = where[where.length - 1]!;
  if (rng.int(8) === 0) delete parent[key];
  else parent[key] = EXTREMES[rng.int(EXTREMES.length)];
  return JSON.stringify(copy);
}

test('the unmutated checkpoint loads', () => {
  load(encode(goodJson), 'good.safetensors');
});

test('a config the weights do not back is refused before a model is built', () => {
  const huge = JSON.stringify({ ...meta, gptConfig: { ...gptConfig, nEmbd: 1_000_000_000 } });
  assert.throws(
    () => load(encode(huge), 'huge.safetensors'),
    /huge.safetensors: the weights do not match the checkpoint's gptConfig: 'wte.weight' has shape \[20, 8\], the config says \[20, 1000000000\]/,
  );
  const deep = JSON.stringify({ ...meta, gptConfig: { ...gptConfig, nLayer: 100000 } });
  assert.throws(
    () => load(encode(deep), 'deep.safetensors'),
    /deep.safetensors: the weights hold 2 layers, the checkpoint's gptConfig says 100000/,
  );
  const step = JSON.stringify({ ...meta, batchInEpoch: -3 });
  assert.throws(
    () => load(encode(step), 'step.safetensors'),
    /step.safetensors: checkpoint metadata field batchInEpoch is -3; expected a non-negative integer/,
  );
});

test('fuzz: 3000 mutated checkpoints load or fail cleanly, fast, without huge allocations', () => {
  const good = encode(goodJson);
  const started = performance.now();
  const outcome = fuzzLoader({
    seed: 13,
    cases: 3000,
    make: (rng: Rng, i: number) => {
      switch (i % 3) {
        case 0:
          return mutate(good, rng);
        case 1:
          return encode(mutateMeta(rng));
        default: {
          // The metadata text itself cut short or with bytes changed.
          const text = Buffer.from(goodJson, 'utf8');
          return encode(mutate(text, rng).toString('utf8'));
        }
      }
    },
    load,
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(
    outcome.refused > 1000 && outcome.loaded > 100,
    JSON.stringify({ ...outcome, messages: [...outcome.messages].slice(0, 10) }),
  );
  assert.ok(seconds < 20, `${seconds.toFixed(1)} s`);
});
