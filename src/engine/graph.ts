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
// Only the cuda backend has graphs (MMGPT_CUDA_GRAPHS=0 turns them off); `graphsUnavailable`
// says why a step runs eagerly instead.

import type { Buf } from './backend';
import { cudaGraphApi } from './backends/cuda';
import type { CudaGraph, CudaGraphApi } from './backends/cuda';
import { getBackend } from './registry';
import { beginPoolCapture, endPoolCapture, releaseCapturedBuffers } from './tensor';
import { withPooledUploads } from './tensor';
import type { CapturedBuffer } from './tensor';

/** Why steps cannot be captured on the current backend, or null when they can. */
export function graphsUnavailable(): string | null {
  if (process.env.MMGPT_CUDA_GRAPHS === '0') return 'MMGPT_CUDA_GRAPHS=0';
  const name = getBackend().name;
  if (name !== 'cuda') return `the ${name} backend has no graphs`;
  const api = cudaGraphApi();
  return 'error' in api ? api.error : null;
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
