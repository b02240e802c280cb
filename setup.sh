#!/usr/bin/env bash
# Builds .venv from uv.lock (exact versions of every package, resolved against PyPI) and installs
# lth into it. Idempotent: a second run only checks. Needs Python >= 3.11 and PyPI.
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -m uv --version >/dev/null 2>&1; then
  # --isolated: ignore any local pip config (e.g. a find-links folder with a CPU-only torch
  # that PyPI's torchvision cannot load against); uv itself resolves from uv.lock only.
  python3 -m pip install --isolated --quiet uv==0.13.9
fi
python3 -m uv sync --frozen --extra dev --quiet
.venv/bin/python -c "import torch, torchvision, lth; print(f'lth ready: torch {torch.__version__}, torchvision {torchvision.__version__}')"
