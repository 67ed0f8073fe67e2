// `mmgpt pipeline [--preset quick]`: the README's main job, end to end: data, tokenizer, GPT,
// the sample grids, the evaluation report and the figures, for one preset.

import * as path from 'path';
import { setBackend } from '../engine/registry';
import { PRESET_NAMES, trainPipeline } from './train';
import { figuresCommand } from './sample';
import { evalCommand } from './eval';
import { BACKEND_CHOICES, HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';

export const PIPELINE_COMMAND: CommandSpec = {
  name: 'pipeline',
  help: `mmgpt pipeline [--preset NAME] [--backend js|cpu|cuda] [--n N] [--resume]
  train (tokenizer + GPT), then the sample grids and the evaluation report in figures/.
  --preset NAME   ${PRESET_NAMES.join(', ')} (default quick)
  --backend B     kernel backend (default: the fastest that loads)
  --n N           evaluation items, 1 to 10000 (default 1000)
  --resume        continue the run from its checkpoint`,
  flags: {
    preset: { type: 'string' },
    backend: { type: 'string' },
    n: { type: 'string' },
    resume: { type: 'boolean' },
    ...HELP_FLAG,
  },
};

export async function pipelineCommand(argv: string[]): Promise<void> {
  const flags = parseCommandLine(PIPELINE_COMMAND, argv);
  if (flags.help) {
    console.log(PIPELINE_COMMAND.help);
    return;
  }
  const preset = flags.choice('preset', PRESET_NAMES, 'quick');
  const n = flags.int('n', { min: 1, max: 10_000 }, 1000);
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
  const t0 = Date.now();
  const result = await trainPipeline(preset, { resume: flags.boolean('resume') });
  if (!result.complete) return;
  const checkpoint = path.relative(process.cwd(), result.checkpointPath);
  await figuresCommand(['--checkpoint', checkpoint]);
  await evalCommand(['--checkpoint', checkpoint, '--n', String(n)]);
  console.log(
    `pipeline: done in ${((Date.now() - t0) / 60000).toFixed(1)} min; see figures/report.md`,
  );
}
