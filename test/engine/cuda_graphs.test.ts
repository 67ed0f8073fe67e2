// CUDA graphs: the emulator's stream capture itself (kernels, memsets and copies recorded with
// their argument values and replayed in order; allocation, frees, syncs and pageable copies
// refused), what the runtime refuses inside a capture (and that the backend works afterwards),
// a captured step replayed with new inputs, and the GPT training step: replayed steps equal
// eager ones bit for bit (weights, optimiser moments, losses, the dropout RNG), a failed capture
// falls back to eager with one line, and a training run with graphs equals one without.
//
// Where it runs: like cuda_backend.test.ts, on a CUDA device or on the CPU emulator
// (MMGPT_CUDA_ADDON=native/build/cuda-emu/mmgpt_cuda_emu.node); the emulator probes need the
// emulator. Elsewhere skipped with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import {
  cudaBackendInfo,
  cudaGraphApi,
  cudaStats,
  setCudaSyncChecks,
} from '../../src/engine/backends/cuda';
import type { CudaStats } from '../../src/engine/backends/cuda';
import { getBackend, setBackend } from '../../src/engine/registry';
import { onCuda } from './backend_helpers';
import { StepGraph, runPooled, writeBuffer } from '../../src/engine/graph';
import * as F from '../../src/engine/ops';
import { keep, releasePool, tidy } from '../../src/engine/tensor';
import { GPT } from '../../src/gpt/model';
import type { GptConfig } from '../../src/gpt/model';
import { GraphedTrainSteps } from '../../src/gpt/trainGraphs';
import { trainGpt } from '../../src/gpt/train';
import { loadCheckpoint } from '../../src/gpt/checkpoint';
import { AdamW } from '../../src/nn/optim';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import { SEQUENCE_LENGTH } from '../../src/data/sequences';
import { targetOf } from './backend_targets';
import { cyclicSource, oneLayerPreset } from '../gpt/helpers';

const { skip } = targetOf('cuda');

interface EmulatorProbes {
  captureReplay(): {
    begin: string;
    capturing: boolean;
    duringCapture: number[];
    end: string;
    nodes: number;
    instantiate: string;
    replays: { x: number[]; y: number[] }[];
  };
  captureRefusals(): Record<string, { call: string; end: string; graph: boolean } | string>;
}

/** The emulator's own probes, or why they are not here. */
function emulatorProbes(): EmulatorProbes | string {
  if (skip) return skip;
  const info = cudaBackendInfo();
  if ('error' in info || !info.emulated) return 'not the CUDA emulator';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(path.resolve(process.env.MMGPT_CUDA_ADDON!)) as {
    emulator: EmulatorProbes;
  };
  return addon.emulator;
}
const probes = emulatorProbes();
const emuSkip = typeof probes === 'string' ? probes : false;

async function onCudaAsync<T>(fn: () => Promise<T>): Promise<T> {
  const previous = getBackend().name;
  setBackend('cuda');
  try {
    return await fn();
  } finally {
    setBackend(previous);
  }
}

// ---- the emulator ------------------------------------------------------------------------------

test(
  'the emulator records a kernel, a memset and a copy, and replays them in order',
  { skip: emuSkip },
  () => {
    const r = (probes as EmulatorProbes).captureReplay();
    assert.equal(r.begin, 'cudaSuccess');
    assert.equal(r.capturing, true);
    assert.deepEqual(r.duringCapture, [0, 1, 2, 3, 4, 5, 6, 7], 'nothing runs while capturing');
    assert.equal(r.end, 'cudaSuccess');
    assert.equal(r.instantiate, 'cudaSuccess');
    assert.equal(r.nodes, 3);
    // x += 1 (the argument value at capture, not the 100 it became), y = 0, x[0..4) = the pinned
    // memory's contents at replay time; a second replay adds 1 again.
    assert.deepEqual(r.replays[0], {
      x: [50, 60, 70, 80, 5, 6, 7, 8],
      y: [0, 0, 0, 0, 0, 0, 0, 0],
    });
    assert.deepEqual(r.replays[1].x, [50, 60, 70, 80, 6, 7, 8, 9]);
  },
);

