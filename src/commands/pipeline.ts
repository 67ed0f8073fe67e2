// `mmgpt pipeline [--preset quick]`: the README's main job, end to end: data, tokenizer, GPT,
// the sample grids, the evaluation report and the figures, for one preset.

import * as fs from 'fs';
import * as path from 'path';
import { atomicWriteFile } from '../nn/safetensors';
import { setBackend } from '../engine/registry';
import { parseFlags, trainPipeline, PIPELINE_PRESETS } from './train';
import { figuresCommand } from './sample';
import { evalCommand } from './eval';

/** Evaluation items per preset (the main job keeps its report short on a laptop). */
const PIPELINE_EVAL_ITEMS: Record<string, number> = { quick: 300, tiny: 50 };

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
      `mmgpt pipeline [--preset NAME] [--backend js|cpu|cuda] [--n N] [--resume]\n  train (tokenizer + GPT), then the sample grids and the evaluation report in figures/.\n  presets: ${Object.keys(PIPELINE_PRESETS).join(', ')} (default quick); --n: evaluation items (default 300 for quick, else 1000)`,
    );
    return;
  }
  if (typeof flags.backend === 'string') setBackend(flags.backend);
  const preset = typeof flags.preset === 'string' ? flags.preset : 'quick';
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
    trainPipeline(preset, { resume: flags.resume === true }),
  );
  if (!result.complete) return;
  const checkpoint = path.relative(process.cwd(), result.checkpointPath);
  await stage('sample grids', () => figuresCommand(['--checkpoint', checkpoint]));
  const n = typeof flags.n === 'string' ? flags.n : String(PIPELINE_EVAL_ITEMS[preset] ?? 1000);
  await stage('evaluation', () => evalCommand(['--checkpoint', checkpoint, '--n', n]));
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
