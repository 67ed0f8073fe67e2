// Whole steps as CUDA graphs: a step function captured once and replayed, one launch instead of
// hundreds (the launch overhead that bounds a small model's training step on a GPU).
//
// A replay runs the captured kernels on the same buffers with the same argument values, so:
// - the step must take every buffer from the engine's pool (tensor.ts): a run of the same step
//   just before its capture leaves them there, and the capture then takes them over until
//   `dispose` (an allocation, a free, a download or a sync inside the capture fails it);
// - data the step uploads (F.tensor of host arrays: positions, masks) is captured as a copy from
//   the graph's own host memory, so it must be the same at every replay;
// - what changes from step to step comes from device memory written before the launch: inputs
//   go into buffers the caller owns (`writeBuffer`), and the Adam update's rate and bias
//   corrections and the dropout seeds into the graph's parameter block (`replay`'s arguments).
// - a position that changes from replay to replay (a decode step's) is read from device memory
//   too: `writeIntoAt` writes at an offset held in a device buffer (the KV cache's append).
// Only the cuda backend has graphs (MMGPT_CUDA_GRAPHS=0 turns them off); `graphsUnavailable`
// says why a step runs eagerly instead.

import type { Buf } from './backend';
import { around, fmt, normAxis } from './ops/common';
import type { CudaGraph, CudaGraphApi } from './backends/cuda';
import { getBackend } from './registry';
import { beginPoolCapture, endPoolCapture, releaseCapturedBuffers } from './tensor';
import { withPooledUploads } from './tensor';
import type { CapturedBuffer, Tensor } from './tensor';

/**
 * The cuda backend's graph entry points, required when first asked for (as the registry requires
 * the backend itself): a web page's bundle has no cuda module, only a loader that says so.
 */
function cudaGraphApi(): CudaGraphApi | { error: string } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cuda = require('./backends/cuda') as {
    cudaGraphApi?: () => CudaGraphApi | { error: string };
  };
  return cuda.cudaGraphApi ? cuda.cudaGraphApi() : { error: 'no cuda backend in this build' };
}

/** Why steps cannot be captured on the current backend, or null when they can. */
export function graphsUnavailable(): string | null {
  if (process.env.MMGPT_CUDA_GRAPHS === '0') return 'MMGPT_CUDA_GRAPHS=0';
  const name = getBackend().name;
  if (name !== 'cuda') return `the ${name} backend has no graphs`;
  const api = cudaGraphApi();
  return 'error' in api ? api.error : null;
}

/** Why a decode step (`writeIntoAt` inside) cannot be captured, or null when it can. */
export function decodeGraphsUnavailable(): string | null {
  const reason = graphsUnavailable();
  if (reason !== null) return reason;
  return api().copyBlockAt === null ? 'the cuda addon has no copyBlockAt (built before it)' : null;
}

function api(): CudaGraphApi {
  const a = cudaGraphApi();
  if ('error' in a) throw new Error(`graphs unavailable: ${a.error}`);
  return a;
}

/** Copies host data into an existing device buffer (a graph's input, before its replay). */
export function writeBuffer(buf: Buf, data: Float32Array | Int32Array): void {
  api().write(buf, data);
}

/**
 * Runs fn eagerly with its uploads drawn from the pool: the run a capture of fn needs first, so
 * that the capture finds every buffer it takes (uploads included) in the pool.
 */
export function runPooled<T>(fn: () => T): T {
  const a = api();
  return withPooledUploads(getBackend(), a.write, fn);
}

/**
 * F.writeInto at an offset held on the device: src goes into dst[..., o:o+n, ...] along `axis`,
 * o = offset[0] (int32), in place and without autodiff. A captured step so writes where the
 * value in `offset` says at each replay. cuda only; an offset out of range writes nothing and is
 * reported like a bad index (at once with sync checks on, else at the next synchronisation).
 */
export function writeIntoAt(dst: Tensor, src: Tensor, axis: number, offset: Tensor): void {
  const copyAt = api().copyBlockAt;
  if (copyAt === null) throw new Error('writeIntoAt: the cuda addon has no copyBlockAt');
  const ax = normAxis('writeIntoAt', axis, dst.rank);
  const n = src.shape[ax]!;
  if (
    src.rank !== dst.rank ||
    src.shape.some((s, i) => i !== ax && s !== dst.shape[i]) ||
    n > dst.shape[ax]! ||
    src.dtype !== dst.dtype
  ) {
    throw new Error(
      `writeIntoAt: cannot write ${fmt(src.shape)} into ${fmt(dst.shape)} on axis ${ax}`,
    );
  }
  if (offset.dtype !== 'int32' || offset.size < 1)
    throw new Error(`writeIntoAt: the offset must be an int32 tensor, got ${offset.describe()}`);
  const [outer, , inner] = around(dst.shape, ax);
  copyAt(src.buf, dst.buf, outer, n, 0, dst.shape[ax]!, offset.buf, n, inner);
}

/** What a replay sets: the Adam update's rate and 1-based step, the dropout seeds in order. */
export interface ReplayInputs {
  lr?: number;
  step?: number;
  seeds?: readonly number[];
}

export class StepGraph {
  private disposed = false;

  private constructor(
    private readonly graph: CudaGraph,
    private readonly buffers: readonly CapturedBuffer[],
  ) {}

  /**
   * Captures fn (nothing runs: call `replay` to run it). Throws with the reason if the capture
   * fails; the engine's state is then as before (fn's host side effects excepted).
   */
  static capture(fn: () => void): StepGraph {
    const a = api();
    a.begin();
    beginPoolCapture();
    let buffers: CapturedBuffer[] = [];
    try {
      withPooledUploads(getBackend(), a.write, fn);
      buffers = endPoolCapture(true);
      return new StepGraph(a.end(), buffers);
    } catch (e) {
      endPoolCapture(false);
      a.abort();
      releaseCapturedBuffers(buffers);
      throw e;
    }
  }

  /** Kernels, memsets and copies the graph runs per replay. */
  get nodes(): number {
    return this.graph.nodes;
  }
  /** Dropout masks of the step: each replay takes this many seeds. */
  get seeds(): number {
    return this.graph.seeds;
  }
  get adamUpdates(): number {
    return this.graph.adamUpdates;
  }
  /** The dropout seeds the captured step drew, in order. */
  get capturedSeeds(): readonly number[] {
    return this.graph.capturedSeeds;
  }

  /** Queues one run of the captured step (returns before the device has finished). */
  replay(inputs: ReplayInputs = {}): void {
    if (this.disposed) throw new Error('StepGraph.replay: the graph was disposed');
    api().launch(this.graph, inputs.lr ?? NaN, inputs.step ?? NaN, inputs.seeds ?? []);
  }

  /** Waits for the device, frees the graph and gives its buffers back to the pool. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    api().destroy(this.graph);
    releaseCapturedBuffers(this.buffers);
  }
}
