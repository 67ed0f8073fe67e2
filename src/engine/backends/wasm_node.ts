// The wasm backend in Node: reads native/build-wasm/mmgpt_kernels.wasm (built by
// native/wasm/build-wasm.js) from the project root and compiles it once. The browser-safe
// backend itself is wasm.ts; this file is its Node-only loader (fs, path), kept apart so a page's
// bundle never includes it.
//
// Notable choices: `loadWasmBackend` never throws: it returns the backend or the reason it is
// unavailable (registry.ts decides whether that is a notice or an error). MMGPT_WASM_MODULE=<path>
// loads another build of the module (a missing path makes the backend unavailable, which is how
// the registry's tests simulate a machine without emscripten).

import * as fs from 'fs';
import * as path from 'path';
import type { Backend } from '../backend';
import { findProjectRoot } from '../../paths';
import { createWasmBackendSync } from './wasm';

const MODULE_RELATIVE_PATH = path.join('native', 'build-wasm', 'mmgpt_kernels.wasm');

/** Where the module is read from: $MMGPT_WASM_MODULE, else <project>/native/build-wasm/. */
export function wasmModulePath(): string | { error: string } {
  const override = process.env.MMGPT_WASM_MODULE;
  if (override !== undefined && override !== '') return path.resolve(override);
  const root = findProjectRoot();
  if (root === null) {
    return {
      error: `no mmgpt package.json found above ${__dirname}, so native/ cannot be located`,
    };
  }
  return path.join(root, MODULE_RELATIVE_PATH);
}

let loaded: Backend | { error: string } | null = null;

/** The wasm backend, or the reason it is unavailable (module not built, not loadable). */
export function loadWasmBackend(): Backend | { error: string } {
  if (loaded !== null) return loaded;
  const file = wasmModulePath();
  if (typeof file !== 'string') {
    loaded = file;
  } else if (!fs.existsSync(file)) {
    loaded = {
      error:
        `the wasm kernels are not built (${file} is missing; build them with ` +
        'node native/wasm/build-wasm.js, which needs emscripten)',
    };
  } else {
    try {
      loaded = createWasmBackendSync(fs.readFileSync(file));
    } catch (e) {
      loaded = { error: `loading ${file} failed: ${(e as Error).message}` };
    }
  }
  return loaded;
}
