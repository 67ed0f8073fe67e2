// `mmgpt pipeline [--preset quick]`: the main job, end to end: data, tokenizer, GPT, the sample
// grids and the evaluation report in the run's folder, for one preset. Thin: parses flags and calls
// runPipeline (src/pipeline/pipeline.ts).

import { pipelinePreset, PRESET_NAMES } from '../pipeline/presets';
import { runPipeline } from '../pipeline/pipeline';
import { presetFlag } from './train';
import { BACKEND_FLAG, HELP_FLAG, commandFlags, useBackendFlag } from './args';
import type { CommandSpec } from './args';

/** The presets' evaluation sizes, e.g. "300 for quick, 50 for tiny, else 1000". */
function evalItemsHelp(): string {
  const sizes = PRESET_NAMES.map((name) => pipelinePreset(name).evalItems);
  const usual = sizes
    .slice()
    .sort((a, b) => sizes.filter((s) => s === b).length - sizes.filter((s) => s === a).length)[0];
  const others = PRESET_NAMES.filter((_, i) => sizes[i] !== usual);
  return [...others.map((n) => `${pipelinePreset(n).evalItems} for ${n}`), `else ${usual}`].join(
    ', ',
  );
}

export const PIPELINE_COMMAND: CommandSpec = {
  name: 'pipeline',
  help: `mmgpt pipeline [--preset NAME] [--backend js|cpu|cuda|wasm] [--n N] [--out DIR] [--resume]
  train (tokenizer + GPT), then the sample grids and the evaluation report, written into the
  run's folder (runs/<preset>/, beside its checkpoint and training curve).
  --preset NAME   ${PRESET_NAMES.join(', ')} (default quick; mmgpt train --help says what each is)
  --backend B     kernel backend (default: the fastest that loads)
  --n N           evaluation items, 1 to 10000 (default ${evalItemsHelp()})
  --out DIR       write the sample grids and the report into DIR instead
  --resume        continue the run from its checkpoint`,
  flags: {
    preset: { type: 'string' },
    ...BACKEND_FLAG,
    n: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'boolean' },
    ...HELP_FLAG,
  },
};

export async function pipelineCommand(argv: string[]): Promise<void> {
  const flags = commandFlags(PIPELINE_COMMAND, argv);
  if (flags === null) return;
  const preset = presetFlag(flags);
  const n = flags.int('n', { min: 1, max: 10_000 }, pipelinePreset(preset).evalItems);
  useBackendFlag(flags);
  await runPipeline(preset, {
    resume: flags.boolean('resume'),
    evalItems: n,
    outDir: flags.string('out'),
  });
}
