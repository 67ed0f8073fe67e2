// Sampling speed: tokens/s of KV-cached vs uncached generation of full 58-token sequences with
// the original recipe's model size (4 layers, d_model 128, 4 heads, vocab 1058), random weights;
// where the backend has CUDA graphs, the cached decode also step by step (`graphs: false`) beside
// its default, one graph replay per step (src/sampling/decodeGraph.ts).
//
// Usage: node dist/bench/sampling.js [--reps N] [--threads N] [--rows 1,8] [--min-seconds S]
//          [--clock wall|cpu]
//   (backend: MMGPT_BACKEND, default the fastest; --threads fixes the cpu backend's OpenMP
//   threads, default as the backend starts; --clock cpu times each run by the CPU time this
//   process got, which a loaded machine's waits for a core do not inflate: with --threads 1 it
//   is the single-core wall time of an idle machine)
// Reports numbers, never pass/fail. Each setting runs once to warm up (which also captures the
// graphs); then the variants' runs alternate, `reps` rounds at least and until each has run
// `min-seconds`, so that all see the same load on a shared machine. Reported: the median wall
// time of each, and the median of the rounds' ratios (the speed-ups). Unconditional rows generate
// 57 tokens after <bos>; the text -> image rows (9 images from one caption, as in the original
// write-up's deliverable) 49 after a 9-token prompt, with and without classifier-free guidance
// (one batched forward over both branches per step). The last line is one JSON object.

import * as os from 'os';
import { getBackend } from '../src/engine/registry';
import { cpuBackendInfo, setCpuThreads } from '../src/engine/backends/cpu';
import { Rng } from '../src/nn/rng';
import { GPT, GPT_DEFAULTS } from '../src/gpt/model';
import { Vocab } from '../src/data/vocab';
import { SEQUENCE_LENGTH } from '../src/data/sequences';
import { generate, generateUncached } from '../src/sampling/sampler';
import { textToImage } from '../src/sampling/modes';
import { decodeGraphsOf, decodeGraphsUnavailableFor } from '../src/sampling/decodeGraph';

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

/**
 * Alternating runs of the variants (after one warm-up each): the median time of each, and the
 * median of each round's ratio of every variant's time to the first's.
 */
function alternate(
  variants: (() => void)[],
  reps: number,
  minMs: number,
  clock: Clock,
): { ms: number[]; overFirst: number[]; rounds: number } {
  variants.forEach((v) => v());
  const times = variants.map((): number[] => []);
  const totals = variants.map(() => 0);
  while (times[0]!.length < reps || totals.some((t) => t < minMs)) {
    variants.forEach((v, i) => {
      const ms = timedMs(v, clock);
      times[i]!.push(ms);
      totals[i]! += ms;
    });
  }
  const rounds = times[0]!.length;
  return {
    ms: times.map(median),
    overFirst: times.map((t) => median(t.map((ms, r) => ms / times[0]![r]!))),
    rounds,
  };
}

/** Unconditional generation of `batch` rows: uncached, cached step by step, cached with graphs. */
interface DecodeRow {
  batch: number;
  uncachedMs: number;
  cachedMs: number;
  graphMs: number | null;
  cachedOverUncached: number;
  graphOverUncached: number | null;
  rounds: number;
}

