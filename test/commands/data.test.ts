// `mmgpt data`: help, flag errors, the palette table, and a run that reuses (or builds) the
// cache, writes the preview grid and exports the dataset.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { dataCommand, DATA_USAGE } from '../../src/commands/data';
import { projectRoot } from '../../src/paths';
import { capture } from './helpers';

test('--help prints usage; bad flags fail with the usage', async () => {
  assert.match(await capture(() => dataCommand(['--help'])), /Usage: mmgpt data/);
  await assert.rejects(dataCommand(['--bogus']), /unknown flag --bogus[\s\S]*Usage/);
  await assert.rejects(dataCommand(['--palette', '--seed', '3']), /--seed does not apply/);
  await assert.rejects(dataCommand(['--seed', 'x']), /--seed must be an integer >= 0, got 'x'/);
  await assert.rejects(dataCommand(['--export']), /--export needs a value/);
  assert.match(DATA_USAGE, /--export DIR/);
});

test('--palette prints the table with the legibility rule', async () => {
  const out = await capture(() => dataCommand(['--palette']));
  assert.match(out, /\| 2 \| normal red \| 3 0 0 \|/);
  assert.match(out, /Legibility rule/);
});

test('a run writes the preview, prints label counts, and exports', async () => {
  const exportDir = path.join(projectRoot(), 'data', `.test-command-${process.pid}`);
  try {
    const out = await capture(() => dataCommand([`--export=${exportDir}`]));
    assert.match(out, /train: 60000 images; digit counts 0\.\.9: 5923 6742/);
    assert.match(out, /test: 10000 images; digit counts 0\.\.9: 980 1135/);
    assert.match(out, /cache: (reused|built|rebuilt)/);
    assert.ok(fs.existsSync(path.join(projectRoot(), 'figures', 'data_preview.png')));
    assert.deepEqual(fs.readdirSync(exportDir).sort(), [
      'palette.json',
      'test.safetensors',
      'train.safetensors',
      'vocab.json',
    ]);
  } finally {
    fs.rmSync(exportDir, { recursive: true, force: true });
  }
});
