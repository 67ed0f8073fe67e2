// Fixtures for the evaluation tests: a synthetic labelled image set that a tiny classifier can
// learn in a second on the js backend, small builders of attributes, and a tiny run directory
// (random GPT checkpoint + random tiny VQ-VAE) for the commands.

import * as fs from 'fs';
import * as path from 'path';
import { legiblePairs, PALETTE } from '../../src/data/palette';
import { Vocab } from '../../src/data/vocab';
import { SEQUENCE_LENGTH } from '../../src/data/sequences';
import { GPT, type GptConfig } from '../../src/gpt/model';
import { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, saveCheckpoint } from '../../src/gpt/checkpoint';
import { CHECKPOINT_FILE, LOG_FILE } from '../../src/gpt/train';
import { VqVae, VQVAE_PRESETS } from '../../src/vqvae/model';
import { saveVqVae, vqVaeFingerprint } from '../../src/vqvae/train';
import { IMAGE_VALUES } from '../../src/data/coloured';
import { Rng } from '../../src/nn/rng';
import type { LabelledImages } from '../../src/eval/classifier';
import type { Attributes } from '../../src/eval/metrics';

/**
 * `count` 28x28 images: background colour everywhere, a 5x5 foreground block in the cell of a
 * 3x4 grid that the digit selects. Colours come from the first `pairs` legible (fg, bg) pairs.
 */
export function syntheticSet(count: number, seed: number, pairs = 6): LabelledImages {
  const rng = new Rng(seed);
  const legible = legiblePairs(); // [P, 2]
  const images = new Uint8Array(count * IMAGE_VALUES); // [N, 28, 28, 3]
  const digit = new Int32Array(count);
  const fg = new Int32Array(count);
  const bg = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const pair = rng.int(Math.min(pairs, legible.length / 2));
    digit[i] = rng.int(10);
    fg[i] = legible[2 * pair]!;
    bg[i] = legible[2 * pair + 1]!;
    const cellRow = Math.floor(digit[i]! / 4);
    const cellCol = digit[i]! % 4;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const inBlock =
          y >= 1 + cellRow * 9 &&
          y < 6 + cellRow * 9 &&
          x >= 1 + cellCol * 7 &&
          x < 6 + cellCol * 7;
        const rgb = PALETTE[inBlock ? fg[i]! : bg[i]!]!.rgb;
        images.set(rgb, i * IMAGE_VALUES + (y * 28 + x) * 3);
      }
    }
  }
  return { images, count, digit, fg, bg };
}

export function attrs(digit: number[], fg: number[], bg: number[]): Attributes {
  return { digit: Int32Array.from(digit), fg: Int32Array.from(fg), bg: Int32Array.from(bg) };
}

/**
 * A tiny trained-looking run directory: a random 1-layer GPT checkpoint (complete) and a random
 * tiny VQ-VAE beside it, with a log.json; returns the checkpoint path.
 */
export function writeTinyRun(
  dir: string,
  opts: { complete?: boolean; seed?: number } = {},
): string {
  fs.mkdirSync(dir, { recursive: true });
  const tokenizer = new VqVae(VQVAE_PRESETS.tiny, new Rng(opts.seed ?? 0));
  const vocab = new Vocab(tokenizer.config.codebookSize);
  const gptConfig: GptConfig = {
    vocabSize: vocab.size,
    blockSize: SEQUENCE_LENGTH,
    nLayer: 1,
    nHead: 2,
    nEmbd: 16,
    dropout: 0,
  };
  const model = new GPT(gptConfig, new Rng(opts.seed ?? 1));
  const file = path.join(dir, CHECKPOINT_FILE);
  saveCheckpoint(file, {
    meta: {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      gptConfig,
      trainConfig: { testLimit: 8 },
      step: 3,
      epoch: 1,
      batchInEpoch: 0,
      rngState: new Rng(0).getState(),
      tokenizerHash: vqVaeFingerprint(tokenizer),
      complete: opts.complete ?? true,
    },
    weights: model.stateDict(),
    optimizer: null,
  });
  saveVqVae(tokenizer, path.join(dir, 'vqvae.safetensors'));
  fs.writeFileSync(
    path.join(dir, LOG_FILE),
    JSON.stringify({ testNll: [{ epoch: 1, step: 3, nll: 3.5 }] }),
  );
  for (const p of model.parameters()) p.dispose();
  tokenizer.dispose();
  return file;
}
