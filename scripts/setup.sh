#!/usr/bin/env bash
# Set-up on a fresh clone: npm packages, the native addon (C++/OpenMP, and CUDA where nvcc is
# found), the wasm kernels (emscripten, scripts/setup-wasm.sh) and the TypeScript build. Safe to
# re-run: each step is skipped when up to date. MMGPT_SKIP_NATIVE=1 skips the addon (the engine
# then uses its wasm backend, else its reference backend); MMGPT_SKIP_WASM=1 the wasm kernels.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: Node.js 20+ and npm are required (see environment.md)" >&2
  exit 1
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

if [ "${MMGPT_SKIP_NATIVE:-0}" != "1" ] && [ -f native/binding.gyp ]; then
  if ! command -v g++ >/dev/null || ! command -v make >/dev/null || ! command -v python3 >/dev/null; then
    echo "setup: the native backend needs g++, make and python3 (apt-get install build-essential python3);" >&2
    echo "       set MMGPT_SKIP_NATIVE=1 to run on the reference backend only" >&2
    exit 1
  fi
  stamp=native/build/.sources.sha
  sources=$(find native -path native/build -prune -o -path native/build-wasm -prune -o -path native/node_modules -prune -o -path native/wasm -prune -o -type f -print | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sources" ]; then
    echo "setup: building the native addon (native/)"
    npm run --silent build:native
    echo "$sources" > "$stamp"
  fi
fi

# The same CPU kernels compiled to WebAssembly (the wasm backend), where emscripten is found.
bash scripts/setup-wasm.sh

echo "setup: compiling TypeScript"
npm run --silent build

# Jupyter, the tslab kernel and Chromium for the notebooks (installed where we run as root).
bash scripts/setup-notebooks.sh
