// The CUDA backend: the Backend interface (../backend.ts) on the CUDA kernels of the mmgpt_native
// addon (native/cuda/, compiled into the same addon wherever nvcc is found at build time).
//
// Buffers are opaque device handles (small JS objects wrapping a device pointer, with readable
// `size` and `dtype`); tensors move to and from the host only through upload/download. Every
// kernel is queued on one CUDA stream, so calls return before the GPU has finished: download,
// sumSquares and sync wait. The addon checks every argument (types, lengths, dtypes) and throws
// TypeError / RangeError with the cpu backend's messages, so this file is a thin adapter.
//
// Notable choices:
// - `loadCudaBackend` never throws: it returns the backend or why it is unavailable ("built
//   without CUDA: ...", "no CUDA device: ..."); registry.ts tries it first and falls back to cpu.
// - Device memory: the engine's buffer pool (tensor.ts) recycles freed buffers; below it the addon
//   allocates from CUDA's stream-ordered pool with an unlimited release threshold (a caching
//   allocator), so neither alloc nor free synchronises the device.
// - Index errors (gather/scatterAdd out of range, crossEntropy target >= v) are detected on the
//   device. By default the call waits for its kernel and throws like the cpu backend;
//   MMGPT_CUDA_SYNC_CHECKS=0 (or setCudaSyncChecks(false)) defers the check to the next
//   synchronisation (download/sync/sumSquares), saving a few stalls per training step.
// - MMGPT_CUDA_DEVICE picks the device (default 0); MMGPT_CUDA_MEMPOOL=0 uses plain cudaMalloc.
// - MMGPT_CUDA_ADDON=<path> takes the `cuda` entry points from another addon: the CPU emulator
//   build of the same kernels (native/cuda/emu/build-emu.js), which lets the CUDA tests run on
//   machines without a GPU.
// - CUDA graphs (`cudaGraphApi`, used by ../graph.ts): the stream captured into a graph and
//   replayed; a capture refuses allocation, frees and host waits (see native/cuda/runtime.cu).
//   Beside them the one kernel outside the Backend interface, copyBlockAt: a copy at an offset
//   read from the device, so that a captured decode step writes where its replay's position says.

import type { Backend, Buf, DType } from '../backend';
import * as path from 'path';

import { loadNativeAddon, nativeKernelMethods } from './cpu';
import type { NativeKernels } from './cpu';

/** The `cuda` object of mmgpt_native (native/cuda/addon_cuda.cc). */
/**
 * copyBlock with the destination offset read on the device (a one-element int32 buffer), so a
 * captured graph can write at a position rewritten before each replay.
 */
type CopyBlockAt = (
  src: Buf,
  dst: Buf,
  outer: number,
  srcAxis: number,
  srcOffset: number,
  dstAxis: number,
  dstOffset: Buf,
  count: number,
  inner: number,
) => void;

interface NativeCuda extends NativeKernels {
  /** False where the addon was built without nvcc (then only `available` exists). */
  built: boolean;
  /** Compiled GPU code, e.g. "sm_80 sm_90 compute_90". */
  archs: string;
  /** Initialises the device once; the reason when it cannot. */
  available(): { available: boolean; reason?: string };
  info(): NativeCudaInfo;
  stats(): CudaStats;
  setSyncChecks(on: boolean): void;
  alloc(size: number, dtype: DType): Buf;
  free(buf: Buf): void;
  upload(data: Float32Array | Int32Array): Buf;
  download(buf: Buf, size: number, dtype: DType): Float32Array | Int32Array;
  sync(): void;
  // Graphs (absent from addons built before them).
  write?(buf: Buf, data: Float32Array | Int32Array): void;
  graphBegin?(): void;
  graphEnd?(): CudaGraph;
  graphAbort?(): void;
  graphLaunch?(graph: CudaGraph, lr: number, step: number, seeds: number[]): void;
  graphDestroy?(graph: CudaGraph): void;
  copyBlockAt?: CopyBlockAt;
}

/** A captured, instantiated graph (a handle of the addon, freed by `destroy` or the GC). */
export interface CudaGraph {
  /** Kernels, memsets and copies. */
  readonly nodes: number;
  /** Adam updates whose rate and bias corrections each launch sets. */
  readonly adamUpdates: number;
  /** Dropout masks whose seeds each launch sets. */
  readonly seeds: number;
  readonly indexChecks: number;
  /** Host data of captured uploads, copied again at every launch. */
  readonly uploadBytes: number;
  /** The dropout seeds the captured step drew, in order. */
  readonly capturedSeeds: readonly number[];
}

/** Stream capture and replay on the cuda backend. */
export interface CudaGraphApi {
  /** Copies host data into an existing buffer (inside a capture: replayed at every launch). */
  write(buf: Buf, data: Float32Array | Int32Array): void;
  /** Starts capturing: until `end`, kernels are recorded, not run. */
  begin(): void;
  /** The captured graph; throws with the reason when the capture failed. */
  end(): CudaGraph;
  /** Drops a capture in progress (after an exception inside it). */
  abort(): void;
  /** Queues a replay: Adam at rate lr and 1-based step (NaN: none), dropout seeds in order. */
  launch(graph: CudaGraph, lr: number, step: number, seeds: readonly number[]): void;
  /** Waits for the device and frees the graph. */
  destroy(graph: CudaGraph): void;
  /**
   * Backend.copyBlock (no accumulate) with the destination offset read from the device: the first
   * element of the int32 buffer `dstOffset` (a captured decode step's KV-cache write). An offset
   * outside 0..dstAxis-count writes nothing and is reported like a bad index. Null in addons built
   * before it.
   */
  copyBlockAt: CopyBlockAt | null;
}

