// The speedrun: training wall time, from the cached tokenised data, to a model whose default
// samples are right at least 95% of the time in all three modes (text -> image all three
// attributes, image -> text exact caption, unconditional image/caption agreement) on the
// validation split (5,000 training items no run trains on). As modded-nanogpt's record of wall
// time to a validation loss, lowered by small measured changes of the recipe.
//
// Usage: node dist/bench/speedrun.js [--recipe quick] [--n 300] [--every 400] [--from 0]
//        [--set lr=4e-3,warmupSteps=100] [--note TEXT] [--no-record] [--resume] [--target 0.95]
// - A recipe is a GPT preset (GPT_PRESETS) or one of RECIPES below; --set overrides its training
//   fields (numbers, or names: optimizer=muon, schedule=linear).
// - Every --every steps from --from (and at the recipe's last step) training pauses: the run's
//   checkpoint is written (runs/speedrun/<recipe>-<fingerprint>/; --resume continues a stopped
//   speedrun from it; --resume of a finished one scores its last checkpoint again, e.g. with a
//   larger --n) and the default samples are scored on the first --n validation items per
//   mode. The scoring time is printed but not on the training clock, which is the wall time of
//   the optimiser steps (TrainLog.trainMs). The first point where every mode reaches --target
//   ends the run.
// - Prints the time to target, steps, ms/step and the machine (CPU, SIMD build, threads), and
//   appends a row to bench/results/speedrun.md (--no-record: not).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseArgs } from 'util';
import { setBackend } from '../src/engine/registry';
import { loadColouredMnist } from '../src/data/coloured';
import { batchesPerEpoch, splitSequenceSource } from '../src/data/sequences';
import { CHECKPOINT_FILE, GPT_PRESETS, gptRunDir, trainGpt } from '../src/gpt/train';
import type { GptPreset, GptTrainConfig, TrainGptResult } from '../src/gpt/train';
import { vqVaeFingerprint } from '../src/vqvae/train';
import { preparePipelineData } from '../src/pipeline/train';
import { tokenise } from '../src/pipeline/tokens';
import { ensureJudge } from '../src/pipeline/evaluate';
import { backendDescription } from '../src/pipeline/pipeline';
import { MODE_NAMES, headline, scoreMode } from '../src/eval/modes';
import type { ModeContext, ModeName } from '../src/eval/modes';
import { modeOptionsFor, validateEvalSettings } from '../src/eval/settings';
import { projectRoot, runsDir } from '../src/paths';

/** A candidate recipe: a GPT preset with some fields changed, and what the change is. */
interface Recipe {
  base: string;
  train?: Partial<GptTrainConfig>;
  model?: Partial<GptPreset['model']>;
  changed: string;
}

/** The candidates tried against the record (each one's result is a row in speedrun.md). */
const RECIPES: Record<string, Recipe> = {
  /** The quick preset before the speedrun. */
  'quick-adamw': {
    base: 'quick',
    train: {
      optimizer: 'adamw',
      muonLr: undefined,
      schedule: 'cosine',
      warmupSteps: 300,
      minLr: 2e-4,
    },
    changed: 'one epoch, AdamW lr 2e-3, warm-up 300, cosine to 2e-4 (quick before the speedrun)',
  },
  /** The record (now the quick preset). */
  muon: {
    base: 'quick',
    changed:
      "Muon (lr 0.02, momentum 0.95) for the blocks' matrices, AdamW (lr 2e-3) for the rest; warm-up 100, linear decay to 0",
  },
};

/** One scoring point: the step, the training clock there, the three scores and their cost. */
interface ScorePoint {
  step: number;
  /** Validation items per mode. */
  n: number;
  trainMs: number;
  scores: Record<ModeName, number>;
  scoreMs: number;
}

const SHORT: Record<ModeName, string> = {
  textToImage: 't2i',
  imageToText: 'i2t',
  unconditional: 'unc',
};

/** `key=value,key=value` over a training config: numbers stay numbers, other values strings. */
function parseOverrides(text: string | undefined): Partial<GptTrainConfig> {
  const out: Record<string, number | string> = {};
  if (text === undefined || text === '') return out;
  for (const pair of text.split(',')) {
    const [key, value] = pair.split('=');
    if (key === undefined || value === undefined || key === '')
      throw new Error(`--set: expected key=value, got '${pair}'`);
    const asNumber = Number(value);
    out[key] = Number.isFinite(asNumber) ? asNumber : value;
  }
  return out as Partial<GptTrainConfig>;
}

