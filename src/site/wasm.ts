// The page's handle on the engine's wasm backend (src/engine/backends/wasm.ts): the bundle
// (bundle.ts) replaces this module by a re-export of that backend's factory when the engine has
// one; here, and in a bundle built without it, there is none and the page runs the js backend.

import type { Backend } from '../engine/backend';

/** Compiles the kernels' .wasm bytes into a backend. */
export type WasmBackendFactory = (bytes: BufferSource) => Promise<Backend>;

export const createWasmBackend = null as WasmBackendFactory | null;