test(
  'the emulator refuses allocation, frees, syncs and pageable copies while capturing',
  { skip: emuSkip },
  () => {
    const r = (probes as EmulatorProbes).captureRefusals();
    for (const call of [
      'malloc',
      'mallocAsync',
      'free',
      'mallocHost',
      'synchronize',
      'pageableUpload',
      'pageableDownload',
    ]) {
      assert.deepEqual(
        r[call],
        {
          call: 'cudaErrorStreamCaptureUnsupported',
          end: 'cudaErrorStreamCaptureInvalidated',
          graph: false,
        },
        call,
      );
    }
    assert.deepEqual(r.deviceCopy, { call: 'cudaSuccess', end: 'cudaSuccess', graph: true });
    assert.equal(r.nestedBegin, 'cudaErrorIllegalState');
    assert.equal(r.freeAfter, 'cudaSuccess', 'memory is usable after the refused captures');
  },
);

// ---- the runtime ---------------------------------------------------------------------------------

test(
  'a capture refuses allocation, downloads and syncs; the backend works afterwards',
  { skip },
  () => {
    onCuda(() => {
      const api = cudaGraphApi();
      assert.ok(!('error' in api));
      if ('error' in api) return;
      const be = getBackend();
      const kept = be.alloc(8, 'float32');
      const refusals: [RegExp, () => void][] = [
        [/allocating 4096 bytes during a graph capture/, () => be.alloc(1024, 'float32')],
        [/a download during a graph capture/, () => be.download(kept, 8, 'float32')],
        [/sync waits for the device during a graph capture/, () => be.sync()],
        [/freeing device memory during a graph capture/, () => be.free(kept)],
      ];
      const stats = cudaStats();
      for (const [message, call] of refusals) {
        api.begin();
        assert.throws(call, message);
        assert.throws(() => api.end(), /graph capture failed/);
      }
      const after = cudaStats();
      assert.ok(!('error' in stats) && !('error' in after));
      if (!('error' in stats) && !('error' in after))
        assert.equal(after.liveBuffers, stats.liveBuffers, 'the refused free freed nothing');
      // A capture that an exception interrupts is dropped; the backend then works as before.
      api.begin();
      api.abort();
      be.fill(kept, 8, 2.5);
      assert.deepEqual([...be.download(kept, 8, 'float32')], new Array(8).fill(2.5));
      be.free(kept);
    });
  },
);

test(
  'a pool miss fails the capture with its size, and the engine state is unchanged',
  { skip },
  () => {
    onCuda(() => {
      releasePool();
      assert.throws(
        () => StepGraph.capture(() => tidy(() => void F.zeros([1234]))),
        /no pooled float32 buffer of 1234 for the captured step/,
      );
      tidy(() => assert.equal(F.sum(F.ones([3])).item(), 3));
    });
  },
);

test(
  'a captured step replays on new inputs written into its buffers, as the eager step',
  { skip },
  () => {
    onCuda(() => {
      const x = keep(F.zeros([5]));
      const out = keep(F.zeros([5]));
      // y = relu(x * 3 - offsets), offsets uploaded inside the step (a captured copy).
      const body = () =>
        tidy(() => {
          const offsets = F.tensor(Float32Array.from([1, 2, 3, 4, 5]), [5]);
          F.writeInto(out, F.relu(F.sub(F.scale(x, 3), offsets)), 0, 0);
        });
      const inputs = [
        [1, 1, 1, 1, 1],
        [2, -1, 0, 5, 1.5],
        [0.25, 7, 1, 2, 3],
      ].map((v) => Float32Array.from(v));
      const eager = inputs.map((v) => {
        writeBuffer(x.buf, v);
        runPooled(body);
        return out.toFloat32Array();
      });
      const graph = StepGraph.capture(body);
      assert.ok(graph.nodes >= 4, `${graph.nodes} nodes`);
      inputs.forEach((v, i) => {
        writeBuffer(x.buf, v);
        graph.replay();
        assert.deepEqual(out.toFloat32Array(), eager[i], `replay ${i}`);
      });
      graph.dispose();
      assert.throws(() => graph.replay(), /disposed/);
      x.dispose();
      out.dispose();
    });
  },
);

