// `mmgpt train`'s tokenizer step: a trained tokenizer is reused only while its recipe is unchanged,
// and a training state left by other settings is discarded.
// The tiny recipe on synthetic images, on the reference backend, in a scratch runs directory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { ensureTokenizer, tokenizerPath } from '../../src/commands/train';
import { trainVqVae, vqVaeFingerprint } from '../../src/vqvae/train';
import { VQVAE_PRESETS } from '../../src/vqvae/model';
import type { ColouredSplit } from '../../src/data/coloured';
import { syntheticSet } from '../eval/helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

function split(name: 'train' | 'test', count: number, seed: number): ColouredSplit {
  return { split: name, ...syntheticSet(count, seed) };
}

test('the tokenizer is reused while its recipe is unchanged, retrained when it changes', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-train-'));
  const saved = process.env.MMGPT_RUNS_DIR;
  process.env.MMGPT_RUNS_DIR = root;
  try {
    const train = split('train', 64, 1);
    const test = split('test', 16, 2);
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const first = ensureTokenizer('tiny', train, test, log);
    assert.ok(lines.some((l) => /training recipe 'tiny'/.test(l)));
    const print = vqVaeFingerprint(first.model);
    first.model.dispose();

    lines.length = 0;
    const second = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /reusing/.test(l)),
      lines.join('\n'),
    );
    assert.equal(vqVaeFingerprint(second.model), print);
    second.model.dispose();

    // A report written with other settings (or by a build that did not record them) is stale.
    const reportFile = path.join(path.dirname(tokenizerPath('tiny')), 'report.json');
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(reportFile, JSON.stringify({ ...report, recipeSettings: undefined }));
    lines.length = 0;
    const third = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /other settings .* retraining/.test(l)),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /training recipe 'tiny'/.test(l)));
    third.model.dispose();
    const statePath = path.join(path.dirname(tokenizerPath('tiny')), 'training-state.safetensors');
    assert.equal(fs.existsSync(statePath), false, 'the training state outlived the training');

    // A training state left by other settings (an older recipe) is discarded, not resumed.
    const stale = trainVqVae({
      train: { images: train.images, count: 8 },
      config: VQVAE_PRESETS.tiny,
      batchSize: 4,
      steps: 2,
      checkpoint: { path: statePath, every: 1 },
    });
    stale.model.dispose();
    assert.ok(fs.existsSync(statePath));
    fs.rmSync(reportFile);
    lines.length = 0;
    const fourth = ensureTokenizer('tiny', train, test, log);
    assert.ok(
      lines.some((l) => /is from other settings; starting anew/.test(l)),
      lines.join('\n'),
    );
    assert.equal(vqVaeFingerprint(fourth.model), print);
    assert.equal(fs.existsSync(statePath), false);
    fourth.model.dispose();
  } finally {
    if (saved === undefined) delete process.env.MMGPT_RUNS_DIR;
    else process.env.MMGPT_RUNS_DIR = saved;
    fs.rmSync(root, { recursive: true, force: true });
  }
});
