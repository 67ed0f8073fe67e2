// The speedrun: training wall time, from the cached tokenised data, to a model whose default
// samples are right at least 95% of the time in all three modes (text -> image all three
// attributes, image -> text exact caption, unconditional image/caption agreement) on the
// validation split (5,000 training items no run trains on). As modded-nanogpt's record of wall
// time to a validation loss, lowered by small measured changes of the recipe.
//
// Usage: node dist/bench/speedrun.js [--recipe quick] [--n 300] [--every 400] [--from 0]
//        [--set lr=4e-3,warmupSteps=100] [--note TEXT] [--no-record] [--resume] [--target 0.95]
// - A recipe is a GPT preset (GPT_PRESETS) or one of RECIPES below; --set overrides its training
//   fields (numbers, or names: optimizer=muon, schedule=linear) and its model's (nLayer, nHead,
//   nEmbd, dropout).
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
import { splitSequenceSource } from '../src/data/sequences';
import {
  CHECKPOINT_FILE,
  GPT_PRESETS,
  LOG_FILE,
  gptRunDir,
  loadGpt,
  totalTrainSteps,
  trainGpt,
} from '../src/gpt/train';
import type { GptPreset, GptTrainConfig, TrainLog } from '../src/gpt/train';
import type { GPT } from '../src/gpt/model';
import { vqVaeFingerprint } from '../src/vqvae/train';
import { preparePipelineData } from '../src/pipeline/train';
import type { PipelineData } from '../src/pipeline/train';
import { tokenise } from '../src/pipeline/tokens';
import { ensureJudge } from '../src/pipeline/evaluate';
import { backendDescription } from '../src/pipeline/pipeline';
import { MODE_NAMES, headline, scoreMode } from '../src/eval/modes';
import type { ModeContext, ModeName } from '../src/eval/modes';
import { modeOptionsFor, validateEvalSettings } from '../src/eval/settings';
import { projectRoot, runsDir } from '../src/paths';
import { atomicWriteFile } from '../src/nn/safetensors';

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
  /** Records 1 and 2 (record 2: two epochs of it). */
  muon: {
    base: 'quick',
    train: { epochs: 2, maxSteps: undefined, muonLr: 0.02, lr: 2e-3 },
    changed:
      "Muon (lr 0.02, momentum 0.95) for the blocks' matrices, AdamW (lr 2e-3) for the rest; warm-up 100, linear decay to 0; two epochs",
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
  /**
   * The validation NLL (the run's "test" NLL: the first testLimit validation items, both orders)
   * where the run logged one at this step (each epoch's end and the last step), else absent.
   */
  validationNll?: number;
}

const SHORT: Record<ModeName, string> = {
  textToImage: 't2i',
  imageToText: 'i2t',
  unconditional: 'unc',
};

/** The model fields --set may change; every other key is a training field. */
const MODEL_KEYS: readonly string[] = ['nLayer', 'nHead', 'nEmbd', 'dropout'];

interface Overrides {
  train: Partial<GptTrainConfig>;
  model: Partial<GptPreset['model']>;
}

/** `key=value,key=value` over a recipe: numbers stay numbers, other values strings. */
function parseOverrides(text: string | undefined): Overrides {
  const train: Record<string, number | string> = {};
  const model: Record<string, number> = {};
  if (text === undefined || text === '') return { train, model };
  for (const pair of text.split(',')) {
    const [key, value] = pair.split('=');
    if (key === undefined || value === undefined || key === '')
      throw new Error(`--set: expected key=value, got '${pair}'`);
    const asNumber = Number(value);
    if (MODEL_KEYS.includes(key)) {
      if (!Number.isFinite(asNumber)) throw new Error(`--set: ${key} must be a number`);
      model[key] = asNumber;
    } else train[key] = Number.isFinite(asNumber) ? asNumber : value;
  }
  return { train: train as Partial<GptTrainConfig>, model };
}

