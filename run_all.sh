#!/usr/bin/env bash
# Every figure, then the report: sets up .venv (fast when nothing changed), executes each
# notebooks/*.py with papermill on one profile, and builds report/index.html.
#
#   ./run_all.sh [--profile smoke|quick|paper] [--only NAME...] [--output-dir DIR] [--root DIR] [--device DEV]
#
# Defaults: --profile quick --output-dir figures --root runs --device auto. More options
# (-b BINDING, --log-output, --report-only): ./run_all.sh --help. Exits non-zero if a notebook failed.
set -euo pipefail
repo="$(cd "$(dirname "$0")" && pwd)"
"$repo/setup.sh"
# Not cd-ing: paths given as arguments stay relative to where the caller stands.
exec "$repo/.venv/bin/python" -m lth.report.batch "$@"
