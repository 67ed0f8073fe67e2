// The GPT's training step replayed as a CUDA graph against the same step run eagerly, in one
// process on the same device: the original recipe's model (4 layers, d_model 128, 4 heads,
// vocab 1058, 58-token sequences, Adam with the recipe's clip), random tokens.
//
// Usage: node dist/bench/graph_step.js [--batch 32,256] [--steps 50] [--reps 3]
//        (backend: MMGPT_BACKEND, default the fastest)
// Each measurement queues `steps` steps and waits for the device once at the end (the trainer's
// no-sync step: losses stay on the device), reported as ms/step, the median over `reps`; index
// checks are deferred (as MMGPT_CUDA_SYNC_CHECKS=0) in both modes. Eager is the trainer's step
// (trainLoop.ts); graphs is GraphedTrainSteps (src/gpt/trainGraphs.ts), after its eager run and
// its capture. Where the backend has no graphs only the eager line is printed. The last line is
// one JSON object. Numbers, never pass/fail.

import * as F from '../src/engine/ops';
import { tidy } from '../src/engine/tensor';
import { getBackend } from '../src/engine/registry';
import { setCudaSyncChecks } from '../src/engine/backends/cuda';
import { graphsUnavailable } from '../src/engine/graph';
import { Rng } from '../src/nn/rng';
import { Adam } from '../src/nn/optim';
import { GPT } from '../src/gpt/model';
import { GraphedTrainSteps } from '../src/gpt/trainGraphs';
import { SEQUENCE_LENGTH } from '../src/data/sequences';
import { ORIGINAL_LR, ORIGINAL_MODEL_CONFIG } from '../src/perf/train_step';

function argValue(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Row {
  batch: number;
  eagerMs: number;
  graphMs: number | null;
  eagerOverGraph: number | null;
  graphNodes: number | null;
}

function measure(batch: number, steps: number, reps: number, graphs: boolean): Row {
  const rng = new Rng(7);
  const model = new GPT(ORIGINAL_MODEL_CONFIG, rng);
  model.train();
  const optimizer = new Adam(model.namedParameters(), { lr: ORIGINAL_LR, clipNorm: 1 });
  const vocab = ORIGINAL_MODEL_CONFIG.vocabSize;
  const tokens = Int32Array.from({ length: batch * SEQUENCE_LENGTH }, () => rng.int(vocab));
  const eagerStep = () =>
    tidy(() => {
      const l = model.loss(F.tensor(tokens, [batch, SEQUENCE_LENGTH], 'int32'));
      l.backward();
      optimizer.update(ORIGINAL_LR);
      optimizer.zeroGrad();
    });
  const graphed = graphs ? new GraphedTrainSteps(model, optimizer, rng, console.log) : null;
  const graphStep = () => void graphed!.step(tokens, batch, ORIGINAL_LR);
  const time = (step: () => void): number => {
    for (let i = 0; i < 3; i++) step(); // warm-up (and, for graphs, the eager run and the capture)
    getBackend().sync();
    const runs: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) step();
      getBackend().sync();
      runs.push((performance.now() - t0) / steps);
    }
    return median(runs);
  };
  const eagerMs = time(eagerStep);
  const graphMs = graphed ? time(graphStep) : null;
  const graphNodes = graphed?.graphs[0]?.nodes ?? null;
  graphed?.dispose();
  optimizer.dispose();
  const ratio = graphMs !== null && graphMs > 0 ? eagerMs / graphMs : null;
  return { batch, eagerMs, graphMs, eagerOverGraph: ratio, graphNodes };
}

function main(): void {
  const batches = argValue('--batch', '32,256').split(',').map(Number);
  const steps = Number(argValue('--steps', '50'));
  const reps = Number(argValue('--reps', '3'));
  if (!batches.every((b) => Number.isInteger(b) && b > 0) || !(steps >= 1) || !(reps >= 1))
    throw new Error('--batch: positive integers; --steps and --reps: at least 1');
  const backend = getBackend().name;
  const unavailable = graphsUnavailable();
  if (backend === 'cuda') setCudaSyncChecks(false);
  console.log(
    `graph-step on ${backend}: ${steps} steps x ${reps} reps per batch` +
      (unavailable ? `; graphs unavailable (${unavailable}): eager only` : ''),
  );
  const rows = batches.map((batch) => {
    const row = measure(batch, steps, reps, unavailable === null);
    const graphs =
      row.graphMs === null
        ? ''
        : `, graphs ${row.graphMs.toFixed(3)} ms/step (${row.graphNodes} nodes), eager/graphs ${row.eagerOverGraph!.toFixed(2)}`;
    console.log(`batch ${batch}: eager ${row.eagerMs.toFixed(3)} ms/step${graphs}`);
    return row;
  });
  console.log(JSON.stringify({ graphStep: { backend, steps, reps, unavailable, rows } }));
}

main();
