// `mmgpt bench`'s comparison: the training step of the original recipe's model on each of our
// backends, side by side with the identical step in TensorFlow.js (WASM) and PyTorch, every
// measurement in its own child process (children.ts). Numbers only: nothing here passes or
// fails on time. The GPU variant is the same comparison with `--backends cuda --torch-device
// cuda --compile`.

import * as os from 'os';
import * as path from 'path';
import { availableBackends, loadBackend, isBackend, BACKEND_NAMES } from '../engine/registry';
import type { BackendName } from '../engine/registry';
import { projectRoot } from '../paths';
import { benchScript, describeTorchBlas, findTorchPython, runJsonChild } from './children';
import type { BackendRunResult, TfjsRunResult, TorchRunResult } from './children';
import { fmtMs } from './format';
import { cpuBackendInfo } from '../engine/backends/cpu';
import { addRatios, cpuRowName, emptyReport, loadavg, recordRun } from './report';
import type { BenchOptions, BenchReport, ByBatch } from './report';

/** How long one child process may run before it is killed. */
const CHILD_TIMEOUT_MS = 15 * 60_000;

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}

/** The comparison report: every backend, TensorFlow.js and PyTorch, one child process per run. */
export async function runBenchmark(options: BenchOptions): Promise<BenchReport> {
  const report = emptyReport(options, []);
  const backends = chooseBackends(options, report.skipped);
  await runOurBackends(options, backends, report);
  if (options.tfjs) await runTfjs(options, report);
  else report.skipped.push('tfjs-wasm: --no-tfjs');
  if (options.torch) await runTorch(options, backends, report);
  else report.skipped.push('torch: --no-torch');
  addRatios(report, backends);
  report.machine.loadavgAfter = loadavg();
  return report;
}

/** The backends named in --backends that load, or every one that loads; the others skipped. */
function chooseBackends(options: BenchOptions, skipped: string[]): BackendName[] {
  const available = availableBackends();
  if (options.backends === undefined) {
    for (const name of BACKEND_NAMES)
      if (!available.includes(name)) {
        const b = loadBackend(name);
        skipped.push(`${name}: unavailable (${isBackend(b) ? '?' : firstLine(b.error)})`);
      }
    return available;
  }
  const backends: BackendName[] = [];
  for (const name of options.backends as BackendName[]) {
    const b = loadBackend(name);
    if (isBackend(b)) backends.push(name);
    else skipped.push(`${name}: unavailable (${firstLine(b.error)})`);
  }
  return backends;
}

/**
 * The runs of our backends: each backend once, the cpu backend once per --matmul precision (its
 * row 'cpu' or 'cpu-bf16', MMGPT_MATMUL set in its child); a precision this processor lacks is
 * skipped with the reason.
 */
function withPrecisions(
  backends: BackendName[],
  options: BenchOptions,
  skipped: string[],
): { backend: BackendName; row: string; env: NodeJS.ProcessEnv }[] {
  const runs: { backend: BackendName; row: string; env: NodeJS.ProcessEnv }[] = [];
  for (const backend of backends) {
    if (backend !== 'cpu' || options.matmul === undefined) {
      runs.push({ backend, row: backend, env: process.env });
      continue;
    }
    const info = cpuBackendInfo();
    for (const precision of options.matmul) {
      const row = cpuRowName(precision);
      if (!('error' in info) && !info.availableMatmul.includes(precision)) {
        skipped.push(`${row}: this processor has no ${precision} matmuls (no AMX-BF16 tiles)`);
        continue;
      }
      runs.push({ backend, row, env: { ...process.env, MMGPT_MATMUL: precision } });
    }
  }
  return runs;
}

