#!/usr/bin/env bash
# The one script that measures mmgpt on a GPU host (one H100/H200, no Node, no registry): the
# device, the cuda kernel and graph tests, the training step against PyTorch eager and
# torch.compile on the same GPU and replayed as a CUDA graph against eager, KV-cached decoding
# (step by step, and each step one CUDA graph replay) against uncached, and 9 images from a
# caption with graphs on and off, `mmgpt eval --n 1000` of weights/best and the
# `original` pipeline end to end. Each step has its own time limit; a failed step does not stop
# the later ones, its exit status goes into the summary. Takes about 8 minutes on an H100/H200.
#
#   bash native/cuda/gpu-check.sh --prepare   # development machine (nvcc, no GPU needed): fills
#                                             # .device/ with node.xz and payload.tar.xz
#   bash native/cuda/gpu-check.sh             # GPU host; carry only .device
#   MMGPT_GPU_CHECK_DRY=1 OUT=/tmp/gpucheck-dry bash native/cuda/gpu-check.sh
#       # the same steps on the cpu backend with tiny sizes (tiny preset, eval --n 20, 2 bench
#       # steps, PyTorch on the CPU only where python3 imports torch): checks this script's logic
#
# Results in $OUT (default /tmp/mmgpt-gpu), three files: summary.json (device, each step's exit
# status and wall time, the headline numbers; written by gpu-summary.js, which also prints them
# as a table at the end), log.txt (everything printed), gpu-check.tar.gz (each step's log and
# JSON, the test TAP, the eval report and the pipeline's run folder: checkpoint, summary.json,
# training curve, grids, report). Writes nothing into the checkout outside the ignored folders
# (data/ caches; the coloured dataset's cache, dist/ and native/build/ unpacked from the payload
# when they are missing).
# docs/performance.md ("Measuring on a GPU host") says how to prepare, run and read it.

set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
ADDON=native/build/Release/mmgpt_native.node
DATASET=data/cmnist-v2/seed-0 # the coloured dataset's cache (src/data/coloured.ts), seed 0
LIMIT_MIB=64 # what the device machine takes along: tracked files and carried paths together
# The test files and bench scripts the run executes: the payload carries these (with the tests'
# helpers), not the others (`mmgpt bench` runs dist/bench/run_backend.js).
KERNEL_TESTS=(dist/test/engine/cuda_backend.test.js dist/test/engine/cuda_graphs.test.js
  dist/test/engine/cuda_decode_graphs.test.js dist/test/engine/backends.test.js
  dist/test/engine/backends_fused.test.js)
ENGINE_TESTS=(dist/test/gpt/train.test.js dist/test/nn/module.test.js dist/test/vqvae/vqvae.test.js)
BENCH_SCRIPTS=(dist/bench/run_backend.js dist/bench/graph_step.js dist/bench/sampling.js)

