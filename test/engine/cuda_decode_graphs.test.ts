// The sampler's decode step as a CUDA graph (src/sampling/decodeGraph.ts): writeIntoAt writes at
// the offset held on the device (and reports one out of range like a bad index); replayed decode
// steps give the eager steps' logits bit for bit at every position and write the cache where the
// device-held position says (so a position that is not advanced fails here); the three modes,
// with guidance and reranking, give the same samples with graphs as without; a failed capture
// says so in one line and decodes eagerly, still with the same samples; MMGPT_CUDA_GRAPHS=0 and
// `graphs: false` keep the eager path.
//
// Where it runs: like cuda_graphs.test.ts, on a CUDA device or on the CPU emulator
// (MMGPT_CUDA_ADDON=native/build/cuda-emu/mmgpt_cuda_emu.node); elsewhere skipped with the reason.
// The emulator is slow (every CUDA thread a fiber): one layer, one prompt per mode.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { cudaStats } from '../../src/engine/backends/cuda';
import type { CudaStats } from '../../src/engine/backends/cuda';
import { onCuda } from './backend_helpers';
import { writeIntoAt } from '../../src/engine/graph';
import * as F from '../../src/engine/ops';
import { keep, setPoolLimit } from '../../src/engine/tensor';
import { GPT, KVCache } from '../../src/gpt/model';
import type { GptConfig } from '../../src/gpt/model';
import { Rng } from '../../src/nn/rng';
import { Vocab } from '../../src/data/vocab';
import { IMAGE_TOKENS, SEQUENCE_LENGTH } from '../../src/data/sequences';
import {
  GraphedDecode,
  decodeGraphsOf,
  releaseDecodeGraphs,
  setDecodeGraphLog,
} from '../../src/sampling/decodeGraph';
import { decodeOne, prefill } from '../../src/sampling/streams';
import { generate } from '../../src/sampling/sampler';
import { imageToText, textToImage, unconditional } from '../../src/sampling/modes';
import type { ModeOptions } from '../../src/sampling/modes';
import type { Sample } from '../../src/sampling/sample';
import { targetOf } from './backend_targets';

const { skip } = targetOf('cuda');

const vocab = new Vocab(16);
const CONFIG: GptConfig = {
  vocabSize: vocab.size,
  blockSize: SEQUENCE_LENGTH,
  nLayer: 1,
  nHead: 2,
  nEmbd: 16,
  dropout: 0,
};

function stats(): CudaStats {
  const s = cudaStats();
  if ('error' in s) throw new Error(s.error);
  return s;
}

/** A model in eval mode on the cuda backend. */
function cudaModel(seed: number): GPT {
  const model = new GPT(CONFIG, new Rng(seed));
  model.eval();
  return model;
}

test('writeIntoAt writes where the device offset says; out of range is reported', { skip }, () => {
  onCuda(() => {
    const dst = keep(F.zeros([2, 4, 3])); // [outer 2, axis 4, inner 3]
    const src = keep(
      F.tensor(
        Float32Array.from({ length: 6 }, (_, i) => i + 1),
        [2, 1, 3],
      ),
    );
    const offset = keep(F.tensor(Int32Array.from([2]), [1], 'int32'));
    writeIntoAt(dst, src, 1, offset);
    const want = new Float32Array(24);
    want.set([1, 2, 3], 6);
    want.set([4, 5, 6], 18);
    assert.deepEqual(dst.toFloat32Array(), want);
    const late = keep(F.tensor(Int32Array.from([4]), [1], 'int32'));
    assert.throws(
      () => writeIntoAt(dst, src, 1, late),
      /copyBlockAt: the offset 4 read from the device is out of range \(accepted: 0\.\.3\)/,
    );
    assert.deepEqual(dst.toFloat32Array(), want, 'nothing written');
    assert.throws(() => writeIntoAt(dst, src, 1, dst), /the offset must be an int32 tensor/);
    for (const t of [dst, src, offset, late]) t.dispose();
  });
});

/** Step s's token for row b: any token, the same in both runs. */
const tokenAt = (s: number, b: number): number => (s * 7 + b * 13 + 3) % vocab.size;

