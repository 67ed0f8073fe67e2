// A trained run on disk: finding its checkpoint, loading the GPT with the tokenizer it was
// trained with, and the hashes that identify both in reports and samples.json.
//
// Which checkpoint (`findCheckpoint`): an explicit path (a file or a run directory), else the
// newest complete <runs>/*/checkpoint.safetensors by modification time, else shipped weights
// (<weights>/checkpoint.safetensors or <weights>/*/checkpoint.safetensors). A run directory holds
// vqvae.safetensors (the tokenizer the GPT was trained with) beside checkpoint.safetensors;
// `loadRun` checks its fingerprint against the one the checkpoint records, since scoring a GPT
// through another tokenizer would give meaningless numbers.

import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { ColouredSplit } from '../data/coloured';
import { IMAGE_VALUES } from '../data/coloured';
import { Vocab } from '../data/vocab';
import { loadSafetensors } from '../nn/safetensors';
import type { GPT } from '../gpt/model';
import { readCheckpointMeta } from '../gpt/checkpoint';
import type { CheckpointMeta } from '../gpt/checkpoint';
import { CHECKPOINT_FILE, LOG_FILE, loadGpt } from '../gpt/train';
import type { VqVae } from '../vqvae/model';
import { loadVqVae, vqVaeFingerprint } from '../vqvae/train';
import type { CheckpointInfo, TokenizerInfo } from './report';

export const TOKENIZER_FILE = 'vqvae.safetensors';
export const TRAIN_FIRST = 'train first with mmgpt train --preset quick';

/** SHA-256 of a file's bytes. */
export function fileSha256(filePath: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(filePath)).digest('hex');
}

function checkpointMetaOf(file: string): CheckpointMeta | null {
  try {
    return readCheckpointMeta(loadSafetensors(file));
  } catch {
    return null;
  }
}

/**
 * Shipped weights in the order a default checkpoint is taken from weights/: the best-scoring
 * first (README, "Results so far"), then any other folder by name.
 */
export const SHIPPED_PREFERENCE = ['best', 'original-full', 'original'];

/**
 * The checkpoint to use: `explicit` if given (a file, or a run directory), else the newest complete
 * <runsDir>/*\/checkpoint.safetensors with a tokenizer beside it, else shipped weights. Throws
 * saying what was looked at and what to do.
 */
export function findCheckpoint(opts: {
  explicit?: string;
  /** Where training runs live (runs/ or MMGPT_RUNS_DIR). */
  runsDir: string;
  /** Where shipped weights live (weights/). */
  weightsDir: string;
}): string {
  const { explicit, weightsDir: weights } = opts;
  if (explicit !== undefined) {
    if (!fs.existsSync(explicit)) throw new Error(`checkpoint '${explicit}' does not exist`);
    const stat = fs.statSync(explicit);
    const file = stat.isDirectory() ? path.join(explicit, CHECKPOINT_FILE) : explicit;
    if (!fs.existsSync(file))
      throw new Error(`'${explicit}' is a directory without ${CHECKPOINT_FILE}`);
    return file;
  }
  const runs = opts.runsDir;
  const unfinished: string[] = [];
  const candidates: { file: string; mtimeMs: number }[] = [];
  if (fs.existsSync(runs)) {
    for (const name of fs.readdirSync(runs)) {
      const file = path.join(runs, name, CHECKPOINT_FILE);
      if (fs.existsSync(file)) candidates.push({ file, mtimeMs: fs.statSync(file).mtimeMs });
    }
  }
  candidates.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { file } of candidates) {
    const meta = checkpointMetaOf(file);
    if (meta === null) continue;
    if (meta.complete && fs.existsSync(path.join(path.dirname(file), TOKENIZER_FILE))) return file;
    unfinished.push(path.relative(process.cwd(), file) || file);
  }
  if (fs.existsSync(weights)) {
    const names = fs.readdirSync(weights).sort();
    const ranked = [
      ...SHIPPED_PREFERENCE.filter((n) => names.includes(n)),
      ...names.filter((n) => !SHIPPED_PREFERENCE.includes(n)),
    ];
    const shipped = [path.join(weights, CHECKPOINT_FILE)];
    for (const name of ranked) shipped.push(path.join(weights, name, CHECKPOINT_FILE));
    const found = shipped.find((f) => fs.existsSync(f));
    if (found !== undefined) return found;
  }
  throw new Error(
    `no trained checkpoint found: no complete ${path.join(runs, '*', CHECKPOINT_FILE)} ` +
      `and no shipped weights in ${weights}` +
      (unfinished.length > 0
        ? ` (unfinished runs: ${unfinished.join(', ')}; continue one with mmgpt train --preset NAME --resume)`
        : '') +
      `; ${TRAIN_FIRST}, or pass --checkpoint PATH`,
  );
}

