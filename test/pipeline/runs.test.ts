// Run folders and what a run records (src/pipeline/runs.ts): a fresh run moves a run directory
// of another configuration aside instead of overwriting its checkpoint; the summary compares the
// RSS of the first and the last epoch and names where the run came from.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { rssOverRun, runProvenance, setAsideForeignRun } from '../../src/pipeline/runs';
import { GPT_PRESETS } from '../../src/gpt/train';
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  configurationFingerprint,
  saveCheckpoint,
} from '../../src/gpt/checkpoint';
import { projectRoot } from '../../src/paths';

test('a fresh mmgpt train moves a run of another configuration aside instead of overwriting it', () => {
  const runDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-aside-')), 'quick');
  fs.mkdirSync(runDir, { recursive: true });
  const model = { nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0, vocabSize: 66, blockSize: 57 };
  const train = { ...GPT_PRESETS.tiny.train };
  const ckpt = path.join(runDir, 'checkpoint.safetensors');
  saveCheckpoint(ckpt, {
    meta: {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      gptConfig: model,
      trainConfig: train as unknown as Record<string, unknown>,
      step: 1,
      epoch: 0,
      batchInEpoch: 1,
      rngState: [1, 2, 3, 4],
      tokenizerHash: 'h',
      complete: false,
    },
    weights: { w: { shape: [1], data: new Float32Array([1]) } },
    optimizer: null,
  });
  const lines: string[] = [];
  const log = (l: string) => lines.push(l);
  // The same configuration (logEvery is cosmetic): left where it is, to be overwritten or resumed.
  assert.equal(setAsideForeignRun(runDir, { model, train: { ...train, logEvery: 3 } }, log), null);
  assert.ok(fs.existsSync(ckpt));
  // Another configuration: the whole run directory moves to <runDir>-<its fingerprint>.
  const aside = setAsideForeignRun(runDir, { model: { ...model, nLayer: 4 }, train }, log);
  assert.equal(aside, `${runDir}-${configurationFingerprint({ model, train })}`);
  assert.ok(fs.existsSync(path.join(aside!, 'checkpoint.safetensors')));
  assert.ok(!fs.existsSync(runDir));
  assert.match(lines.join('\n'), /model\.nLayer: 2 in the checkpoint, 4 requested\); moved it to/);
});

test('the run summary compares the RSS of the first and the last epoch end, and names its source', () => {
  const MiB = 2 ** 20;
  // Epoch 0 (initialisation) carries no RSS and is skipped; one measured epoch is not a comparison.
  assert.equal(rssOverRun([{ epoch: 0 }, { epoch: 1, rssBytes: 100 * MiB }]), null);
  const memory = rssOverRun([
    { epoch: 0 },
    { epoch: 1, rssBytes: 2000 * MiB },
    { epoch: 2, rssBytes: 2300 * MiB },
    { epoch: 3, rssBytes: 2100 * MiB },
  ]);
  assert.deepEqual(memory, {
    firstEpoch: 1,
    firstMiB: 2000,
    lastEpoch: 3,
    lastMiB: 2100,
    change: 2100 / 2000 - 1,
  });
  const provenance = runProvenance();
  assert.match(provenance.command, /^mmgpt/);
  assert.ok(provenance.machine.includes(`${os.cpus().length} logical cores`), provenance.machine);
  // Inside a git checkout (CI's fresh clone) the commit is a full hash; elsewhere it is null.
  if (fs.existsSync(path.join(projectRoot(), '.git')))
    assert.match(provenance.commit ?? '', /^[0-9a-f]{40}(\+dirty)?$/);
  else assert.equal(provenance.commit, null);
});
