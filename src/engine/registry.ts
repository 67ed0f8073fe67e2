// Which backend runs the kernels: `MMGPT_BACKEND=js|cpu|cuda|wasm`, `setBackend(name)`, or an
// instance installed with `useBackend` (a web page, after compiling the wasm module itself).
//
// The default is the fastest one available: cuda, then cpu, then wasm (the same CPU kernels
// compiled to WebAssembly: one thread, no native addon needed), then js. Falling back from the
// native addon to wasm says so in one line on stderr; falling back to the slow reference backend
// warns once. An explicit request for a backend that cannot load is an error that says why.
// Browser-safe: `process` is only touched behind typeof checks, and the backends that need Node
// (cpu, cuda, wasm's file loader) are required lazily, when asked for.

import type { Backend, HostSampler } from './backend';
import { jsBackend } from './backends/js';

export type BackendName = 'js' | 'cpu' | 'cuda' | 'wasm';
export const BACKEND_NAMES: readonly BackendName[] = ['js', 'cpu', 'cuda', 'wasm'];

let current: Backend | null = null;
let warned = false;

type Loaded = Backend | { error: string };

/** Tries to load a backend; returns it or the reason it is unavailable. */
export function loadBackend(name: BackendName): Loaded {
  if (name === 'js') return jsBackend;
  try {
    // Required lazily so that a missing addon never breaks importing the engine.
    if (name === 'cpu') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./backends/cpu') as { loadCpuBackend(): Loaded };
      return mod.loadCpuBackend();
    }
    if (name === 'wasm') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./backends/wasm_node') as { loadWasmBackend(): Loaded };
      return mod.loadWasmBackend();
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('./backends/cuda') as { loadCudaBackend(): Loaded };
    return mod.loadCudaBackend();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

let sampler: HostSampler | null | undefined;

/**
 * The native addon's host sampler (src/sampling/choose.ts), whichever backend runs the kernels;
 * null where the addon does not load (a web page, an unbuilt addon) or MMGPT_HOST_SAMPLER=js.
 */
export function hostSampler(): HostSampler | null {
  if (sampler !== undefined) return sampler;
  sampler = null;
  if (typeof process !== 'undefined' && process.env?.MMGPT_HOST_SAMPLER === 'js') return sampler;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('./backends/cpu') as { loadHostSampler?: () => HostSampler | null };
    sampler = mod.loadHostSampler?.() ?? null; // (the page's stand-in module has no such loader)
  } catch {
    sampler = null;
  }
  return sampler;
}

/**
 * Installs a host sampler, or none (null: the TypeScript sampler alone), in place of the addon's;
 * undefined restores the default. For tests and benchmarks comparing the two.
 */
export function setHostSampler(s: HostSampler | null | undefined): void {
  sampler = s;
}

export function isBackend(b: Loaded): b is Backend {
  return (b as Backend).alloc !== undefined;
}

/** Selects the backend for tensors created from now on. Throws if it is unavailable. */
export function setBackend(name: string): Backend {
  if (!BACKEND_NAMES.includes(name as BackendName)) {
    throw new Error(`unknown backend '${name}': choose one of ${BACKEND_NAMES.join(', ')}`);
  }
  const b = loadBackend(name as BackendName);
  if (!isBackend(b)) throw new Error(`backend '${name}' is unavailable: ${b.error}`);
  current = b;
  return b;
}

/** Installs a backend instance for tensors created from now on (e.g. one from createWasmBackend). */
export function useBackend(b: Backend): void {
  current = b;
}

/** The names of the backends that load on this machine. */
export function availableBackends(): BackendName[] {
  return BACKEND_NAMES.filter((n) => isBackend(loadBackend(n)));
}

/** One line for the person running this: stderr in Node, the console elsewhere. */
function notice(line: string): void {
  if (typeof process !== 'undefined' && process.stderr !== undefined) {
    process.stderr.write(`${line}\n`);
  } else {
    console.warn(line);
  }
}

function chooseDefault(): Backend {
  const env = typeof process !== 'undefined' ? process.env : undefined;
  const requested = env?.MMGPT_BACKEND;
  if (requested !== undefined && requested !== '') return setBackend(requested);
  let cpuError = '';
  for (const name of ['cuda', 'cpu'] as const) {
    const b = loadBackend(name);
    if (isBackend(b)) return b;
    if (name === 'cpu') cpuError = b.error;
  }
  const wasm = loadBackend('wasm');
  if (!warned) {
    warned = true;
    notice(
      isBackend(wasm)
        ? `mmgpt: native cpu backend unavailable (${cpuError}); using the wasm backend (the same ` +
            'kernels in WebAssembly, one thread). Build the native one with: npm run build:native'
        : `mmgpt: native cpu backend unavailable (${cpuError}) and wasm backend unavailable ` +
            `(${wasm.error}); using the slow reference backend. Build it with: npm run build:native`,
    );
  }
  return isBackend(wasm) ? wasm : jsBackend;
}

/** The current backend (chosen on first use). */
export function getBackend(): Backend {
  if (current === null) current = chooseDefault();
  return current;
}
