#!/usr/bin/env bash
# The main job: set-up, then the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node bin/mmgpt.js pipeline --preset quick "$@"
