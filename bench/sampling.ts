// Sampling speed: tokens/s of KV-cached vs uncached generation of full 58-token sequences with
// the original recipe's model size (4 layers, d_model 128, 4 heads, vocab 1058), random weights.
//
// Usage: node dist/bench/sampling.js [--reps N] [--threads N] [--rows 1,8] [--min-seconds S]
//          [--clock wall|cpu]
//   (backend: MMGPT_BACKEND, default the fastest; --threads fixes the cpu backend's OpenMP
//   threads, default as the backend starts; --clock cpu times each run by the CPU time this
//   process got, which a loaded machine's waits for a core do not inflate: with --threads 1 it
//   is the single-core wall time of an idle machine)
// Reports numbers, never pass/fail. Each setting runs once to warm up; then cached and uncached
// runs alternate, `reps` pairs at least and until each side has run `min-seconds`, so that both
// see the same load on a shared machine. Reported: the median wall time of each, and the median
// of the pairs' ratios (the speed-up). Unconditional rows generate 57 tokens after <bos>; the
// text -> image rows (9 images from one caption, as in the original write-up's deliverable) 49
// after a 9-token prompt, with and without classifier-free guidance (one batched forward over
// both branches per step).

import * as os from 'os';
import { getBackend } from '../src/engine/registry';
import { cpuBackendInfo, setCpuThreads } from '../src/engine/backends/cpu';
import { Rng } from '../src/nn/rng';
import { GPT, GPT_DEFAULTS } from '../src/gpt/model';
import { Vocab } from '../src/data/vocab';
import { SEQUENCE_LENGTH } from '../src/data/sequences';
import { generate, generateUncached } from '../src/sampling/sampler';
import { textToImage } from '../src/sampling/modes';

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

type Clock = 'wall' | 'cpu';

/** Milliseconds on the chosen clock: wall time, or this process's CPU time (user + system). */
function clockMs(clock: Clock): number {
  if (clock === 'wall') return performance.now();
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function timedMs(fn: () => void, clock: Clock): number {
  const t0 = clockMs(clock);
  fn();
  return clockMs(clock) - t0;
}

/** Alternating runs of a and b (after one warm-up each): their median times, and of a / b. */
function alternate(
  a: () => void,
  b: () => void,
  reps: number,
  minMs: number,
  clock: Clock,
): { aMs: number; bMs: number; ratio: number; pairs: number } {
  a();
  b();
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  let aTotal = 0;
  let bTotal = 0;
  while (as.length < reps || aTotal < minMs || bTotal < minMs) {
    const ta = timedMs(a, clock);
    const tb = timedMs(b, clock);
    as.push(ta);
    bs.push(tb);
    ratios.push(ta / tb);
    aTotal += ta;
    bTotal += tb;
  }
  return { aMs: median(as), bMs: median(bs), ratio: median(ratios), pairs: as.length };
}

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/** On the cpu backend: fixes its threads to --threads if given; says its threads and kernels. */
function configureThreads(): string {
  if (getBackend().name !== 'cpu') return '';
  const threads = Number(flag('threads', '0'));
  if (threads > 0) setCpuThreads(threads);
  const info = cpuBackendInfo();
  return 'error' in info ? '' : `, ${info.threads} threads, ${info.simd} kernels`;
}

function main(): void {
  const reps = Number(flag('reps', '5'));
  const minMs = 1000 * Number(flag('min-seconds', '3'));
  const rowsList = flag('rows', '1,8').split(',').map(Number);
  const clock = flag('clock', 'wall');
  if (clock !== 'wall' && clock !== 'cpu') throw new Error('--clock must be wall or cpu');
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  if (!(minMs >= 0)) throw new Error('--min-seconds must be a number >= 0');
  if (!rowsList.every((r) => Number.isInteger(r) && r >= 1))
    throw new Error('--rows must be positive integers, e.g. 1,8');
  const threads = configureThreads();
  const vocab = new Vocab();
  const model = new GPT(
    { ...GPT_DEFAULTS, vocabSize: vocab.size, blockSize: SEQUENCE_LENGTH },
    new Rng(0),
  );
  console.log(
    `backend ${getBackend().name}${threads}; ${os.cpus()[0]?.model ?? 'unknown CPU'}; ` +
      `model ${GPT_DEFAULTS.nLayer} layers, d ${GPT_DEFAULTS.nEmbd}, ${GPT_DEFAULTS.nHead} heads, ` +
      `vocab ${vocab.size}; ${model.numParameters()} parameters; ${clock} clock`,
  );
  const newTokens = SEQUENCE_LENGTH - 1;
  console.log('mode            batch  cached ms  tok/s    uncached ms  tok/s    speed-up  pairs');
  for (const batch of rowsList) {
    const prompts = Array.from({ length: batch }, () => Int32Array.from([vocab.bos]));
    const opts = { seed: 1, temperature: 1 };
    const { aMs, bMs, ratio, pairs } = alternate(
      () => generateUncached(model, vocab, prompts, opts),
      () => generate(model, vocab, prompts, opts),
      reps,
      minMs,
      clock,
    );
    const rate = (ms: number): string => ((batch * newTokens) / (ms / 1000)).toFixed(0).padStart(7);
    console.log(
      `unconditional   ${String(batch).padStart(5)}  ${bMs.toFixed(1).padStart(9)}  ` +
        `${rate(bMs)}  ${aMs.toFixed(1).padStart(11)}  ${rate(aMs)}  ` +
        `${ratio.toFixed(1).padStart(7)}x  ${String(pairs).padStart(5)}`,
    );
  }
  const captions = Array.from({ length: 9 }, () => 'dark green eight on bright cyan');
  for (const guidance of [1, 3]) {
    const draw = () => textToImage(model, vocab, captions, { seed: 1, guidance });
    draw(); // warm-up
    const ms = median(Array.from({ length: reps }, () => timedMs(draw, clock)));
    console.log(
      `text->image x9, guidance ${guidance}: ${ms.toFixed(1)} ms ` +
        `(${((9 * 49) / (ms / 1000)).toFixed(0)} image tokens/s, cached)`,
    );
  }
}

main();
