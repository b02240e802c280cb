"""The benchmark scripts still run against the library (on a CPU, a handful of steps)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not part of the package
from benchmarks import throughput  # noqa: E402


def test_throughput_table_compares_lth_with_the_conventional_loop(tmp_path):
    throughput.main(["--quick", "--device", "cpu", "--workloads", "lenet300", "--stacks", "2", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["method"], r["networks"]) for r in rows] == [("conventional loop", 1), ("lth stacked", 2)]
    conventional, stacked = rows
    assert conventional["ratio"] == 1.0 and stacked["steps_per_s"] > 0
    assert stacked["ratio"] == pytest.approx(stacked["network_its_per_s"] / conventional["steps_per_s"])
    assert "| lenet300 | lth stacked | fp32 | 2 |" in (tmp_path / "results.md").read_text()
