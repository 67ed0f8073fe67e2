// `mmgpt bench`: the seed model's training step on each available backend, side by side with
// the identical step in TensorFlow.js (WASM) and PyTorch; `mmgpt bench --profile`: where the time
// goes, kernel by kernel.
//
// Every measurement runs in its own child process (bench/run_backend.ts per backend and batch
// size, bench/tfjs_step.ts, bench/torch_step.py per batch size), so each peak RSS is that run's
// alone and no run disturbs another's timing. Numbers only: nothing here passes or fails on time.
// The GPU variant (issue 7) is the same command with `--backends cuda --torch-device cuda
// --compile`; the JSON also carries `<backend>`, `torch_eager` and `torch_compile` keys shaped
// {batch: ms} as bench/results/h100.json wants.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, spawnSync } from 'child_process';
import { availableBackends, loadBackend, isBackend, BACKEND_NAMES } from '../engine/registry';
import type { BackendName } from '../engine/registry';
import type { BackendRunResult } from '../../bench/run_backend';
import type { TfjsRunResult } from '../../bench/tfjs_step';
import type { ProfileResult, KernelStat } from '../../bench/train_step';
import { TARGETS_PER_SEQUENCE } from '../data/sequences';
import { HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';
import { atomicWriteFile } from '../nn/safetensors';
import { projectRoot } from '../paths';

const USAGE = `mmgpt bench [--json] [--steps N] [--warmup N] [--batch 32,256] [--backends js,cpu,cuda]
             [--no-tfjs] [--no-torch] [--torch-device cpu|cuda] [--torch-threads N] [--compile]
             [--peer-batch 32] [--budget-s S] [--save [LABEL]]
mmgpt bench --profile [--backend js|cpu|cuda] [--batch 32] [--steps 5] [--warmup N] [--json]

  Times the seed model's training step (4 layers, d_model 128, 4 heads, vocab 1058, 58-token
  sequences, Adam lr 1e-3: forward, backward, update) on random tokens: median ms/step after
  warm-up, tokens/s (batch*57 / step), batch-1 forward latency and peak RSS, for each available
  backend, and the identical step in TensorFlow.js (WASM backend) and PyTorch.

  --batch        batch sizes for our backends (default 32,256; js runs only batches <= 64
                 unless named in --backends)
  --backends     which of our backends (default: every one that loads here)
  --steps        timed steps (default: as many as fill --budget-s per run; js 2, tfjs 3)
  --warmup       warm-up steps (default 2; js and tfjs 1; torch 1 on cpu, 5 on cuda)
  --peer-batch   batch sizes for TensorFlow.js and PyTorch on the CPU (default 32; with
                 --torch-device cuda PyTorch runs every --batch)
  --torch-device cpu or cuda (default cuda when our cuda backend is available, else cpu)
  --torch-threads  torch.set_num_threads (default: the number of cores)
  --compile      also time torch.compile (PyTorch >= 2)
  --save [LABEL] write bench/results/LABEL.json (default label: the host name)
  --budget-s     seconds of timed steps per run when --steps is not given (default 5)
  --json         also print the report as JSON
  --profile      time every backend kernel of a few steps on one backend (--backend, default the
                 fastest) and print where the time goes; takes only --backend, --batch (the
                 first size), --steps, --warmup and --json

  PyTorch: MMGPT_TORCH_PYTHON, else the first of /usr/bin/python3, python3 that imports torch.`;

export const BENCH_COMMAND: CommandSpec = {
  name: 'bench',
  help: USAGE,
  flags: {
    json: { type: 'boolean' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    batch: { type: 'string' },
    backends: { type: 'string' },
    'no-tfjs': { type: 'boolean' },
    'no-torch': { type: 'boolean' },
    'torch-device': { type: 'string' },
    'torch-threads': { type: 'string' },
    compile: { type: 'boolean' },
    'peer-batch': { type: 'string' },
    'budget-s': { type: 'string' },
    save: { type: 'string', optionalValue: true },
    profile: { type: 'boolean' },
    backend: { type: 'string' },
    ...HELP_FLAG,
  },
};

/** Flags of the comparison only, and of --profile only. */
const COMPARISON_ONLY = [
  'backends',
  'no-tfjs',
  'no-torch',
  'torch-device',
  'torch-threads',
  'compile',
  'peer-batch',
  'budget-s',
  'save',
];
const PROFILE_ONLY = ['backend'];

// ---- argument parsing ---------------------------------------------------------------------------

export interface BenchArgs {
  help: boolean;
  json: boolean;
  steps?: number;
  warmup?: number;
  batches: number[];
  backends?: string[];
  tfjs: boolean;
  torch: boolean;
  torchDevice?: 'cpu' | 'cuda';
  torchThreads: number;
  compile: boolean;
  peerBatches: number[];
  budgetS: number;
  save?: string;
  profile: boolean;
  profileBackend?: string;
}

/** The arguments of `mmgpt bench`, checked (flags of the other mode are refused). */
export function benchArgs(argv: readonly string[]): BenchArgs {
  const flags = parseCommandLine(BENCH_COMMAND, argv);
  const profile = flags.boolean('profile');
  flags.refuseUnless(!profile, COMPARISON_ONLY, () => 'does not apply with --profile');
  flags.refuseUnless(profile, PROFILE_ONLY, () => 'applies only with --profile');
  let save: string | undefined;
  if (flags.has('save')) {
    save = flags.string('save') || os.hostname();
    if (!/^[A-Za-z0-9._-]+$/.test(save))
      throw new Error(`--save: the label may use letters, digits, '.', '_' and '-', got '${save}'`);
  }
  return {
    help: flags.help,
    json: flags.boolean('json'),
    steps: flags.int('steps', { min: 1, max: 1_000_000 }),
    warmup: flags.int('warmup', { min: 0, max: 1_000_000 }),
    batches: flags.intList('batch', { min: 1, max: 65_536 }, [32, 256]),
    backends: flags.choiceList('backends', BACKEND_NAMES),
    tfjs: !flags.boolean('no-tfjs'),
    torch: !flags.boolean('no-torch'),
    torchDevice: flags.choice('torch-device', ['cpu', 'cuda'] as const),
    torchThreads: flags.int('torch-threads', { min: 1, max: 1024 }, os.cpus().length),
    compile: flags.boolean('compile'),
    peerBatches: flags.intList('peer-batch', { min: 1, max: 65_536 }, [32]),
    budgetS: flags.number('budget-s', { min: 0, max: 86_400, exclusiveMin: true }, 5),
    save,
    profile,
    profileBackend: flags.choice('backend', BACKEND_NAMES),
  };
}

// ---- locating the pieces --------------------------------------------------------------------------

/** A compiled bench script (dist/bench/NAME.js). */
function benchScript(name: string): string {
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

// ---- child processes ------------------------------------------------------------------------------

interface ChildOutcome<T> {
  result: T | null;
  error: string | null;
}

/** Runs a command; its stderr streams through (progress), its last stdout line is parsed as JSON. */
function runJsonChild<T>(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<ChildOutcome<T>> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
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

interface TorchRunResult {
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
 * BLAS: Debian's torch links libblas.so.3, which is the reference BLAS (~1 GFLOP/s here, so
 * PyTorch looks ~6x slower than it is) unless an optimised alternative such as
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

// ---- the report -----------------------------------------------------------------------------------

type ByBatch = Record<string, number>;

export interface BenchReport {
  machine: {
    cpu: string;
    cores: number;
    hostname: string;
    platform: string;
    node: string;
    memoryGb: number;
    /** 1-minute load average before and after: a busy machine makes every number slower. */
    loadavgBefore: number;
    loadavgAfter: number;
    gpu?: string | null;
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
  /** Issue 7's shape: `torch_eager` / `torch_compile` {batch: ms} on the torch device. */
  torch_eager: ByBatch | null;
  [backend: string]: unknown;
}

function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 10 ? ms.toFixed(2) : ms < 1000 ? ms.toFixed(1) : ms.toFixed(0);
}

function fmtRatio(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '-';
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}x`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}

function loadavg(): number {
  return Math.round(os.loadavg()[0] * 100) / 100;
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/** The comparison report: every backend, TensorFlow.js and PyTorch, one child process per run. */
export async function runBenchmark(args: BenchArgs): Promise<BenchReport> {
  const loadBefore = loadavg();
  const available = availableBackends();
  const skipped: string[] = [];
  let backends: BackendName[];
  if (args.backends !== undefined) {
    backends = [];
    for (const name of args.backends as BackendName[]) {
      const b = loadBackend(name);
      if (isBackend(b)) backends.push(name);
      else skipped.push(`${name}: unavailable (${firstLine(b.error)})`);
    }
  } else {
    backends = available;
    for (const name of BACKEND_NAMES)
      if (!available.includes(name)) {
        const b = loadBackend(name);
        skipped.push(`${name}: unavailable (${isBackend(b) ? '?' : firstLine(b.error)})`);
      }
  }
  const cpus = os.cpus();
  const report: BenchReport = {
    machine: {
      cpu: cpus.length > 0 ? cpus[0].model.trim() : 'unknown',
      cores: cpus.length,
      hostname: os.hostname(),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      node: process.version,
      memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      loadavgBefore: loadBefore,
      loadavgAfter: loadBefore,
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
    reference_batch: args.batches.includes(32) ? 32 : args.batches[0],
    torch_eager: null,
  };
  /** Files one run: median ms, every step's ms (for the count and the fastest), peak RSS. */
  const record = (key: string, batch: number, ms: number, allMs: number[], rss: number) => {
    const b = String(batch);
    if ((BACKEND_NAMES as readonly string[]).includes(key))
      (report.backend_ms_per_step[key] ??= {})[b] = ms;
    (report.runs_ms_per_step[key] ??= {})[b] = ms;
    (report.min_ms_per_step[key] ??= {})[b] = Math.min(...allMs);
    (report.tokens_per_s[key] ??= {})[b] = (batch * TARGETS_PER_SEQUENCE * 1000) / ms;
    (report.peak_rss_mb[key] ??= {})[b] = rss;
    (report.steps[key] ??= {})[b] = allMs.length;
  };
  const budgetMs = args.budgetS * 1000;
  const childTimeoutMs = 15 * 60_000;

  // Our backends, one process per (backend, batch).
  for (const backend of backends) {
    const explicit = args.backends?.includes(backend) ?? false;
    let first = true;
    for (const batch of args.batches) {
      if (backend === 'js' && batch > 64 && !explicit) {
        skipped.push(
          `js at batch ${batch}: the reference backend is slow (name it in --backends to run it)`,
        );
        continue;
      }
      const steps = args.steps ?? (backend === 'js' ? 2 : undefined);
      const warmup = args.warmup ?? (backend === 'js' ? 1 : backend === 'cuda' ? 5 : 2);
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
      log(`${backend} batch ${batch} ...`);
      const { result, error } = await runJsonChild<BackendRunResult>(
        process.execPath,
        childArgs,
        childTimeoutMs,
      );
      if (result === null) {
        skipped.push(`${backend} batch ${batch}: failed (${error})`);
        log(`${backend} batch ${batch} failed: ${error}`);
        continue;
      }
      const t = result.train;
      record(backend, batch, t.msPerStep, t.msPerStepAll, result.peakRssMb);
      if (result.forward) report.forward_b1_ms[backend] = result.forward.msMedian;
      log(
        `${backend} batch ${batch}: ${fmtMs(t.msPerStep)} ms/step (median of ${t.steps}), loss ${t.lastLoss.toFixed(3)}` +
          (result.forward ? `, batch-1 forward ${fmtMs(result.forward.msMedian)} ms` : ''),
      );
      first = false;
    }
  }

  // TensorFlow.js, WASM backend.
  if (args.tfjs) {
    report.tfjs_wasm = {};
    let first = true;
    for (const batch of args.peerBatches) {
      const childArgs = [
        benchScript('tfjs_step'),
        '--batch',
        String(batch),
        '--steps',
        String(args.steps ?? 3),
        '--warmup',
        String(args.warmup ?? 1),
        '--threads',
        String(os.cpus().length),
      ];
      if (first) childArgs.push('--forward');
      log(`tfjs-wasm batch ${batch} ...`);
      const { result, error } = await runJsonChild<TfjsRunResult>(
        process.execPath,
        childArgs,
        childTimeoutMs,
      );
      if (result === null) {
        skipped.push(`tfjs-wasm batch ${batch}: failed (${error})`);
        log(`tfjs-wasm batch ${batch} failed: ${error}`);
        continue;
      }
      report.tfjs_wasm[String(batch)] = result.msPerStep;
      report.tfjs_info = {
        version: result.version,
        backend: result.backend,
        threads: result.threads,
      };
      record('tfjs_wasm', batch, result.msPerStep, result.msPerStepAll, result.peakRssMb);
      if (result.forwardB1Ms !== null) report.forward_b1_ms.tfjs_wasm = result.forwardB1Ms;
      log(
        `tfjs-wasm batch ${batch}: ${fmtMs(result.msPerStep)} ms/step (${result.threads ?? '?'} thread(s))`,
      );
      first = false;
    }
    const refBatch = String(args.peerBatches.includes(32) ? 32 : args.peerBatches[0]);
    report.tfjs_wasm_ms_per_step = report.tfjs_wasm[refBatch] ?? null;
  } else {
    skipped.push('tfjs-wasm: --no-tfjs');
  }

  // PyTorch, one process per batch size.
  if (args.torch) {
    const found = findTorchPython();
    if ('error' in found) {
      skipped.push(`torch: ${found.error}`);
      log(`torch skipped: ${found.error}`);
    } else {
      const device = args.torchDevice ?? (backends.includes('cuda') ? 'cuda' : 'cpu');
      const batches = device === 'cuda' ? args.batches : args.peerBatches;
      const key = `torch_${device}`;
      const eager: ByBatch = {};
      const compiled: ByBatch = {};
      let threads = args.torchThreads;
      let blas: { name: string; reference: boolean } | null = null;
      let first = true;
      for (const batch of batches) {
        const childArgs = [
          path.join(projectRoot(), 'bench', 'torch_step.py'),
          '--batch',
          String(batch),
          '--device',
          device,
          '--threads',
          String(args.torchThreads),
          '--budget-s',
          String(args.budgetS),
        ];
        if (args.steps !== undefined) childArgs.push('--steps', String(args.steps));
        if (args.warmup !== undefined) childArgs.push('--warmup', String(args.warmup));
        if (args.compile) childArgs.push('--compile');
        if (first) childArgs.push('--forward');
        log(`torch ${found.version} ${device} batch ${batch} ...`);
        const { result, error } = await runJsonChild<TorchRunResult>(
          found.python,
          childArgs,
          childTimeoutMs,
        );
        if (result === null) {
          skipped.push(`torch ${device} batch ${batch}: failed (${error})`);
          log(`torch batch ${batch} failed: ${error}`);
          continue;
        }
        threads = result.threads;
        if (result.blas && blas === null) {
          blas = describeTorchBlas(result.blas);
          if (device === 'cpu') log(`torch's CPU BLAS: ${blas.name}`);
          if (device === 'cpu' && blas.reference) {
            const warning =
              `warning: PyTorch's CPU peer runs on the reference BLAS (${blas.name}), ~6x slower ` +
              'than an optimised BLAS, so its ratios flatter us; install one (Debian/Ubuntu: ' +
              'apt-get install libopenblas0-pthread) for an honest peer';
            log(warning);
          }
        }
        if (result.device_name) report.machine.gpu = result.device_name;
        const ms = result.eager[String(batch)];
        eager[String(batch)] = ms;
        record(key, batch, ms, result.eager_all_ms[String(batch)] ?? [ms], result.peak_rss_mb);
        if (result.compile && result.compile[String(batch)] !== undefined)
          compiled[String(batch)] = result.compile[String(batch)];
        if (result.compile_error) skipped.push(`torch.compile: ${result.compile_error}`);
        if (result.forward_b1_ms !== null) report.forward_b1_ms[key] = result.forward_b1_ms;
        log(
          `torch ${device} batch ${batch}: ${fmtMs(ms)} ms/step eager` +
            (compiled[String(batch)] !== undefined
              ? `, ${fmtMs(compiled[String(batch)])} compiled`
              : ''),
        );
        first = false;
      }
      report.torch = { [device]: eager };
      report.torch_eager = eager;
      if (Object.keys(compiled).length > 0) {
        report.torch_compile = { [device]: compiled };
        for (const [b, ms] of Object.entries(compiled))
          (report.runs_ms_per_step[`${key}_compile`] ??= {})[b] = ms;
      }
      const refBatch = batches.includes(32) ? '32' : String(batches[0]);
      report.torch_ms_per_step = eager[refBatch] ?? null;
      report.torch_info = { python: found.python, version: found.version, threads, device, blas };
    }
  } else {
    skipped.push('torch: --no-torch');
  }

  // Ratios: peer ms / our ms (how many times faster our backend is).
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
  // Issue 7's shape: {"cuda": {"32": ms}, "torch_eager": {...}, "torch_compile": {...}}.
  for (const backend of backends)
    if (report.backend_ms_per_step[backend]) report[backend] = report.backend_ms_per_step[backend];
  report.machine.loadavgAfter = loadavg();
  return report;
}

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
    `machine: ${m.cpu}, ${m.cores} cores${m.gpu ? `, ${m.gpu}` : ''}; load average ${m.loadavgBefore} before, ${m.loadavgAfter} after`,
    '',
    'training step of the seed model (forward + backward + Adam), median ms/step; "vs" = how many times faster than that peer at the same batch',
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

