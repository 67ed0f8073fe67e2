// The report of `mmgpt bench`'s comparison: its options, the report's JSON shape (what
// bench/results/*.json hold), how one run is filed into it, the peer ratios, and its text.
// The GPU report is the same report: `<backend>`, `torch_eager` and `torch_compile` keys shaped
// {batch: ms}, as bench/results/h100.json holds.

import * as os from 'os';
import type { MatmulPrecision } from '../engine/backends/cpu';
import { BACKEND_NAMES } from '../engine/registry';
import { TARGETS_PER_SEQUENCE } from '../data/sequences';
import { fmtMs, fmtRatio, table } from './format';
import { machineInfo, type MachineInfo } from './train_step';

/** What the comparison runs (`mmgpt bench` without --profile). */
export interface BenchOptions {
  /** Timed steps per run; undefined: as many as fill budgetS (js 2, tfjs 3). */
  steps?: number;
  /** Warm-up steps; undefined: each runner's default. */
  warmup?: number;
  /** Batch sizes for our backends. */
  batches: number[];
  /** Which of our backends (undefined: every one that loads). */
  backends?: string[];
  tfjs: boolean;
  torch: boolean;
  torchDevice?: 'cpu' | 'cuda';
  torchThreads: number;
  compile: boolean;
  /** Batch sizes for TensorFlow.js and PyTorch on the CPU. */
  peerBatches: number[];
  /** Seconds of timed steps per run when `steps` is not given. */
  budgetS: number;
  /** The cpu backend's matmul precisions, a run each (undefined: MMGPT_MATMUL's, else fp32). */
  matmul?: readonly MatmulPrecision[];
}

/** The row of the cpu backend at a matmul precision: 'cpu' for fp32, else 'cpu-bf16'. */
export function cpuRowName(precision: MatmulPrecision): string {
  return precision === 'fp32' ? 'cpu' : `cpu-${precision}`;
}

/** {batch: value}, the batch as a string key. */
export type ByBatch = Record<string, number>;

export interface BenchReport {
  machine: MachineInfo & {
    /** 1-minute load average before and after: a busy machine makes every number slower. */
    loadavgBefore: number;
    loadavgAfter: number;
    gpu?: string | null;
    /** MMGPT_MATMUL when set and --matmul is not (the cpu row's matmul precision), else absent. */
    matmul?: string;
  };
  /** ms per training step of our backends: {backend: {batch: ms}}. */
  backend_ms_per_step: Record<string, ByBatch>;
  /** ms per training step of every run, ours and the peers (tfjs_wasm, torch_<device>[_compile]). */
  runs_ms_per_step: Record<string, ByBatch>;
  /** The fastest single step of each run: less sensitive than the median to a busy machine. */
  min_ms_per_step: Record<string, ByBatch>;
  tokens_per_s: Record<string, ByBatch>;
  /** Median ms of a batch-1 forward over a full sequence (57 positions), per backend and peer. */
  forward_b1_ms: Record<string, number>;
  /** TensorFlow.js WASM at batch 32 (or the first peer batch); null when not run. */
  tfjs_wasm_ms_per_step: number | null;
  tfjs_wasm: ByBatch | null;
  tfjs_info: { version: string; backend: string; threads: number | null } | null;
  /** PyTorch eager at batch 32 (or the first peer batch) on the torch device; null when not run. */
  torch_ms_per_step: number | null;
  /** {device: {batch: ms}} for eager; torch_compile likewise where measured. */
  torch: Record<string, ByBatch> | null;
  torch_compile: Record<string, ByBatch> | null;
  torch_info: {
    python: string;
    version: string;
    threads: number;
    device: string;
    /** The BLAS of PyTorch's CPU matmuls (see describeTorchBlas); null where not reported. */
    blas?: { name: string; reference: boolean } | null;
  } | null;
  /** peer ms / our ms at the reference batch: how many times faster our backend is. */
  ratios: Record<string, number>;
  /** The same ratios at every batch where both were measured: {batch: {"torch/cpu": x}}. */
  ratios_by_batch: Record<string, Record<string, number>>;
  /** Peak RSS (MiB) of each run's process: {backend or peer: {batch: MiB}}. */
  peak_rss_mb: Record<string, ByBatch>;
  /** Timed steps per run, and why anything was skipped. */
  steps: Record<string, ByBatch>;
  skipped: string[];
  reference_batch: number;
  /** The GPU report's shape: `torch_eager` / `torch_compile` {batch: ms} on the torch device. */
  torch_eager: ByBatch | null;
  [backend: string]: unknown;
}

/** The 1-minute load average, to 2 decimals. */
export function loadavg(): number {
  return Math.round(os.loadavg()[0] * 100) / 100;
}

/** A report with the machine filled in and no run yet. */
export function emptyReport(options: BenchOptions, skipped: string[]): BenchReport {
  const loadBefore = loadavg();
  return {
    machine: {
      ...machineInfo(),
      loadavgBefore: loadBefore,
      loadavgAfter: loadBefore,
      // --matmul names each cpu row's precision; without it the cpu row runs MMGPT_MATMUL's.
      ...(options.matmul === undefined && process.env.MMGPT_MATMUL
        ? { matmul: process.env.MMGPT_MATMUL }
        : {}),
    },
    backend_ms_per_step: {},
    runs_ms_per_step: {},
    min_ms_per_step: {},
    tokens_per_s: {},
    forward_b1_ms: {},
    tfjs_wasm_ms_per_step: null,
    tfjs_wasm: null,
    tfjs_info: null,
    torch_ms_per_step: null,
    torch: null,
    torch_compile: null,
    torch_info: null,
    ratios: {},
    ratios_by_batch: {},
    peak_rss_mb: {},
    steps: {},
    skipped,
    reference_batch: options.batches.includes(32) ? 32 : options.batches[0],
    torch_eager: null,
  };
}

