// Evaluating a checkpoint end to end (`mmgpt eval`, the pipeline's last stage, notebook 05):
// load the run (its GPT and the tokenizer it was trained with; src/eval/run.ts), the data and
// the attribute classifier (reused, copied from weights/classifier/, or trained once), run every
// measurement (src/eval/evaluation.ts), and write report.md, report.json and the sample grids:
// the report's settings, and, when the report compares, the same without reranking and under
// the original rules.

import * as path from 'path';
import { loadColouredMnist, type ColouredMnist } from '../data/coloured';
import { splitSequenceSource } from '../data/sequences';
import { itemsWithHeldOutPairs, subsetSplit } from '../data/holdout';
import { ensureClassifier, type EnsuredClassifier } from '../eval/classifier';
import { loadRun, runFacts, takeSplit, type LoadedRun } from '../eval/run';
import { runEvaluation } from '../eval/evaluation';
import { writeReport, type EvalReport } from '../eval/report';
import { validateEvalSettings, type EvalSettings } from '../eval/settings';
import type { LabelledImages } from '../eval/classifier';
import type { SamplingChoice } from '../sampling/presets';
import { figuresDir, runsDir, weightsDir } from '../paths';
import { tokenise } from './tokens';
import { resolveCheckpoint, writeSampleFigures } from './figures';

/** Where `mmgpt eval` keeps the attribute classifier it trains or copies. */
export function defaultClassifierPath(): string {
  return path.join(runsDir(), 'classifier', 'classifier.safetensors');
}

/**
 * The shipped attribute classifier (weights/classifier/, or MMGPT_WEIGHTS_DIR): copied to the
 * default path when its settings are the current ones, so no command has to train it.
 */
export function shippedClassifierPath(): string {
  return path.join(weightsDir(), 'classifier', 'classifier.safetensors');
}

/**
 * The judge (the attribute classifier of every report) at `file`: copied from the shipped one
 * when its recorded settings are the current ones, else trained on the data's training split.
 */
export function ensureJudge(
  data: ColouredMnist,
  log: (line: string) => void,
  file: string = defaultClassifierPath(),
): EnsuredClassifier {
  return ensureClassifier({
    path: file,
    shipped: shippedClassifierPath(),
    train: data.train,
    test: data.test,
    dataSeed: data.seed,
    log,
  });
}

/** The path as the user would type it from here. */
const shown = (p: string): string => path.relative(process.cwd(), p) || p;

/**
 * The evaluation of a loaded run: test NLL on the test items the run was scored on while
 * training, and everything else runEvaluation measures, with the provenance of the checkpoint,
 * tokenizer and classifier.
 */
export function evaluateRun(opts: {
  run: LoadedRun;
  data: ColouredMnist;
  classifier: EnsuredClassifier;
  classifierPath: string;
  settings: EvalSettings;
  log: (line: string) => void;
}): EvalReport {
  const { run, data, classifier, classifierPath, settings, log } = opts;
  const testLimit = Number(run.meta.trainConfig.testLimit ?? 0) || 0;
  const testCodes = tokenise(run.tokenizer, data.test, testLimit, log); // [M, 49]
  const nllSplit = takeSplit(data.test, testCodes.length / 49);
  const nllSource = splitSequenceSource(nllSplit, testCodes, run.vocab);
  const heldOutPairs = Number(run.meta.trainConfig.heldOutPairs ?? 0) || 0;
  const compositional =
    heldOutPairs > 0
      ? {
          items: subsetSplit(data.test, itemsWithHeldOutPairs(data.test, heldOutPairs)),
          heldOutPairs,
        }
      : undefined;
  return runEvaluation({
    compositional,
    model: run.model,
    vocab: run.vocab,
    tokenizer: run.tokenizer,
    classifier: classifier.model,
    test: data.test,
    nllSource,
    ...runFacts(run),
    classifierInfo: {
      path: shown(classifierPath),
      status: classifier.status,
      config: classifier.provenance.config,
      settings: classifier.provenance.settings,
      realTestSplit: classifier.testAccuracy,
    },
    settings,
    log,
  });
}

/**
 * The sample grids of an evaluation in `dir`: the report's settings, then (when it compares)
 * without reranking ('_no-rerank') and under the original rules ('_original-rules').
 */
