#!/usr/bin/env bash
# Builds .venv from uv.lock (exact versions of every package, resolved against PyPI) and installs
# lth into it. Idempotent: a second run only checks. Needs Python >= 3.11 and PyPI.
# Works from any shell, also one where another virtual environment (say one made by uv, without
# pip) is active: uv is taken from the PATH, else from the base interpreter, else installed there.
set -euo pipefail
cd "$(dirname "$0")"
# The interpreter outside any active virtual environment.
base_python=$(python3 -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python3"))')
if command -v uv >/dev/null 2>&1; then
  uv=(uv)
else
  if ! "$base_python" -m uv --version >/dev/null 2>&1; then
    # --isolated: ignore any local pip config (e.g. a find-links folder with a CPU-only torch
    # that PyPI's torchvision cannot load against); uv itself resolves from uv.lock only.
    "$base_python" -m pip install --isolated --quiet uv==0.13.9
  fi
  uv=("$base_python" -m uv)
fi
unset VIRTUAL_ENV  # build this project's .venv, whatever environment is active
"${uv[@]}" sync --frozen --extra dev --quiet
.venv/bin/python -c "import torch, torchvision, lth; print(f'lth ready: torch {torch.__version__}, torchvision {torchvision.__version__}')"