/** Nine images from one caption, cached, step by step and with graphs. */
interface NineImagesRow {
  guidance: number;
  cachedMs: number;
  graphMs: number | null;
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

/** The unconditional rows: uncached, cached step by step and (where there are graphs) replayed. */
function decodeRows(
  model: GPT,
  vocab: Vocab,
  rowsList: number[],
  graphs: boolean,
  reps: number,
  minMs: number,
  clock: Clock,
): DecodeRow[] {
  const newTokens = SEQUENCE_LENGTH - 1;
  const decode: DecodeRow[] = [];
  console.log(
    'mode            batch  uncached ms  tok/s    cached ms  tok/s   speed-up' +
      (graphs ? '  graphs ms  tok/s   speed-up  vs cached' : '') +
      '  rounds',
  );
  for (const batch of rowsList) {
    const prompts = Array.from({ length: batch }, () => Int32Array.from([vocab.bos]));
    const opts = { seed: 1, temperature: 1 };
    const variants = [
      () => generateUncached(model, vocab, prompts, opts),
      () => generate(model, vocab, prompts, { ...opts, graphs: false }),
      ...(graphs ? [() => generate(model, vocab, prompts, opts)] : []),
    ];
    const { ms, overFirst, rounds } = alternate(variants, reps, minMs, clock);
    const [uncachedMs, cachedMs, graphMs = null] = ms;
    const speedUp = (i: number): number | null => (i < ms.length ? 1 / overFirst[i]! : null);
    const row: DecodeRow = {
      batch,
      uncachedMs: uncachedMs!,
      cachedMs: cachedMs!,
      graphMs,
      cachedOverUncached: speedUp(1)!,
      graphOverUncached: speedUp(2),
      rounds,
    };
    decode.push(row);
    const rate = (x: number): string => ((batch * newTokens) / (x / 1000)).toFixed(0).padStart(7);
    const cell = (x: number, width: number): string => x.toFixed(1).padStart(width);
    console.log(
      `unconditional   ${String(batch).padStart(5)}` +
        `  ${cell(row.uncachedMs, 11)}  ${rate(row.uncachedMs)}` +
        `  ${cell(row.cachedMs, 9)}  ${rate(row.cachedMs)}  ${cell(row.cachedOverUncached, 8)}x` +
        (graphMs !== null
          ? `  ${cell(graphMs, 9)}  ${rate(graphMs)}  ${cell(row.graphOverUncached!, 8)}x` +
            `  ${cell(row.cachedMs / graphMs, 8)}x`
          : '') +
        `  ${String(rounds).padStart(6)}`,
    );
  }
  return decode;
}

/** Nine images from one caption, guidance 1 and 3, step by step and (with graphs) replayed. */
function nineImageRows(
  model: GPT,
  vocab: Vocab,
  graphs: boolean,
  reps: number,
  clock: Clock,
): NineImagesRow[] {
  const captions = Array.from({ length: 9 }, () => 'dark green eight on bright cyan');
  const nineImages: NineImagesRow[] = [];
  for (const guidance of [1, 3]) {
    const draw = (g: boolean) => () =>
      void textToImage(model, vocab, captions, { seed: 1, guidance, graphs: g });
    const { ms } = alternate(graphs ? [draw(false), draw(true)] : [draw(false)], reps, 0, clock);
    const row = { guidance, cachedMs: ms[0]!, graphMs: ms[1] ?? null };
    nineImages.push(row);
    const per = (x: number): string =>
      `${x.toFixed(1)} ms (${((9 * 49) / (x / 1000)).toFixed(0)} image tokens/s)`;
    console.log(
      `text->image x9, guidance ${guidance}: ${per(row.cachedMs)} cached` +
        (row.graphMs !== null ? `, ${per(row.graphMs)} with graphs` : ''),
    );
  }
  return nineImages;
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
  const unavailable = decodeGraphsUnavailableFor(model);
  const graphs = unavailable === null;
  console.log(`cuda graphs for the decode step: ${graphs ? 'on' : `unavailable (${unavailable})`}`);
  const decode = decodeRows(model, vocab, rowsList, graphs, reps, minMs, clock);
  const nineImages = nineImageRows(model, vocab, graphs, reps, clock);
  const graphNodes = decodeGraphsOf(model).map((g) => g.nodes);
  console.log(
    JSON.stringify({
      sampling: {
        backend: getBackend().name,
        clock,
        graphs: { unavailable, nodes: graphNodes.length > 0 ? Math.max(...graphNodes) : null },
        decode,
        nineImages,
      },
    }),
  );
}

main();
