// `mmgpt export --format weights`: a finished run becomes shipped weights without its optimiser
// state; unfinished runs are refused. Tiny run directories on the reference backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { setBackend } from '../../src/engine/registry';
import { exportWeights } from '../../src/pipeline/export';
import { loadCheckpoint, saveCheckpoint } from '../../src/gpt/checkpoint';
import { writeTinyRun } from '../eval/helpers';

setBackend(process.env.MMGPT_TEST_BACKEND ?? 'js');

test('export --format weights drops the optimiser state and copies tokenizer, log, summary', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-ship-'));
  try {
    const file = writeTinyRun(path.join(root, 'run'));
    // Give the run an optimiser state, as training leaves it.
    const ckpt = loadCheckpoint(file);
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [n, w] of Object.entries(ckpt.weights)) {
      m[n] = new Float32Array(w.data.length).fill(0.5);
      v[n] = new Float32Array(w.data.length).fill(0.25);
    }
    saveCheckpoint(file, { ...ckpt, optimizer: { step: 3, m, v } });
    assert.notEqual(loadCheckpoint(file).optimizer, null);
    fs.writeFileSync(path.join(root, 'run', 'summary.json'), '{"preset":"tiny"}\n');

    const out = path.join(root, 'shipped');
    const files = exportWeights(file, out);
    assert.deepEqual(files.sort(), [
      'checkpoint.safetensors',
      'log.json',
      'summary.json',
      'vqvae.safetensors',
    ]);
    const shipped = loadCheckpoint(path.join(out, 'checkpoint.safetensors'));
    assert.equal(shipped.optimizer, null);
    assert.deepEqual(shipped.meta, ckpt.meta);
    assert.deepEqual(shipped.weights, ckpt.weights);
    for (const name of ['vqvae.safetensors', 'log.json', 'summary.json']) {
      assert.deepEqual(
        fs.readFileSync(path.join(out, name)),
        fs.readFileSync(path.join(root, 'run', name)),
      );
    }
    assert.ok(
      fs.statSync(path.join(out, 'checkpoint.safetensors')).size < fs.statSync(file).size / 2,
    );

    const unfinished = writeTinyRun(path.join(root, 'unfinished'), { complete: false });
    assert.throws(
      () => exportWeights(unfinished, path.join(root, 'nope')),
      /the run is not complete .*mmgpt train --resume/,
    );
    assert.equal(fs.existsSync(path.join(root, 'nope')), false);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