export function writeEvaluationFigures(
  run: LoadedRun,
  test: LabelledImages,
  settings: EvalSettings,
  dir: string,
): string[] {
  const figures = writeSampleFigures(run, test, settings, dir);
  if (settings.compare) {
    const noRerank = { ...settings, overrides: { ...settings.overrides, rerank: 1 } };
    figures.push(...writeSampleFigures(run, test, noRerank, dir, '_no-rerank'));
    const originalRules = { ...settings, samplingPreset: 'original' as const, overrides: {} };
    figures.push(...writeSampleFigures(run, test, originalRules, dir, '_original-rules'));
  }
  return figures;
}

export interface EvaluateOptions {
  /** The checkpoint (a file or a run directory); default: `resolveCheckpoint()`. */
  checkpoint?: string;
  /** Where report.md, report.json and the grids go (default figures/). */
  outDir?: string;
  /** Test items per mode (default EVAL_DEFAULTS.n). */
  n?: number;
  /** The sampling preset, settings over it, seed and batch size (default: the default preset). */
  sampling?: Partial<SamplingChoice>;
  /** Also score without reranking and under the original rules (default true). */
  compare?: boolean;
  /** The attribute classifier's file (default: `defaultClassifierPath()`). */
  classifier?: string;
  /** Draw the sample grids (default true). */
  figures?: boolean;
  log?: (line: string) => void;
}

export interface Evaluation {
  checkpoint: string;
  report: EvalReport;
  jsonPath: string;
  mdPath: string;
  /** The sample grids written. */
  figures: string[];
  /** Wall time of the measurements, and of the grids and report files after them. */
  seconds: { measurements: number; figuresAndReport: number };
}

/** The settings of `opts`, validated (every one not given takes its default). */
export function evaluationSettings(opts: EvaluateOptions): EvalSettings {
  const given: Partial<EvalSettings> = { ...opts.sampling };
  if (opts.n !== undefined) given.n = opts.n;
  if (opts.compare !== undefined) given.compare = opts.compare;
  return validateEvalSettings(given);
}

/**
 * Evaluates a checkpoint (see the file header) and writes the report and the sample grids;
 * returns the report and what it wrote.
 */
export async function evaluateCheckpoint(opts: EvaluateOptions = {}): Promise<Evaluation> {
  const settings = evaluationSettings(opts);
  const log = opts.log ?? (() => undefined);
  const checkpoint = resolveCheckpoint(opts.checkpoint);
  log(`eval: checkpoint ${shown(checkpoint)}`);
  const run = loadRun(checkpoint);
  const data = loadColouredMnist({ log });
  const classifierPath = opts.classifier ?? defaultClassifierPath();
  const classifier = ensureJudge(data, log, classifierPath);
  const t0 = Date.now();
  const report = evaluateRun({ run, data, classifier, classifierPath, settings, log });
  const t1 = Date.now();
  const outDir = opts.outDir ?? figuresDir();
  const figures =
    opts.figures === false ? [] : writeEvaluationFigures(run, data.test, settings, outDir);
  const { jsonPath, mdPath } = writeReport(
    report,
    outDir,
    figures.map((f) => path.basename(f)),
  );
  const seconds = { measurements: (t1 - t0) / 1000, figuresAndReport: (Date.now() - t1) / 1000 };
  return { checkpoint, report, jsonPath, mdPath, figures, seconds };
}

/** The report's targets and test NLL, a line each, as `mmgpt eval` and the pipeline print them. */
export function reportSummaryLines(report: EvalReport): string[] {
  const lines = report.targets.map((check) => {
    const mark = check.met === null ? '  ?' : check.met ? ' ok' : ' --';
    const value = check.value === null ? 'n/a' : String(+check.value.toFixed(4));
    return `${mark} ${check.label}: ${value} (target ${check.target})`;
  });
  if (report.testNll !== null)
    lines.push(`    test NLL: ${report.testNll.natsPerDim.toFixed(4)} nats/dim`);
  return lines;
}

/** "eval: wrote <report.md> and <report.json> and N sample grids". */
export function wroteLine(evaluation: Evaluation): string {
  const { mdPath, jsonPath, figures } = evaluation;
  return (
    `eval: wrote ${shown(mdPath)} and ${shown(jsonPath)}` +
    (figures.length > 0 ? ` and ${figures.length} sample grids` : '')
  );
}
