"""benchmarks/batched_conv.py's Triton convolutions (two forward kernels) and weight gradient equal torch's, network by network (run by Triton's interpreter
on a CPU, in a subprocess: Triton reads TRITON_INTERPRET when a kernel is made). In fp32 only: the interpreter
multiplies bf16 tiles wrongly; on a GPU the probe prints its bf16 difference to cuDNN's result."""

import textwrap
from pathlib import Path

import pytest

from lth.train import fused_mlp

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CHECK = textwrap.dedent("""
    import sys
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, sys.argv[1])
    from batched_conv import as_grouped, conv3x3_batched, conv3x3_im2col_batched, conv3x3_weight_grad_batched

    torch.manual_seed(0)
    torch.set_float32_matmul_precision("highest")
    for channels, out in ((3, 16), (20, 24)):  # channels under one block and over it; outputs over one block
        x = torch.randn(2, 3, 5, 6, channels)  # (M, B, H, W, C): pixels over one block, borders on every side
        w = torch.randn(2, 3, 3, channels, out)
        y = conv3x3_batched(x, w, tiles=(16, 16, 16, 4))
        # im2col's columns (kh, kw, c): 27 in one block of 32 for 3 channels, 180 over several blocks for 20
        y2 = conv3x3_im2col_batched(x, w, tiles=(16, 16, 32, 4))
        dy = torch.randn(y.shape)
        # the pixels' sum split over programs: 90 pixels in blocks of 16, 3 partial sums per network
        dw = conv3x3_weight_grad_batched(x, dy, programs=2 * 3 * (2 if channels == 3 else 12), tiles=(16, 16, 4))
        for n in range(2):
            wn = w[n].permute(3, 2, 0, 1).requires_grad_()
            expected = F.conv2d(x[n].permute(0, 3, 1, 2), wn, padding=1)
            expected.backward(dy[n].permute(0, 3, 1, 2))
            expected = expected.detach().permute(0, 2, 3, 1)
            torch.testing.assert_close(y[n], expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(y2[n], expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(dw[n], wn.grad.permute(2, 3, 1, 0), rtol=1e-5, atol=1e-4)
        xg, wg = as_grouped(x, w)
        grouped = F.conv2d(xg, wg, padding=1, groups=2).view(3, 2, out, 5, 6).permute(1, 0, 3, 4, 2)
        torch.testing.assert_close(grouped, y, rtol=1e-5, atol=1e-5)
    print("batched convolution and weight gradient equal torch's")
""")


@pytest.mark.skipif(not fused_mlp.available(), reason="needs Triton (torch's CUDA wheels ship it)")
def test_batched_convolution_and_weight_gradient_equal_torchs_per_network_and_grouped(triton_interpreted):
    assert "batched convolution and weight gradient equal" in triton_interpreted(CHECK, str(BENCHMARKS), timeout=300)
