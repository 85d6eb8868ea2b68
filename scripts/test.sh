#!/usr/bin/env bash
# Set everything up, then run the test suite: every notebook (nbdev_test) and tests/ (pytest).
# Tests that need a GPU, a TPU or minutes are skipped; run them with:
#   .venv/bin/nbdev_test --flags "slow gpu tpu" && .venv/bin/pytest --runslow
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SCNOTEBOOK_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
. .venv/bin/activate
# real datasets for tests, when a copy sits beside the checkout (tests skip cleanly otherwise)
if [ -z "${SCNOTEBOOK_DATA:-}" ] && [ -d ../shared/data ]; then export SCNOTEBOOK_DATA="$(cd ../shared/data && pwd)"; fi
export SCNOTEBOOK_PROGRESS=0 MPLBACKEND=Agg
echo "== nbdev_test (every notebook, default parameters)"
(cd nbs && nbdev_test --n_workers 2 --timing)
echo "== pytest"
pytest -q tests
