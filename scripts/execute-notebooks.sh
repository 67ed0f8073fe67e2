#!/usr/bin/env bash
# Executes the notebooks on the real (non-tiny) configuration and writes them back into
# notebooks/ with their outputs, so that a reader on a code host sees every figure without
# running anything. Each figure is stored as a PNG as well as its interactive HTML
# (src/viz/notebook.ts: finalizeNotebook), each code cell records the SHA-256 of its source, and
# the notebook records how it was executed; test/notebooks/outputs.test.ts checks that the
# committed outputs come from the committed cells, without errors, under the size budget.
#
#   bash scripts/execute-notebooks.sh                      # notebooks/*.ipynb, in order
#   bash scripts/execute-notebooks.sh notebooks/04_sampling.ipynb
#
# Configuration: the notebooks' own (MMGPT_TINY is ignored here) on the fastest backend
# (MMGPT_BACKEND chooses): 01 shows the shipped `full` tokenizer, 02 the attention of the shipped
# weights/best, 03 trains the `quick` preset on a CPU and the original recipe (30 epochs) on a
# GPU, 04 and 05 sample and score weights/best. The slow ones are 03 (it trains) and 05 (it
# scores); the others take a minute or two.
# Runs go to runs/ (or MMGPT_RUNS_DIR) and are reused; figures go to a temporary directory (or
# MMGPT_FIGURES_DIR). plotly.js is not stored in the notebooks: it is sent to the page when the
# first cell runs (loadPlotlyInNotebook) and leaves one line of text behind.
# Needs Jupyter (nbconvert), the tslab kernel of this checkout and Chromium (the PNGs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

command -v jupyter >/dev/null && jupyter nbconvert --version >/dev/null 2>&1 ||
  { echo "execute-notebooks: jupyter nbconvert is missing (bash scripts/setup-notebooks.sh)" >&2; exit 3; }
[ -x node_modules/.bin/tslab ] || { echo "execute-notebooks: node_modules/.bin/tslab is missing (npm ci)" >&2; exit 3; }

echo "execute-notebooks: compiling (npx tsc --declaration)"
npx tsc -p tsconfig.json --declaration >/dev/null || true # emits despite type errors elsewhere
[ -f dist/src/viz/notebook.js ] || { echo "execute-notebooks: the TypeScript build failed" >&2; exit 1; }

if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/[0-9]*.ipynb); fi
out=$(mktemp -d "${TMPDIR:-/tmp}/mmgpt-execute.XXXXXX")
trap 'rm -rf "$out"' EXIT
unset MMGPT_TINY
export MMGPT_FIGURES_DIR=${MMGPT_FIGURES_DIR:-$out/figures}
mkdir -p "$MMGPT_FIGURES_DIR"

# This checkout's tslab, under the name the notebooks ask for, first on JUPYTER_PATH.
mkdir -p "$out/jupyter/kernels/tslab"
cat > "$out/jupyter/kernels/tslab/kernel.json" <<SPEC
{"argv": ["$root/node_modules/.bin/tslab", "kernel", "--config-path", "{connection_file}"],
 "display_name": "TypeScript", "language": "typescript"}
SPEC
export JUPYTER_PATH="$out/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

# nbclient numbers a cell from the kernel's messages, and tslab sends its count only in the
# execute reply, which nbclient does not read: this hook keeps that count, so every executed
# cell shows its number ([1], [2], ...) as it does in the notebook server.
cat > "$out/nbconvert_config.py" <<'EOF'
def _on_cell_executed(cell, cell_index, execute_reply):
    count = execute_reply.get("content", {}).get("execution_count")
    if cell.get("cell_type") == "code" and isinstance(count, int):
        cell["execution_count"] = count
c.ExecutePreprocessor.on_cell_executed = _on_cell_executed
EOF

# The Python that runs Jupyter (has nbformat); the first python3 on PATH may be another one.
jupyter_python=$(head -n 1 "$(command -v jupyter)" | sed -n 's/^#! *//p' | cut -d' ' -f1)
case "$jupyter_python" in */python*) ;; *) jupyter_python=/usr/bin/python3 ;; esac

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
backend=$(node -e 'console.log(require("./dist/src/engine").getBackend().name)' 2>/dev/null)
total_start=$(date +%s)
for notebook in "${notebooks[@]}"; do
  start=$(date +%s)
  name=$(basename "$notebook")
  echo "execute-notebooks: $notebook (backend $backend)"
  if ! jupyter nbconvert --to notebook --execute --config "$out/nbconvert_config.py" \
    --ExecutePreprocessor.kernel_name=tslab \
    --ExecutePreprocessor.timeout="${MMGPT_NOTEBOOK_TIMEOUT:-7200}" \
    --output-dir "$out" "$notebook" >"$out/nbconvert.log" 2>&1; then
    grep -vE 'Debugger warning|frozen modules|PYDEVD|Debugging will proceed' "$out/nbconvert.log" | tail -n 40 >&2
    echo "execute-notebooks: FAILED $notebook; it is left as it was" >&2
    exit 1
  fi
  seconds=$(($(date +%s) - start))
  execution=$(node -e 'console.log(JSON.stringify({ executedBy: "scripts/execute-notebooks.sh", commit: process.argv[1], backend: process.argv[2], configuration: "full (MMGPT_TINY unset)", seconds: Number(process.argv[3]), executedAt: new Date().toISOString().slice(0, 19) + "Z" }))' "$commit" "$backend" "$seconds")
  node -e 'require("./dist/src/viz/notebook").finalizeNotebookFile(process.argv[1], process.argv[2], JSON.parse(process.argv[3])).then((n) => console.log(`  ${n} figures with their PNG`), (e) => { console.error(e); process.exit(1); })' \
    "$out/$name" "$out/$name.final" "$execution"
  # nbformat's own layout (sorted keys, one-space indent), validated.
  "$jupyter_python" -c 'import sys, nbformat; nbformat.write(nbformat.read(sys.argv[1], as_version=4), sys.argv[2])' "$out/$name.final" "$notebook"
  echo "execute-notebooks: wrote $notebook ($(du -k "$notebook" | cut -f1) KB, ${seconds} s)"
done
node -e '
  const fs = require("fs"); const { notebookProblems } = require("./dist/src/viz/notebook");
  let bad = 0;
  for (const file of process.argv.slice(1)) {
    const problems = notebookProblems(JSON.parse(fs.readFileSync(file, "utf8")), fs.statSync(file).size);
    for (const p of problems) { console.error(`execute-notebooks: ${file}: ${p}`); bad++; }
  }
  process.exit(bad ? 1 : 0);' "${notebooks[@]}"
echo "execute-notebooks: done in $(($(date +%s) - total_start)) s; commit notebooks/ to publish the outputs"
