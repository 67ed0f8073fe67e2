// `mmgpt sample` and `mmgpt figures` on a tiny random run (js backend): every argument error is
// caught before any checkpoint is loaded, with a message that says what is accepted; samples and
// samples.json are written; the default checkpoint is the newest complete run, and without one
// the error says to train first.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { IMAGE_VALUES } from '../../src/data/coloured';
import { SHIPPED_PREFERENCE, findCheckpoint, loadRun } from '../../src/eval/run';
import { levelsToRgb, readLevelsPng, writePng } from '../../src/viz/png';
import { sampleArgs, sampleCommand, type SampleArgs } from '../../src/commands/sample';
import { FIGURE_FILES, resolveCheckpoint, writeSampleFigures } from '../../src/pipeline/figures';
import { EVAL_DEFAULTS } from '../../src/eval/report';
import { syntheticSet, writeTinyRun } from './helpers';

setBackend('js');

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-sample-'));
const root = tmp();
const checkpoint = writeTinyRun(path.join(root, 'runs', 'tiny'));
const images = syntheticSet(9, 4);
const goodImage = path.join(root, 'digit.png');
writePng(goodImage, levelsToRgb(images.images.subarray(0, IMAGE_VALUES)));

const base = ['--out', path.join(root, 'out')];
const fails = (argv: string[], pattern: RegExp) =>
  assert.throws(() => sampleArgs([...argv]), pattern, argv.join(' '));

test('argument errors are clear and come before loading anything', () => {
  fails([...base], /--mode is required: one of text2image, image2text, unconditional/);
  fails(
    ['--mode', 'txt2img', ...base],
    /--mode must be one of text2image, image2text, unconditional, got 'txt2img'/,
  );
  fails(['--mode', 'text2image', ...base], /needs --prompt "<shade> <colour> <digit> on/);
  fails(
    ['--mode', 'text2image', '--prompt', 'dark green eigth on bright cyan', ...base],
    /word 3 "eigth" is not a digit \(did you mean "eight"\?\)[\s\S]*word 3 \(digit\): zero, one/,
  );
  fails(
    ['--mode', 'text2image', '--prompt', 'green eight on bright cyan', ...base],
    /has 5 words, expected 6/,
  );
  fails(
    ['--mode', 'text2image', '--prompt', 'dark green eight on normal green', ...base],
    /"bright purple" \(words 5-6\) is not a palette colour|palette/,
  );
  fails(['--mode', 'image2text', ...base], /--mode image2text needs --image FILE.png/);
  fails(
    ['--mode', 'unconditional', '--prompt', 'dark green eight on bright cyan', ...base],
    /--prompt is only for --mode text2image/,
  );
  fails(['--mode', 'unconditional', '--guidance', '3', ...base], /--guidance needs a condition/);
  fails(['--mode', 'unconditional', '--n', '0', ...base], /--n must be an integer from 1 to/);
  fails(['--mode', 'unconditional', '--temperature', 'hot', ...base], /--temperature must be/);
  fails(
    ['--mode', 'unconditional', '--top-p', '1.5', ...base],
    /--top-p must be a number in \(0, 1\]/,
  );
  fails(['--mode', 'unconditional', '--top-k', '2.5', ...base], /--top-k must be an integer/);
  // The settings a preset sets are not flags (the library takes them; test/sampling checks them).
  for (const flag of ['--grammar', '--text-temperature', '--rerank-score', '--digit-search'])
    fails(['--mode', 'unconditional', flag, 'x', ...base], new RegExp(`unknown flag ${flag}`));
  fails(['--mode', 'unconditional'], /--out is required/);
  fails(['--mode', 'unconditional', '--colour', 'red', ...base], /unknown flag --colour/);
  fails(['--mode', 'unconditional', '--n', '3', '--n', '4', ...base], /--n is given twice/);

  // Images: wrong size, off-level colours, not a PNG.
  const small = path.join(root, 'small.png');
  writePng(small, { width: 10, height: 10, data: new Uint8Array(300) });
  fails(['--mode', 'image2text', '--image', small, ...base], /is 10x10 pixels; expected 28x28/);
  const offLevel = path.join(root, 'off.png');
  writePng(offLevel, { width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(40) });
  fails(
    ['--mode', 'image2text', '--image', offLevel, ...base],
    /do not quantise cleanly to the 4 levels 0, 85, 170, 255/,
  );
  fails(
    ['--mode', 'image2text', '--image', path.join(root, 'none.png'), ...base],
    /cannot read image/,
  );

  const ok = sampleArgs([
    '--mode',
    'text2image',
    '--prompt',
    '  Dark Green EIGHT on bright   cyan ',
    '--n',
    '3',
    '--seed',
    '7',
    '--top-k',
    '5',
    ...base,
  ]) as SampleArgs;
  assert.equal(ok.prompt, 'dark green eight on bright cyan');
  assert.equal(ok.n, 3);
  assert.equal(ok.seed, 7);
  assert.equal(ok.overrides.topK, 5);
  assert.equal(ok.overrides.temperature, undefined); // not given: each mode's default
  assert.equal(ok.samplingPreset, EVAL_DEFAULTS.samplingPreset);
});

test('mmgpt sample writes one PNG per sample and samples.json in every mode', async () => {
  const log = console.log;
  console.log = () => undefined;
  try {
    for (const [mode, extra] of [
      ['text2image', ['--prompt', 'dark green eight on bright cyan', '--guidance', '2']],
      ['image2text', ['--image', goodImage]],
      ['unconditional', ['--top-p', '0.9']],
    ] as const) {
      const out = path.join(root, `out-${mode}`);
      await sampleCommand([
        '--mode',
        mode,
        ...extra,
        '--n',
        '3',
        '--seed',
        '1',
        '--checkpoint',
        checkpoint,
        '--out',
        out,
      ]);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'samples.json'), 'utf8'));
      assert.equal(json.mode, mode);
      assert.equal(json.settings.n, 3);
      assert.equal(json.settings.seed, 1);
      assert.match(json.checkpoint.sha256, /^[0-9a-f]{64}$/);
      assert.equal(json.samples.length, 3);
      for (const s of json.samples) {
        assert.match(s.image, /^sample_\d{3}\.png$/);
        assert.equal(readLevelsPng(path.join(out, s.image)).length, IMAGE_VALUES);
        assert.equal(s.tokens.length, 58);
        assert.equal(s.caption.split(' ').length, 6);
      }
      assert.ok(fs.existsSync(path.join(out, 'grid.png')));
      if (mode === 'text2image') {
        assert.equal(json.prompt, 'dark green eight on bright cyan');
        assert.equal(json.settings.resolved.guidance, 2);
        for (const s of json.samples) assert.equal(s.caption, json.prompt);
      }
      if (mode === 'image2text') assert.equal(json.input.image, 'input.png');
    }
  } finally {
    console.log = log;
  }
});

