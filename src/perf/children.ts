// The child processes of `mmgpt bench`, and what each one reports: one of our backends at one
// batch size (bench/run_backend.ts), the same step in TensorFlow.js (bench/tfjs_step.ts) and in
// PyTorch (bench/torch_step.py). Each prints one JSON object as its last stdout line; the last
// lines of its stderr explain a failure. Each run in its own process keeps its peak RSS its own
// and its timing undisturbed by the others.

import * as fs from 'fs';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { projectRoot } from '../paths';
import type { ForwardResult, StepTimings, TrainStepResult } from './train_step';

/** What one bench/run_backend.ts process prints: a training step and a batch-1 forward. */
export interface BackendRunResult {
  backend: string;
  batch: number;
  train: TrainStepResult;
  forward: ForwardResult | null;
  /** Peak RSS of this process (MiB). */
  peakRssMb: number;
}

/** What one bench/tfjs_step.ts process prints (TensorFlow.js, WASM backend). */
export interface TfjsRunResult extends StepTimings {
  /** tfjs-core version. */
  version: string;
  threads: number | null;
  forwardB1Ms: number | null;
  peakRssMb: number;
}

/** A compiled bench script (dist/bench/NAME.js). */
export function benchScript(name: string): string {
  const file = path.join(projectRoot(), 'dist', 'bench', `${name}.js`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing; build first with: npm run build`);
  return file;
}

/** The Python interpreter that imports torch, or the reasons none was found. */
export function findTorchPython(): { python: string; version: string } | { error: string } {
  const candidates = [process.env.MMGPT_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter(
    (c): c is string => c !== undefined && c !== '',
  );
  const tried: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (r.status === 0) return { python, version: r.stdout.trim() };
    tried.push(
      `${python}: ${(r.error?.message ?? r.stderr.trim().split('\n').pop() ?? '').slice(0, 120)}`,
    );
  }
  return { error: `no Python with torch (${tried.join('; ')})` };
}

export interface ChildOutcome<T> {
  result: T | null;
  error: string | null;
}

/**
 * Runs a command and parses its last stdout line as JSON; a failure (exit code, signal, timeout,
 * unparsable output) comes back as an error ending with the last lines of its stderr.
 */
export function runJsonChild<T>(
  command: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ChildOutcome<T>> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ result: null, error: e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n');
      const last = lines[lines.length - 1];
      if (code === 0 && last) {
        try {
          resolve({ result: JSON.parse(last) as T, error: null });
          return;
        } catch {
          // fall through to the error below
        }
      }
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      resolve({ result: null, error: `${why}${tail ? ': ' + tail : ''}`.slice(0, 400) });
    });
  });
}

/** What one bench/torch_step.py process prints (its last stdout line). */
export interface TorchRunResult {
  torch: string;
  device: string;
  device_name: string | null;
  threads: number;
  eager: Record<string, number>;
  eager_all_ms: Record<string, number[]>;
  compile: Record<string, number> | null;
  compile_error: string | null;
  last_loss: Record<string, number>;
  forward_b1_ms: number | null;
  peak_rss_mb: number;
  peak_cuda_mb?: number;
  blas?: TorchBlasInfo;
}

/** What bench/torch_step.py reports of the BLAS under PyTorch's CPU matmuls. */
export interface TorchBlasInfo {
  /** Build settings from torch.__config__.show() (BLAS_INFO, LAPACK_INFO, USE_MKL, ...). */
  build: Record<string, string | null>;
  /** BLAS libraries mapped into the process after a matmul (resolved paths). */
  loaded: string[];
}

/**
 * Names the BLAS that a PyTorch CPU peer runs on, and whether it is the reference (Netlib)
 * BLAS: Debian's torch links libblas.so.3, which is the reference BLAS (many times slower than an
 * optimised one, so PyTorch looks slower than it is) unless an optimised alternative such as
 * libopenblas0-pthread is installed. Libraries actually loaded win over the build settings
 * (pip wheels link MKL or OpenBLAS statically: nothing separate is loaded).
 */
export function describeTorchBlas(info: TorchBlasInfo): { name: string; reference: boolean } {
  const optimised: [RegExp, string][] = [
    [/mkl/i, 'MKL'],
    [/openblas/i, 'OpenBLAS'],
    [/blis/i, 'BLIS'],
    [/atlas/i, 'ATLAS'],
  ];
  for (const [pattern, name] of optimised) {
    const lib = info.loaded.find((p) => pattern.test(p));
    if (lib !== undefined) return { name: `${name} (${lib})`, reference: false };
  }
  const plain = info.loaded.find((p) => /libblas\.so/i.test(p));
  if (plain !== undefined) return { name: `reference BLAS (${plain})`, reference: true };
  const built = (info.build.BLAS_INFO ?? '').toLowerCase();
  if (built === 'mkl' || info.build.USE_MKL === 'ON')
    return { name: 'MKL (built in)', reference: false };
  if (built === 'open' || built === 'openblas')
    return { name: 'OpenBLAS (built in)', reference: false };
  if (built === '' || built === 'generic' || built === 'blas')
    return { name: `unknown (BLAS_INFO=${built || 'unset'})`, reference: false };
  return { name: built, reference: false };
}
