// The wasm backend's memory: the module's exports (native/wasm/exports.cc), buffer handles into
// its linear memory, and typed-array views of that memory that follow its growth.
//
// A buffer is a WasmBuffer: a handle (pointer, element count, dtype) to a block of the module's
// malloc, like the cuda backend's device handles; the engine moves data in and out only through
// upload/download. Any malloc, the kernels' own scratch included, may grow the memory, which
// detaches the old ArrayBuffer: `heap()` re-makes the views whenever the buffer has changed, so
// every read or write goes through a fresh view.
// Notable choices: a handle the engine never frees is freed when it is garbage collected
// (FinalizationRegistry, where the JS engine has one), as the cuda backend does; free() is
// idempotent. Browser-safe: no Node built-ins.

import type { DType } from '../../backend';

/** What mmgpt_kernels.wasm exports (sizes are f64, pointers and flags i32; see exports.cc). */
export interface KernelExports {
  memory: { buffer: ArrayBuffer };
  _initialize(): void;
  malloc(bytes: number): number;
  calloc(count: number, bytes: number): number;
  free(ptr: number): void;
  mmgpt_gemm_tile(which: number): number;
  mmgpt_fill32(out: number, n: number, bits: number): void;
  mmgpt_copy_block(...args: number[]): void;
  mmgpt_binary(
    op: number,
    a: number,
    b: number,
    out: number,
    rank: number,
    shape: number,
    aStrides: number,
    bStrides: number,
  ): void;
  mmgpt_unary(op: number, x: number, out: number, n: number): void;
  mmgpt_unary_backward(...args: number[]): void;
  mmgpt_affine(x: number, out: number, n: number, alpha: number, beta: number): void;
  mmgpt_axpy(x: number, y: number, n: number, alpha: number): void;
  mmgpt_sum_squares(x: number, n: number): number;
  mmgpt_sum_axis(...args: number[]): void;
  mmgpt_broadcast_axis(...args: number[]): void;
  mmgpt_permute(x: number, out: number, rank: number, shape: number, perm: number): void;
  mmgpt_matmul(...args: number[]): void;
  mmgpt_gather(table: number, idx: number, out: number, rows: number, d: number): void;
  mmgpt_scatter_add(g: number, idx: number, gTable: number, rows: number, d: number): void;
  mmgpt_layer_norm(...args: number[]): void;
  mmgpt_layer_norm_backward(...args: number[]): void;
  mmgpt_softmax(x: number, out: number, rows: number, n: number, causalTq: number): void;
  mmgpt_softmax_backward(y: number, gy: number, gx: number, rows: number, n: number): void;
  mmgpt_cross_entropy(...args: number[]): void;
  mmgpt_cross_entropy_backward(...args: number[]): void;
  mmgpt_dropout_mask(out: number, n: number, p: number, seed: number): void;
  mmgpt_im2col(...args: number[]): void;
  mmgpt_col2im(...args: number[]): void;
  mmgpt_nearest_code(...args: number[]): void;
  mmgpt_adam(...args: number[]): void;
  mmgpt_cross_entropy_mean(...args: number[]): void;
  mmgpt_bias_gelu(x: number, bias: number, out: number, rows: number, n: number): void;
  mmgpt_bias_gelu_backward(...args: number[]): void;
  mmgpt_add_layer_norm(...args: number[]): void;
  mmgpt_attention(...args: number[]): void;
  mmgpt_attention_backward(...args: number[]): void;
  mmgpt_adam_multi(...args: number[]): number;
}

/** A buffer of the wasm backend: `size` elements of `dtype` at byte offset `ptr` of its memory. */
export class WasmBuffer {
  freed = false;
  constructor(
    readonly memory: WasmMemory,
    readonly ptr: number,
    readonly size: number,
    readonly dtype: DType,
  ) {}
}

/** Typed-array views of the whole memory (element index = byte offset / 4 or / 8). */
export interface Heap {
  f32: Float32Array;
  i32: Int32Array;
  u32: Uint32Array;
  f64: Float64Array;
}

/** The largest buffer, in elements: 4-byte elements in a 32-bit (4 GiB) memory. */
const MAX_ELEMENTS = 2 ** 30 - 1;

type Registry = { register(target: object, held: number, token: object): void } & {
  unregister(token: object): void;
};

/** The module's memory, its allocator and its buffers. */
export class WasmMemory {
  private views: Heap;
  private scratchPtr = 0;
  private scratchBytes = 0;
  private readonly registry: Registry | null;

  constructor(readonly x: KernelExports) {
    this.views = this.makeViews();
    const Finalizer = (
      globalThis as { FinalizationRegistry?: new (cb: (ptr: number) => void) => Registry }
    ).FinalizationRegistry;
    this.registry = Finalizer ? new Finalizer((ptr) => x.free(ptr)) : null;
  }

  private makeViews(): Heap {
    const buffer = this.x.memory.buffer;
    return {
      f32: new Float32Array(buffer),
      i32: new Int32Array(buffer),
      u32: new Uint32Array(buffer),
      f64: new Float64Array(buffer),
    };
  }

  /** Views of the current memory (re-made after the memory has grown). */
  heap(): Heap {
    if (this.views.f32.buffer !== this.x.memory.buffer) this.views = this.makeViews();
    return this.views;
  }

  /** A new buffer of `size` elements, zero-filled or not; RangeError when it cannot exist. */
  newBuffer(size: number, dtype: DType, zero: boolean, fn: string): WasmBuffer {
    if (size > MAX_ELEMENTS) {
      throw new RangeError(
        `${fn}: size ${size} is too large (wasm memory holds at most 2^30 elements)`,
      );
    }
    const count = Math.max(size, 1); // a unique, non-null block even for 0 elements
    const ptr = (zero ? this.x.calloc(count, 4) : this.x.malloc(count * 4)) >>> 0;
    if (ptr === 0) throw new RangeError(`${fn}: out of wasm memory allocating ${size * 4} bytes`);
    const buf = new WasmBuffer(this, ptr, size, dtype);
    this.registry?.register(buf, ptr, buf);
    return buf;
  }

  /** Returns a buffer's block to malloc (a second free does nothing). */
  release(buf: WasmBuffer): void {
    if (buf.freed) return;
    buf.freed = true;
    this.registry?.unregister(buf);
    this.x.free(buf.ptr);
  }

  /**
   * A block of at least `bytes` bytes (8-byte aligned), reused across calls, for the argument
   * arrays of one kernel call (shapes, strides, per-tensor lists); take heap() after it.
   */
  scratch(bytes: number): number {
    if (bytes > this.scratchBytes) {
      if (this.scratchPtr !== 0) this.x.free(this.scratchPtr);
      const size = Math.max(bytes, 1024);
      this.scratchPtr = this.x.malloc(size) >>> 0;
      if (this.scratchPtr === 0) {
        this.scratchBytes = 0;
        throw new RangeError(`out of wasm memory allocating ${size} bytes of arguments`);
      }
      this.scratchBytes = size;
    }
    return this.scratchPtr;
  }

  /** Writes lists of numbers as consecutive float64 arrays in the scratch block: their pointers. */
  doubles(lists: readonly (readonly number[])[]): number[] {
    const total = lists.reduce((s, l) => s + l.length, 0);
    const base = this.scratch(total * 8);
    const { f64 } = this.heap();
    const ptrs: number[] = [];
    let at = base;
    for (const list of lists) {
      ptrs.push(at);
      f64.set(list, at / 8);
      at += list.length * 8;
    }
    return ptrs;
  }
}
