#!/usr/bin/env bash
# The one script that measures the CUDA backend on a GPU machine: correctness, then the benchmark
# against PyTorch on the same GPU, then a per-kernel profile. Writes everything under $OUT.
#
# Prepare on the development machine (nvcc there, no GPU), from the repository root:
#   npm run build && npm run build:native
#   mkdir -p .device && [ -f .device/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .device/node.xz
# Run on the GPU machine (carry: .device, dist, native/build/Release/mmgpt_native.node):
#   bash native/cuda/gpu-check.sh            # ~5-7 min on an H100; OUT defaults to /tmp/mmgpt-gpu
#
# Results ($OUT): info.json (device, build), tests.tap (cuda kernels and the fused training-step
# kernels vs the js reference, a step with clipping that reads nothing back (its launches per
# step), a 20-step training run vs the cpu backend), engine-tests.tap (GPT training incl. bit-identical
# resume, module and VQ-VAE tests on the cuda backend), cuda-B.json / cuda-B-lazy.json (training
# step, batch B, index checks synchronous / deferred), profile-32.json (where the time goes),
# torch.json (PyTorch eager + torch.compile, same model), h100.json (one summary of the
# figures above), log.txt.

set -u
cd "$(dirname "$0")/../.."
export OUT="${OUT:-/tmp/mmgpt-gpu}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1

if ! command -v node >/dev/null 2>&1; then
  mkdir -p /tmp/bin && xz -dc .device/node.xz > /tmp/bin/node && chmod +x /tmp/bin/node
  export PATH=/tmp/bin:$PATH
fi
for f in dist/src/engine/backends/cuda.js native/build/Release/mmgpt_native.node; do
  [ -f "$f" ] || { echo "missing $f: build it on the development machine and carry it"; exit 2; }
done

step() { echo; echo "=== $* ($(date +%T))"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.csv"
node -e "
const c = require('./dist/src/engine/backends/cuda');
const info = c.cudaBackendInfo();
console.log(JSON.stringify(info, null, 1));
require('fs').writeFileSync(process.env.OUT + '/info.json', JSON.stringify(info, null, 1));
if ('error' in info) process.exit(1);
" || { echo "cuda backend unavailable: stopping"; exit 1; }

step "kernel tests (cuda vs js reference, fused kernels, no host sync in a step; 20-step training vs cpu)"
timeout 300 node --test --test-reporter=tap dist/test/engine/cuda_backend.test.js \
  dist/test/engine/backends.test.js dist/test/engine/backends_fused.test.js > "$OUT/tests.tap" 2>&1
echo "exit $?"; grep -E "^# (tests|pass|fail|skipped)|^not ok|^# (reference|cuda|per step)" "$OUT/tests.tap"

step "engine tests on the cuda backend"
MMGPT_TEST_BACKEND=cuda timeout 300 node --test --test-reporter=tap \
  dist/test/gpt/train.test.js dist/test/nn/module.test.js dist/test/vqvae/vqvae.test.js \
  > "$OUT/engine-tests.tap" 2>&1
echo "exit $?"; grep -E "^# (tests|pass|fail|skipped)|^not ok" "$OUT/engine-tests.tap"

step "training step benchmark (ours)"
for B in 32 256; do
  timeout 150 node dist/bench/run_backend.js --backend cuda --batch $B --budget-ms 6000 --forward \
    | tail -1 > "$OUT/cuda-$B.json"
  MMGPT_CUDA_SYNC_CHECKS=0 timeout 150 node dist/bench/run_backend.js --backend cuda --batch $B \
    --budget-ms 6000 | tail -1 > "$OUT/cuda-$B-lazy.json"
  node -e "
for (const f of ['cuda-$B.json', 'cuda-$B-lazy.json']) {
  try { const r = JSON.parse(require('fs').readFileSync(process.env.OUT + '/' + f, 'utf8'));
        console.log(f, 'ms/step', r.train.msPerStep.toFixed(3), 'loss', r.train.lastLoss.toFixed(4),
                    r.forward ? 'forward b1 ms ' + r.forward.msMedian.toFixed(3) : ''); }
  catch (e) { console.log(f, 'failed:', e.message); }
}"
done

step "profile, batch 32"
timeout 150 node -e "
const { profileTrainStep } = require('./dist/src/perf/profile');
const p = profileTrainStep({ backend: 'cuda', batch: 32, steps: 10, warmup: 3 });
require('fs').writeFileSync(process.env.OUT + '/profile-32.json', JSON.stringify(p, null, 1));
console.log('ms/step', p.msPerStep.toFixed(3), 'phases', JSON.stringify(p.phases), 'kernel fraction', p.kernelFraction.toFixed(3));
const calls = p.kernels.reduce((n, k) => n + k.calls, 0) / p.steps;
console.log('kernel calls per step', calls.toFixed(0));
for (const k of p.kernels.slice(0, 15)) console.log((k.totalMs / p.steps).toFixed(3).padStart(8), 'ms/step', String(k.calls / p.steps).padStart(5), 'calls', k.name);
for (const k of p.matmulShapes.slice(0, 10)) console.log((k.totalMs / p.steps).toFixed(3).padStart(8), 'ms/step', (k.flops / k.totalMs / 1e6).toFixed(0).padStart(6), 'GFLOP/s', k.name);
"

step "PyTorch on the same GPU"
PY=python3
timeout 300 $PY bench/torch_step.py --device cuda --batch 32,256 --compile --forward --budget-s 5 \
  | tail -1 > "$OUT/torch.json"
cat "$OUT/torch.json"

step "summary"
node -e "
const fs = require('fs');
const read = (f) => { try { return JSON.parse(fs.readFileSync(process.env.OUT + '/' + f, 'utf8')); } catch { return null; } };
const info = read('info.json') || {};
const torch = read('torch.json') || {};
const ours = {}, lazy = {};
for (const b of ['32', '256']) {
  const r = read('cuda-' + b + '.json'); if (r) ours[b] = r.train.msPerStep;
  const l = read('cuda-' + b + '-lazy.json'); if (l) lazy[b] = l.train.msPerStep;
}
const summary = {
  machine: (info.name || '?') + ', CUDA runtime ' + info.runtimeVersion + ', driver ' + info.driverVersion,
  cuda: ours,
  cuda_deferred_index_checks: lazy,
  torch_eager: torch.eager || null,
  torch_compile: torch.compile || null,
  torch_version: torch.torch || null,
};
fs.writeFileSync(process.env.OUT + '/h100.json', JSON.stringify(summary, null, 1) + '\n');
console.log(JSON.stringify(summary, null, 1));
"
