// The comparison's report (src/perf/report.ts) as text, and the naming of PyTorch's BLAS
// (src/perf/children.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReport } from '../../src/perf/report';
import type { BenchReport } from '../../src/perf/report';
import { describeTorchBlas } from '../../src/perf/children';

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
  assert.doesNotMatch(text, /cpu-bf16 against/);
  report.runs_ms_per_step['cpu-bf16'] = { '32': 64 };
  report.machine.matmul = 'bf16';
  const both = formatReport(report);
  assert.match(both, /cpu-bf16 against cpu \(fp32 matmuls\) at batch 32: 1\.56x/);
  assert.match(both, /cpu-bf16 +\| +32 \| +64\.0/);
  assert.match(both, /machine: test cpu, 2 cores; cpu matmuls bf16 \(MMGPT_MATMUL\)/);
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
