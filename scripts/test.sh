#!/usr/bin/env bash
# All tests: set-up, the formatting check, then every test file under test/ (node's test runner).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent lint
npm test
