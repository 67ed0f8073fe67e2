// Smoke tests of the benchmark's library functions and command plumbing (never of speed):
// a training-step measurement returns a well-formed result, the profiler counts kernels and
// restores the backend, the flags parse, and the report formats.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SEED_BENCH_CONFIG,
  benchTrainStep,
  benchForward,
  profileTrainStep,
  instrumentBackend,
  median,
} from '../../bench/train_step';
import type { GptConfig } from '../../src/gpt/model';
import { setBackend } from '../../src/engine/registry';
import {
  benchArgs,
  formatReport,
  formatProfile,
  describeTorchBlas,
} from '../../src/commands/bench';
import type { BenchReport } from '../../src/commands/bench';

const tiny: GptConfig = { vocabSize: 20, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, dropout: 0 };

test('the seed config is the seed model', () => {
  assert.deepEqual(
    { ...SEED_BENCH_CONFIG },
    { nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0, vocabSize: 1058, blockSize: 57 },
  );
});

test('benchTrainStep: 2 steps of the seed model at batch 2 on js give a well-formed result', () => {
  const r = benchTrainStep({ backend: 'js', batch: 2, steps: 2, warmup: 0 });
  assert.equal(r.backend, 'js');
  assert.equal(r.batch, 2);
  assert.equal(r.steps, 2);
  assert.equal(r.msPerStepAll.length, 2);
  assert.ok(r.msPerStep > 0 && Number.isFinite(r.msPerStep));
  assert.equal(r.inputTokens, 57);
  assert.ok(Math.abs(r.tokensPerSec - (2 * 57 * 1000) / r.msPerStep) < 1e-6);
  // Random tokens at initialisation: the loss is close to ln(vocab).
  assert.ok(Math.abs(r.lastLoss - Math.log(1058)) < 0.3, `loss ${r.lastLoss}`);
  assert.equal(r.parameters, 1_071_488);
});

test('benchTrainStep chooses the step count from the warm-up when none is given', () => {
  const r = benchTrainStep({
    backend: 'js',
    batch: 2,
    warmup: 1,
    budgetMs: 1,
    minSteps: 2,
    config: tiny,
  });
  assert.equal(r.steps, 2);
});

test('benchForward times a batch-1 forward over the whole block', () => {
  const r = benchForward({ backend: 'js', steps: 3, warmup: 1, config: tiny });
  assert.equal(r.tokens, 8);
  assert.equal(r.msAll.length, 3);
  assert.ok(r.msMedian > 0);
});

