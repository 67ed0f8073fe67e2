// `mmgpt train`: trains one named run (its tokenizer once per recipe, then its GPT) into
// runs/<preset>/, or with --tokenizer-only just its tokenizer. Thin: parses flags and calls
// src/pipeline/train.ts; the presets are src/pipeline/presets.ts.

import * as path from 'path';
import { loadColouredMnist } from '../data/coloured';
import { EXPERIMENT_NAMES, PRESET_NAMES, USER_PRESETS, pipelinePreset } from '../pipeline/presets';
import { ensureTokenizer } from '../pipeline/tokenizers';
import { trainPipeline } from '../pipeline/train';
import { BACKEND_FLAG, HELP_FLAG, commandFlags, useBackendFlag } from './args';
import type { CommandSpec, Flags } from './args';

/** The user-facing presets, one per line with its summary (for --help). */
function presetList(indent: string): string {
  const width = Math.max(...PRESET_NAMES.map((name) => name.length));
  return Object.entries(USER_PRESETS)
    .map(([name, preset]) => `${indent}${name.padEnd(width)}  ${preset.summary}`)
    .join('\n');
}

/**
 * The --preset flag (default quick): a user-facing preset, an experiment, or an old name (taken
 * with a notice). Help and errors name only the user-facing presets.
 */
export function presetFlag(flags: Flags): string {
  return flags.choice('preset', PRESET_NAMES, 'quick', EXPERIMENT_NAMES);
}

export const TRAIN_COMMAND: CommandSpec = {
  name: 'train',
  help: `mmgpt train [--preset NAME] [--backend js|cpu|cuda|wasm] [--resume] [--run-dir DIR]
                   [--tokenizer-only]
  Trains the tokenizer (once per recipe) and the GPT; Ctrl-C saves a checkpoint, --resume
  continues. One writer per run directory: a second one is refused.
  --preset NAME   one of (default quick):
${presetList('    ')}
  --backend B     kernel backend (default: the fastest that loads)
  --resume        continue from the run directory's checkpoint
  --run-dir DIR   the run directory (default runs/<preset>)
  --tokenizer-only  train (or reuse) the preset's tokenizer in runs/tokenizer-<recipe>/ and
                  stop; a killed tokenizer training continues from its saved state`,
  flags: {
    preset: { type: 'string' },
    ...BACKEND_FLAG,
    resume: { type: 'boolean' },
    'run-dir': { type: 'string' },
    'tokenizer-only': { type: 'boolean' },
    ...HELP_FLAG,
  },
};

export async function trainCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(TRAIN_COMMAND, argv);
  if (flags === null) return;
  const preset = presetFlag(flags);
  useBackendFlag(flags);
  flags.refuseUnless(
    !flags.boolean('tokenizer-only'),
    ['resume', 'run-dir'],
    () => 'applies to the GPT, which --tokenizer-only does not train',
  );
  if (flags.boolean('tokenizer-only')) {
    trainTokenizerOnly(pipelinePreset(preset).tokenizer);
    return;
  }
  await trainPipeline(preset, { resume: flags.boolean('resume'), runDir: flags.string('run-dir') });
}

/** --tokenizer-only: makes (or reuses) the recipe's tokenizer and prints its evaluation. */
function trainTokenizerOnly(recipe: string): void {
  const log = (l: string) => console.log(l);
  const data = loadColouredMnist({ log });
  const tok = ensureTokenizer(recipe, data.train, data.test, log);
  console.log(
    `tokenizer '${recipe}': ${path.relative(process.cwd(), tok.path)}; test pixel accuracy ` +
      `${(100 * tok.report.pixelAccuracy).toFixed(2)}%, ${tok.report.usedCodes}/${tok.report.codebookSize} codes`,
  );
  tok.model.dispose();
}
