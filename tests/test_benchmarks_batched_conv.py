"""benchmarks/batched_conv.py runs: the probe's timing code, with Triton's interpreter on a CPU standing in for a GPU
(in a subprocess: Triton reads TRITON_INTERPRET when a kernel is made; fp32 in place of bf16, whose tiles the
interpreter multiplies wrongly). The kernels' arithmetic is tested in tests/train/test_fused_conv.py."""

import re
import textwrap
from pathlib import Path

import pytest

from lth.train import triton_support

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

SMOKE = textwrap.dedent("""
    import sys
    import torch
    import triton.testing
    sys.path.insert(0, sys.argv[1])
    import batched_conv

    triton.testing.do_bench = lambda fn: (fn(), 1.0)[1]  # one call, "1 ms"
    torch.bfloat16 = torch.float32
    torch.set_float32_matmul_precision("highest")
    sys.argv = ["batched_conv.py", "--networks", "2", "--batch", "1", "--device", "cpu"]
    batched_conv.main()
""")


@pytest.mark.skipif(not triton_support.available(), reason="needs Triton (torch's CUDA wheels ship it)")
def test_batched_conv_probe_times_every_pass_and_its_kernels_agree_with_cudnns_layouts(triton_interpreted):
    out = triton_interpreted(SMOKE, str(BENCHMARKS), timeout=300)
    rows = [line for line in out.splitlines() if line.startswith("conv ")]
    assert len(rows) == 2 * 3 * 4, out  # two layers, three passes, four methods
    errors = [float(e) for e in re.findall(r"max \|diff\| / max ([0-9.e+-]+)", out)]
    assert len(errors) == 6 and max(errors) < 1e-5, out  # the grouped layouts the probe compares are the same sums