test('profileTrainStep counts kernels by phase and restores the backend', () => {
  const backend = setBackend('js');
  const matmul = backend.matmul;
  const p = profileTrainStep({ backend: 'js', batch: 2, steps: 2, warmup: 1, config: tiny });
  assert.equal(backend.matmul, matmul, 'the original methods are back');
  const names = p.kernels.map((k) => k.name);
  for (const n of ['matmul (fwd)', 'matmul (bwd)', 'adam (opt)', 'layerNorm (fwd)'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  for (let i = 1; i < p.kernels.length; i++)
    assert.ok(p.kernels[i - 1].totalMs >= p.kernels[i].totalMs, 'sorted by time');
  // Per step: one adam call per parameter tensor; 2 steps timed.
  const adam = p.kernels.find((k) => k.name === 'adam (opt)')!;
  assert.equal(adam.calls, 2 * 17);
  assert.ok(p.matmulShapes.length > 0 && p.matmulShapes.every((m) => m.flops > 0));
  assert.ok(p.kernelFraction > 0 && p.kernelFraction <= 1.0001);
  assert.match(formatProfile(p), /matmul \(fwd\)/);
});

test('instrumentBackend records calls and restores own and inherited methods', () => {
  class Fake {
    readonly name = 'js' as const;
    calls = 0;
    sync(): void {}
    fill(): void {
      this.calls++;
    }
    /** Calls another method through `this`, as backend methods may. */
    twice(): void {
      const t0 = performance.now();
      while (performance.now() - t0 < 2); // 2 ms of its own
      this.fill();
      this.fill();
    }
  }
  const fake = new Fake();
  const { kernels, outerMs, restore } = instrumentBackend(
    fake as unknown as Parameters<typeof instrumentBackend>[0],
    () => 'fwd',
  );
  fake.fill();
  fake.fill();
  assert.equal(fake.calls, 2, 'the wrapper calls through with the right this');
  assert.equal(kernels.get('fill (fwd)')?.calls, 2);
  // The nested calls count in the table, and once in the outer time: the sum of the table is
  // larger than the time spent in the backend.
  const before = outerMs();
  fake.twice();
  assert.equal(kernels.get('fill (fwd)')?.calls, 4);
  const twice = kernels.get('twice (fwd)')!.totalMs;
  assert.ok(twice >= 2);
  assert.ok(Math.abs(outerMs() - before - twice) < 1e-9, `${outerMs() - before} vs ${twice}`);
  restore();
  assert.equal(Object.prototype.hasOwnProperty.call(fake, 'fill'), false);
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

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
});

test('formatReport prints every run with its ratios', () => {
  const report: BenchReport = {
    machine: {
      cpu: 'test cpu',
      cores: 2,
      hostname: 'h',
      platform: 'p',
      node: 'v20',
      memoryGb: 1,
      loadavgBefore: 0,
      loadavgAfter: 0,
    },
    backend_ms_per_step: { cpu: { '32': 100 } },
    runs_ms_per_step: { cpu: { '32': 100 }, tfjs_wasm: { '32': 4000 }, torch_cpu: { '32': 1700 } },
    min_ms_per_step: { cpu: { '32': 95 } },
    tokens_per_s: { cpu: { '32': 18240 } },
    forward_b1_ms: { cpu: 1.5 },
    tfjs_wasm_ms_per_step: 4000,
    tfjs_wasm: { '32': 4000 },
    tfjs_info: null,
    torch_ms_per_step: 1700,
    torch: { cpu: { '32': 1700 } },
    torch_compile: null,
    torch_info: { python: 'python3', version: '1.13', threads: 2, device: 'cpu' },
    ratios: { 'torch/cpu': 17, 'tfjs_wasm/cpu': 40 },
    ratios_by_batch: {},
    peak_rss_mb: { cpu: { '32': 120 } },
    steps: {},
    skipped: ['js: test'],
    reference_batch: 32,
    torch_eager: { '32': 1700 },
  };
  const text = formatReport(report);
  assert.match(
    text,
    /cpu +\| +32 \| +100\.0 \| +95\.0 \| +18,240 \| +17\.0x \| +40\.0x \| +120 MB/,
  );
  assert.match(text, /torch 1\.13 cpu/);
  assert.match(text, /skipped:\n {2}js: test/);
});

test("the PyTorch peer's BLAS is named, and the reference BLAS is recognised", () => {
  const debianReference = describeTorchBlas({
    build: { BLAS_INFO: 'generic', LAPACK_INFO: 'generic', USE_MKL: 'OFF', USE_OPENMP: 'ON' },
    loaded: ['/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0'],
  });
  assert.equal(debianReference.reference, true);
  assert.match(debianReference.name, /reference BLAS/);
  const debianOpenblas = describeTorchBlas({
    build: { BLAS_INFO: 'generic', LAPACK_INFO: 'generic', USE_MKL: 'OFF', USE_OPENMP: 'ON' },
    loaded: ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3'],
  });
  assert.deepEqual(debianOpenblas.reference, false);
  assert.match(debianOpenblas.name, /^OpenBLAS/);
  const wheel = describeTorchBlas({
    build: { BLAS_INFO: 'mkl', LAPACK_INFO: 'mkl', USE_MKL: 'ON', USE_OPENMP: 'ON' },
    loaded: [],
  });
  assert.deepEqual(wheel, { name: 'MKL (built in)', reference: false });
});