/** The preset a recipe name and --set overrides make, and the text of what changed. */
function resolveRecipe(
  name: string,
  overrides: Partial<GptTrainConfig>,
): { preset: GptPreset; changed: string } {
  const recipe: Recipe | undefined =
    RECIPES[name] ??
    (GPT_PRESETS[name] ? { base: name, changed: `the ${name} preset` } : undefined);
  if (recipe === undefined)
    throw new Error(
      `--recipe: unknown '${name}' (known: ${[...Object.keys(GPT_PRESETS), ...Object.keys(RECIPES)].join(', ')})`,
    );
  const base = GPT_PRESETS[recipe.base]!;
  const preset: GptPreset = {
    model: { ...base.model, ...recipe.model },
    train: { ...base.train, ...recipe.train, ...overrides },
  };
  const set = Object.entries(overrides).map(([k, v]) => `${k} ${v}`);
  return { preset, changed: [recipe.changed, ...set].join('; ') };
}

/**
 * The machine, as a row names it: CPU model, SIMD build and threads of the cpu kernels, and the
 * load average (a shared machine's ms/step is only as good as its load).
 */
function machine(): string {
  return (
    `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores; ${backendDescription()}; ` +
    `load average ${os.loadavg()[0]!.toFixed(1)}`
  );
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** Appends a row to bench/results/speedrun.md (its header first when the file is new). */
function appendRow(cells: string[]): string {
  const file = path.join(projectRoot(), 'bench', 'results', 'speedrun.md');
  if (!fs.existsSync(file))
    fs.writeFileSync(
      file,
      '# Speedrun: training wall time to >= 95% in every mode (validation split)\n\n' +
        'Rows appended by `node dist/bench/speedrun.js` (bench/speedrun.ts): the training clock is ' +
        'the wall time of the optimiser steps from the cached tokens; scoring (the default samples ' +
        'on the first N validation items per mode) is off the clock. Scores are text -> image all ' +
        'three right / image -> text exact / unconditional agreement at the last scoring point.\n\n' +
        '| date | recipe | what changed | time to target | steps | ms/step | scores (N) | machine |\n' +
        '|---|---|---|---|---|---|---|---|\n',
    );
  fs.appendFileSync(file, `| ${cells.join(' | ')} |\n`);
  return file;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      recipe: { type: 'string', default: 'quick' },
      set: { type: 'string' },
      n: { type: 'string', default: '300' },
      every: { type: 'string', default: '400' },
      from: { type: 'string', default: '0' },
      target: { type: 'string', default: '0.95' },
      note: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'no-record': { type: 'boolean', default: false },
      'no-stop': { type: 'boolean', default: false },
      backend: { type: 'string', default: 'cpu' },
    },
    strict: true,
  });
  const n = Number(values.n);
  const every = Number(values.every);
  const from = Number(values.from);
  const target = Number(values.target);
  for (const [flag, v] of [
    ['--n', n],
    ['--every', every],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} must be a positive integer`);
  if (!Number.isInteger(from) || from < 0) throw new Error('--from must be an integer >= 0');
  if (!(target > 0 && target <= 1)) throw new Error('--target must be in (0, 1]');
  setBackend(values.backend);
  const name = values.recipe;
  const { preset, changed } = resolveRecipe(name, parseOverrides(values.set));
  const what = values.note ?? changed;
  const log = (l: string) => {
    if (!l.startsWith('stopped at') && !l.startsWith('resumed')) console.error(l);
  };

  // The data: the cached tokens of the training items and of the validation split.
  const data = preparePipelineData('quick', log);
  const validationCodes = tokenise(data.tokenizer, data.validationSplit, 0, log, 'validation');
  const validation = splitSequenceSource(data.validationSplit, validationCodes, data.vocab);
  const judge = ensureJudge(loadColouredMnist({ log: () => undefined }), log);
  const items = data.validationSplit;
  const count = Math.min(n, items.count);
  const settings = validateEvalSettings({ n: count, compare: false });
  const runDir = gptRunDir(path.join(runsDir(), 'speedrun'), name, preset);
  const pointsFile = path.join(runDir, 'speedrun.json');
  const resume = values.resume && fs.existsSync(path.join(runDir, CHECKPOINT_FILE));
  if (!resume) fs.rmSync(runDir, { recursive: true, force: true });
  const points: ScorePoint[] = resume
    ? (JSON.parse(fs.readFileSync(pointsFile, 'utf8')) as { points: ScorePoint[] }).points
    : [];
  console.log(`speedrun: recipe ${name} (${what}); ${machine()}`);
  console.log(
    `speedrun: run ${path.relative(process.cwd(), runDir)}, ${count} validation items per mode, target ${pct(target)}`,
  );

  const score = (result: TrainGptResult): ScorePoint => {
    const model = result.model.eval();
    const ctx: ModeContext = {
      model,
      vocab: data.vocab,
      tokenizer: data.tokenizer,
      classifier: judge.model,
      truth: { digit: items.digit, fg: items.fg, bg: items.bg },
      codes: validationCodes,
      images: items.images,
      n: count,
    };
    const t0 = Date.now();
    const scores = {} as Record<ModeName, number>;
    for (const mode of MODE_NAMES)
      scores[mode] = headline(scoreMode(ctx, mode, modeOptionsFor(settings, mode)));
    return {
      step: result.log.trainNll.length,
      n: count,
      trainMs: result.log.trainMs,
      scores,
      scoreMs: Date.now() - t0,
    };
  };

  let reached: ScorePoint | null = null;
  let last: TrainGptResult | null = null;
  let step = points.length > 0 ? points[points.length - 1]!.step : 0;
  const totalSteps =
    batchesPerEpoch(data.train.count, preset.train.batchSize) * preset.train.epochs;
  let resumeRun = resume;
  const trainTo = (stepTo: number) =>
    trainGpt({
      runDir,
      preset,
      vocab: data.vocab,
      train: data.train,
      test: validation, // the run's "test" NLL is the validation split's
      tokenizerHash: vqVaeFingerprint(data.tokenizer),
      resume: resumeRun,
      log,
      stopAfterSteps: Math.max(1, stepTo - step),
    });
  for (;;) {
    const nextPoint = Math.min(
      totalSteps,
      step < from ? from : (Math.floor(step / every) + 1) * every,
    );
    let result = await trainTo(nextPoint);
    resumeRun = true;
    // Stopped on the last step: one more call ends the epoch (its NLL, the complete checkpoint).
    if (!result.complete && result.log.trainNll.length >= totalSteps)
      result = await trainTo(totalSteps + 1);
    last = result;
    step = result.log.trainNll.length;
    const point = score(result);
    points.push(point);
    fs.writeFileSync(pointsFile, JSON.stringify({ recipe: name, preset, points }, null, 2) + '\n');
    const met = MODE_NAMES.every((m) => point.scores[m] >= target);
    console.log(
      `step ${point.step} | train ${(point.trainMs / 1000).toFixed(1)} s (${(point.trainMs / point.step).toFixed(1)} ms/step) | ` +
        MODE_NAMES.map((m) => `${SHORT[m]} ${pct(point.scores[m])}`).join(' ') +
        ` | scoring ${(point.scoreMs / 1000).toFixed(1)} s${met ? ' | target reached' : ''}`,
    );
    if (met && reached === null) reached = point;
    if ((reached !== null && !values['no-stop']) || result.complete) break;
  }

  const end = reached ?? points[points.length - 1]!;
  const scoringSeconds = points.reduce((s, p) => s + p.scoreMs, 0) / 1000;
  const time =
    reached === null
      ? `not reached (${(end.trainMs / 1000).toFixed(1)} s)`
      : `${(end.trainMs / 1000).toFixed(1)} s`;
  const msPerStep = end.trainMs / end.step;
  console.log(
    `speedrun: ${name}: ${reached === null ? 'target not reached' : 'target reached'} at step ${end.step}, ` +
      `training ${(end.trainMs / 1000).toFixed(1)} s (${msPerStep.toFixed(1)} ms/step), ` +
      `scores ${MODE_NAMES.map((m) => pct(end.scores[m])).join(' / ')}; scoring ${scoringSeconds.toFixed(0)} s off the clock; ` +
      `last checkpoint ${path.relative(process.cwd(), last!.checkpointPath)}`,
  );
  if (!values['no-record']) {
    const file = appendRow([
      new Date().toISOString().slice(0, 10),
      name,
      what,
      time,
      String(end.step),
      msPerStep.toFixed(1),
      `${MODE_NAMES.map((m) => (100 * end.scores[m]).toFixed(1)).join(' / ')} (${end.n})`,
      machine(),
    ]);
    console.log(`speedrun: row appended to ${path.relative(process.cwd(), file)}`);
  }
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
