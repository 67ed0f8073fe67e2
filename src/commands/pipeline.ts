// `mmgpt pipeline [--preset quick]`: the README's main job, end to end: data, tokenizer, GPT,
// the sample grids, the evaluation report and the figures, for one preset.

import * as path from 'path';
import { setBackend } from '../engine/registry';
import { parseFlags, trainPipeline, PIPELINE_PRESETS } from './train';
import { figuresCommand } from './sample';
import { evalCommand } from './eval';

export async function pipelineCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, {
    preset: 'string',
    backend: 'string',
    n: 'string',
    resume: 'boolean',
    help: 'boolean',
  });
  if (flags.help) {
    console.log(
      `mmgpt pipeline [--preset NAME] [--backend js|cpu|cuda] [--n N] [--resume]\n  train (tokenizer + GPT), then the sample grids and the evaluation report in figures/.\n  presets: ${Object.keys(PIPELINE_PRESETS).join(', ')} (default quick); --n: evaluation items (default 1000)`,
    );
    return;
  }
  if (typeof flags.backend === 'string') setBackend(flags.backend);
  const preset = typeof flags.preset === 'string' ? flags.preset : 'quick';
  const t0 = Date.now();
  const result = await trainPipeline(preset, { resume: flags.resume === true });
  if (!result.complete) return;
  const checkpoint = path.relative(process.cwd(), result.checkpointPath);
  await figuresCommand(['--checkpoint', checkpoint]);
  await evalCommand([
    '--checkpoint',
    checkpoint,
    '--n',
    typeof flags.n === 'string' ? flags.n : '1000',
  ]);
  console.log(
    `pipeline: done in ${((Date.now() - t0) / 60000).toFixed(1)} min; see figures/report.md`,
  );
}