interface Decoded {
  logits: Float32Array[];
  keys: Float32Array[];
  values: Float32Array[];
  /** Per decode step: kernels launched outside graphs, and graph launches. */
  launches: number[];
  graphLaunches: number[];
}

/** Prefill of `prompts` [rows, P], then one token per row up to the block size. */
function decodeAll(model: GPT, prompts: Int32Array, rows: number, graphed: boolean): Decoded {
  const P = prompts.length / rows;
  const g = graphed ? GraphedDecode.open(model, rows) : null;
  if (graphed) assert.ok(g !== null, 'graphs available');
  const cache = g?.cache ?? new KVCache(model.config, rows);
  const logits = [prefill(model, prompts, rows, cache)];
  const launches: number[] = [];
  const graphLaunches: number[] = [];
  for (let s = 0; P + s < CONFIG.blockSize; s++) {
    const tokens = Int32Array.from({ length: rows }, (_, b) => tokenAt(s, b));
    const positions = new Int32Array(rows).fill(cache.pos);
    const before = stats();
    logits.push(g ? g.step(tokens, positions) : decodeOne(model, tokens, cache));
    const after = stats();
    launches.push(after.launches - before.launches);
    graphLaunches.push(after.graphLaunches - before.graphLaunches);
  }
  assert.equal(cache.pos, CONFIG.blockSize);
  const result = {
    logits,
    keys: cache.keys.map((t) => t.toFloat32Array()),
    values: cache.values.map((t) => t.toFloat32Array()),
    launches,
    graphLaunches,
  };
  if (g) g.close();
  else cache.dispose();
  return result;
}

function assertSameDecode(got: Decoded, want: Decoded, what: string): void {
  assert.equal(got.logits.length, want.logits.length);
  got.logits.forEach((l, i) => assert.deepEqual(l, want.logits[i], `${what}: logits of step ${i}`));
  got.keys.forEach((k, i) => assert.deepEqual(k, want.keys[i], `${what}: keys of layer ${i}`));
  got.values.forEach((v, i) => assert.deepEqual(v, want.values[i], `${what}: values ${i}`));
}

test(
  'replayed decode steps equal eager ones bit for bit at every position, cache included',
  { skip },
  (t) => {
    onCuda(() => {
      const model = cudaModel(11);
      const rows = 2;
      const P = 9;
      const prompts = Int32Array.from({ length: rows * P }, (_, i) => (i * 5 + 1) % vocab.size);
      const eager = decodeAll(model, prompts, rows, false);
      const first = decodeAll(model, prompts, rows, true);
      // A second generation replays from its first step, on the zeroed cache of the first.
      const second = decodeAll(model, prompts, rows, true);
      const steps = CONFIG.blockSize - P;
      const graphs = decodeGraphsOf(model);
      t.diagnostic(`${steps} steps a generation; the graph has ${graphs[0]?.nodes} nodes`);
      // Every step's logits, and the keys and values at every slot: each replay wrote the slot of
      // its own position (the device-held position advanced), read the slots before it and none
      // after it.
      assertSameDecode(first, eager, 'first generation');
      assertSameDecode(second, eager, 'second generation');
      assert.equal(graphs.length, 1, 'one graph for the one shape');
      // The first generation: step 1 eager, step 2 captured and launched, then replays; the
      // second replays every step. A replay launches no kernel outside the graph.
      assert.ok(first.launches[0]! > 0);
      assert.deepEqual(first.graphLaunches, [0, ...new Array<number>(steps - 1).fill(1)]);
      assert.deepEqual(first.launches.slice(1), new Array<number>(steps - 1).fill(0));
      assert.deepEqual(second.graphLaunches, new Array<number>(steps).fill(1));
      assert.deepEqual(second.launches, new Array<number>(steps).fill(0));
      releaseDecodeGraphs(model);
      assert.equal(decodeGraphsOf(model).length, 0);
    });
  },
);

