#!/usr/bin/env bash
# Packs /tmp/store into $OUT as 15 MB parts of NAME.tgz: metrics, configs, manifests, done markers
# and the checkpoints a later call needs to resume (the dense level and the last finished level).
set -uo pipefail
python3 - /tmp/store <<'PY'
import pathlib, sys
for run in pathlib.Path(sys.argv[1]).glob("*/*"):
    done = sorted(p.name for p in (run / "done").glob("level_*"))
    keep = {f"{k}.pt" for k in done[:1] + done[-1:]}
    for ckpt in (run / "checkpoints").glob("*.pt"):
        if ckpt.name not in keep:  # progress checkpoints too: a cut level restarts
            ckpt.unlink()
PY
tar czf - -C /tmp/store . | split -b 15m - "$OUT/$1.tgz.part-"
ls -la "$OUT"
