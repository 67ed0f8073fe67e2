// The original recipe's training step in TensorFlow.js (tfjs-core + the WASM backend), for comparison.
//
//   node dist/bench/tfjs_step.js --batch 32 [--steps 3] [--warmup 1] [--threads N] [--forward]
//
// The same GPT as src/gpt/model.ts written in tfjs-core ops: token + learned positional
// embeddings, 4 pre-LN blocks (LayerNorm eps 1e-5; causal attention from matMul + additive mask
// + softmax; GeLU(tanh) MLP 4x), final LayerNorm, lm_head without bias; Linear weights [in, out];
// init N(0, 0.02), residual projections N(0, 0.02/sqrt(2*nLayer)), LayerNorm 1/0, biases 0.
// The step is tf.train.adam(1e-3, 0.9, 0.999, 1e-8).minimize(loss) on random tokens, finished by
// reading the loss back (so the step is timed to completion). tfjs is a dev dependency used only
// here; the .wasm binaries are loaded from node_modules with setWasmPaths. Two gaps of tfjs-core
// alone under Node are filled here: its gradient functions are ES-module-only (loaded through a
// resolve hook), and the WASM backend lacks UnsortedSegmentSum (the embedding gradient; a plain
// JS scatter-add is registered). Under Node tfjs-backend-wasm runs its single-threaded SIMD build
// whatever setThreadsCount says. The last stdout line is one JSON object (a TfjsRunResult).

import * as path from 'path';
import { pathToFileURL } from 'url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { register } from 'module';
import {
  ORIGINAL_LR,
  ORIGINAL_MODEL_CONFIG,
  median,
  peakRssMb,
  randomTokens,
} from '../src/perf/train_step';
import type { TfjsRunResult } from '../src/perf/children';
import type { GptConfig } from '../src/gpt/model';
import { Rng } from '../src/nn/rng';
import { numberFlag } from './run_backend';

export type { TfjsRunResult } from '../src/perf/children';

interface LayerParams {
  ln1g: tf.Variable;
  ln1b: tf.Variable;
  attnW: tf.Variable; // [C, 3C]
  attnB: tf.Variable;
  attnProjW: tf.Variable; // [C, C]
  attnProjB: tf.Variable;
  ln2g: tf.Variable;
  ln2b: tf.Variable;
  fcW: tf.Variable; // [C, 4C]
  fcB: tf.Variable;
  mlpProjW: tf.Variable; // [4C, C]
  mlpProjB: tf.Variable;
}

/** The GPT of src/gpt/model.ts in tfjs-core ops. */
export class TfjsGpt {
  readonly wte: tf.Variable; // [V, C]
  readonly wpe: tf.Variable; // [blockSize, C]
  readonly layers: LayerParams[];
  readonly lnfG: tf.Variable;
  readonly lnfB: tf.Variable;
  readonly lmHead: tf.Variable; // [C, V]

  constructor(
    readonly config: GptConfig,
    seed = 1337,
  ) {
    const C = config.nEmbd;
    let s = seed;
    const normal = (shape: number[], std: number) =>
      tf.variable(tf.randomNormal(shape, 0, std, 'float32', s++));
    const ones = (n: number) => tf.variable(tf.ones([n]));
    const zeros = (n: number) => tf.variable(tf.zeros([n]));
    const residStd = 0.02 / Math.sqrt(2 * config.nLayer);
    this.wte = normal([config.vocabSize, C], 0.02);
    this.wpe = normal([config.blockSize, C], 0.02);
    this.layers = Array.from({ length: config.nLayer }, () => ({
      ln1g: ones(C),
      ln1b: zeros(C),
      attnW: normal([C, 3 * C], 0.02),
      attnB: zeros(3 * C),
      attnProjW: normal([C, C], residStd),
      attnProjB: zeros(C),
      ln2g: ones(C),
      ln2b: zeros(C),
      fcW: normal([C, 4 * C], 0.02),
      fcB: zeros(4 * C),
      mlpProjW: normal([4 * C, C], residStd),
      mlpProjB: zeros(C),
    }));
    this.lnfG = ones(C);
    this.lnfB = zeros(C);
    this.lmHead = normal([C, config.vocabSize], 0.02);
  }

