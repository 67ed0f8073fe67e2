// A trained run for other places: as shipped weights (weights/<name>/: the checkpoint without
// its optimiser state, the tokenizer, and the run's log and summary), or in the GPT-2 layout
// with the tokenizer, vocabulary, test tokens and the test NLL mmgpt computes on them
// (src/gpt/export.ts says what each file holds).

import * as fs from 'fs';
import * as path from 'path';
import { loadColouredMnist } from '../data/coloured';
import { splitSequenceSource } from '../data/sequences';
import { atomicWriteFile, makeDirectory } from '../nn/safetensors';
import { exportGpt2 } from '../gpt/export';
import { loadCheckpoint, saveCheckpoint } from '../gpt/checkpoint';
import { CHECKPOINT_FILE, LOG_FILE } from '../gpt/train';
import { loadRun, TOKENIZER_FILE } from '../eval/run';
import { tokenise } from './tokens';

/** Summary file a finished run leaves beside its log. */
const SUMMARY_FILE = 'summary.json';

/**
 * Copies a finished run into `outDir` as shipped weights: the checkpoint without optimiser
 * state, its tokenizer, log and summary. Returns the files written.
 */
export function exportWeights(checkpointPath: string, outDir: string): string[] {
  const ckpt = loadCheckpoint(checkpointPath);
  if (!ckpt.meta.complete) {
    throw new Error(
      `${checkpointPath}: the run is not complete (step ${ckpt.meta.step}); finish it with ` +
        `mmgpt train --resume before shipping its weights`,
    );
  }
  const runDir = path.dirname(checkpointPath);
  const tokenizer = path.join(runDir, TOKENIZER_FILE);
  if (!fs.existsSync(tokenizer)) throw new Error(`${runDir} has no ${TOKENIZER_FILE}`);
  makeDirectory(outDir);
  saveCheckpoint(path.join(outDir, CHECKPOINT_FILE), { ...ckpt, optimizer: null });
  const files = [CHECKPOINT_FILE];
  for (const name of [TOKENIZER_FILE, LOG_FILE, SUMMARY_FILE]) {
    const src = path.join(runDir, name);
    if (!fs.existsSync(src)) continue;
    if (path.resolve(src) !== path.resolve(outDir, name))
      atomicWriteFile(path.join(outDir, name), fs.readFileSync(src));
    files.push(name);
  }
  return files;
}

/**
 * Writes the run of `checkpointPath` into `outDir` in the GPT-2 layout, with the whole test set
 * tokenised by the run's own tokenizer (through the token cache); returns the files written
 * and the test NLL on exactly those tokens.
 */
export function exportRunAsGpt2(
  checkpointPath: string,
  outDir: string,
  log: (line: string) => void,
): { testNll: number; files: string[] } {
  const run = loadRun(checkpointPath);
  const data = loadColouredMnist({ log });
  const codes = tokenise(run.tokenizer, data.test, 0, log);
  const test = splitSequenceSource(data.test, codes, run.vocab);
  return exportGpt2({
    model: run.model,
    vocab: run.vocab,
    test,
    outDir,
    vqvaePath: run.tokenizerPath,
    provenance: {
      checkpoint: path.relative(process.cwd(), checkpointPath),
      checkpoint_sha256: run.checkpointSha256,
      tokenizer_sha256: run.tokenizerSha256,
    },
  });
}
