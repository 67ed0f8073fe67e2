#!/usr/bin/env bash
# Executes every notebook headless, top to bottom, with the tslab (TypeScript) kernel on the tiny
# configuration (MMGPT_TINY=1), and fails on the first cell error, printing that cell and its
# output. Runs and figures go to temporary MMGPT_RUNS_DIR / MMGPT_FIGURES_DIR; the executed copies
# go to a temporary directory (never into notebooks/, never committed).
#
#   bash scripts/test-notebooks.sh                      # notebooks/*.ipynb, in order
#   bash scripts/test-notebooks.sh notebooks/03_training.ipynb
#
# Environment: MMGPT_NOTEBOOK_OUT=DIR keeps the executed copies (and runs/, figures/) in DIR;
# MMGPT_NOTEBOOK_TIMEOUT sets the per-cell timeout in seconds (default 600).
# The kernel is this checkout's node_modules/.bin/tslab, through a kernelspec written to the
# temporary directory (the global `tslab` kernelspec may belong to another checkout).
# Exit status: 0 all ran; 1 a notebook failed; 3 Jupyter or tslab is missing (set them up with
# scripts/setup-notebooks.sh; test/notebooks turns 3 into a skip unless MMGPT_REQUIRE_NOTEBOOKS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

missing() {
  echo "test-notebooks: $1" >&2
  echo "  set up with: bash scripts/setup-notebooks.sh (see environment.md, 'Notebooks')" >&2
  exit 3
}
command -v jupyter >/dev/null || missing "jupyter is not installed"
jupyter nbconvert --version >/dev/null 2>&1 || missing "jupyter nbconvert is not installed"
[ -x node_modules/.bin/tslab ] || missing "node_modules/.bin/tslab is missing (npm ci)"

# The notebooks import ../dist/src with its type declarations: build them if missing or stale.
if [ ! -f dist/src/engine/ops.d.ts ] || [ -n "$(find src -name '*.ts' -newer dist/src/engine/ops.d.ts -print -quit)" ]; then
  echo "test-notebooks: compiling src/ with declarations (npx tsc --declaration)"
  npx tsc -p tsconfig.json --declaration >/dev/null || true # emits despite type errors elsewhere
  [ -f dist/src/engine/ops.d.ts ] || { echo "test-notebooks: the TypeScript build failed" >&2; exit 1; }
fi

if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/[0-9]*.ipynb); fi
[ -e "${notebooks[0]}" ] || { echo "test-notebooks: no notebooks found" >&2; exit 1; }

if [ -n "${MMGPT_NOTEBOOK_OUT:-}" ]; then
  out=$MMGPT_NOTEBOOK_OUT
  mkdir -p "$out"
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/mmgpt-notebooks.XXXXXX")
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/runs" "$out/figures"
export MMGPT_TINY=1 MMGPT_RUNS_DIR="$out/runs" MMGPT_FIGURES_DIR="$out/figures"

# A kernelspec of our own that starts this checkout's tslab, first on JUPYTER_PATH: the tests never
# depend on which checkout last registered the global `tslab` kernelspec (setup-notebooks.sh).
kernel=mmgpt-tslab-test
mkdir -p "$out/jupyter/kernels/$kernel"
cat > "$out/jupyter/kernels/$kernel/kernel.json" <<SPEC
{"argv": ["$root/node_modules/.bin/tslab", "kernel", "--config-path", "{connection_file}"],
 "display_name": "TypeScript (mmgpt test)", "language": "typescript"}
SPEC
export JUPYTER_PATH="$out/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
jupyter kernelspec list 2>/dev/null | awk '{print $1}' | grep -qx "$kernel" ||
  missing "jupyter does not see the test kernelspec in $out/jupyter (JUPYTER_PATH)"

# nbclient hooks: on a failing cell, print its source and output (tslab reports errors on stderr,
# which nbconvert's own message leaves out); report slow cells.
cat > "$out/nbconvert_config.py" <<'EOF'
import sys, time
_started = {}
def _on_cell_start(cell, cell_index):
    _started[cell_index] = time.time()
def _on_cell_executed(cell, cell_index, execute_reply):
    seconds = time.time() - _started.get(cell_index, time.time())
    if seconds >= 5:
        sys.stderr.write("  cell %d: %.1f s\n" % (cell_index, seconds))
def _on_cell_error(cell, cell_index, execute_reply):
    sys.stderr.write("\n---- cell %d failed ----\n%s\n---- its output ----\n" % (cell_index, cell.source))
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            sys.stderr.write(output.get("text", ""))
        elif output.get("output_type") == "error":
            sys.stderr.write("\n".join(output.get("traceback", [])) + "\n")
    sys.stderr.write("---- end of cell %d ----\n" % cell_index)
c.ExecutePreprocessor.on_cell_start = _on_cell_start
c.ExecutePreprocessor.on_cell_executed = _on_cell_executed
c.ExecutePreprocessor.on_cell_error = _on_cell_error
EOF

status=0
total_start=$(date +%s)
for notebook in "${notebooks[@]}"; do
  start=$(date +%s)
  echo "test-notebooks: $notebook"
  if jupyter nbconvert --to notebook --execute \
    --config "$out/nbconvert_config.py" \
    --ExecutePreprocessor.kernel_name="$kernel" \
    --ExecutePreprocessor.timeout="${MMGPT_NOTEBOOK_TIMEOUT:-600}" \
    --output-dir "$out" "$notebook" >"$out/nbconvert.log" 2>&1; then
    grep -E '^  cell [0-9]+:' "$out/nbconvert.log" || true
    echo "test-notebooks: ok $notebook ($(($(date +%s) - start)) s)"
  else
    if grep -q '^---- cell [0-9]* failed' "$out/nbconvert.log"; then
      sed -n '/^---- cell [0-9]* failed/,/^---- end of cell/p' "$out/nbconvert.log" >&2
      tail -n 3 "$out/nbconvert.log" >&2
    else # no failing cell: the kernel died or did not start
      grep -vE 'Debugger warning|frozen modules|Xfrozen_modules|PYDEVD_DISABLE|Debugging will proceed' \
        "$out/nbconvert.log" | tail -n 60 >&2
    fi
    echo "test-notebooks: FAILED $notebook ($(($(date +%s) - start)) s)" >&2
    status=1
    break
  fi
done
echo "test-notebooks: $([ $status -eq 0 ] && echo "all ${#notebooks[@]} notebooks ran" || echo failed) in $(($(date +%s) - total_start)) s"
exit $status
