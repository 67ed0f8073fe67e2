#!/usr/bin/env bash
# The notebooks as a user meets them: starts a Jupyter Notebook server (classic Notebook 6, what
# Debian's jupyter-notebook package serves) on a free loopback port with a token and this
# checkout's tslab kernel, opens every notebook in headless Chromium (playwright-core, Debian's
# chromium) and runs every cell through the page (Shift+Enter), on the tiny configuration
# (MMGPT_TINY=1). test/notebooks/browser.ts does the checks: no cell error, no page script error,
# every plotly figure drawn with traces and a size, 03's live plot growing while its cell runs,
# 05's evaluation cell giving the same table when run again (from its cache). It fails naming
# the notebook and the cell.
#
#   bash scripts/test-notebooks-browser.sh                      # notebooks/*.ipynb, in order
#   bash scripts/test-notebooks-browser.sh notebooks/03_training.ipynb
#
# Screenshots of each notebook's last figure go to figures/notebooks/ (or
# MMGPT_NOTEBOOK_SCREENSHOTS); runs and figures of the notebooks go to a temporary directory
# (MMGPT_NOTEBOOK_OUT=DIR keeps them, and the server's log, in DIR). The server never writes
# the notebooks back (its contents manager refuses saves; autosave is off in the page).
# The live plot of 03 is sampled while training runs: MMGPT_TINY_TRAIN_ITEMS (default here 2048)
# makes the tiny training long enough to watch.
# Exit status: 0 all passed; 1 a check failed; 3 Jupyter, tslab or Chromium is missing (see
# scripts/setup-notebooks.sh; test/notebooks turns 3 into a skip unless MMGPT_REQUIRE_NOTEBOOKS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

missing() {
  echo "test-notebooks-browser: $1" >&2
  echo "  set up with: bash scripts/setup-notebooks.sh (see environment.md, 'Notebooks')" >&2
  exit 3
}
command -v jupyter >/dev/null || missing "jupyter is not installed"
jupyter notebook --version >/dev/null 2>&1 || missing "jupyter notebook is not installed (apt-get install jupyter-notebook)"
case "$(jupyter notebook --version 2>/dev/null)" in
  [0-6].*) ;;
  *) missing "this test drives the classic Notebook 6 page (Debian's jupyter-notebook); jupyter notebook is $(jupyter notebook --version) (Notebook 7 serves another page)" ;;
esac
[ -x node_modules/.bin/tslab ] || missing "node_modules/.bin/tslab is missing (npm ci)"
[ -d node_modules/playwright-core ] || missing "node_modules/playwright-core is missing (npm ci)"
chromium=${MMGPT_CHROMIUM:-}
if [ -z "$chromium" ]; then
  for exe in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome /usr/bin/google-chrome-stable; do
    if [ -x "$exe" ]; then chromium=$exe; break; fi
  done
fi
[ -n "$chromium" ] && [ -x "$chromium" ] || missing "no Chromium (apt-get install chromium, or set MMGPT_CHROMIUM)"

# The notebooks import ../dist/src with its declarations; this test runs dist/test/notebooks.
if [ ! -f dist/test/notebooks/browser.js ] || [ ! -f dist/src/engine/ops.d.ts ] ||
  [ -n "$(find src test/notebooks -name '*.ts' -newer dist/test/notebooks/browser.js -print -quit)" ]; then
  echo "test-notebooks-browser: compiling (npx tsc --declaration)"
  npx tsc -p tsconfig.json --declaration >/dev/null || true # emits despite type errors elsewhere
  [ -f dist/test/notebooks/browser.js ] || { echo "test-notebooks-browser: the TypeScript build failed" >&2; exit 1; }
fi

if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/[0-9]*.ipynb); fi
[ -e "${notebooks[0]}" ] || { echo "test-notebooks-browser: no notebooks found" >&2; exit 1; }

if [ -n "${MMGPT_NOTEBOOK_OUT:-}" ]; then
  out=$MMGPT_NOTEBOOK_OUT
  mkdir -p "$out"
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/mmgpt-browser.XXXXXX")
fi
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "${MMGPT_NOTEBOOK_OUT:-}" ] || rm -rf "$out"
}
trap cleanup EXIT
mkdir -p "$out/runs" "$out/figures"
export MMGPT_TINY=1 MMGPT_RUNS_DIR="$out/runs" MMGPT_FIGURES_DIR="$out/figures"
export MMGPT_TINY_TRAIN_ITEMS=${MMGPT_TINY_TRAIN_ITEMS:-2048}
export MMGPT_CHROMIUM=$chromium

# This checkout's tslab under the name the notebooks ask for (`tslab`), first on JUPYTER_PATH:
# it shadows a global `tslab` kernelspec that may start another checkout's tslab.
mkdir -p "$out/jupyter/kernels/tslab"
cat > "$out/jupyter/kernels/tslab/kernel.json" <<SPEC
{"argv": ["$root/node_modules/.bin/tslab", "kernel", "--config-path", "{connection_file}"],
 "display_name": "TypeScript (mmgpt test)", "language": "typescript"}
SPEC
export JUPYTER_PATH="$out/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export JUPYTER_CONFIG_DIR="$out/config" JUPYTER_RUNTIME_DIR="$out/runtime" # no user config, no saved state
mkdir -p "$JUPYTER_CONFIG_DIR" "$JUPYTER_RUNTIME_DIR"
# A contents manager that refuses to save: the checkout's notebooks are never written.
cat > "$out/jupyter_notebook_config.py" <<'EOF'
from notebook.services.contents.filemanager import FileContentsManager
from tornado import web

class ReadOnlyContentsManager(FileContentsManager):
    def save(self, model, path=""):
        raise web.HTTPError(403, "the browser test does not save notebooks")

c.NotebookApp.contents_manager_class = ReadOnlyContentsManager
EOF

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
url="http://127.0.0.1:$port"
allow_root=()
[ "$(id -u)" = 0 ] && allow_root=(--allow-root)
jupyter notebook --no-browser --ip=127.0.0.1 --port="$port" --port-retries=0 \
  --NotebookApp.token="$token" --notebook-dir="$root" "${allow_root[@]}" \
  --config="$out/jupyter_notebook_config.py" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$url/api/status?token=$token" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 30 "$out/server.log" >&2
    echo "test-notebooks-browser: the notebook server did not start" >&2
    exit 1
  fi
  sleep 0.5
done
echo "test-notebooks-browser: $(jupyter notebook --version 2>/dev/null | head -n 1 | sed 's/^/Jupyter Notebook /') at $url, kernel $root/node_modules/.bin/tslab"

start=$(date +%s)
status=0
node dist/test/notebooks/browser.js --url "$url" --token "$token" \
  --screenshots "${MMGPT_NOTEBOOK_SCREENSHOTS:-$root/figures/notebooks}" \
  --cell-timeout "${MMGPT_NOTEBOOK_TIMEOUT:-600}" "${notebooks[@]}" || status=$?
if [ $status -ne 0 ] && [ $status -ne 3 ]; then
  echo "test-notebooks-browser: the server's log ends with:" >&2
  grep -vE 'Debugger warning|frozen modules|PYDEVD|Debugging will proceed' "$out/server.log" | tail -n 15 >&2 || true
fi
echo "test-notebooks-browser: $([ $status -eq 0 ] && echo "all ${#notebooks[@]} notebooks passed" || echo failed) in $(($(date +%s) - start)) s"
exit $status
