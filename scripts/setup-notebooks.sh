#!/usr/bin/env bash
# Set-up for the notebooks: Jupyter from the OS packages, the tslab TypeScript kernel, and Chromium
# (PNG export of plotly figures). Run after npm ci (tslab comes from node_modules).
#
# Where it runs as root with apt-get (Debian/Ubuntu), it installs the missing packages
# (jupyter-notebook jupyter-nbconvert python3-ipykernel jupyter-client chromium); otherwise it says
# what to install. Then it installs the tslab kernelspec for the Python that runs Jupyter, starting
# this checkout's node_modules/.bin/tslab. Safe to re-run: each step is skipped when done.
# Exit status 0 even when something is missing (the notebooks are optional on a laptop), unless
# MMGPT_REQUIRE_NOTEBOOKS=1 (CI), where missing pieces are an error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
require=${MMGPT_REQUIRE_NOTEBOOKS:-0}

say() { echo "setup-notebooks: $*"; }
give_up() {
  say "$*" >&2
  if [ "$require" = 1 ]; then exit 1; fi
  say "the notebooks are optional: everything else works without them" >&2
  exit 0
}

# Debian package -> a file it installs (what tells us it is there).
packages=(jupyter-notebook jupyter-nbconvert python3-ipykernel jupyter-client chromium)
declare -A provides=(
  [jupyter-notebook]=/usr/bin/jupyter-notebook
  [jupyter-nbconvert]=/usr/bin/jupyter-nbconvert
  [python3-ipykernel]=/usr/lib/python3/dist-packages/ipykernel/__init__.py
  [jupyter-client]=/usr/bin/jupyter-kernelspec
  [chromium]=/usr/bin/chromium
)
missing=()
for pkg in "${packages[@]}"; do
  [ -e "${provides[$pkg]}" ] || missing+=("$pkg")
done
# Jupyter installed some other way (pip, conda) is fine too.
if [ ${#missing[@]} -gt 0 ] && command -v jupyter >/dev/null && jupyter nbconvert --version >/dev/null 2>&1 &&
  jupyter kernelspec list >/dev/null 2>&1; then
  remaining=()
  for pkg in "${missing[@]}"; do [ "$pkg" = chromium ] && remaining+=("$pkg"); done
  missing=("${remaining[@]+"${remaining[@]}"}")
fi
# Any Chromium or Chrome will do for the PNG export (MMGPT_CHROMIUM names one explicitly).
if [ ${#missing[@]} -gt 0 ] && [ "${missing[-1]}" = chromium ]; then
  for exe in "${MMGPT_CHROMIUM:-}" /usr/bin/chromium-browser /usr/bin/google-chrome /usr/bin/google-chrome-stable; do
    if [ -n "$exe" ] && [ -x "$exe" ]; then
      unset 'missing[-1]'
      break
    fi
  done
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
      apt-get update >/dev/null
      apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        give_up "apt-get install ${missing[*]} failed"
    fi
  else
    unmet="missing: ${missing[*]}; install them as root: apt-get install ${missing[*]} (or Jupyter with pip, and any Chromium/Chrome with MMGPT_CHROMIUM=/path/to/it)"
    say "$unmet" >&2
  fi
fi

[ -x node_modules/.bin/tslab ] || give_up "node_modules/.bin/tslab is missing: run npm ci first"
command -v jupyter >/dev/null && jupyter nbconvert --version >/dev/null 2>&1 &&
  jupyter kernelspec list >/dev/null 2>&1 || give_up "Jupyter (notebook, nbconvert, kernelspec) is not installed"

# The Python that runs Jupyter (the first python3 on PATH may be another one, e.g. pyenv's).
jupyter_python=${MMGPT_JUPYTER_PYTHON:-}
if [ -z "$jupyter_python" ]; then
  shebang=$(head -n 1 "$(command -v jupyter)" | sed -n 's/^#! *//p')
  case "$shebang" in
    */python*) jupyter_python=${shebang%% *} ;;
    *) jupyter_python=/usr/bin/python3 ;;
  esac
fi

# The kernelspec must start this checkout's tslab (an absolute path works from any shell).
binary="$root/node_modules/.bin/tslab"
current=$(jupyter kernelspec list --json 2>/dev/null | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    try {
      const spec = JSON.parse(s).kernelspecs.tslab;
      const fs = require("fs"), path = require("path");
      console.log(spec ? JSON.parse(fs.readFileSync(path.join(spec.resource_dir, "kernel.json"), "utf8")).argv[0] : "");
    } catch { console.log(""); }
  });') || current=""
if [ "$current" != "$binary" ]; then
  say "installing the tslab kernel for $jupyter_python (starts $binary)"
  npx --no-install tslab install --python="$jupyter_python" --binary="$binary" >/dev/null ||
    give_up "npx tslab install --python=$jupyter_python failed"
fi
jupyter kernelspec list 2>/dev/null | awk '{print $1}' | grep -qx tslab ||
  give_up "the tslab kernel is not visible to jupyter (jupyter kernelspec list)"
if [ -n "${unmet:-}" ]; then
  [ "$require" = 1 ] && exit 1
  say "the notebooks run; PNG export of plotly figures needs Chromium (HTML export works without it)"
else
  say "ready: jupyter notebook notebooks/ (or bash scripts/test-notebooks.sh)"
fi