test('figures: three captioned 3x3 grids', () => {
  const out = path.join(root, 'figures');
  const run = loadRun(checkpoint);
  const written = writeSampleFigures(run, images, { ...EVAL_DEFAULTS, seed: 2 }, out);
  assert.deepEqual(
    written.map((f) => path.basename(f)),
    Object.values(FIGURE_FILES),
  );
  for (const f of written) assert.ok(fs.statSync(f).size > 1000);
});

test('the default checkpoint is the newest complete run; without one, train first', () => {
  const runs = path.join(tmp(), 'runs');
  const weights = path.join(path.dirname(runs), 'weights');
  assert.throws(
    () => findCheckpoint({ runsDir: runs, weightsDir: weights }),
    /no trained checkpoint found[\s\S]*train first with mmgpt train --preset quick/,
  );
  const older = writeTinyRun(path.join(runs, 'a'));
  const unfinished = writeTinyRun(path.join(runs, 'b'), { complete: false });
  const past = new Date(Date.now() - 60_000);
  fs.utimesSync(older, past, past);
  assert.equal(findCheckpoint({ runsDir: runs, weightsDir: weights }), older);
  const newer = writeTinyRun(path.join(runs, 'c'));
  assert.equal(findCheckpoint({ runsDir: runs, weightsDir: weights }), newer);
  assert.equal(
    findCheckpoint({ explicit: path.dirname(older), runsDir: runs, weightsDir: weights }),
    older,
  );
  assert.throws(
    () =>
      findCheckpoint({
        explicit: path.join(runs, 'zzz.safetensors'),
        runsDir: runs,
        weightsDir: weights,
      }),
    /does not exist/,
  );
  // Only an unfinished run: the message names it and how to continue.
  fs.rmSync(older);
  fs.rmSync(newer);
  assert.throws(
    () => findCheckpoint({ runsDir: runs, weightsDir: weights }),
    new RegExp(`unfinished runs: .*${path.basename(path.dirname(unfinished))}.*--resume`),
  );
  // Shipped weights are the fallback.
  const shipped = writeTinyRun(path.join(weights, 'original'));
  assert.equal(findCheckpoint({ runsDir: runs, weightsDir: weights }), shipped);
  // Among shipped weights, the preferred (best-scoring) folder wins over the name order.
  writeTinyRun(path.join(weights, 'aaa'));
  const preferred = writeTinyRun(path.join(weights, SHIPPED_PREFERENCE[0]!));
  assert.equal(findCheckpoint({ runsDir: runs, weightsDir: weights }), preferred);
  // The command's resolver reads MMGPT_RUNS_DIR.
  const saved = process.env.MMGPT_RUNS_DIR;
  process.env.MMGPT_RUNS_DIR = path.join(root, 'runs');
  try {
    assert.equal(resolveCheckpoint(), checkpoint);
  } finally {
    if (saved === undefined) delete process.env.MMGPT_RUNS_DIR;
    else process.env.MMGPT_RUNS_DIR = saved;
  }
  // ... and, with no run there, MMGPT_WEIGHTS_DIR.
  const savedWeights = process.env.MMGPT_WEIGHTS_DIR;
  process.env.MMGPT_RUNS_DIR = runs;
  process.env.MMGPT_WEIGHTS_DIR = weights;
  try {
    assert.equal(resolveCheckpoint(), preferred);
  } finally {
    if (saved === undefined) delete process.env.MMGPT_RUNS_DIR;
    else process.env.MMGPT_RUNS_DIR = saved;
    if (savedWeights === undefined) delete process.env.MMGPT_WEIGHTS_DIR;
    else process.env.MMGPT_WEIGHTS_DIR = savedWeights;
  }
});

test('a run without its tokenizer is refused with the reason', () => {
  const dir = path.join(tmp(), 'run');
  const file = writeTinyRun(dir);
  fs.rmSync(path.join(dir, 'vqvae.safetensors'));
  assert.throws(() => loadRun(file), /has no vqvae.safetensors beside checkpoint.safetensors/);
  writeTinyRun(path.join(dir, '..', 'other'), { seed: 9 });
  fs.copyFileSync(
    path.join(dir, '..', 'other', 'vqvae.safetensors'),
    path.join(dir, 'vqvae.safetensors'),
  );
  assert.throws(() => loadRun(file), /is not the tokenizer/);
});
