// The sampler's one-token decode step as a CUDA graph (../engine/graph.ts): the whole model's
// forward for the next token, captured once per (rows, cache length) shape and replayed at every
// position, so that a step is one graph launch instead of a few hundred kernel launches.
//
// A replay runs no JavaScript, so everything that changes from step to step is read from device
// memory that the host rewrites before the launch (two small copies), as GPT.decodeAt expects:
// - `block`, int32 [1 + 2 * rows]: the cache slot the step writes (the position), each row's
//   token, each row's position id (the slot less the row's padding: RowLayout);
// - `keyBias`, [rows, 1, 1, blockSize]: 0 on the slots a row attends to, -1e9 on its padding and
//   beyond the slot.
// The step writes the logits of its one position into `logits` [rows, 1, vocab]; they are what
// crosses to the host (sampling, with its masks, guidance and per-row RNGs, stays there).
// Every cache has the block size's slots, so a shape is its number of rows. Each shape keeps its
// cache and buffers (the graph reads and writes them) from generation to generation; a generation
// starts from a zeroed cache and an eager prefill (its length varies). The first step of a shape
// runs eagerly with its uploads drawn from the pool (so that the capture finds every buffer), the
// second is captured and launched, every later one is a replay. A capture that fails says so in
// one line and that shape decodes eagerly (the same step, uncaptured) from then on.
// The graphs read the model's weights where they were at the capture: updated in place (training)
// is fine; a model whose parameter tensors were replaced gets new graphs.

import * as F from '../engine/ops';
import type { Buf } from '../engine/backend';
import { StepGraph, decodeGraphsUnavailable, runPooled, writeBuffer } from '../engine/graph';
import { keep, noGrad, tidy } from '../engine/tensor';
import type { Tensor } from '../engine/tensor';
import { KVCache } from '../gpt/model';
import type { GPT } from '../gpt/model';

/** The key bias on a slot a row does not attend to (its probability is then exactly 0). */
const MASKED = -1e9;

/** One shape's cache, fixed buffers and graph. */
interface Shape {
  readonly rows: number;
  readonly cache: KVCache;
  /** int32 [1 + 2 * rows]: slot, tokens, position ids. */
  readonly block: Tensor;
  /** [rows, 1, 1, blockSize]. */
  readonly keyBias: Tensor;
  /** [rows, 1, vocab]: the step's output. */
  readonly logits: Tensor;
  steps: number;
  graph: StepGraph | null;
  /** The capture failed: this shape decodes eagerly. */
  eager: boolean;
  /** A generation holds it (two streams of one size at once get two shapes). */
  busy: boolean;
}

/** A model's shapes, and the parameter buffers they were made for. */
interface ModelGraphs {
  params: Buf[];
  shapes: Shape[];
}

const byModel = new WeakMap<GPT, ModelGraphs>();
let log: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

/** Where the one line of a failed capture goes (default stderr); returns the previous sink. */
export function setDecodeGraphLog(sink: (line: string) => void): (line: string) => void {
  const previous = log;
  log = sink;
  return previous;
}

/** Why `model` cannot decode through graphs now, or null when it can. */
export function decodeGraphsUnavailableFor(model: GPT): string | null {
  const reason = decodeGraphsUnavailable();
  if (reason !== null) return reason;
  if (model.wte.weight.backend.name !== 'cuda') return 'the model is not on the cuda backend';
  if (model.training && model.config.dropout > 0) return 'dropout is on (training mode)';
  return null;
}

/** Frees a model's decode graphs, caches and buffers (the next decode captures again). */
export function releaseDecodeGraphs(model: GPT): void {
  const graphs = byModel.get(model);
  if (graphs === undefined) return;
  byModel.delete(model);
  for (const s of graphs.shapes) {
    s.graph?.dispose();
    s.cache.dispose();
    for (const t of [s.block, s.keyBias, s.logits]) t.dispose();
  }
}

/** The graphs captured so far for `model` (one per shape), for tests and benchmarks. */
export function decodeGraphsOf(model: GPT): StepGraph[] {
  return (byModel.get(model)?.shapes ?? []).flatMap((s) => (s.graph ? [s.graph] : []));
}

function modelGraphs(model: GPT): ModelGraphs {
  const params = model.parameters().map((p) => p.buf);
  let graphs = byModel.get(model);
  if (graphs !== undefined && graphs.params.some((b, i) => b !== params[i])) {
    releaseDecodeGraphs(model);
    graphs = undefined;
  }
  if (graphs === undefined) {
    graphs = { params, shapes: [] };
    byModel.set(model, graphs);
  }
  return graphs;
}

