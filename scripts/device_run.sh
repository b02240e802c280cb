#!/usr/bin/env bash
# Runs one `python -m lth run ...` on a lent GPU machine (see REPRODUCIBILITY.md) and packs its
# result store into $OUT: metrics, configs, manifests and done markers, plus the checkpoints that a
# later call needs to resume (the dense level and the last finished level). Files are split into
# 15 MB parts. Usage: scripts/device_run.sh NAME TIME_LIMIT_S lth-run-args...
set -uo pipefail
name=$1 limit=$2; shift 2
python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD LTH_DATA=$PWD/.carry/data LTH_QUIET=1 PYTHONUNBUFFERED=1
root=/tmp/store
[ -f .carry/store.tgz ] && mkdir -p $root && tar xzf .carry/store.tgz -C $root
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$(date +%s)
timeout "$limit" python3 -m lth run "$@" --root $root --device cuda
echo "exit $? after $(( $(date +%s) - start )) s"
python3 - "$root" <<'PY'
import pathlib, sys
for run in pathlib.Path(sys.argv[1]).glob("*/*"):
    done = sorted(p.name for p in (run / "done").glob("level_*"))
    keep = {f"{k}.pt" for k in done[:1] + done[-1:]}
    for ckpt in (run / "checkpoints").glob("*.pt"):
        if ckpt.name not in keep:  # progress checkpoints too: a cut level restarts
            ckpt.unlink()
PY
tar czf - -C $root . | split -b 15m - "$OUT/$name.tgz.part-"
ls -la "$OUT"
