// `mmgpt bench`: the original recipe's training step on each available backend, side by side
// with the identical step in TensorFlow.js (WASM) and PyTorch; `mmgpt bench --profile`: where the
// time goes, kernel by kernel. Thin: parses flags and calls src/perf/ (compare.ts, profile.ts),
// where the comparison runs every measurement in its own child process.

import * as os from 'os';
import * as path from 'path';
import { MATMUL_PRECISIONS } from '../engine/backends/cpu';
import { availableBackends, BACKEND_NAMES } from '../engine/registry';
import { atomicWriteFile } from '../nn/safetensors';
import { projectRoot } from '../paths';
import { runBenchmark } from '../perf/compare';
import { formatProfile, profileTrainStep } from '../perf/profile';
import { formatReport } from '../perf/report';
import type { BenchOptions } from '../perf/report';
import { BACKEND_FLAG, HELP_FLAG, parseCommandLine } from './args';
import type { CommandSpec } from './args';

const USAGE = `mmgpt bench [--json] [--steps N] [--warmup N] [--batch 32,256] [--backends js,cpu,cuda,wasm]
             [--no-tfjs] [--no-torch] [--torch-device cpu|cuda] [--torch-threads N] [--compile]
             [--peer-batch 32] [--budget-s S] [--save [LABEL]] [--matmul fp32,bf16]
mmgpt bench --profile [--backend js|cpu|cuda|wasm] [--batch 32] [--steps 5] [--warmup N] [--json]

  Times the original recipe's training step (4 layers, d_model 128, 4 heads, vocab 1058, 58-token
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
  --matmul       the cpu backend's matmul precisions to run, each its own row (default: fp32, or
                 MMGPT_MATMUL): bf16 = bfloat16 operands on AMX tiles, the row 'cpu-bf16', with
                 its ratio to the fp32 row of the same run
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
    matmul: { type: 'string' },
    save: { type: 'string', optionalValue: true },
    profile: { type: 'boolean' },
    ...BACKEND_FLAG,
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
  'matmul',
  'save',
];
const PROFILE_ONLY = ['backend'];

/** The comparison's options, and what the command does with its outcome. */
export interface BenchArgs extends BenchOptions {
  help: boolean;
  json: boolean;
  /** Write bench/results/<save>.json. */
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
    matmul: flags.choiceList('matmul', MATMUL_PRECISIONS),
    save,
    profile,
    profileBackend: flags.choice('backend', BACKEND_NAMES),
  };
}

export async function benchCommand(argv: string[]): Promise<void> {
  const args = benchArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (args.profile) {
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