/** The preset a recipe name and --set overrides make, and the text of what changed. */
function resolveRecipe(name: string, overrides: Overrides): { preset: GptPreset; changed: string } {
  const recipe: Recipe | undefined =
    RECIPES[name] ??
    (GPT_PRESETS[name] ? { base: name, changed: `the ${name} preset` } : undefined);
  if (recipe === undefined)
    throw new Error(
      `--recipe: unknown '${name}' (known: ${[...Object.keys(GPT_PRESETS), ...Object.keys(RECIPES)].join(', ')})`,
    );
  const base = GPT_PRESETS[recipe.base]!;
  const preset: GptPreset = {
    model: { ...base.model, ...recipe.model, ...overrides.model },
    train: { ...base.train, ...recipe.train, ...overrides.train },
  };
  const set = Object.entries({ ...overrides.model, ...overrides.train }).map(
    ([k, v]) => `${k} ${v}`,
  );
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

interface SpeedrunFlags {
  name: string;
  preset: GptPreset;
  what: string;
  n: number;
  every: number;
  from: number;
  target: number;
  resume: boolean;
  record: boolean;
  stopAtTarget: boolean;
}

function parseFlags(): SpeedrunFlags {
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
  const { preset, changed } = resolveRecipe(values.recipe, parseOverrides(values.set));
  return {
    name: values.recipe,
    preset,
    what: values.note ?? changed,
    n,
    every,
    from,
    target,
    resume: values.resume,
    record: !values['no-record'],
    stopAtTarget: !values['no-stop'],
  };
}

/** Scores a model's default samples on the first `count` validation items of every mode. */
function makeScorer(
  data: PipelineData,
  validationCodes: Int32Array,
  count: number,
  log: (l: string) => void,
): (model: GPT, trainLog: TrainLog) => ScorePoint {
  const judge = ensureJudge(loadColouredMnist({ log: () => undefined }), log);
  const items = data.validationSplit;
  const settings = validateEvalSettings({ n: count, compare: false });
  return (model, trainLog) => {
    const ctx: ModeContext = {
      model: model.eval(),
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
    const step = trainLog.trainNll.length;
    const nll = trainLog.testNll.find((e) => e.step === step)?.nll;
    return {
      step,
      n: count,
      trainMs: trainLog.trainMs,
      scores,
      scoreMs: Date.now() - t0,
      ...(nll === undefined ? {} : { validationNll: nll }),
    };
  };
}

function pointLine(point: ScorePoint, met: boolean): string {
  return (
    `step ${point.step} | train ${(point.trainMs / 1000).toFixed(1)} s (${(point.trainMs / point.step).toFixed(1)} ms/step) | ` +
    MODE_NAMES.map((m) => `${SHORT[m]} ${pct(point.scores[m])}`).join(' ') +
    (point.validationNll === undefined
      ? ''
      : ` | validation NLL ${point.validationNll.toFixed(4)}`) +
    ` | scoring ${(point.scoreMs / 1000).toFixed(1)} s${met ? ' | target reached' : ''}`
  );
}

/** Prints the outcome and (unless --no-record) appends its row to speedrun.md. */
function report(flags: SpeedrunFlags, points: ScorePoint[], reached: ScorePoint | null): void {
  const end = reached ?? points[points.length - 1]!;
  const scoringSeconds = points.reduce((s, p) => s + p.scoreMs, 0) / 1000;
  const trainSeconds = (end.trainMs / 1000).toFixed(1);
  const msPerStep = end.trainMs / end.step;
  console.log(
    `speedrun: ${flags.name}: ${reached === null ? 'target not reached' : 'target reached'} at step ${end.step}, ` +
      `training ${trainSeconds} s (${msPerStep.toFixed(1)} ms/step), ` +
      `scores ${MODE_NAMES.map((m) => pct(end.scores[m])).join(' / ')}; scoring ${scoringSeconds.toFixed(0)} s off the clock`,
  );
  if (!flags.record) return;
  const file = appendRow([
    new Date().toISOString().slice(0, 10),
    flags.name,
    flags.what,
    reached === null ? `not reached (${trainSeconds} s)` : `${trainSeconds} s`,
    String(end.step),
    msPerStep.toFixed(1),
    `${MODE_NAMES.map((m) => (100 * end.scores[m]).toFixed(1)).join(' / ')} (${end.n})`,
    machine(),
  ]);
  console.log(`speedrun: row appended to ${path.relative(process.cwd(), file)}`);
}

async function main(): Promise<void> {
  const flags = parseFlags();
  const { preset, every, from, target } = flags;
  const log = (l: string) => {
    if (!l.startsWith('stopped at') && !l.startsWith('resumed')) console.error(l);
  };
  // The data: the cached tokens of the training items and of the validation split.
  const data = preparePipelineData('quick', log);
  const validationCodes = tokenise(data.tokenizer, data.validationSplit, 0, log, 'validation');
  const validation = splitSequenceSource(data.validationSplit, validationCodes, data.vocab);
  const count = Math.min(flags.n, data.validationSplit.count);
  const score = makeScorer(data, validationCodes, count, log);
  const runDir = gptRunDir(path.join(runsDir(), 'speedrun'), flags.name, preset);
  const pointsFile = path.join(runDir, 'speedrun.json');
  const checkpoint = path.join(runDir, CHECKPOINT_FILE);
  const resume = flags.resume && fs.existsSync(checkpoint);
  if (!resume) fs.rmSync(runDir, { recursive: true, force: true });
  const points: ScorePoint[] =
    resume && fs.existsSync(pointsFile)
      ? (JSON.parse(fs.readFileSync(pointsFile, 'utf8')) as { points: ScorePoint[] }).points
      : [];
  console.log(`speedrun: recipe ${flags.name} (${flags.what}); ${machine()}`);
  console.log(
    `speedrun: run ${path.relative(process.cwd(), runDir)}, ${count} validation items per mode, target ${pct(target)}`,
  );
  const totalSteps = totalTrainSteps(preset.train, data.train.count);
  let step = resume ? loadGpt(checkpoint).meta.step : 0;
  const trainTo = (stepTo: number) =>
    trainGpt({
      runDir,
      preset,
      vocab: data.vocab,
      train: data.train,
      test: validation, // the run's "test" NLL is the validation split's
      tokenizerHash: vqVaeFingerprint(data.tokenizer),
      resume: step > 0 || resume,
      log,
      stopAfterSteps: Math.max(1, stepTo - step),
    });
  let reached: ScorePoint | null = null;
  /** Scores a model, saves the points, prints the line; true when the target is met. */
  const addPoint = (model: GPT, trainLog: TrainLog): boolean => {
    const point = score(model, trainLog);
    points.push(point);
    const json = JSON.stringify({ recipe: flags.name, preset, points }, null, 2);
    atomicWriteFile(pointsFile, json + '\n'); // the resume state: never half-written
    const met = MODE_NAMES.every((m) => point.scores[m] >= target);
    console.log(pointLine(point, met));
    if (met && reached === null) reached = point;
    return met;
  };
  let done = false;
  // A resumed speedrun stopped before scoring its checkpoint scores it first.
  if (resume && (points[points.length - 1]?.step ?? -1) < step) {
    const { model, meta } = loadGpt(checkpoint);
    const trainLog = JSON.parse(fs.readFileSync(path.join(runDir, LOG_FILE), 'utf8')) as TrainLog;
    done = (addPoint(model, trainLog) && flags.stopAtTarget) || meta.complete;
  }
  while (!done) {
    const nextPoint = Math.min(
      totalSteps,
      step < from ? from : (Math.floor(step / every) + 1) * every,
    );
    let result = await trainTo(nextPoint);
    // Stopped on the last step: one more call ends the epoch (its NLL, the complete checkpoint).
    if (!result.complete && result.log.trainNll.length >= totalSteps)
      result = await trainTo(totalSteps + 1);
    step = result.log.trainNll.length;
    done = (addPoint(result.model, result.log) && flags.stopAtTarget) || result.complete;
  }
  report(flags, points, reached);
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
