#!/usr/bin/env bash
# Runs `python -m lth run ...` on a lent GPU machine (see REPRODUCIBILITY.md) against a result
# store in /tmp/store, unpacked from .carry/store.tgz when one was carried (to resume).
# Usage: scripts/device_run.sh TIME_LIMIT_S lth-run-args...   then scripts/device_pack.sh NAME
set -uo pipefail
limit=$1; shift
python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD LTH_DATA=$PWD/.carry/data LTH_QUIET=1 PYTHONUNBUFFERED=1
root=/tmp/store
if [ ! -d $root ]; then mkdir -p $root; [ -f .carry/store.tgz ] && tar xzf .carry/store.tgz -C $root; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
timeout "$limit" python3 -m lth run "$@" --root $root --device cuda
echo "exit $? after $(( $(date +%s) - start )) s"