interface NativeCudaInfo {
  name: string;
  device: number;
  computeCapability: string;
  multiProcessors: number;
  totalMemoryBytes: number;
  runtimeVersion: number;
  driverVersion: number;
  memoryPools: boolean;
  archs: string;
  syncChecks: boolean;
}

/** Counters of the addon since load (for tests and benchmarks). */
export interface CudaStats {
  allocs: number;
  frees: number;
  liveBuffers: number;
  liveBytes: number;
  peakBytes: number;
  uploads: number;
  uploadBytes: number;
  downloads: number;
  downloadBytes: number;
  launches: number;
  syncs: number;
  /** Replays of captured graphs (their kernels are not counted in `launches`). */
  graphLaunches: number;
}

export interface CudaBackendInfo extends NativeCudaInfo {
  /** True for the CPU emulator test build (native/cuda/emu), never for the real addon. */
  emulated: boolean;
}

/** Why the CUDA part of an addon cannot be used, or null if it can (initialises the device). */
function unavailableReason(cuda: NativeCuda | undefined): string | null {
  if (cuda === undefined) {
    return 'the native addon has no CUDA entry points (built before they existed): npm run build:native';
  }
  const status = cuda.available();
  if (status.available) return null;
  const reason = status.reason ?? 'unknown reason';
  return cuda.built && !reason.startsWith('built without') ? `no CUDA device: ${reason}` : reason;
}

/** The Backend over an addon's `cuda` object (exported for tests of the emulator build). */
function createCudaBackend(nat: NativeCuda): Backend {
  return {
    name: 'cuda',

    // ---- memory: device buffers ------------------------------------------------------------
    alloc: (size, dtype) => nat.alloc(size, dtype),
    free: (buf) => nat.free(buf),
    upload: (data) => nat.upload(data),
    download: (buf, size, dtype) => nat.download(buf, size, dtype),
    sync: () => nat.sync(),

    // ---- kernels: straight to the addon (shared with the cpu backend) ---------------------
    ...nativeKernelMethods(nat),
  };
}

type Loaded = { backend: Backend; cuda: NativeCuda; emulated: boolean } | { error: string };
let loaded: Loaded | null = null;

/** The addon holding the `cuda` entry points: mmgpt_native, or MMGPT_CUDA_ADDON's. */
function cudaAddon(): { cuda?: NativeCuda; emulated?: boolean } | { error: string } {
  const override = process.env.MMGPT_CUDA_ADDON;
  if (override !== undefined && override !== '') {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(path.resolve(override)) as { cuda?: NativeCuda; emulated?: boolean };
    } catch (e) {
      return { error: `loading MMGPT_CUDA_ADDON=${override} failed: ${(e as Error).message}` };
    }
  }
  const l = loadNativeAddon();
  if ('error' in l) return { error: `native addon unavailable: ${l.error}` };
  return l.addon as unknown as { cuda?: NativeCuda };
}

function load(): Loaded {
  if (loaded !== null) return loaded;
  const addon = cudaAddon();
  if ('error' in addon) {
    loaded = addon;
    return loaded;
  }
  const cuda = addon.cuda;
  try {
    const reason = unavailableReason(cuda);
    if (reason !== null || cuda === undefined) {
      loaded = { error: reason ?? 'no CUDA entry points' };
      return loaded;
    }
    if (process.env.MMGPT_CUDA_SYNC_CHECKS === '0') cuda.setSyncChecks(false);
    loaded = { backend: createCudaBackend(cuda), cuda, emulated: addon.emulated === true };
  } catch (e) {
    loaded = { error: `initialising CUDA failed: ${(e as Error).message}` };
  }
  return loaded;
}

/** The cuda backend, or the reason it is unavailable (built without CUDA, no device, ...). */
export function loadCudaBackend(): Backend | { error: string } {
  const l = load();
  return 'error' in l ? l : l.backend;
}

/** The device, runtime and build the cuda backend uses, or the reason it is unavailable. */
export function cudaBackendInfo(): CudaBackendInfo | { error: string } {
  const l = load();
  if ('error' in l) return l;
  return { ...l.cuda.info(), emulated: l.emulated };
}

/** Allocation, copy and launch counters of the cuda backend, or why it is unavailable. */
export function cudaStats(): CudaStats | { error: string } {
  const l = load();
  return 'error' in l ? l : l.cuda.stats();
}

/**
 * true (default): gather, scatterAdd and crossEntropy wait for their kernel and throw on a bad
 * index at once; false: the check happens at the next download/sync/sumSquares.
 */
export function setCudaSyncChecks(on: boolean): void {
  const l = load();
  if ('error' in l) throw new Error(`cuda backend unavailable: ${l.error}`);
  l.cuda.setSyncChecks(on);
}

/** The graph entry points of the cuda backend, or why there are none. */
export function cudaGraphApi(): CudaGraphApi | { error: string } {
  const l = load();
  if ('error' in l) return l;
  const c = l.cuda;
  const { write, graphBegin, graphEnd, graphAbort, graphLaunch, graphDestroy } = c;
  if (!write || !graphBegin || !graphEnd || !graphAbort || !graphLaunch || !graphDestroy)
    return { error: 'the cuda addon has no graph entry points (built before them)' };
  return {
    write: (buf, data) => write.call(c, buf, data),
    begin: () => graphBegin.call(c),
    end: () => graphEnd.call(c),
    abort: () => graphAbort.call(c),
    launch: (graph, lr, step, seeds) => graphLaunch.call(c, graph, lr, step, [...seeds]),
    destroy: (graph) => graphDestroy.call(c, graph),
    copyBlockAt: c.copyBlockAt ? c.copyBlockAt.bind(c) : null,
  };
}
