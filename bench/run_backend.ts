// Child-process entry of `mmgpt bench` for one of our backends and one batch size.
//
//   node dist/bench/run_backend.js --backend cpu --batch 32 [--steps N] [--warmup N]
//        [--budget-ms MS] [--forward] [--forward-budget-ms MS]
//
// Each (backend, batch) runs in its own process so that the peak RSS belongs to that run alone
// and one backend's allocations and JIT state never disturb another's timing. The last line of
// stdout is one JSON object (a BackendRunResult).

import { benchTrainStep, benchForward, peakRssMb } from '../src/perf/train_step';
import type { BackendRunResult } from '../src/perf/children';

export type { BackendRunResult } from '../src/perf/children';

/** Reads `--name value` from argv; undefined when absent. */
export function flagValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`);
  return value;
}

/** Reads an optional numeric flag. */
export function numberFlag(argv: readonly string[], name: string): number | undefined {
  const raw = flagValue(argv, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} must be a non-negative number, got '${raw}'`);
  return value;
}

export function runBackend(argv: readonly string[]): BackendRunResult {
  const backend = flagValue(argv, '--backend') ?? 'js';
  const batch = numberFlag(argv, '--batch') ?? 32;
  const train = benchTrainStep({
    backend,
    batch,
    steps: numberFlag(argv, '--steps'),
    warmup: numberFlag(argv, '--warmup'),
    budgetMs: numberFlag(argv, '--budget-ms'),
  });
  const forward = argv.includes('--forward')
    ? benchForward({ backend, budgetMs: numberFlag(argv, '--forward-budget-ms') })
    : null;
  return { backend, batch, train, forward, peakRssMb: peakRssMb() };
}

if (require.main === module) {
  try {
    console.log(JSON.stringify(runBackend(process.argv.slice(2))));
  } catch (e) {
    console.error(`run_backend: ${(e as Error).message}`);
    process.exit(1);
  }
}
