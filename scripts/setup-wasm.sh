#!/usr/bin/env bash
# Set-up of the wasm backend: emscripten's em++ (from the OS packages, where we run as root with
# apt-get: Debian/Ubuntu's emscripten), then native/build-wasm/mmgpt_kernels.wasm built from
# native/wasm/ and native/src/kernels.inl by native/wasm/build-wasm.js, rebuilt when they change.
#
# Exit status 0 when em++ is missing or the build fails (the wasm backend is optional: the engine
# then falls back to the reference backend where the native addon is missing too), unless the
# backend is required: in CI (CI set, as CI services do) or with MMGPT_REQUIRE_WASM=1, where
# that is an error. MMGPT_EMXX=/path/to/em++ names a compiler; MMGPT_SKIP_WASM=1 skips all this.
set -euo pipefail
cd "$(dirname "$0")/.."

require=${MMGPT_REQUIRE_WASM:-0}
case "${CI:-}" in "" | 0 | false) ;; *) require=1 ;; esac

say() { echo "setup-wasm: $*"; }
give_up() {
  say "$*" >&2
  if [ "$require" = 1 ]; then exit 1; fi
  say "the wasm backend is optional: everything else works without it" >&2
  exit 0
}

if [ "${MMGPT_SKIP_WASM:-0}" = 1 ]; then
  say "MMGPT_SKIP_WASM=1: not building the wasm backend"
  exit 0
fi

if [ -z "${MMGPT_EMXX:-}" ] && ! command -v em++ >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install emscripten"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends emscripten >/dev/null; then
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends emscripten >/dev/null ||
        give_up "apt-get install emscripten failed"
    fi
  else
    give_up "em++ is missing; install emscripten as root (apt-get install emscripten), or name one with MMGPT_EMXX=/path/to/em++"
  fi
fi

out=native/build-wasm/mmgpt_kernels.wasm
stamp=native/build-wasm/.sources.sha
sources=$( (find native/src -name '*.h' -o -name '*.inl'; find native/wasm -type f) | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
if [ ! -f "$out" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sources" ]; then
  say "building the wasm kernels (native/wasm)"
  node native/wasm/build-wasm.js --require || give_up "building $out failed"
  echo "$sources" > "$stamp"
fi
