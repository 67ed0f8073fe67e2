// `mmgpt eval`: finds a trained run, loads its GPT and tokenizer, trains (once) or reuses the
// attribute classifier, runs src/eval/report.ts and writes figures/report.{md,json} and the
// sample grids.
//
// Which checkpoint: --checkpoint PATH, else the newest complete runs/*/checkpoint.safetensors (by
// modification time), else shipped weights under weights/ (weights/checkpoint.safetensors or
// weights/*/checkpoint.safetensors). A run directory holds vqvae.safetensors (the tokenizer the
// GPT was trained with) beside checkpoint.safetensors; its fingerprint must match the one the
// checkpoint records, or the evaluation would score the GPT through the wrong tokenizer.
// Loading the run lives in src/eval/run.ts; the sampling flags and the sample grids in sample.ts.

import * as path from 'path';
import { setBackend } from '../engine/registry';
import { loadColouredMnist } from '../data/coloured';
import type { ColouredMnist } from '../data/coloured';
import { splitSequenceSource } from '../data/sequences';
import { itemsWithHeldOutPairs, subsetSplit } from '../data/holdout';
import { ensureClassifier } from '../eval/classifier';
import type { EnsuredClassifier } from '../eval/classifier';
import { loadRun, takeSplit } from '../eval/run';
import type { LoadedRun } from '../eval/run';
import { EVAL_DEFAULTS, runEvaluation, validateEvalSettings, writeReport } from '../eval/report';
import type { EvalReport, EvalSettings } from '../eval/report';
import { figuresDir, runsDir, tokenise, weightsDir } from './train';
import {
  SAMPLING_FLAGS,
  SAMPLING_HELP,
  resolveCheckpoint,
  samplingSettingsFromFlags,
  writeSampleFigures,
} from './sample';
import { BACKEND_CHOICES, HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';

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

export const EVAL_COMMAND: CommandSpec = {
  name: 'eval',
  help: `mmgpt eval [--n N] [--json] [--checkpoint PATH] [sampling flags] [--no-compare]
           [--backend js|cpu|cuda] [--out DIR] [--classifier PATH] [--no-figures]
  Scores a trained checkpoint on N test items (1 to 10000, default ${EVAL_DEFAULTS.n}): text -> image
  accuracy (attribute classifier), image -> text exact match, unconditional grammar/agreement/
  coverage; each mode also without reranking and under the seed's rules (--no-compare skips
  those), where the errors are, the compositional test (runs that held colour pairs out), test
  NLL, tokenizer ceiling, sampling speed. Writes DIR/report.md, DIR/report.json and the sample
  grids (DIR defaults to figures/). --json prints the report JSON on stdout.
  Default checkpoint: the newest complete runs/*/checkpoint.safetensors, else weights/.
${SAMPLING_HELP}`,
  flags: {
    n: { type: 'string' },
    json: { type: 'boolean' },
    checkpoint: { type: 'string' },
    backend: { type: 'string' },
    out: { type: 'string' },
    classifier: { type: 'string' },
    'no-figures': { type: 'boolean' },
    'no-compare': { type: 'boolean' },
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

/**
 * The evaluation of a loaded run: test NLL on the test items the run was scored on while
 * training, and everything else runEvaluation measures, with the provenance of the checkpoint,
 * tokenizer and classifier. `mmgpt eval` and notebook 05 both call this.
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
    classifierInfo: {
      path: path.relative(process.cwd(), classifierPath) || classifierPath,
      status: classifier.status,
      config: classifier.provenance.config,
      settings: classifier.provenance.settings,
      realTestSplit: classifier.testAccuracy,
    },
    settings,
    log,
  });
}

export async function evalCommand(argv: string[]): Promise<void> {
  const flags = parseCommandLine(EVAL_COMMAND, argv);
  if (flags.help) {
    console.log(EVAL_COMMAND.help);
    return;
  }
  const n = flags.int('n', { min: 1, max: 10_000 }, EVAL_DEFAULTS.n);
  const settings = validateEvalSettings({
    ...samplingSettingsFromFlags(flags),
    n,
    compare: !flags.boolean('no-compare'),
  });
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
  const json = flags.boolean('json');
  // With --json, stdout carries only the report.
  const log = (line: string) => (json ? console.error(line) : console.log(line));
  const checkpointPath = resolveCheckpoint(flags.string('checkpoint'));
  log(`eval: checkpoint ${path.relative(process.cwd(), checkpointPath) || checkpointPath}`);
  const run = loadRun(checkpointPath);
  const data = loadColouredMnist({ log });
  const classifierPath = flags.string('classifier') ?? defaultClassifierPath();
  const classifier: EnsuredClassifier = ensureClassifier({
    path: classifierPath,
    train: data.train,
    test: data.test,
    dataSeed: data.seed,
    shipped: shippedClassifierPath(),
    log,
  });

  const report = evaluateRun({ run, data, classifier, classifierPath, settings, log });
  const outDir = flags.string('out') ?? figuresDir();
  const figures: string[] = [];
  if (!flags.boolean('no-figures')) {
    figures.push(...writeSampleFigures(run, data.test, settings, outDir));
    if (settings.compare) {
      const noRerank = { ...settings, overrides: { ...settings.overrides, rerank: 1 } };
      figures.push(...writeSampleFigures(run, data.test, noRerank, outDir, '_no-rerank'));
      const originalRules = { ...settings, samplingPreset: 'original' as const, overrides: {} };
      figures.push(...writeSampleFigures(run, data.test, originalRules, outDir, '_original-rules'));
    }
  }
  const { jsonPath, mdPath } = writeReport(
    report,
    outDir,
    figures.map((f) => path.basename(f)),
  );
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  for (const check of report.targets) {
    const mark = check.met === null ? '  ?' : check.met ? ' ok' : ' --';
    const value = check.value === null ? 'n/a' : String(+check.value.toFixed(4));
    log(`${mark} ${check.label}: ${value} (target ${check.target})`);
  }
  if (report.testNll !== null)
    log(`    test NLL: ${report.testNll.natsPerDim.toFixed(4)} nats/dim`);
  log(
    `eval: wrote ${path.relative(process.cwd(), mdPath) || mdPath} and ${path.relative(process.cwd(), jsonPath) || jsonPath}` +
      (figures.length > 0 ? ` and ${figures.length} sample grids` : ''),
  );
}