/** Our backends, one process per (backend, batch); js only up to batch 64 unless named. */
async function runOurBackends(
  options: BenchOptions,
  backends: BackendName[],
  report: BenchReport,
): Promise<void> {
  const budgetMs = options.budgetS * 1000;
  for (const run of withPrecisions(backends, options, report.skipped)) {
    const { backend, row, env } = run;
    const explicit = options.backends?.includes(backend) ?? false;
    let first = true;
    for (const batch of options.batches) {
      if (backend === 'js' && batch > 64 && !explicit) {
        report.skipped.push(
          `js at batch ${batch}: the reference backend is slow (name it in --backends to run it)`,
        );
        continue;
      }
      const steps = options.steps ?? (backend === 'js' ? 2 : undefined);
      const warmup = options.warmup ?? (backend === 'js' ? 1 : backend === 'cuda' ? 5 : 2);
      const childArgs = [
        benchScript('run_backend'),
        '--backend',
        backend,
        '--batch',
        String(batch),
        '--warmup',
        String(warmup),
        '--budget-ms',
        String(budgetMs),
      ];
      if (steps !== undefined) childArgs.push('--steps', String(steps));
      if (first)
        childArgs.push('--forward', '--forward-budget-ms', String(Math.min(budgetMs, 2000)));
      log(`${row} batch ${batch} ...`);
      const { result, error } = await runJsonChild<BackendRunResult>(
        process.execPath,
        childArgs,
        CHILD_TIMEOUT_MS,
        env,
      );
      if (result === null) {
        report.skipped.push(`${row} batch ${batch}: failed (${error})`);
        log(`${row} batch ${batch} failed: ${error}`);
        continue;
      }
      const t = result.train;
      recordRun(report, row, batch, t.msPerStep, t.msPerStepAll, result.peakRssMb);
      if (result.forward) report.forward_b1_ms[row] = result.forward.msMedian;
      log(
        `${row} batch ${batch}: ${fmtMs(t.msPerStep)} ms/step (median of ${t.steps}), loss ${t.lastLoss.toFixed(3)}` +
          (result.forward ? `, batch-1 forward ${fmtMs(result.forward.msMedian)} ms` : ''),
      );
      first = false;
    }
  }
}

/** TensorFlow.js on its WASM backend, one process per peer batch. */
async function runTfjs(options: BenchOptions, report: BenchReport): Promise<void> {
  const tfjs: ByBatch = (report.tfjs_wasm = {});
  let first = true;
  for (const batch of options.peerBatches) {
    const childArgs = [
      benchScript('tfjs_step'),
      '--batch',
      String(batch),
      '--steps',
      String(options.steps ?? 3),
      '--warmup',
      String(options.warmup ?? 1),
      '--threads',
      String(os.cpus().length),
    ];
    if (first) childArgs.push('--forward');
    log(`tfjs-wasm batch ${batch} ...`);
    const { result, error } = await runJsonChild<TfjsRunResult>(
      process.execPath,
      childArgs,
      CHILD_TIMEOUT_MS,
    );
    if (result === null) {
      report.skipped.push(`tfjs-wasm batch ${batch}: failed (${error})`);
      log(`tfjs-wasm batch ${batch} failed: ${error}`);
      continue;
    }
    tfjs[String(batch)] = result.msPerStep;
    report.tfjs_info = {
      version: result.version,
      backend: result.backend,
      threads: result.threads,
    };
    recordRun(report, 'tfjs_wasm', batch, result.msPerStep, result.msPerStepAll, result.peakRssMb);
    if (result.forwardB1Ms !== null) report.forward_b1_ms.tfjs_wasm = result.forwardB1Ms;
    log(
      `tfjs-wasm batch ${batch}: ${fmtMs(result.msPerStep)} ms/step (${result.threads ?? '?'} thread(s))`,
    );
    first = false;
  }
  const refBatch = String(options.peerBatches.includes(32) ? 32 : options.peerBatches[0]);
  report.tfjs_wasm_ms_per_step = tfjs[refBatch] ?? null;
}

/** What the PyTorch runs gathered beyond their times. */
interface TorchRuns {
  eager: ByBatch;
  compiled: ByBatch;
  threads: number;
  blas: { name: string; reference: boolean } | null;
}

/**
 * PyTorch, one process per batch size: the peer batches on the CPU, every --batch on cuda
 * (default device: cuda when our cuda backend runs, else cpu).
 */
