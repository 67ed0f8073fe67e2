// `mmgpt pipeline [--preset quick]`: the README's main job, end to end: data, tokenizer, GPT,
// the sample grids, the evaluation report and the figures, for one preset.

import * as fs from 'fs';
import * as path from 'path';
import { atomicWriteFile } from '../nn/safetensors';
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
  --n N           evaluation items, 1 to 10000 (default 300 for quick, 50 for tiny, else 1000)
  --resume        continue the run from its checkpoint`,
  flags: {
    preset: { type: 'string' },
    backend: { type: 'string' },
    n: { type: 'string' },
    resume: { type: 'boolean' },
    ...HELP_FLAG,
  },
};

/** Evaluation items per preset (the main job keeps its report short on a laptop). */
const PIPELINE_EVAL_ITEMS: Record<string, number> = { quick: 300, tiny: 50 };

export async function pipelineCommand(argv: string[]): Promise<void> {
  const flags = parseCommandLine(PIPELINE_COMMAND, argv);
  if (flags.help) {
    console.log(PIPELINE_COMMAND.help);
    return;
  }
  const preset = flags.choice('preset', PRESET_NAMES, 'quick');
  const n = flags.int('n', { min: 1, max: 10_000 }, PIPELINE_EVAL_ITEMS[preset] ?? 1000);
  const backend = flags.choice('backend', BACKEND_CHOICES);
  if (backend !== undefined) setBackend(backend);
  const t0 = Date.now();
  const stages: { stage: string; seconds: number }[] = [];
  const stage = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = Date.now();
    const out = await fn();
    stages.push({ stage: name, seconds: (Date.now() - start) / 1000 });
    console.log(`pipeline: ${name} took ${((Date.now() - start) / 1000).toFixed(1)} s`);
    return out;
  };
  const result = await stage('data, tokenizer and GPT training', () =>
    trainPipeline(preset, { resume: flags.boolean('resume') }),
  );
  if (!result.complete) return;
  const checkpoint = path.relative(process.cwd(), result.checkpointPath);
  await stage('sample grids', () => figuresCommand(['--checkpoint', checkpoint]));
  await stage('evaluation', () => evalCommand(['--checkpoint', checkpoint, '--n', String(n)]));
  const totalSeconds = (Date.now() - t0) / 1000;
  // The stages' wall times go into the run's summary beside its training figures.
  const summaryPath = path.join(result.runDir, 'summary.json');
  try {
    const summary = JSON.parse(fs.readFileSync(summaryPath, 'utf8')) as Record<string, unknown>;
    atomicWriteFile(
      summaryPath,
      JSON.stringify({ ...summary, pipeline: { stages, totalSeconds } }, null, 2) + '\n',
    );
  } catch (e) {
    console.warn(
      `pipeline: could not add the stage times to ${summaryPath}: ${(e as Error).message}`,
    );
  }
  console.log(
    `pipeline: done in ${(totalSeconds / 60).toFixed(1)} min (` +
      stages.map((s) => `${s.stage} ${s.seconds.toFixed(0)} s`).join(', ') +
      '); see figures/report.md',
  );
}
