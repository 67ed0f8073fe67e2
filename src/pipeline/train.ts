// Training one named run: the data (coloured MNIST, cached), the preset's tokenizer (made once
// per recipe, then frozen; tokenizers.ts), the tokenised dataset (the token cache; tokens.ts),
// the GPT (runs/<preset>/checkpoint.safetensors, log.json, summary.json) and its training curve
// (runs/<preset>/training_curve.png). `mmgpt train`, `mmgpt pipeline`, the notebooks and bench/ call these.
// One writer per run directory (src/gpt/runlock.ts), taken before the first file is written.

import * as fs from 'fs';
import * as path from 'path';
import { getBackend } from '../engine/registry';
import { loadColouredMnist } from '../data/coloured';
import type { ColouredSplit } from '../data/coloured';
import { Vocab } from '../data/vocab';
import { SEQUENCE_LENGTH, splitSequenceSource } from '../data/sequences';
import type { SequenceSource } from '../data/sequences';
import { partitionTrain } from '../data/holdout';
import { atomicWriteFile } from '../nn/safetensors';
import type { VqVae } from '../vqvae/model';
import { vqVaeFingerprint } from '../vqvae/train';
import type { VqVaeEvaluation } from '../vqvae/train';
import { GPT_PRESETS, trainGpt } from '../gpt/train';
import type { TrainGptResult } from '../gpt/train';
import { acquireRunLock } from '../gpt/runlock';
import type { RunLock } from '../gpt/runlock';
import { takeSplit } from '../eval/run';
import { writeTrainingCurve } from '../viz/plot';
import { runsDir } from '../paths';
import { pipelinePreset } from './presets';
import type { PipelinePreset } from './recipes';
import { TOKENIZER_RECIPES, ensureTokenizer } from './tokenizers';
import { tokenise } from './tokens';
import { foreignRunDifferences, rssOverRun, runProvenance, setAsideForeignRun } from './runs';
import type { RunProvenance } from './runs';

export interface PipelineData {
  vocab: Vocab;
  train: SequenceSource;
  test: SequenceSource;
  /** The validation split (not trained on; empty for runs that hold none out). */
  validationSplit: ColouredSplit;
  tokenizer: VqVae;
  tokenizerPath: string;
  tokenizerReport: Omit<VqVaeEvaluation, 'codes'>;
  testSplit: ColouredSplit;
  /** Training items, and how many were dropped for a held-out colour pair. */
  trainItems: number;
  droppedForPairs: number;
}

/**
 * Everything the GPT needs for a preset: vocabulary, tokenised training items (the train split
 * less the validation split and any held-out colour pairs) and test set.
 */
export function preparePipelineData(presetName: string, log: (l: string) => void): PipelineData {
  const preset = pipelinePreset(presetName);
  const gpt = GPT_PRESETS[preset.gpt];
  const data = loadColouredMnist({ log });
  const tok = ensureTokenizer(preset.tokenizer, data.train, data.test, log);
  const vocab = new Vocab(tok.model.config.codebookSize);
  const holdout = {
    validationItems: gpt.train.validationItems,
    heldOutPairs: gpt.train.heldOutPairs,
  };
  const part = partitionTrain(data.train, holdout);
  if (holdout.validationItems > 0 || holdout.heldOutPairs > 0)
    log(
      `data: ${part.train.count} training items (${holdout.validationItems} kept for validation` +
        (holdout.heldOutPairs > 0
          ? `, ${part.droppedForPairs} dropped for ${holdout.heldOutPairs} held-out colour pairs)`
          : ')'),
    );
  const tag = `train-v${holdout.validationItems}-p${holdout.heldOutPairs}`;
  const trainCodes = tokenise(tok.model, part.train, gpt.train.trainLimit, log, tag);
  const testCodes = tokenise(tok.model, data.test, gpt.train.testLimit, log);
  const trainSplit = takeSplit(part.train, trainCodes.length / 49);
  const testSplit = takeSplit(data.test, testCodes.length / 49);
  return {
    vocab,
    train: splitSequenceSource(trainSplit, trainCodes, vocab),
    test: splitSequenceSource(testSplit, testCodes, vocab),
    validationSplit: part.validation,
    tokenizer: tok.model,
    tokenizerPath: tok.path,
    tokenizerReport: tok.report,
    testSplit,
    trainItems: trainSplit.count,
    droppedForPairs: part.droppedForPairs,
  };
}

export interface TrainPipelineResult extends TrainGptResult {
  data: PipelineData;
  runDir: string;
  curvePath: string;
  /** Wall time of the data, the tokenizer and the token caches, before the GPT's training. */
  dataSeconds: number;
}

/**
 * Trains a preset's tokenizer (unless made already) and GPT into its run directory (default
 * runs/<preset>). A fresh run never clobbers a run of another configuration: that one is moved
 * aside (its lock released for the move and taken again on the emptied directory).
 */