test('a bad index inside a replayed graph is reported like an eager one', { skip }, () => {
  onCuda(() => {
    const table = keep(
      F.tensor(
        Float32Array.from({ length: 12 }, (_, i) => i),
        [4, 3],
      ),
    );
    const idx = keep(F.zeros([2], 'int32'));
    const out = keep(F.zeros([2, 3]));
    const body = () => tidy(() => F.writeInto(out, F.embedding(table, idx), 0, 0));
    writeBuffer(idx.buf, Int32Array.from([1, 2]));
    runPooled(body);
    const graph = StepGraph.capture(body);
    writeBuffer(idx.buf, Int32Array.from([3, 0]));
    graph.replay();
    assert.deepEqual([...out.toFloat32Array()], [9, 10, 11, 0, 1, 2]);
    // Sync checks on (the default): the replay itself throws, naming the row and the value.
    writeBuffer(idx.buf, Int32Array.from([0, 4]));
    assert.throws(
      () => graph.replay(),
      /index 4 at row 1 is out of range for a vocabulary of size 4/,
    );
    // Off: the next synchronisation reports it, once; replays in between keep the first record.
    setCudaSyncChecks(false);
    try {
      graph.replay();
      writeBuffer(idx.buf, Int32Array.from([1, 1]));
      graph.replay();
      assert.throws(() => getBackend().sync(), /index 4 at row 1 .*next synchronisation/);
      getBackend().sync();
    } finally {
      setCudaSyncChecks(true);
    }
    graph.dispose();
    for (const t of [table, idx, out]) t.dispose();
  });
});

// ---- the GPT's training step -----------------------------------------------------------------------

/** One layer with dropout on full-length sequences: small enough for the emulator. */
const GPT_CFG: GptConfig = {
  vocabSize: 96,
  blockSize: SEQUENCE_LENGTH,
  nLayer: 1,
  nHead: 2,
  nEmbd: 16,
  dropout: 0.1,
};
const BATCH = 2;
const STEPS = 5;
const batches = Array.from({ length: STEPS }, (_, s) =>
  Int32Array.from({ length: BATCH * SEQUENCE_LENGTH }, (_, i) => (i * 37 + s * 11) % 96),
);

interface TrainedState {
  losses: number[];
  weights: Float32Array[];
  moments: Float32Array[];
  rng: unknown;
  perReplay?: Partial<Record<keyof CudaStats, number>>;
  graphs?: number;
  log: string[];
}

/** STEPS AdamW steps with clipping (lr changing every step), eager or through GraphedTrainSteps. */
function train(mode: 'eager' | 'graphs', beforeStep?: (s: number) => void): TrainedState {
  return onCuda(() => {
    const rng = new Rng(5);
    const model = new GPT(GPT_CFG, rng);
    model.train();
    const optimizer = new AdamW(model.namedParameters(), { lr: 1e-3, clipNorm: 0.5 });
    const log: string[] = [];
    const graphed =
      mode === 'graphs' ? new GraphedTrainSteps(model, optimizer, rng, (l) => log.push(l)) : null;
    const losses: number[] = [];
    let before: CudaStats | null = null;
    let perReplay: TrainedState['perReplay'];
    for (let s = 0; s < STEPS; s++) {
      beforeStep?.(s);
      const lr = 1e-3 * (1 + s);
      if (s === 2) {
        const st = cudaStats();
        if (!('error' in st)) before = st;
      }
      if (graphed !== null) {
        const loss = graphed.step(batches[s], BATCH, lr);
        if (s === STEPS - 1) {
          const after = cudaStats();
          if (before !== null && !('error' in after)) {
            const per = (k: keyof CudaStats) => (after[k] - before![k]) / (STEPS - 2);
            perReplay = { launches: per('launches'), graphLaunches: per('graphLaunches') };
          }
        }
        losses.push(loss.toFloat32Array()[0]);
      } else {
        losses.push(
          tidy(() => {
            const l = model.loss(F.tensor(batches[s], [BATCH, SEQUENCE_LENGTH], 'int32'));
            l.backward();
            optimizer.update(lr);
            optimizer.zeroGrad();
            return l.item();
          }),
        );
      }
    }
    const state = optimizer.state();
    const result: TrainedState = {
      losses,
      weights: model.namedParameters().map(([, p]) => p.toFloat32Array()),
      moments: [...Object.values(state.m), ...Object.values(state.v)],
      rng: rng.getState(),
      perReplay,
      graphs: graphed?.graphs.length,
      log,
    };
    graphed?.dispose();
    optimizer.dispose();
    return result;
  });
}

