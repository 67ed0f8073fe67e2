// The main job for one named run, end to end: data, tokenizer and GPT (train.ts), then the
// sample grids and the evaluation report, written into the run's own folder (runs/<preset>/,
// beside its checkpoint and training curve) unless told otherwise, so a run never writes over
// the committed figures/. It says first which backend and kernels run, then each stage's wall
// time as it ends, and adds the stage times to the run's summary.json.
// `mmgpt pipeline` is this function and its flags.

import * as fs from 'fs';
import * as path from 'path';
import { getBackend } from '../engine/registry';
import { cpuBackendInfo } from '../engine/backends/cpu';
import { atomicWriteFile } from '../nn/safetensors';
import { writeFigures } from './figures';
import { evaluateCheckpoint, reportSummaryLines, wroteLine } from './evaluate';
import { pipelinePreset } from './presets';
import type { PipelinePreset } from './recipes';
import { trainPipeline } from './train';
import type { TrainPipelineResult } from './train';

export interface PipelineOptions {
  /** Continue the run from its checkpoint. */
  resume?: boolean;
  /** Test items to evaluate on (default: the preset's evalItems). */
  evalItems?: number;
  /** Where the sample grids and the report go (default: the run's folder). */
  outDir?: string;
  log?: (line: string) => void;
  warn?: (line: string) => void;
}

export interface StageTime {
  stage: string;
  seconds: number;
}

export interface PipelineResult {
  train: TrainPipelineResult;
  /** Every stage that ran, in order (training only, when training stopped before the end). */
  stages: StageTime[];
  totalSeconds: number;
}

interface Stage {
  name: string;
  /** Runs the stage and records its wall time (or its parts' wall times). */
  run: () => Promise<unknown>;
}

/** Trains a preset, then draws its sample grids and writes its evaluation report. */
export async function runPipeline(
  presetName: string,
  options: PipelineOptions = {},
): Promise<PipelineResult> {
  const log = options.log ?? ((l: string) => console.log(l));
  const warn = options.warn ?? ((l: string) => console.warn(l));
  const preset = pipelinePreset(presetName);
  const evalItems = options.evalItems ?? preset.evalItems;
  log(`pipeline: ${backendDescription()}`);
  const t0 = Date.now();
  const stages: StageTime[] = [];
  const record = (stage: string, seconds: number) => {
    stages.push({ stage, seconds });
    log(`pipeline: ${stage} took ${seconds.toFixed(1)} s`);
  };
  const trainStart = Date.now();
  const train = await trainPipeline(presetName, { resume: options.resume });
  // The data (data, tokenizer, token caches) and the GPT's training, a stage each.
  record('data, tokenizer and tokens', train.dataSeconds);
  record('GPT training', (Date.now() - trainStart) / 1000 - train.dataSeconds);
  if (!train.complete) return { train, stages, totalSeconds: (Date.now() - t0) / 1000 };
  const checkpoint = path.relative(process.cwd(), train.checkpointPath);
  const outDir = options.outDir ?? train.runDir;
  for (const stage of reportStages({ checkpoint, outDir, preset, evalItems, log, record }))
    await stage.run();
  const totalSeconds = (Date.now() - t0) / 1000;
  addStageTimes(path.join(train.runDir, 'summary.json'), stages, totalSeconds, warn);
  log(
    `pipeline: done in ${(totalSeconds / 60).toFixed(1)} min (` +
      stages.map((s) => `${s.stage} ${s.seconds.toFixed(0)} s`).join(', ') +
      `); see ${path.join(path.relative(process.cwd(), outDir) || '.', 'report.md')}`,
  );
  return { train, stages, totalSeconds };
}

/** The stages after training: the sample grids and the evaluation report of `checkpoint`. */
function reportStages(opts: {
  checkpoint: string;
  outDir: string;
  preset: PipelinePreset;
  evalItems: number;
  log: (line: string) => void;
  record: (stage: string, seconds: number) => void;
}): Stage[] {
  const { checkpoint, outDir, log, record } = opts;
  const sampling = { samplingPreset: opts.preset.sampling };
  return [
    {
      name: 'sample grids',
      run: async () => {
        const start = Date.now();
        const { files } = await writeFigures({ checkpoint, outDir, sampling, log });
        for (const file of files) log(`figures: wrote ${path.relative(process.cwd(), file)}`);
        record('sample grids', (Date.now() - start) / 1000);
      },
    },
    {
      name: 'evaluation',
      run: async () => {
        const start = Date.now();
        const evaluation = await evaluateCheckpoint({
          checkpoint,
          outDir,
          n: opts.evalItems,
          sampling,
          log,
        });
        const { figuresAndReport } = evaluation.seconds;
        record('evaluation', (Date.now() - start) / 1000 - figuresAndReport);
        record('evaluation figures and report', figuresAndReport);
        for (const line of reportSummaryLines(evaluation.report)) log(line);
        log(wroteLine(evaluation));
      },
    },
  ];
}

/** The stages' wall times, added to the run's summary.json beside its training figures. */
function addStageTimes(
  summaryPath: string,
  stages: StageTime[],
  totalSeconds: number,
  warn: (line: string) => void,
): void {
  try {
    const summary = JSON.parse(fs.readFileSync(summaryPath, 'utf8')) as Record<string, unknown>;
    atomicWriteFile(
      summaryPath,
      JSON.stringify({ ...summary, pipeline: { stages, totalSeconds } }, null, 2) + '\n',
    );
  } catch (e) {
    warn(`pipeline: could not add the stage times to ${summaryPath}: ${(e as Error).message}`);
  }
}

/**
 * The backend that runs, and for the cpu backend its kernel build (MMGPT_SIMD forces one), the
 * builds this processor supports and its threads.
 */
export function backendDescription(): string {
  const backend = getBackend();
  if (backend.name === 'js') return 'backend js (the reference kernels, in TypeScript)';
  if (backend.name !== 'cpu') return `backend ${backend.name}`;
  const info = cpuBackendInfo();
  if ('error' in info) return `backend cpu (${info.error})`;
  return (
    `backend cpu: ${info.simd} kernels (this processor runs ${info.availableSimd.join(', ')}), ` +
    `${info.threads} threads` +
    (info.matmul === 'fp32' ? '' : `, ${info.matmul} matmuls (AMX tiles)`)
  );
}