/** Files one run: median ms, every step's ms (for the count and the fastest), peak RSS. */
export function recordRun(
  report: BenchReport,
  key: string,
  batch: number,
  ms: number,
  allMs: number[],
  rss: number,
): void {
  const b = String(batch);
  if ((BACKEND_NAMES as readonly string[]).includes(key))
    (report.backend_ms_per_step[key] ??= {})[b] = ms;
  (report.runs_ms_per_step[key] ??= {})[b] = ms;
  (report.min_ms_per_step[key] ??= {})[b] = Math.min(...allMs);
  (report.tokens_per_s[key] ??= {})[b] = (batch * TARGETS_PER_SEQUENCE * 1000) / ms;
  (report.peak_rss_mb[key] ??= {})[b] = rss;
  (report.steps[key] ??= {})[b] = allMs.length;
}

/**
 * The ratios peer ms / our ms (how many times faster our backend is) at every batch both ran,
 * and at the reference batch; then each backend's {batch: ms} under its own key.
 */
export function addRatios(report: BenchReport, backends: readonly string[]): void {
  const peers: [string, ByBatch | null][] = [
    ['torch', report.torch_eager],
    ['tfjs_wasm', report.tfjs_wasm],
  ];
  if (report.torch_compile) peers.push(['torch_compile', Object.values(report.torch_compile)[0]]);
  for (const backend of backends) {
    const ours = report.backend_ms_per_step[backend] ?? {};
    for (const [peer, peerMs] of peers) {
      if (!peerMs) continue;
      for (const [batch, ms] of Object.entries(ours)) {
        if (peerMs[batch] === undefined) continue;
        const r = peerMs[batch] / ms;
        (report.ratios_by_batch[batch] ??= {})[`${peer}/${backend}`] = r;
        if (Number(batch) === report.reference_batch) report.ratios[`${peer}/${backend}`] = r;
      }
    }
  }
  // The GPU report's shape: {"cuda": {"32": ms}, "torch_eager": {...}, "torch_compile": {...}}.
  for (const backend of backends)
    if (report.backend_ms_per_step[backend]) report[backend] = report.backend_ms_per_step[backend];
}

/** The report as text: every run with its ratios, the batch-1 forwards, what was skipped. */
export function formatReport(report: BenchReport): string {
  const rows: string[][] = [];
  const torchKey = report.torch_info ? `torch_${report.torch_info.device}` : null;
  for (const [name, byBatch] of Object.entries(report.runs_ms_per_step)) {
    for (const [batch, ms] of Object.entries(byBatch)) {
      const torchMs = report.torch_eager?.[batch];
      const tfjsMs = report.tfjs_wasm?.[batch];
      const label =
        name === torchKey
          ? `torch ${report.torch_info?.version} ${report.torch_info?.device}`
          : name;
      rows.push([
        label,
        batch,
        fmtMs(ms),
        fmtMs(report.min_ms_per_step[name]?.[batch]),
        Math.round(
          report.tokens_per_s[name]?.[batch] ?? (Number(batch) * TARGETS_PER_SEQUENCE * 1000) / ms,
        ).toLocaleString('en-US'),
        torchMs !== undefined ? fmtRatio(torchMs / ms) : '-',
        tfjsMs !== undefined ? fmtRatio(tfjsMs / ms) : '-',
        report.peak_rss_mb[name]?.[batch] !== undefined
          ? `${Math.round(report.peak_rss_mb[name][batch])} MB`
          : '-',
      ]);
    }
  }
  const m = report.machine;
  const out = [
    `machine: ${m.cpu}, ${m.cores} cores${m.gpu ? `, ${m.gpu}` : ''}${m.matmul ? `; cpu matmuls ${m.matmul} (MMGPT_MATMUL)` : ''}; load average ${m.loadavgBefore} before, ${m.loadavgAfter} after`,
    '',
    'training step of the original recipe\'s model (forward + backward + Adam), median ms/step; "vs" = how many times faster than that peer at the same batch',
    table(
      [
        'backend',
        'batch',
        'ms/step',
        'fastest',
        'tokens/s',
        'vs torch',
        'vs tfjs-wasm',
        'peak RSS',
      ],
      rows,
    ),
    '',
    'batch-1 forward of a full sequence (57 positions), median ms',
    table(
      ['backend', 'ms'],
      Object.entries(report.forward_b1_ms).map(([k, v]) => [k, fmtMs(v)]),
    ),
  ];
  const bf16 = report.runs_ms_per_step[cpuRowName('bf16')];
  const fp32 = report.runs_ms_per_step[cpuRowName('fp32')];
  for (const [batch, ms] of Object.entries(bf16 ?? {})) {
    const base = fp32?.[batch];
    if (base !== undefined)
      out.push('', `cpu-bf16 against cpu (fp32 matmuls) at batch ${batch}: ${fmtRatio(base / ms)}`);
  }
  const blas = report.torch_info?.device === 'cpu' ? report.torch_info.blas : null;
  if (blas) {
    out.push('', `PyTorch's CPU BLAS: ${blas.name}`);
    if (blas.reference) {
      out.push(
        'warning: that is the reference BLAS, ~6x slower than an optimised one: the ratios vs torch flatter us (Debian/Ubuntu: apt-get install libopenblas0-pthread)',
      );
    }
  }
  if (report.skipped.length > 0) out.push('', 'skipped:', ...report.skipped.map((s) => `  ${s}`));
  return out.join('\n');
}
