// `mmgpt eval`: parses the flags, runs evaluateCheckpoint (src/pipeline/evaluate.ts: load the
// run, the data and the attribute classifier, measure, write report.md, report.json and the
// sample grids) and prints the targets.
//
// Which checkpoint: --checkpoint PATH, else the newest complete runs/*/checkpoint.safetensors (by
// modification time), else shipped weights under weights/ (src/eval/run.ts, `findCheckpoint`).

import { EVAL_DEFAULTS } from '../eval/settings';
import {
  evaluateCheckpoint,
  evaluationSettings,
  reportSummaryLines,
  wroteLine,
} from '../pipeline/evaluate';
import { SAMPLING_FLAGS, SAMPLING_HELP, samplingSettingsFromFlags } from './sampling';
import { BACKEND_FLAG, HELP_FLAG, commandFlags, useBackendFlag } from './args';
import type { CommandSpec } from './args';

// Moved to src/pipeline/evaluate.ts; still importable from here by bench/ and notebook 05.

export const EVAL_COMMAND: CommandSpec = {
  name: 'eval',
  help: `mmgpt eval [--n N] [--json] [--checkpoint PATH] [sampling flags] [--no-compare]
           [--backend js|cpu|cuda|wasm] [--out DIR] [--classifier PATH] [--no-figures]
  Scores a trained checkpoint on N test items (1 to 10000, default ${EVAL_DEFAULTS.n}): text -> image
  accuracy (attribute classifier), image -> text exact match, unconditional grammar/agreement/
  coverage; each mode also without reranking and under the original rules (--no-compare skips
  those), where the errors are, the compositional test (runs that held colour pairs out), test
  NLL, tokenizer ceiling, sampling speed. Writes DIR/report.md, DIR/report.json and the sample
  grids (DIR defaults to figures/). --json prints the report JSON on stdout.
  Default checkpoint: the newest complete runs/*/checkpoint.safetensors, else weights/.
${SAMPLING_HELP}`,
  flags: {
    n: { type: 'string' },
    json: { type: 'boolean' },
    checkpoint: { type: 'string' },
    ...BACKEND_FLAG,
    out: { type: 'string' },
    classifier: { type: 'string' },
    'no-figures': { type: 'boolean' },
    'no-compare': { type: 'boolean' },
    ...SAMPLING_FLAGS,
    ...HELP_FLAG,
  },
};

export async function evalCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(EVAL_COMMAND, argv);
  if (flags === null) return;
  const options = {
    n: flags.int('n', { min: 1, max: 10_000 }, EVAL_DEFAULTS.n),
    sampling: samplingSettingsFromFlags(flags),
    compare: !flags.boolean('no-compare'),
  };
  evaluationSettings(options); // refuses impossible settings before anything is loaded
  useBackendFlag(flags);
  const json = flags.boolean('json');
  // With --json, stdout carries only the report.
  const log = (line: string) => (json ? console.error(line) : console.log(line));
  const evaluation = await evaluateCheckpoint({
    ...options,
    checkpoint: flags.string('checkpoint'),
    outDir: flags.string('out'),
    classifier: flags.string('classifier'),
    figures: !flags.boolean('no-figures'),
    log,
  });
  if (json) {
    console.log(JSON.stringify(evaluation.report, null, 2));
    return;
  }
  for (const line of reportSummaryLines(evaluation.report)) log(line);
  log(wroteLine(evaluation));
}