function newShape(model: GPT, rows: number): Shape {
  const { blockSize, vocabSize } = model.config;
  const cache = new KVCache(model.config, rows);
  [...cache.keys, ...cache.values].forEach((t) => keep(t));
  return {
    rows,
    cache,
    block: keep(F.zeros([1 + 2 * rows], 'int32')),
    keyBias: keep(F.zeros([rows, 1, 1, blockSize])),
    logits: keep(F.zeros([rows, 1, vocabSize])),
    steps: 0,
    graph: null,
    eager: false,
    busy: false,
  };
}

/**
 * The decode steps of one generation of `rows` rows through a graph: `cache` (empty) is filled by
 * the caller's prefill, then `step` feeds one token per row at cache.pos. `close` hands the shape
 * back for the next generation.
 */
export class GraphedDecode {
  private readonly bias: Float32Array;
  private readonly input: Int32Array;
  private closed = false;

  private constructor(
    private readonly model: GPT,
    private readonly shape: Shape,
    /** [rows] leading padding slots per row. */
    private readonly padding: Int32Array,
  ) {
    this.bias = new Float32Array(shape.rows * model.config.blockSize);
    this.input = new Int32Array(1 + 2 * shape.rows);
  }

  /** A graphed decode of `rows` rows (padding per row, default none); null where unavailable. */
  static open(model: GPT, rows: number, padding = new Int32Array(rows)): GraphedDecode | null {
    if (decodeGraphsUnavailableFor(model) !== null) return null;
    if (padding.length !== rows)
      throw new Error(`GraphedDecode: ${padding.length} paddings for ${rows} rows`);
    const graphs = modelGraphs(model);
    let shape = graphs.shapes.find((s) => s.rows === rows && !s.busy);
    if (shape === undefined) {
      shape = newShape(model, rows);
      graphs.shapes.push(shape);
    }
    shape.busy = true;
    const cache = shape.cache;
    cache.pos = 0;
    for (const t of [...cache.keys, ...cache.values]) t.backend.fill(t.buf, t.size, 0);
    return new GraphedDecode(model, shape, padding);
  }

  /** The shape's KV cache: the prefill fills it, each step appends one position. */
  get cache(): KVCache {
    return this.shape.cache;
  }

  /** Feeds tokens [rows] with position ids [rows] at cache.pos, advances it; logits [rows * V]. */
  step(tokens: Int32Array, positions: Int32Array): Float32Array {
    const s = this.shape;
    const { rows, cache } = s;
    if (this.closed) throw new Error('GraphedDecode.step: the decode was closed');
    if (tokens.length !== rows || positions.length !== rows)
      throw new Error(`GraphedDecode.step: need ${rows} tokens and positions`);
    const slots = this.model.config.blockSize;
    if (cache.pos >= slots)
      throw new Error(`GraphedDecode.step: position ${cache.pos} exceeds the block size ${slots}`);
    this.input[0] = cache.pos;
    this.input.set(tokens, 1);
    this.input.set(positions, 1 + rows);
    for (let b = 0; b < rows; b++) {
      const row = this.bias.subarray(b * slots, (b + 1) * slots);
      row.fill(MASKED);
      row.fill(0, Math.min(this.padding[b]!, cache.pos + 1), cache.pos + 1);
    }
    writeBuffer(s.block.buf, this.input);
    writeBuffer(s.keyBias.buf, this.bias);
    s.steps++;
    if (s.graph !== null) s.graph.replay();
    else if (s.eager || s.steps === 1) runPooled(() => this.body());
    else this.capture();
    cache.pos++;
    return s.logits.toFloat32Array();
  }

  /** Hands the shape back (its cache, buffers and graph stay for the next generation). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shape.busy = false;
  }

  /** The step: what the eager runs execute and the capture records. */
  private body(): void {
    const { rows, block, cache, keyBias, logits } = this.shape;
    noGrad(() =>
      tidy(() => {
        const slot = F.slice(block, 0, 0, 1); // [1]
        const tokens = F.reshape(F.slice(block, 0, 1, 1 + rows), [rows, 1]);
        const positions = F.reshape(F.slice(block, 0, 1 + rows, 1 + 2 * rows), [rows, 1]);
        const at = { positions, slot, keyBias };
        F.writeInto(logits, this.model.decodeAt(tokens, cache, at), 0, 0); // [rows, 1, V]
      }),
    );
  }

  /** Captures the step and launches it; on failure says so and runs it eagerly. */
  private capture(): void {
    const s = this.shape;
    try {
      s.graph = StepGraph.capture(() => this.body());
    } catch (e) {
      s.eager = true;
      log(
        `cuda graphs: capturing the decode step (${s.rows} rows) failed: ` +
          `${(e as Error).message}; it decodes eagerly`,
      );
      runPooled(() => this.body());
      return;
    }
    s.graph.replay();
  }
}