/**
 * The newest complete run directory under `runsDir` whose name starts with `prefix` (e.g.
 * `notebook-quick-`, the runs notebook 03 trains, one per configuration), with its tokenizer
 * beside the checkpoint; null if there is none.
 */
export function newestCompleteRun(runsDir: string, prefix: string): string | null {
  if (!fs.existsSync(runsDir)) return null;
  const candidates = fs
    .readdirSync(runsDir)
    .filter((name) => name.startsWith(prefix))
    .map((name) => path.join(runsDir, name, CHECKPOINT_FILE))
    .filter(
      (file) => fs.existsSync(file) && fs.existsSync(path.join(path.dirname(file), TOKENIZER_FILE)),
    )
    .map((file) => ({ file, mtimeMs: fs.statSync(file).mtimeMs }))
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  const found = candidates.find(({ file }) => checkpointMetaOf(file)?.complete === true);
  return found === undefined ? null : path.dirname(found.file);
}

/** A trained run: the GPT, its tokenizer and vocabulary, and where they came from. */
export interface LoadedRun {
  model: GPT;
  meta: CheckpointMeta;
  vocab: Vocab;
  tokenizer: VqVae;
  checkpointPath: string;
  checkpointSha256: string;
  tokenizerPath: string;
  tokenizerSha256: string;
  tokenizerFingerprint: string;
  /** The final test NLL in the run's log.json (null if there is none). */
  trainingFinalTestNll: number | null;
}

/** Loads checkpoint.safetensors and the vqvae.safetensors beside it, checking they belong together. */
export function loadRun(checkpointPath: string): LoadedRun {
  const dir = path.dirname(checkpointPath);
  const tokenizerPath = path.join(dir, TOKENIZER_FILE);
  if (!fs.existsSync(tokenizerPath))
    throw new Error(
      `${dir} has no ${TOKENIZER_FILE} beside ${path.basename(checkpointPath)}: the tokenizer the ` +
        `GPT was trained with is written there when training finishes; ${TRAIN_FIRST}`,
    );
  const { model, meta } = loadGpt(checkpointPath);
  const tokenizer = loadVqVae(tokenizerPath);
  const fingerprint = vqVaeFingerprint(tokenizer);
  if (meta.tokenizerHash && meta.tokenizerHash !== fingerprint)
    throw new Error(
      `${tokenizerPath} (fingerprint ${fingerprint.slice(0, 12)}) is not the tokenizer ` +
        `${checkpointPath} was trained with (${meta.tokenizerHash.slice(0, 12)})`,
    );
  const vocab = new Vocab(tokenizer.config.codebookSize);
  if (model.config.vocabSize !== vocab.size)
    throw new Error(
      `${checkpointPath} has a vocabulary of ${model.config.vocabSize} tokens, but its tokenizer's ` +
        `${tokenizer.config.codebookSize} codes make ${vocab.size}`,
    );
  let trainingFinalTestNll: number | null = null;
  try {
    const log = JSON.parse(fs.readFileSync(path.join(dir, LOG_FILE), 'utf8')) as {
      testNll?: { nll: number }[];
    };
    const last = log.testNll?.[log.testNll.length - 1];
    if (last !== undefined && Number.isFinite(last.nll)) trainingFinalTestNll = last.nll;
  } catch {
    // no training log beside shipped weights: the report says so
  }
  return {
    model,
    meta,
    vocab,
    tokenizer,
    checkpointPath,
    checkpointSha256: fileSha256(checkpointPath),
    tokenizerPath,
    tokenizerSha256: fileSha256(tokenizerPath),
    tokenizerFingerprint: fingerprint,
    trainingFinalTestNll,
  };
}

/** The first n items of a split. */
export function takeSplit(split: ColouredSplit, n: number): ColouredSplit {
  if (n >= split.count) return split;
  return {
    ...split,
    count: n,
    images: split.images.subarray(0, n * IMAGE_VALUES),
    digit: split.digit.subarray(0, n),
    fg: split.fg.subarray(0, n),
    bg: split.bg.subarray(0, n),
  };
}

/** What a report records of a loaded run: its checkpoint and its tokenizer. */
export function runFacts(run: LoadedRun): {
  checkpoint: CheckpointInfo;
  tokenizerInfo: TokenizerInfo;
} {
  return {
    checkpoint: {
      path: run.checkpointPath,
      sha256: run.checkpointSha256,
      step: run.meta.step,
      epoch: run.meta.epoch,
      complete: run.meta.complete,
      gptConfig: run.meta.gptConfig,
      tokenizerHash: run.meta.tokenizerHash,
      trainingFinalTestNll: run.trainingFinalTestNll,
    },
    tokenizerInfo: {
      path: run.tokenizerPath,
      sha256: run.tokenizerSha256,
      fingerprint: run.tokenizerFingerprint,
    },
  };
}
