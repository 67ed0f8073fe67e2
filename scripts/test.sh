#!/usr/bin/env bash
# All tests: set-up, the formatting check, every test file under test/ (node's test runner), then
# the CUDA graph tests (the training and the decode step) on the CPU emulator of the CUDA kernels
# (capture, replay and the refusals a driver gives run without a GPU; the cuda suites themselves
# skip where no device is found).
# MMGPT_SKIP_NATIVE=1 skips the emulator step with the addon.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent lint
npm test
if [ "${MMGPT_SKIP_NATIVE:-0}" != "1" ]; then
  echo "test: the CUDA graph tests on the emulator (native/cuda/emu)"
  node native/cuda/emu/build-emu.js
  MMGPT_CUDA_ADDON=native/build/cuda-emu/mmgpt_cuda_emu.node node --test dist/test/engine/cuda_graphs.test.js \
    dist/test/engine/cuda_decode_graphs.test.js
fi
