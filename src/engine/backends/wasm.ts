// The wasm backend: the Backend interface (../backend.ts) on the CPU kernels of native/src/
// kernels.inl compiled to WebAssembly SIMD128 (native/wasm/, built by build-wasm.js into
// native/build-wasm/mmgpt_kernels.wasm), one thread, in Node and in a browser.
//
// Buffers are handles into the module's linear memory (wasm/memory.ts: pointer, element count,
// dtype), like the cuda backend's device handles: upload/download copy, free returns the block to
// the module's malloc. Every kernel checks its arguments in TypeScript with the cpu addon's
// messages (wasm/args.ts, wasm/kernels.ts) before calling the module, whose C entry points check
// nothing. The module is standalone (no emscripten JS glue): its one import,
// emscripten_notify_memory_growth, needs nothing done (views follow the memory's growth lazily).
//
// Browser-safe: no Node built-ins here or below (wasm_node.ts reads the file in Node). The page
// compiles the bytes with createWasmBackend (asynchronous, allowed on a browser's main thread);
// Node may use createWasmBackendSync. One thread: a static page has no SharedArrayBuffer.

import type { Backend, Buf, DType } from '../backend';
import { Args, describe } from './wasm/args';
import { wasmKernelMethods } from './wasm/kernels';
import { WasmBuffer, WasmMemory } from './wasm/memory';
import type { KernelExports } from './wasm/memory';

/** The bytes of a .wasm file (DOM's BufferSource). */
export type BufferSource = ArrayBuffer | ArrayBufferView;

/** The part of the WebAssembly JS API used here (the compile target's lib has no DOM types). */
interface WebAssemblyApi {
  Module: new (bytes: BufferSource) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  instantiate(bytes: BufferSource, imports: object): Promise<{ instance: { exports: unknown } }>;
}

const IMPORTS = { env: { emscripten_notify_memory_growth: (): void => {} } };

function webAssembly(): WebAssemblyApi {
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (api === undefined) throw new Error('this JavaScript engine has no WebAssembly');
  return api;
}

/** The module's exports, checked to be mmgpt_kernels.wasm's (a clear error for another file). */
function kernelExports(exports: unknown): KernelExports {
  const x = exports as Partial<KernelExports>;
  for (const name of ['memory', 'malloc', 'calloc', 'free', 'mmgpt_matmul', 'mmgpt_adam_multi']) {
    if (!(name in x)) {
      throw new Error(
        `not mmgpt's kernel module: it does not export '${name}' (rebuild it: node native/wasm/build-wasm.js)`,
      );
    }
  }
  const full = x as KernelExports;
  full._initialize(); // the module's static constructors (a reactor module's entry)
  return full;
}

/** The wasm backend on a compiled module (compiled asynchronously: fine on a page's main thread). */
export async function createWasmBackend(bytes: BufferSource): Promise<Backend> {
  const { instance } = await webAssembly().instantiate(bytes, IMPORTS);
  return makeWasmBackend(kernelExports(instance.exports));
}

/** The wasm backend, compiled synchronously (Node; a browser allows it only off the main thread). */
export function createWasmBackendSync(bytes: BufferSource): Backend {
  const api = webAssembly();
  const instance = new api.Instance(new api.Module(bytes), IMPORTS);
  return makeWasmBackend(kernelExports(instance.exports));
}

/** The GEMM register tile [rows, columns] of a wasm backend (for reporting). */
export function wasmGemmTile(backend: Backend): [number, number] | null {
  const mem = memories.get(backend);
  return mem ? [mem.x.mmgpt_gemm_tile(0), mem.x.mmgpt_gemm_tile(1)] : null;
}

const memories = new WeakMap<Backend, WasmMemory>();

function makeWasmBackend(x: KernelExports): Backend {
  const mem = new WasmMemory(x);
  const backend: Backend = {
    name: 'wasm',

    // ---- memory: blocks of the module's malloc ---------------------------------------------
    alloc(size: number, dtype: DType): Buf {
      const c = new Args(mem, 'alloc');
      const n = c.size(size, 'size');
      const isFloat = c.isFloatDtype(dtype);
      return mem.newBuffer(n, isFloat ? 'float32' : 'int32', true, 'alloc');
    },
    free(buf: Buf): void {
      if (!(buf instanceof WasmBuffer) || buf.memory !== mem) {
        throw new TypeError(`free: buf must be a wasm buffer, got ${describe(buf)}`);
      }
      mem.release(buf);
    },
    upload(data: Float32Array | Int32Array): Buf {
      const isFloat = data instanceof Float32Array;
      if (!isFloat && !(data instanceof Int32Array)) {
        throw new TypeError(
          `upload: data must be a Float32Array or Int32Array, got ${describe(data)}`,
        );
      }
      const buf = mem.newBuffer(data.length, isFloat ? 'float32' : 'int32', false, 'upload');
      const heap = mem.heap();
      (isFloat ? heap.f32 : heap.i32).set(data, buf.ptr / 4);
      return buf;
    },
    download(buf: Buf, size: number, dtype: DType): Float32Array | Int32Array {
      const c = new Args(mem, 'download');
      const n = c.size(size, 'size');
      const want = c.isFloatDtype(dtype) ? 'float32' : 'int32';
      const b = c.buf(buf, 'buffer', null, 0);
      if (b.dtype !== want) c.typeError(`buffer holds ${b.dtype} but dtype '${want}' was given`);
      if (b.size < n) c.rangeError(`download of ${n} elements from a buffer of ${b.size}`);
      const heap = mem.heap();
      const start = b.ptr / 4;
      return (want === 'float32' ? heap.f32 : heap.i32).slice(start, start + n);
    },
    sync(): void {
      // Synchronous backend.
    },

    // ---- kernels: checked in TypeScript, then the module's entry points ----------------------
    ...wasmKernelMethods(mem),
  };
  memories.set(backend, mem);
  return backend;
}
