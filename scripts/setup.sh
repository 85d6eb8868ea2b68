#!/usr/bin/env bash
# Set up a virtual environment in .venv with scnotebook and its development tools.
# Idempotent: a second run only refreshes the editable install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "scnotebook setup: creating .venv with $($PY --version 2>&1)"
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
# torch first, pinned: left to the resolver, pip would pick a multi-GB CUDA build on Linux.
# (On a CPU-only Linux machine with internet, add: --index-url https://download.pytorch.org/whl/cpu)
if ! python -c "import torch" 2>/dev/null; then
  echo "scnotebook setup: installing torch==2.13.0"
  python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  python -c "import torch" || { echo "scnotebook setup: torch failed to install" >&2; exit 1; }
fi
echo "scnotebook setup: installing scnotebook[dev] (editable)"
python -m pip install -q -e '.[dev]' 2>&1 | grep -v "is ignored" || true
python -c "import scnotebook, nbdev, papermill" || { echo "scnotebook setup: the install failed" >&2; exit 1; }
# a Jupyter kernel that runs this environment's python (papermill and nbdev_test use it)
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (scnotebook)" >/dev/null
echo "scnotebook setup: done ($(python -c 'import scnotebook; print("scnotebook", scnotebook.__version__)'), $(python -c 'import torch; print("torch", torch.__version__)'))"
