// The timed training step, batch-1 forward and per-kernel profile of the original recipe's
// model, for the scripts that load them from here (native/cuda/gpu-check.sh,
// test/engine/cuda_backend.test.ts): they live in src/perf/train_step.ts and src/perf/profile.ts.

export * from '../src/perf/train_step';
export * from '../src/perf/profile';
