// Layers, optimisers, schedules, the seeded RNG and safetensors I/O.

export * from './module';
export * from './optim';
export * from './muon';
export { Rng } from './rng';