function assertSameTraining(got: TrainedState, want: TrainedState): void {
  assert.deepEqual(got.losses, want.losses, 'losses');
  got.weights.forEach((w, i) => assert.deepEqual(w, want.weights[i], `weight ${i}`));
  got.moments.forEach((m, i) => assert.deepEqual(m, want.moments[i], `moment ${i}`));
  assert.deepEqual(got.rng, want.rng, 'the dropout RNG state');
}

test(
  'replayed training steps equal eager ones bit for bit (dropout, clipping, 5 steps)',
  { skip },
  (t) => {
    const eager = train('eager');
    const graphs = train('graphs');
    t.diagnostic(
      `losses ${graphs.losses.join(' ')}; per replay ${JSON.stringify(graphs.perReplay)}`,
    );
    assertSameTraining(graphs, eager);
    assert.ok(eager.losses[STEPS - 1] < eager.losses[0], 'the loss falls');
    assert.equal(graphs.graphs, 1, 'one graph for the one batch size');
    assert.deepEqual(graphs.log, [], 'nothing to report');
    // Steps 3..5 are replays: one graph launch each and no kernel launched outside it.
    assert.deepEqual(graphs.perReplay, { launches: 0, graphLaunches: 1 });
  },
);

test(
  'a failed capture says so in one line and the step runs eagerly, still bit for bit',
  { skip },
  () => {
    const eager = train('eager');
    // Emptying the pool before the capture (step 2) leaves it no buffers to take.
    const fallback = train('graphs', (s) => (s === 1 ? releasePool() : undefined));
    assertSameTraining(fallback, eager);
    assert.equal(fallback.graphs, 0);
    assert.equal(fallback.log.length, 1, fallback.log.join('\n'));
    assert.match(
      fallback.log[0],
      /^cuda graphs: capturing the training step \(batch 2\) failed: no pooled .*; it runs eagerly$/,
    );
  },
);

test(
  'a training run with graphs equals one without (two batch sizes, two epochs)',
  { skip },
  async () => {
    const vocab = new Vocab(16);
    // 10 items in batches of 4: sizes 4, 4, 2 per epoch, so each size is captured and replayed.
    const preset = oneLayerPreset({ batchSize: 4, testLimit: 4, evalBatchSize: 4, epochs: 2 }, 0.1);
    const run = async (graphs: boolean) => {
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmgpt-graphs-'));
      const log: string[] = [];
      const r = await onCudaAsync(() =>
        trainGpt({
          runDir,
          preset,
          vocab,
          train: cyclicSource(vocab, 10),
          test: cyclicSource(vocab, 4),
          tokenizerHash: 'h',
          log: (l) => log.push(l),
          graphs,
        }),
      );
      return { r, log, weights: loadCheckpoint(r.checkpointPath).weights };
    };
    const eager = await run(false);
    const before = cudaStats();
    const graphs = await run(true);
    const after = cudaStats();
    assert.ok(!('error' in before) && !('error' in after));
    // Graph launches: epoch 1 captures size 4 (at its second step); epoch 2 replays it twice and
    // captures size 2.
    if (!('error' in before) && !('error' in after))
      assert.equal(after.graphLaunches - before.graphLaunches, 4, 'graph launches');
    assert.deepEqual(graphs.r.log.trainNll, eager.r.log.trainNll);
    assert.deepEqual(
      graphs.r.log.testNll.map((e) => e.nll),
      eager.r.log.testNll.map((e) => e.nll),
    );
    for (const [name, w] of Object.entries(eager.weights))
      assert.deepEqual(graphs.weights[name].data, w.data, name);
    assert.deepEqual(
      graphs.log.filter((l) => l.startsWith('cuda graphs')),
      ['cuda graphs: each batch size is captured at its second step, then replayed'],
    );
    assert.equal(eager.log.filter((l) => l.startsWith('cuda graphs')).length, 0);
  },
);
