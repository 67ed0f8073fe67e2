// Shared by the tests of src/pipeline/: synthetic coloured splits, and a scratch runs directory
// with extra tokenizer recipes that is undone afterwards, whatever happens.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TOKENIZER_RECIPES } from '../../src/pipeline/tokenizers';
import type { TokenizerRecipe } from '../../src/pipeline/recipes';
import type { ColouredSplit } from '../../src/data/coloured';
import { syntheticSet } from '../eval/helpers';

export function split(name: 'train' | 'test', count: number, seed: number): ColouredSplit {
  return { split: name, ...syntheticSet(count, seed) };
}

/**
 * Runs `body` with MMGPT_RUNS_DIR in a new temporary folder and `recipes` added to
 * TOKENIZER_RECIPES, and undoes both afterwards, whatever happens.
 */
export function inScratchRuns(
  prefix: string,
  recipes: Record<string, TokenizerRecipe>,
  body: () => void,
): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const saved = process.env.MMGPT_RUNS_DIR;
  process.env.MMGPT_RUNS_DIR = root;
  Object.assign(TOKENIZER_RECIPES, recipes);
  try {
    body();
  } finally {
    for (const name of Object.keys(recipes)) delete TOKENIZER_RECIPES[name];
    if (saved === undefined) delete process.env.MMGPT_RUNS_DIR;
    else process.env.MMGPT_RUNS_DIR = saved;
    fs.rmSync(root, { recursive: true, force: true });
  }
}
