#!/usr/bin/env bash
# GPU checks of pc3d, for a machine with CUDA and the project's environment already installed
# (this script installs nothing): the models benchmark on CUDA, then every test marked `gpu`.
# Usage, from anywhere: bash tools/gpu_check.sh   (PYTHON=/path/to/python to pick the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
status=0
"$PYTHON" -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE'); sys.exit(0 if torch.cuda.is_available() else 1)" || exit 1
echo "== python tools/bench.py models --device cuda"
"$PYTHON" tools/bench.py models --device cuda || status=1
echo "== pytest -m gpu tests plugins -q"
"$PYTHON" -m pytest -m gpu tests plugins -q -p no:cacheprovider || status=1
exit $status