// ---- the profile ----------------------------------------------------------------------------------

function kernelRows(
  stats: KernelStat[],
  steps: number,
  totalMs: number,
  limit: number,
): string[][] {
  return stats
    .slice(0, limit)
    .map((k) => [
      k.name,
      String(Math.round((100 * k.calls) / steps) / 100),
      fmtMs(k.totalMs / steps),
      `${((100 * k.totalMs) / totalMs).toFixed(1)}%`,
      k.flops > 0 ? (k.flops / k.calls / 1e6).toFixed(1) : '',
      k.flops > 0 && k.totalMs > 0 ? (k.flops / (k.totalMs * 1e6)).toFixed(1) : '',
    ]);
}

export function formatProfile(p: ProfileResult): string {
  const total = p.msPerStepMean * p.steps;
  const ph = p.phases;
  const header = ['calls/step', 'ms/step', 'share', 'MFLOP/call', 'GFLOP/s'];
  return [
    `profile: backend ${p.backend}, batch ${p.batch}, ${p.steps} steps, ${fmtMs(p.msPerStep)} ms/step median, ${fmtMs(p.msPerStepMean)} mean (with timers)`,
    `phases (mean ms/step): forward ${fmtMs(ph.forward)} ms | backward ${fmtMs(ph.backward)} ms | optimizer ${fmtMs(ph.optimizer)} ms | other ${fmtMs(ph.other)} ms`,
    `kernels account for ${(100 * p.kernelFraction).toFixed(1)}% of the step; the rest is engine overhead (autograd graph, JS, timers)`,
    '',
    table(['kernel (phase)', ...header], kernelRows(p.kernels, p.steps, total, 40)),
    '',
    'matmul by shape class (phase, stored shapes; ^T = used transposed; N x = batched)',
    table(['matmul', ...header], kernelRows(p.matmulShapes, p.steps, total, 25)),
  ].join('\n');
}

// ---- the command ------------------------------------------------------------------------------------

export async function benchCommand(argv: string[]): Promise<void> {
  const args = benchArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (args.profile) {
    // Loaded lazily: the comparison itself runs everything in child processes.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { profileTrainStep } =
      require('../../bench/train_step') as typeof import('../../bench/train_step');
    const backend = args.profileBackend ?? availableBackends().filter((b) => b !== 'js')[0] ?? 'js';
    const batch = args.batches[0];
    const result = profileTrainStep({
      backend,
      batch,
      steps: args.steps ?? (backend === 'js' ? 2 : 5),
      warmup: args.warmup ?? 1,
    });
    console.log(formatProfile(result));
    if (args.json) console.log(JSON.stringify(result));
    return;
  }
  const report = await runBenchmark(args);
  console.log(formatReport(report));
  if (args.save !== undefined) {
    const dir = path.join(projectRoot(), 'bench', 'results');
    const file = path.join(dir, `${args.save}.json`);
    atomicWriteFile(file, JSON.stringify(report, null, 2) + '\n');
    console.log(`\nwrote ${file}`);
  }
  if (args.json) console.log(JSON.stringify(report));
}
