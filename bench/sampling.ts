// Sampling speed: tokens/s of KV-cached vs uncached generation of full 58-token sequences with
// the original recipe's model size (4 layers, d_model 128, 4 heads, vocab 1058), random weights.
//
// Usage: node dist/bench/sampling.js [--reps N]   (backend: MMGPT_BACKEND, default the fastest)
// Reports numbers, never pass/fail. Each setting runs once to warm up, then `reps` times; the
// median wall time is reported. Unconditional rows generate 57 tokens after <bos>; the
// text -> image rows (9 images from one caption, as in the original write-up's deliverable) 49 after a
// 9-token prompt, with and without classifier-free guidance (two batched forwards per step).

import { getBackend } from '../src/engine/registry';
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

function timeMs(fn: () => void, reps: number): number {
  fn(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

function main(): void {
  const repsArg = process.argv.indexOf('--reps');
  const reps = repsArg >= 0 ? Number(process.argv[repsArg + 1]) : 3;
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  const vocab = new Vocab();
  const model = new GPT(
    { ...GPT_DEFAULTS, vocabSize: vocab.size, blockSize: SEQUENCE_LENGTH },
    new Rng(0),
  );
  console.log(
    `backend ${getBackend().name}; model ${GPT_DEFAULTS.nLayer} layers, d ${GPT_DEFAULTS.nEmbd}, ` +
      `${GPT_DEFAULTS.nHead} heads, vocab ${vocab.size}; ${model.numParameters()} parameters; ` +
      `median of ${reps}`,
  );
  const newTokens = SEQUENCE_LENGTH - 1;
  console.log('mode            batch  cached ms  tok/s    uncached ms  tok/s    speed-up');
  for (const batch of [1, 9]) {
    const prompts = Array.from({ length: batch }, () => Int32Array.from([vocab.bos]));
    const opts = { seed: 1, temperature: 1 };
    const cachedMs = timeMs(() => generate(model, vocab, prompts, opts), reps);
    const uncachedMs = timeMs(() => generateUncached(model, vocab, prompts, opts), reps);
    const rate = (ms: number): string => ((batch * newTokens) / (ms / 1000)).toFixed(0).padStart(7);
    console.log(
      `unconditional   ${String(batch).padStart(5)}  ${cachedMs.toFixed(1).padStart(9)}  ` +
        `${rate(cachedMs)}  ${uncachedMs.toFixed(1).padStart(11)}  ${rate(uncachedMs)}  ` +
        `${(uncachedMs / cachedMs).toFixed(1).padStart(7)}x`,
    );
  }
  const captions = Array.from({ length: 9 }, () => 'dark green eight on bright cyan');
  for (const guidance of [1, 3]) {
    const ms = timeMs(() => textToImage(model, vocab, captions, { seed: 1, guidance }), reps);
    console.log(
      `text->image x9, guidance ${guidance}: ${ms.toFixed(1)} ms ` +
        `(${((9 * 49) / (ms / 1000)).toFixed(0)} image tokens/s, cached)`,
    );
  }
}

main();
