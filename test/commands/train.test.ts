// `mmgpt train` and `mmgpt pipeline`'s command lines: --help lists only the user-facing presets;
// --preset takes them, the experiments, and the old names (with a notice); an unknown name is
// refused with the user-facing list. Nothing is trained here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TRAIN_COMMAND, presetFlag, trainCommand } from '../../src/commands/train';
import { PIPELINE_COMMAND, pipelineCommand } from '../../src/commands/pipeline';
import { parseCommandLine } from '../../src/commands/args';
import { EXPERIMENT_PRESETS } from '../../src/pipeline/experiments';
import { PRESET_NAMES } from '../../src/pipeline/presets';
import { capture } from './helpers';

/** presetFlag on `argv`, with the notices it writes. */
function preset(argv: string[]): { name: string; notices: string[] } {
  const notices: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => notices.push(args.join(' '));
  try {
    return { name: presetFlag(parseCommandLine(TRAIN_COMMAND, argv)), notices };
  } finally {
    console.warn = original;
  }
}

test('--help lists the user-facing presets and no experiment', async () => {
  assert.deepEqual(PRESET_NAMES, ['quick', 'best', 'original', 'original-full', 'tiny']);
  const train = await capture(() => trainCommand(['--help']));
  const pipeline = await capture(() => pipelineCommand(['--help']));
  assert.equal(train, TRAIN_COMMAND.help);
  assert.equal(pipeline, PIPELINE_COMMAND.help);
  for (const name of PRESET_NAMES) assert.match(train, new RegExp(`^ {4}${name} +\\S`, 'm'));
  assert.match(pipeline, /quick, best, original, original-full, tiny \(default quick/);
  assert.match(pipeline, /default 300 for quick, 50 for tiny, else 1000/);
  for (const name of Object.keys(EXPERIMENT_PRESETS)) {
    assert.ok(!train.includes(name), `${name} in mmgpt train --help`);
    assert.ok(!pipeline.includes(name), `${name} in mmgpt pipeline --help`);
  }
});

test('--preset takes the user-facing presets, the experiments and the old names', () => {
  assert.deepEqual(preset([]), { name: 'quick', notices: [] });
  assert.deepEqual(preset(['--preset', 'original-full']), { name: 'original-full', notices: [] });
  for (const name of Object.keys(EXPERIMENT_PRESETS))
    assert.deepEqual(preset(['--preset', name]), { name, notices: [] });
  const old = preset(['--preset', 'seed']);
  assert.equal(old.name, 'original');
  assert.match(old.notices.join('\n'), /'seed' is now called 'original'/);
  const oldExperiment = preset(['--preset', 'seed-searched-reader']);
  assert.equal(oldExperiment.name, 'original-searched-reader');
  assert.match(oldExperiment.notices.join('\n'), /now called 'original-searched-reader'/);
  assert.throws(
    () => preset(['--preset', 'huge']),
    /^UsageError: --preset must be one of quick, best, original, original-full, tiny, got 'huge'$/,
  );
});