  private layerNorm(x: tf.Tensor2D, g: tf.Variable, b: tf.Variable): tf.Tensor2D {
    const { mean, variance } = tf.moments(x, -1, true); // [N, 1]
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))); // [N, C]
    return tf.add(tf.mul(normed, g), b);
  }

  /** GeLU, tanh approximation (GPT-2's gelu_new). */
  private gelu(x: tf.Tensor2D): tf.Tensor2D {
    const cube = tf.mul(tf.mul(x, x), x);
    const inner = tf.mul(tf.add(x, tf.mul(cube, 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  }

  /** x [N, in] @ w [in, out] + b [out]. */
  private linear(x: tf.Tensor2D, w: tf.Variable, b?: tf.Variable): tf.Tensor2D {
    const y: tf.Tensor2D = tf.matMul(x, w as tf.Tensor2D); // [N, out]
    return b ? (tf.add(y, b) as tf.Tensor2D) : y;
  }

  /** tokens int32 [B, T] -> logits [B*T, V]. */
  forward(tokens: tf.Tensor2D): tf.Tensor2D {
    const [B, T] = tokens.shape;
    const C = this.config.nEmbd;
    const nh = this.config.nHead;
    const hs = C / nh;
    const positions = tf.range(0, T, 1, 'int32');
    const tokEmb = tf.reshape(tf.gather(this.wte, tf.reshape(tokens, [B * T])), [B, T, C]);
    const posEmb = tf.gather(this.wpe, positions); // [T, C]
    let x = tf.reshape(tf.add(tokEmb, posEmb), [B * T, C]) as tf.Tensor2D; // [B*T, C]
    // Additive causal mask: 0 on and below the diagonal, -1e9 above.
    const mask = tf.mul(tf.sub(tf.linalg.bandPart(tf.ones([T, T]), -1, 0), 1), 1e9); // [T, T]
    for (const p of this.layers) {
      const h = this.layerNorm(x, p.ln1g, p.ln1b);
      const qkv = tf.transpose(
        tf.reshape(this.linear(h, p.attnW, p.attnB), [B, T, 3, nh, hs]), // [B, T, 3, nh, hs]
        [2, 0, 3, 1, 4],
      ); // [3, B, nh, T, hs]
      const [q, k, v] = tf.unstack(qkv, 0) as tf.Tensor4D[]; // [B, nh, T, hs] each
      const scores = tf.add(tf.matMul(tf.mul(q, 1 / Math.sqrt(hs)), k, false, true), mask); // [B, nh, T, T]
      const att = tf.softmax(scores); // [B, nh, T, T]
      const y = tf.matMul(att, v); // [B, nh, T, hs]
      const merged = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D; // [B*T, C]
      x = tf.add(x, this.linear(merged, p.attnProjW, p.attnProjB));
      const f = this.gelu(this.linear(this.layerNorm(x, p.ln2g, p.ln2b), p.fcW, p.fcB)); // [B*T, 4C]
      x = tf.add(x, this.linear(f, p.mlpProjW, p.mlpProjB)); // [B*T, C]
    }
    return this.linear(this.layerNorm(x, this.lnfG, this.lnfB), this.lmHead); // [B*T, V]
  }

  /** Mean next-token NLL of tokens int32 [B, T+1] (predicts tokens[:, 1:]). */
  loss(tokens: tf.Tensor2D): tf.Scalar {
    const [B, T1] = tokens.shape;
    const T = T1 - 1;
    const inputs = tf.slice(tokens, [0, 0], [B, T]); // [B, T]
    const targets = tf.reshape(tf.slice(tokens, [0, 1], [B, T]), [B * T]) as tf.Tensor1D; // [B*T]
    const logProbs = tf.logSoftmax(this.forward(inputs)); // [B*T, V]
    const onehot = tf.oneHot(targets, this.config.vocabSize); // [B*T, V]
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logProbs), 1))) as tf.Scalar;
  }
}

function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Registers tfjs-core's gradient functions. The umbrella `@tensorflow/tfjs` package does this;
 * tfjs-core alone ships them only as ES modules with extensionless relative imports
 * (dist/register_all_gradients.js), which Node's ESM loader refuses. A small resolve hook adds
 * the `.js` (or `/index.js`); the registries are global, so the CommonJS bundle sees the gradients.
 */
export async function registerTfjsGradients(): Promise<void> {
  const hook = `export async function resolve(specifier, context, next) {
    try { return await next(specifier, context); } catch (e) {
      if (!/^\\.\\.?\\//.test(specifier) || (e.code !== 'ERR_MODULE_NOT_FOUND' && e.code !== 'ERR_UNSUPPORTED_DIR_IMPORT')) throw e;
      try { return await next(specifier + '.js', context); } catch { return next(specifier + '/index.js', context); }
    }
  }`;
  register('data:text/javascript,' + encodeURIComponent(hook));
  const file = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  // A real dynamic import (TypeScript's CommonJS output would turn `import()` into require()).
  const dynamicImport = new Function('u', 'return import(u)') as (u: string) => Promise<unknown>;
  await dynamicImport(pathToFileURL(file).href);
}