# --- development machine: .device/node.xz and .device/payload.tar.xz -------------------------
prepare() {
  set -e
  [ -f dist/src/index.js ] || { echo "dist/ missing: run npm run build"; exit 2; }
  [ -f "$ADDON" ] || { echo "$ADDON missing: run npm run build:native (with nvcc)"; exit 2; }
  local info
  info=$(node -e "console.log(JSON.stringify(require('./dist/src/engine/backends/cuda').cudaBackendInfo()))")
  case "$info" in
    *"built without CUDA"*) echo "the addon has no CUDA kernels: $info"; exit 2 ;;
  esac
  # H100 and H200 are sm_90: the sm_80 code travels for nothing (the kernels' archive, xz'd, is
  # 0.25 MiB for sm_80 + sm_90 + PTX and 0.19 MiB for sm_90 + PTX).
  case "$(node -p "require('./$ADDON').cuda.archs")" in
    *sm_80*) echo "hint: MMGPT_CUDA_ARCHS=90 npm run build:native packs about 70 KB less" ;;
  esac
  mkdir -p .device
  # An older .device/node.xz without the x86 filter is made again (it is 0.7 MiB larger).
  if [ -f .device/node.xz ] && ! xz --robot -lvv .device/node.xz | grep -q -- '--x86'; then
    rm .device/node.xz
  fi
  if [ ! -f .device/node.xz ]; then
    # Stripped of its debug symbols (a seventh smaller), then xz with the x86 branch filter
    # (call targets made position-independent: 3.5% smaller than plain xz -9) at 9e: the 64 MiB
    # are tight. A few minutes of one core.
    echo "compressing $(command -v node) ($(node --version)), stripped, into .device/node.xz"
    cp "$(command -v node)" .device/node && strip .device/node
    xz -T1 --x86 --lzma2=preset=9e -c .device/node > .device/node.xz && rm .device/node
  fi
  # The runtime package pngjs, copied out of node_modules (which may be a link), without its
  # browser bundle (Node loads lib/); the addon without its symbol table. The coloured dataset
  # travels as its cache (data/cmnist-v2/seed-0, read and checked as it is: 5.1 MB xz'd), not
  # as the MNIST IDX files it is built from (9.1 MB xz'd): the run never reads MNIST itself.
  local stage
  stage=$(mktemp -d)
  [ -f "$DATASET/manifest.json" ] || node bin/mmgpt.js data
  mkdir -p "$stage/$(dirname "$DATASET")"
  cp -rL "$DATASET" "$stage/$DATASET"
  for pkg in pngjs; do
    local dir
    dir=$(node -p "require('path').dirname(require.resolve('$pkg/package.json'))")
    mkdir -p "$stage/node_modules/$pkg"
    cp -rL "$dir"/. "$stage/node_modules/$pkg/"
    rm -rf "$stage/node_modules/$pkg/test" "$stage/node_modules/$pkg/browser.js"
  done
  mkdir -p "$stage/$(dirname "$ADDON")"
  cp "$ADDON" "$stage/$ADDON" && strip --strip-unneeded "$stage/$ADDON"
  # dist/'s JavaScript without its comments (and without source maps and type declarations).
  node native/cuda/strip-dist.js dist "$stage/dist"
  echo "packing dist/, $ADDON (stripped), node_modules/pngjs and $DATASET into .device/payload.tar.xz"
  # Of the tests and bench scripts only those this script runs (and the tests' helpers). xz 9e
  # with lc=4, pb=0 suits the IDX bytes best.
  local keep=" ${KERNEL_TESTS[*]} ${ENGINE_TESTS[*]} ${BENCH_SCRIPTS[*]} " unused=() f
  for f in dist/test/*/*.test.js dist/bench/*.js; do
    [[ $keep == *" $f "* ]] || unused+=(--exclude="$f")
  done
  tar -cf - -C "$stage" --exclude='dist/test/[!egnv]*' --exclude='dist/test/eval' \
    --exclude='dist/test/notebooks' "${unused[@]}" dist native node_modules data |
    xz -T1 --lzma2=preset=9e,lc=4,lp=0,pb=0 > .device/payload.tar.xz
  rm -rf "$stage"
  local tracked device total
  tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  device=$(du -cb .device/node.xz .device/payload.tar.xz | tail -1 | cut -f1)
  total=$((tracked + device))
  awk -v t="$tracked" -v d="$device" -v l="$LIMIT_MIB" 'BEGIN {
    printf "tracked files %.1f MiB + .device %.1f MiB = %.1f MiB of %d\n", t / 2^20, d / 2^20, (t + d) / 2^20, l }'
  [ "$total" -le $((LIMIT_MIB * 1048576)) ] || { echo "over the limit: carry less"; exit 1; }
  echo "carry: .device"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit 0
fi

# --- the run ------------------------------------------------------------------------------------
DRY=${MMGPT_GPU_CHECK_DRY:-0}
export OUT="${OUT:-/tmp/mmgpt-gpu}"
WORK="$OUT/gpu-check" # tarred at the end; only summary.json, log.txt and the tarball stay
rm -rf "$WORK"
mkdir -p "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1

# Node and the built files travel in .device/ (see --prepare); unpack what the checkout lacks.
if ! command -v node > /dev/null 2>&1; then
  mkdir -p /tmp/bin && xz -dc .device/node.xz > /tmp/bin/node && chmod +x /tmp/bin/node
  export PATH=/tmp/bin:$PATH
fi
if [ -f .device/payload.tar.xz ] &&
  { [ ! -f dist/src/index.js ] || [ ! -f "$ADDON" ] || [ ! -f "$DATASET/manifest.json" ] ||
    ! node -e "require.resolve('pngjs/package.json')" 2> /dev/null; }; then
  PAYLOAD=/tmp/mmgpt-payload
  rm -rf "$PAYLOAD" && mkdir -p "$PAYLOAD"
  xz -dc .device/payload.tar.xz | tar -xf - -C "$PAYLOAD"
  [ -f dist/src/index.js ] || { rm -rf dist && mv "$PAYLOAD/dist" dist; }
  [ -f "$ADDON" ] || { mkdir -p "$(dirname "$ADDON")" && mv "$PAYLOAD/$ADDON" "$ADDON"; }
  [ -f "$DATASET/manifest.json" ] ||
    { rm -rf "$DATASET" && mkdir -p "$(dirname "$DATASET")" && mv "$PAYLOAD/$DATASET" "$DATASET"; }
  export NODE_PATH="$PAYLOAD/node_modules${NODE_PATH:+:$NODE_PATH}"
fi
for f in dist/src/index.js dist/src/engine/backends/cuda.js "$ADDON"; do
  [ -f "$f" ] || { echo "missing $f: run --prepare on the development machine and carry .device"; exit 2; }
done

# Runs and figures go into $WORK, never into the checkout's runs/ or figures/.
export MMGPT_RUNS_DIR="$WORK/runs" MMGPT_FIGURES_DIR="$WORK/figures"
export PYTHONUNBUFFERED=1

if [ "$DRY" = 1 ]; then
  BACKEND=cpu PRESET=tiny EVAL_N=20
  PY=${MMGPT_TORCH_PYTHON:-python3}
  BENCH_FLAGS=(--backends cpu --batch 32,256 --steps 2 --warmup 1 --torch-device cpu)
  $PY -c "import torch" 2> /dev/null || BENCH_FLAGS+=(--no-torch)
  PIPELINE_N=(--n 20)
  GRAPH_FLAGS=(--batch 2 --steps 2 --reps 1)
  SAMPLING_FLAGS=(--rows 1,8 --reps 1 --min-seconds 0)
else
  BACKEND=cuda PRESET=original EVAL_N=1000
  BENCH_FLAGS=(--backends cuda --batch 32,256 --torch-device cuda --compile --budget-s 3)
  PIPELINE_N=()
  GRAPH_FLAGS=(--batch 32,256 --steps 100 --reps 3)
  SAMPLING_FLAGS=(--rows 1,8,64 --reps 3 --min-seconds 2)
fi

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output into $WORK/NAME.log
# (JSON lines kept out of the console; all of it with QUIET=1), and its exit status and wall time
# (ms) into steps.tsv.
step() {
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name ($(date +%T), limit ${limit} s): $*"
  local t0 rc ms
  t0=$(date +%s%N)
  if [ "${QUIET:-0}" = 1 ]; then
    timeout -k 10 "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
  else
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$WORK/$name.log" | grep --line-buffered -v '^{'
    rc=${PIPESTATUS[0]}
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf '%s\t%s\t%d\n' "$name" "$rc" "$ms" >> "$WORK/steps.tsv"
  echo "=== $name: exit $rc, $((ms / 1000)) s"
}

echo "mmgpt gpu-check: $([ "$DRY" = 1 ] && echo "dry run (cpu backend, tiny sizes)" || echo "GPU run"), OUT=$OUT"
git log -1 --format='commit %h %s' 2> /dev/null || true

device_info() {
  if command -v nvidia-smi > /dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
      > "$WORK/nvidia-smi.csv"
  fi
  node -e "
const fs = require('fs');
const os = require('os');
const { cudaBackendInfo } = require('./dist/src/engine/backends/cuda');
const { cpuBackendInfo } = require('./dist/src/engine/backends/cpu');
let smi = null;
try { smi = fs.readFileSync(process.env.WORK + '/nvidia-smi.csv', 'utf8').trim(); } catch {}
const info = { nvidiaSmi: smi, cuda: cudaBackendInfo(), cpu: cpuBackendInfo(),
  node: process.version, cpuModel: os.cpus()[0].model, cores: os.cpus().length };
console.log(JSON.stringify(info, null, 1));
fs.writeFileSync(process.env.WORK + '/device.json', JSON.stringify(info, null, 1) + '\n');
if ('error' in info.cuda && process.env.DRY !== '1') process.exit(1);
"
}
export WORK DRY
export -f device_info
step device 60 bash -c device_info

QUIET=1 step tests 240 node --test --test-reporter=tap "${KERNEL_TESTS[@]}"
grep -E "^# (tests|pass|fail|skipped)|^not ok" "$WORK/tests.log" || true

# The GPT's training (bit-identical resume included), the modules and the VQ-VAE on the backend.
QUIET=1 step engine-tests 240 env MMGPT_TEST_BACKEND=$BACKEND node --test --test-reporter=tap \
  "${ENGINE_TESTS[@]}"
grep -E "^# (tests|pass|fail|skipped)|^not ok" "$WORK/engine-tests.log" || true

step bench 300 node bin/mmgpt.js bench --json --no-tfjs "${BENCH_FLAGS[@]}"

# The training step as a CUDA graph against eager (in one process; eager only on the dry run).
step graph-step 90 env MMGPT_BACKEND=$BACKEND node dist/bench/graph_step.js "${GRAPH_FLAGS[@]}"

# Uncached, KV-cached step by step and KV-cached as graph replays, alternating in one process.
step sampling 150 env MMGPT_BACKEND=$BACKEND node dist/bench/sampling.js "${SAMPLING_FLAGS[@]}"

step eval 240 node bin/mmgpt.js eval --n $EVAL_N --checkpoint weights/best --backend $BACKEND \
  --out "$WORK/eval"

step pipeline 480 node bin/mmgpt.js pipeline --preset $PRESET --backend $BACKEND \
  --out "$WORK/pipeline" "${PIPELINE_N[@]}"

echo
echo "=== summary"
node native/cuda/gpu-summary.js "$WORK" "$PRESET" "$OUT/summary.json"
cp "$OUT/summary.json" "$WORK/summary.json"
# runs/classifier is the shipped judge, copied: it stays out.
if tar -C "$OUT" -czf "$OUT/gpu-check.tar.gz" --exclude=gpu-check/runs/classifier gpu-check; then
  rm -rf "$WORK"
  echo "wrote $OUT/summary.json, $OUT/gpu-check.tar.gz ($(du -h "$OUT/gpu-check.tar.gz" | cut -f1)), $OUT/log.txt"
else
  echo "tar failed: the step outputs stay in $WORK"
fi