export async function trainPipeline(
  presetName: string,
  opts: { resume?: boolean; log?: (l: string) => void; runDir?: string },
): Promise<TrainPipelineResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const preset = pipelinePreset(presetName);
  const runDir = opts.runDir ?? path.join(runsDir(), presetName);
  // One writer per run directory, from before the first file is written into it.
  let runLock = acquireRunLock(runDir, log);
  try {
    if (!opts.resume) {
      const gpt = GPT_PRESETS[preset.gpt]!;
      const codes = TOKENIZER_RECIPES[preset.tokenizer]!.config.codebookSize;
      const model = {
        ...gpt.model,
        vocabSize: new Vocab(codes).size,
        blockSize: SEQUENCE_LENGTH - 1,
      };
      if (foreignRunDifferences(runDir, { model, train: gpt.train }).length > 0) {
        runLock.release();
        setAsideForeignRun(runDir, { model, train: gpt.train }, log);
        runLock = acquireRunLock(runDir, log);
      }
    }
    return await trainPipelineLocked(presetName, preset, runDir, runLock, log, opts.resume);
  } finally {
    runLock.release();
  }
}

/** trainPipeline's work once the run directory's lock is held. */
async function trainPipelineLocked(
  presetName: string,
  preset: PipelinePreset,
  runDir: string,
  runLock: RunLock,
  log: (l: string) => void,
  resume: boolean | undefined,
): Promise<TrainPipelineResult> {
  const t0 = Date.now();
  const startedFrom = runProvenance();
  const data = preparePipelineData(presetName, log);
  const dataSeconds = (Date.now() - t0) / 1000;
  // Keep the tokenizer beside the GPT from the start, so a run directory is self-contained even
  // while training (sampling and evaluating a partly trained checkpoint).
  atomicWriteFile(path.join(runDir, 'vqvae.safetensors'), fs.readFileSync(data.tokenizerPath));
  const result = await trainGpt({
    runDir,
    preset: GPT_PRESETS[preset.gpt],
    vocab: data.vocab,
    train: data.train,
    test: data.test,
    tokenizerHash: vqVaeFingerprint(data.tokenizer),
    resume,
    log,
    runLock,
  });
  const curvePath = path.join(runDir, 'training_curve.png');
  writeTrainingCurve(curvePath, result.log, `mmgpt ${presetName}: NLL per minibatch and per epoch`);
  writeRunSummary(runDir, presetName, preset, result, data, startedFrom, t0);
  logOutcome(presetName, result, data, curvePath, log);
  return { ...result, data, runDir, curvePath, dataSeconds };
}

/** runDir/summary.json: the run's outcome, tokenizer, memory and provenance. */
function writeRunSummary(
  runDir: string,
  presetName: string,
  preset: PipelinePreset,
  result: TrainGptResult,
  data: PipelineData,
  startedFrom: RunProvenance,
  t0: number,
): void {
  const summary = {
    preset: presetName,
    backend: getBackend().name,
    complete: result.complete,
    finalTestNll: result.finalTestNll,
    testNllByEpoch: result.log.testNll,
    trainMs: result.log.trainMs,
    wallMs: Date.now() - t0,
    tokenizer: { recipe: preset.tokenizer, path: data.tokenizerPath, ...data.tokenizerReport },
    memory: rssOverRun(result.log.testNll),
    provenance: {
      ...startedFrom,
      startedAt: new Date(t0).toISOString(),
      finishedAt: new Date().toISOString(),
    },
  };
  atomicWriteFile(path.join(runDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
}

/** The run's last lines: its test NLL (or how to continue it), its tokenizer, its memory. */
function logOutcome(
  presetName: string,
  result: TrainGptResult,
  data: PipelineData,
  curvePath: string,
  log: (l: string) => void,
): void {
  const lastTest = result.log.testNll[result.log.testNll.length - 1]!;
  const outcome = result.complete
    ? `done: final test NLL ${result.finalTestNll.toFixed(4)} nats/dim`
    : `stopped: latest test NLL ${lastTest.nll.toFixed(4)} nats/dim (epoch ${lastTest.epoch}); ` +
      `continue with mmgpt train --preset ${presetName} --resume`;
  log(
    `${outcome}; tokenizer pixel accuracy ${(100 * data.tokenizerReport.pixelAccuracy).toFixed(2)}%, ` +
      `${data.tokenizerReport.usedCodes}/${data.tokenizerReport.codebookSize} codes; curve ${path.relative(process.cwd(), curvePath)}`,
  );
  const memory = rssOverRun(result.log.testNll);
  if (memory !== null)
    log(
      `memory: RSS ${memory.firstMiB.toFixed(0)} MiB after epoch ${memory.firstEpoch}, ` +
        `${memory.lastMiB.toFixed(0)} MiB after epoch ${memory.lastEpoch} ` +
        `(${memory.change >= 0 ? '+' : ''}${(100 * memory.change).toFixed(1)}%)`,
    );
}
