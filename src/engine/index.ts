// The engine's public surface: tensors, ops, scopes and backend selection.

export * from './backend';
export { Tensor, tidy, keep, noGrad, isGradEnabled, memoryStats } from './tensor';
export type { MemoryStats, Node } from './tensor';
export * as F from './ops';
export {
  setBackend,
  getBackend,
  useBackend,
  availableBackends,
  loadBackend,
  BACKEND_NAMES,
} from './registry';
export type { BackendName } from './registry';
