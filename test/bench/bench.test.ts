// `mmgpt bench`'s command line (src/commands/bench.ts): defaults, lists, and errors that say
// what is accepted; each mode's flags belong to it. The measurements are test/perf/'s.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchArgs } from '../../src/commands/bench';

test('benchArgs: defaults, lists, and errors that say what is accepted', () => {
  const d = benchArgs([]);
  assert.deepEqual(d.batches, [32, 256]);
  assert.deepEqual(d.peerBatches, [32]);
  assert.equal(d.tfjs, true);
  assert.equal(d.torch, true);
  assert.equal(d.json, false);
  const a = benchArgs([
    '--json',
    '--batch',
    '8,16',
    '--backends',
    'js',
    '--no-tfjs',
    '--steps',
    '3',
    '--save',
  ]);
  assert.deepEqual(a.batches, [8, 16]);
  assert.deepEqual(a.backends, ['js']);
  assert.equal(a.tfjs, false);
  assert.equal(a.steps, 3);
  assert.equal(typeof a.save, 'string');
  assert.equal(benchArgs(['--save', 'h100']).save, 'h100');
  assert.equal(typeof benchArgs(['--save', '--json']).save, 'string');
  assert.equal(benchArgs(['--save', '--json']).json, true);
  assert.throws(() => benchArgs(['--batch', '0']), /--batch takes comma-separated integers/);
  assert.throws(() => benchArgs(['--backends', 'tpu']), /choose from js, cpu, cuda/);
  assert.throws(() => benchArgs(['--frobnicate']), /unknown flag --frobnicate/);
  assert.throws(() => benchArgs(['--torch-device', 'mps']), /one of cpu, cuda/);
  // Each mode's flags belong to it.
  assert.throws(
    () => benchArgs(['--backend', 'tpu']),
    /--backend applies only with --profile \(did you mean --backends\?\)[\s\S]*mmgpt bench/,
  );
  assert.throws(() => benchArgs(['--profile', '--save']), /--save does not apply with --profile/);
  const p = benchArgs(['--profile', '--backend', 'js', '--batch', '4', '--steps', '2']);
  assert.equal(p.profileBackend, 'js');
  assert.deepEqual(p.batches, [4]);
  assert.throws(() => benchArgs(['--profile', '--backend', 'tpu']), /one of js, cpu, cuda/);
  assert.equal(benchArgs([]).matmul, undefined);
  assert.deepEqual(benchArgs(['--matmul', 'fp32,bf16']).matmul, ['fp32', 'bf16']);
  assert.throws(
    () => benchArgs(['--matmul', 'fp16']),
    /unknown value 'fp16'; choose from fp32, bf16/,
  );
  assert.throws(
    () => benchArgs(['--profile', '--matmul', 'bf16']),
    /does not apply with --profile/,
  );
});