async function runTorch(
  options: BenchOptions,
  backends: BackendName[],
  report: BenchReport,
): Promise<void> {
  const found = findTorchPython();
  if ('error' in found) {
    report.skipped.push(`torch: ${found.error}`);
    log(`torch skipped: ${found.error}`);
    return;
  }
  const device = options.torchDevice ?? (backends.includes('cuda') ? 'cuda' : 'cpu');
  const batches = device === 'cuda' ? options.batches : options.peerBatches;
  const key = `torch_${device}`;
  const runs: TorchRuns = { eager: {}, compiled: {}, threads: options.torchThreads, blas: null };
  let first = true;
  for (const batch of batches) {
    const result = await runTorchBatch(options, found, device, batch, first, report);
    if (result === null) continue;
    fileTorchRun(result, batch, device, key, runs, report);
    first = false;
  }
  report.torch = { [device]: runs.eager };
  report.torch_eager = runs.eager;
  if (Object.keys(runs.compiled).length > 0) {
    report.torch_compile = { [device]: runs.compiled };
    for (const [b, ms] of Object.entries(runs.compiled))
      (report.runs_ms_per_step[`${key}_compile`] ??= {})[b] = ms;
  }
  const refBatch = batches.includes(32) ? '32' : String(batches[0]);
  report.torch_ms_per_step = runs.eager[refBatch] ?? null;
  report.torch_info = {
    python: found.python,
    version: found.version,
    threads: runs.threads,
    device,
    blas: runs.blas,
  };
}

/** One bench/torch_step.py process; null (and the failure in `skipped`) when it fails. */
async function runTorchBatch(
  options: BenchOptions,
  found: { python: string; version: string },
  device: string,
  batch: number,
  first: boolean,
  report: BenchReport,
): Promise<TorchRunResult | null> {
  const childArgs = [
    path.join(projectRoot(), 'bench', 'torch_step.py'),
    '--batch',
    String(batch),
    '--device',
    device,
    '--threads',
    String(options.torchThreads),
    '--budget-s',
    String(options.budgetS),
  ];
  if (options.steps !== undefined) childArgs.push('--steps', String(options.steps));
  if (options.warmup !== undefined) childArgs.push('--warmup', String(options.warmup));
  if (options.compile) childArgs.push('--compile');
  if (first) childArgs.push('--forward');
  log(`torch ${found.version} ${device} batch ${batch} ...`);
  const { result, error } = await runJsonChild<TorchRunResult>(
    found.python,
    childArgs,
    CHILD_TIMEOUT_MS,
  );
  if (result === null) {
    report.skipped.push(`torch ${device} batch ${batch}: failed (${error})`);
    log(`torch batch ${batch} failed: ${error}`);
  }
  return result;
}

/** Files one PyTorch run: its eager (and compiled) ms, its BLAS (warning on the reference one). */
function fileTorchRun(
  result: TorchRunResult,
  batch: number,
  device: string,
  key: string,
  runs: TorchRuns,
  report: BenchReport,
): void {
  runs.threads = result.threads;
  if (result.blas && runs.blas === null) {
    runs.blas = describeTorchBlas(result.blas);
    if (device === 'cpu') log(`torch's CPU BLAS: ${runs.blas.name}`);
    if (device === 'cpu' && runs.blas.reference) {
      const warning =
        `warning: PyTorch's CPU peer runs on the reference BLAS (${runs.blas.name}), ~6x slower ` +
        'than an optimised BLAS, so its ratios flatter us; install one (Debian/Ubuntu: ' +
        'apt-get install libopenblas0-pthread) for an honest peer';
      log(warning);
    }
  }
  if (result.device_name) report.machine.gpu = result.device_name;
  const b = String(batch);
  const ms = result.eager[b];
  runs.eager[b] = ms;
  recordRun(report, key, batch, ms, result.eager_all_ms[b] ?? [ms], result.peak_rss_mb);
  if (result.compile && result.compile[b] !== undefined) runs.compiled[b] = result.compile[b];
  if (result.compile_error) report.skipped.push(`torch.compile: ${result.compile_error}`);
  if (result.forward_b1_ms !== null) report.forward_b1_ms[key] = result.forward_b1_ms;
  log(
    `torch ${device} batch ${batch}: ${fmtMs(ms)} ms/step eager` +
      (runs.compiled[b] !== undefined ? `, ${fmtMs(runs.compiled[b])} compiled` : ''),
  );
}