/** One prompt per mode, with guidance and reranking where the mode has them. */
const MODE_RUNS: [string, (model: GPT, opts: ModeOptions) => Sample[]][] = [
  [
    'text -> image, guidance 3, rerank 2',
    (m, o) => textToImage(m, vocab, ['dark green eight on bright cyan'], { ...o, guidance: 3 }),
  ],
  [
    'image -> text, guidance 2, rerank 2',
    (m, o) => {
      const codes = Int32Array.from({ length: IMAGE_TOKENS }, (_, i) => (i * 5) % 16);
      return imageToText(m, vocab, [codes], { ...o, guidance: 2 });
    },
  ],
  ['unconditional, rerank 2', (m, o) => unconditional(m, vocab, 1, o)],
  [
    'unconditional caption first, guidance 2, rerank 2',
    (m, o) => unconditional(m, vocab, 1, { ...o, captionFirst: true, guidance: 2 }),
  ],
];

test(
  'the three modes sample the same with graphs as without (guidance, reranking)',
  { skip },
  () => {
    onCuda(() => {
      const model = cudaModel(3);
      for (const [name, run] of MODE_RUNS) {
        const opts: ModeOptions = { seed: 5, rerank: 2, temperature: 1.5 };
        const before = stats();
        const eager = run(model, { ...opts, graphs: false });
        const middle = stats();
        const graphed = run(model, opts);
        const after = stats();
        assert.equal(middle.graphLaunches, before.graphLaunches, `${name}: graphs: false`);
        assert.ok(after.graphLaunches > middle.graphLaunches, `${name}: decoded through graphs`);
        assert.deepEqual(graphed, eager, name);
      }
      // Guidance as two forwards a step: two streams of one size, two shapes at once.
      process.env.MMGPT_CFG_TWO_FORWARDS = '1';
      try {
        const prompts = [Int32Array.from([vocab.bos, vocab.endOfImage])];
        const o = {
          seed: 2,
          guidance: 2,
          maxTokens: 4,
          unconditionalPrompts: [Int32Array.from([vocab.bos, vocab.endOfText])],
        };
        const eager = generate(model, vocab, prompts, { ...o, graphs: false });
        assert.deepEqual(generate(model, vocab, prompts, o), eager, 'two forwards');
        assert.deepEqual(generate(model, vocab, prompts, o), eager, 'two forwards, replayed');
      } finally {
        delete process.env.MMGPT_CFG_TWO_FORWARDS;
      }
      releaseDecodeGraphs(model);
    });
  },
);

test(
  'a failed capture says so in one line and decodes eagerly, with the same samples',
  { skip },
  () => {
    onCuda(() => {
      const model = cudaModel(4);
      const prompts = [1, 2].map(() => Int32Array.from([vocab.bos]));
      const opts = { seed: 9, maxTokens: 5 };
      const eager = generate(model, vocab, prompts, { ...opts, graphs: false });
      const lines: string[] = [];
      const previousLog = setDecodeGraphLog((l) => lines.push(l));
      // A pool that keeps nothing leaves the capture no buffers to take.
      const previousLimit = setPoolLimit(0);
      const before = stats();
      let fallback: Int32Array[];
      try {
        fallback = generate(model, vocab, prompts, opts);
      } finally {
        setPoolLimit(previousLimit);
        setDecodeGraphLog(previousLog);
      }
      assert.deepEqual(fallback, eager);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(
        lines[0],
        /^cuda graphs: capturing the decode step \(2 rows\) failed: no pooled .*; it decodes eagerly$/,
      );
      assert.equal(stats().graphLaunches, before.graphLaunches);
      // That shape stays eager (no second attempt, no second line).
      assert.deepEqual(generate(model, vocab, prompts, opts), eager);
      assert.equal(decodeGraphsOf(model).length, 0);
      releaseDecodeGraphs(model);
    });
  },
);

test('MMGPT_CUDA_GRAPHS=0 decodes step by step', { skip }, () => {
  onCuda(() => {
    const model = cudaModel(4);
    const prompts = [Int32Array.from([vocab.bos])];
    const before = stats();
    process.env.MMGPT_CUDA_GRAPHS = '0';
    try {
      assert.equal(GraphedDecode.open(model, 1), null);
      generate(model, vocab, prompts, { seed: 1, maxTokens: 3 });
    } finally {
      delete process.env.MMGPT_CUDA_GRAPHS;
    }
    assert.equal(stats().graphLaunches, before.graphLaunches);
    assert.equal(decodeGraphsOf(model).length, 0);
  });
});
