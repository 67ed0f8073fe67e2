// Which backend runs the kernels: `MMGPT_BACKEND=js|cpu|cuda`, or `setBackend(name)`.
//
// The default is the fastest one available (cuda, then cpu, then js). If the native addon is
// missing the engine warns once and falls back to the reference backend; an explicit request for
// a backend that cannot load is an error that says why.

import type { Backend } from './backend';
import { jsBackend } from './backends/js';

export type BackendName = 'js' | 'cpu' | 'cuda';
export const BACKEND_NAMES: readonly BackendName[] = ['js', 'cpu', 'cuda'];

let current: Backend | null = null;
let warned = false;

/** Tries to load a backend; returns it or the reason it is unavailable. */
export function loadBackend(name: BackendName): Backend | { error: string } {
  if (name === 'js') return jsBackend;
  try {
    if (name === 'cpu') {
      // Required lazily so that a missing addon never breaks importing the engine.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('./backends/cpu') as { loadCpuBackend(): Backend | { error: string } };
      return mod.loadCpuBackend();
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('./backends/cuda') as { loadCudaBackend(): Backend | { error: string } };
    return mod.loadCudaBackend();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function isBackend(b: Backend | { error: string }): b is Backend {
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

/**
 * Installs a backend instance for tensors created from now on: one built outside the registry,
 * such as a web page's, which has no native addon and no environment to choose from.
 */
export function useBackend(b: Backend): void {
  current = b;
}

/** The names of the backends that load on this machine. */
export function availableBackends(): BackendName[] {
  return BACKEND_NAMES.filter((n) => isBackend(loadBackend(n)));
}

function chooseDefault(): Backend {
  const requested = process.env.MMGPT_BACKEND;
  if (requested !== undefined && requested !== '') return setBackend(requested);
  for (const name of ['cuda', 'cpu'] as const) {
    const b = loadBackend(name);
    if (isBackend(b)) return b;
    if (name === 'cpu' && !warned) {
      warned = true;
      process.stderr.write(
        `mmgpt: native cpu backend unavailable (${b.error}); using the slow reference backend. ` +
          `Build it with: npm run build:native\n`,
      );
    }
  }
  return jsBackend;
}

/** The current backend (chosen on first use). */
export function getBackend(): Backend {
  if (current === null) current = chooseDefault();
  return current;
}