/**
 * tfjs-backend-wasm 4.22 has no UnsortedSegmentSum, which the gradient of gather (the embedding
 * tables) needs; this registers a plain JavaScript one working on the WASM heap directly
 * (a [B*T, 128] scatter-add: a negligible part of the step).
 */
export function registerWasmSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm') !== undefined) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as tfwasm.BackendWasm;
      const x = inputs.x as tf.TensorInfo; // [segments..., inner...]
      const ids = inputs.segmentIds as tf.TensorInfo;
      const numSegments = (attrs as { numSegments: number }).numSegments;
      const idValues = wasm.typedArrayFromHeap(ids);
      const rows = idValues.length;
      const xSize = x.shape.reduce((p, d) => p * d, 1);
      const inner = rows > 0 ? xSize / rows : 0;
      const outShape = [numSegments, ...x.shape.slice(ids.shape.length)];
      const out = wasm.makeOutput(outShape, x.dtype);
      const outValues = wasm.typedArrayFromHeap(out);
      outValues.fill(0);
      const xValues = wasm.typedArrayFromHeap(x);
      for (let r = 0; r < rows; r++) {
        const seg = idValues[r];
        if (seg < 0 || seg >= numSegments) continue;
        const src = r * inner;
        const dst = seg * inner;
        for (let j = 0; j < inner; j++) outValues[dst + j] += xValues[src + j];
      }
      return out;
    },
  });
}

/** Initialises the WASM backend from node_modules (threads: XNNPACK pool size, if supported). */
export async function initWasm(threads?: number): Promise<number | null> {
  const dist = path.dirname(
    require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'),
  );
  tfwasm.setWasmPaths(dist + path.sep);
  if (threads !== undefined && typeof tfwasm.setThreadsCount === 'function')
    tfwasm.setThreadsCount(threads);
  await registerTfjsGradients();
  registerWasmSegmentSum();
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  // Node gets the single-threaded SIMD build (tfjs-backend-wasm turns threads off under Node).
  try {
    return typeof tfwasm.getThreadsCount === 'function' ? tfwasm.getThreadsCount() : null;
  } catch {
    return null;
  }
}

export async function runTfjs(argv: readonly string[]): Promise<TfjsRunResult> {
  const batch = numberFlag(argv, '--batch') ?? 32;
  const steps = numberFlag(argv, '--steps') ?? 3;
  const warmup = numberFlag(argv, '--warmup') ?? 1;
  const threadsFlag = numberFlag(argv, '--threads');
  const threads = await initWasm(threadsFlag);
  const config = ORIGINAL_MODEL_CONFIG;
  const model = new TfjsGpt(config);
  const optimizer = tf.train.adam(ORIGINAL_LR, 0.9, 0.999, 1e-8);
  const rng = new Rng(1337);
  const length = config.blockSize + 1;
  const batches = Array.from({ length: 4 }, () =>
    randomTokens(rng, batch, config.vocabSize, length),
  );
  let i = 0;
  const step = async (): Promise<number> => {
    const tokens = tf.tensor2d(batches[i++ % batches.length], [batch, length], 'int32'); // [B, 58]
    const cost = optimizer.minimize(() => model.loss(tokens), true);
    const loss = cost ? (await cost.data())[0] : NaN;
    cost?.dispose();
    tokens.dispose();
    return loss;
  };
  let lastLoss = NaN;
  for (let s = 0; s < warmup; s++) lastLoss = await step();
  const msPerStepAll: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = nowMs();
    lastLoss = await step();
    msPerStepAll.push(nowMs() - t0);
  }
  let forwardB1Ms: number | null = null;
  if (argv.includes('--forward')) {
    const data = randomTokens(rng, 1, config.vocabSize, config.blockSize);
    const times: number[] = [];
    for (let s = 0; s < 15; s++) {
      const t0 = nowMs();
      const logits = tf.tidy(() =>
        model.forward(tf.tensor2d(data, [1, config.blockSize], 'int32')),
      ); // [57, V]
      await logits.data();
      logits.dispose();
      if (s >= 5) times.push(nowMs() - t0);
    }
    forwardB1Ms = median(times);
  }
  const msPerStep = median(msPerStepAll);
  return {
    version: tf.version_core,
    backend: `tfjs-${tf.getBackend()}`,
    batch,
    threads,
    warmup,
    steps,
    msPerStep,
    msPerStepAll,
    tokensPerSec: (batch * config.blockSize * 1000) / msPerStep,
    lastLoss,
    forwardB1Ms,
    peakRssMb: peakRssMb(),
  };
}

if (require.main === module) {
  runTfjs(process.argv.slice(2)).then(
    (r) => console.log(JSON.stringify(r)),
    (e: Error) => {
      console.error(`tfjs_step: ${e.message}`);
      process.exit(1);
    },
  );
}
