"""benchmarks/side_by_side.py runs every reference end to end on a CPU (--smoke) and writes one
table of ratios; the JAX idiom's rows appear exactly when jax is installed."""

import csv
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["workload", "method", "precision", "networks", "batch", "steps_per_s", "network_its_per_s",
           "images_per_s", "vs_conventional", "vs_single_loop", "vs_jax_idiom", "peak_gib", "note"]


@pytest.fixture(scope="module")
def smoke_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("side_by_side")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "side_by_side.py"), "--smoke", "--device", "cpu",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "side_by_side.csv") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader), (out / "side_by_side.md").read_text(), done.stdout


def test_side_by_side_table_has_the_ratio_columns(smoke_table):
    columns, rows, markdown, _ = smoke_table
    assert columns == COLUMNS
    assert "| workload | method | precision | M | steps/s | network-it/s | images/s | vs conventional | " \
           "vs single loop | vs JAX idiom | peak GiB | note |" in markdown


def test_side_by_side_measures_every_reference_for_every_workload(smoke_table):
    _, rows, _, _ = smoke_table
    methods = {(r["workload"], r["method"]) for r in rows}
    for workload in ("lenet300", "conv2", "resnet20"):
        assert (workload, "conventional loop") in methods
        assert (workload, "best single-network loop") in methods
        assert (workload, "lth stack (compile and CUDA graphs: see the header)") in methods
    failed = [r for r in rows if r["note"]]
    assert not failed, failed
    assert all(float(r["steps_per_s"]) > 0 for r in rows)


def test_side_by_side_ratios_divide_by_the_matching_reference(smoke_table):
    _, rows, _, _ = smoke_table
    for r in rows:
        base = next(b for b in rows if b["workload"] == r["workload"] and b["method"] == "conventional loop")
        assert float(r["vs_conventional"]) == pytest.approx(float(r["network_its_per_s"]) / float(base["network_its_per_s"]))
        assert float(r["network_its_per_s"]) == pytest.approx(float(r["steps_per_s"]) * int(r["networks"]))
        single = next(b for b in rows if b["workload"] == r["workload"] and b["method"] == "best single-network loop"
                      and b["precision"] == r["precision"])
        assert float(r["vs_single_loop"]) == pytest.approx(float(r["network_its_per_s"]) / float(single["network_its_per_s"]))


def test_side_by_side_runs_the_jax_idiom_only_where_jax_is_installed(smoke_table):
    _, rows, _, stdout = smoke_table
    jax_rows = [r for r in rows if r["method"].startswith("JAX idiom")]
    lth_lenet = [r for r in rows if r["workload"] == "lenet300" and r["method"].startswith("lth")]
    if importlib.util.find_spec("jax") is None:
        assert not jax_rows and "jax is not installed" in stdout
        assert all(math.isnan(float(r["vs_jax_idiom"])) for r in rows)
    else:
        assert {(r["precision"], int(r["networks"])) for r in jax_rows} >= {("tf32", 1), ("fp32", 2)}
        assert all(float(r["vs_jax_idiom"]) > 0 for r in lth_lenet)
