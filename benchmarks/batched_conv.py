"""Probe (issue 16, conv stacks; not yet run on a GPU): can a 3x3 convolution batched over networks beat the way a
stack runs its convolutions now?

Under vmap a stack's convolution is one grouped convolution over (B, M*C, H, W), and cuDNN runs grouped
convolutions far below its dense speed (it launches kernels per group and transposes around them:
benchmarks/results/h200/gpu_probe_conv.txt). Here each network's convolution is an implicit GEMM in one Triton
kernel for the whole stack: program (pixel block, output-channel block, network) sums over the 3x3 window and
the input channels, reading its network's channels-last input tile at each of the nine shifts ('same' zero
padding, stride 1). Forward pass only: if it is not clearly faster than the grouped convolution here, the
backward kernels (input and weight gradients) are not worth writing.

    python benchmarks/batched_conv.py                        # on a GPU: Conv-2's two convolutions, bf16, M = 1, 20, 50
    python benchmarks/batched_conv.py --networks 20 --tiles 128:64:32:4 64:64:64:4

Prints, per layer and M, the time per forward pass and TFLOP/s of: this kernel at each tile setting
(BLOCK_P:BLOCK_O:BLOCK_C:warps), cuDNN's grouped convolution (vmap's) with and without cuDNN's algorithm search,
and M dense channels-last convolutions one after another. Checked against torch's convolution on a CPU under
TRITON_INTERPRET=1 (tests/test_benchmarks_batched_conv.py).
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def conv3x3(x_ptr, w_ptr, y_ptr, s_xn, s_xb, s_xh, s_xw, s_wn, s_wh, s_ww, s_wc,
                B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr, O: tl.constexpr,
                BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_C: tl.constexpr, PRECISION: tl.constexpr):
        # x (M, B, H, W, C) with unit channel stride; w (M, 3, 3, C, O) with unit output stride; y (M, B, H, W, O).
        pid_p, pid_o, n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        rp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)  # pixels (b, h, w) of this block
        ro = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
        rc = tl.arange(0, BLOCK_C)
        b, h, w = rp // (H * W), (rp // W) % H, rp % W
        p_ok, o_ok = rp < B * H * W, ro < O
        acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
        for kh in tl.static_range(3):
            for kw in tl.static_range(3):
                hh, ww = h + kh - 1, w + kw - 1
                inside = p_ok & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                pixel = x_ptr + n * s_xn + b * s_xb + hh * s_xh + ww * s_xw
                weight = w_ptr + n * s_wn + kh * s_wh + kw * s_ww
                for c0 in range(0, C, BLOCK_C):
                    c = c0 + rc
                    c_ok = c < C
                    a = tl.load(pixel[:, None] + c[None, :], mask=inside[:, None] & c_ok[None, :], other=0.0)
                    k = tl.load(weight + c[:, None] * s_wc + ro[None, :], mask=c_ok[:, None] & o_ok[None, :], other=0.0)
                    acc = tl.dot(a, k, acc, input_precision=PRECISION)
        y = y_ptr + n * B * H * W * O + rp[:, None] * O + ro[None, :]
        tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=p_ok[:, None] & o_ok[None, :])

    return conv3x3


def conv3x3_batched(x: torch.Tensor, w: torch.Tensor, tiles: tuple[int, int, int, int] = (128, 64, 32, 4)) -> torch.Tensor:
    """Each network's 3x3 'same' convolution (stride 1, no bias): x (M, B, H, W, C) channels-last inputs, w
    (M, 3, 3, C, O); returns (M, B, H, W, O) in x's dtype, accumulated in fp32 (TF32 or bf16 tensor cores for
    fp32 or bf16 inputs). ``tiles``: BLOCK_P (pixels), BLOCK_O (output channels), BLOCK_C (input channels, at
    least 16), warps."""
    networks, batch, height, width, channels = x.shape
    out = w.shape[-1]
    if x.stride(-1) != 1 or w.stride(-1) != 1:
        raise ValueError("conv3x3_batched needs channels-last inputs and weights with unit output-channel stride")
    block_p, block_o, block_c, warps = tiles
    y = x.new_empty(networks, batch, height, width, out)
    grid = (-(-batch * height * width // block_p), -(-out // block_o), networks)
    _kernel()[grid](x, w, y, *x.stride()[:4], *w.stride()[:4], B=batch, H=height, W=width, C=channels, O=out,
                    BLOCK_P=block_p, BLOCK_O=block_o, BLOCK_C=block_c,
                    PRECISION=_precision(x.dtype), num_warps=warps)
    return y


def _precision(dtype: torch.dtype) -> str | None:
    """tl.dot's input precision: TF32 or full fp32 for fp32 inputs (torch's float32 matmul setting), None (the
    inputs' own) for bf16 and fp16."""
    if dtype != torch.float32:
        return None
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def as_grouped(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, B, H, W, C) and w (M, 3, 3, C, O) as vmap hands them to one grouped convolution: (B, M*C, H, W) NCHW
    inputs and (M*O, C, 3, 3) weights, groups=M (its output (B, M*O, H, W))."""
    networks, batch, height, width, channels = x.shape
    xg = x.permute(1, 0, 4, 2, 3).reshape(batch, networks * channels, height, width)
    return xg, w.permute(0, 4, 3, 1, 2).reshape(networks * w.shape[-1], channels, 3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument("--tiles", nargs="+", default=["128:64:32:4", "64:64:64:4", "128:64:64:8"],
                        help="BLOCK_P:BLOCK_O:BLOCK_C:warps settings of the Triton kernel")
    parser.add_argument("--batch", type=int, default=60)
    args = parser.parse_args()
    from triton.testing import do_bench
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(dev), flush=True)
    for channels, out in ((3, 64), (64, 64)):  # Conv-2's convolutions on 32x32 CIFAR images
        for networks in args.networks:
            x = torch.randn(networks, args.batch, 32, 32, channels, device=dev, dtype=torch.bfloat16)
            w = torch.randn(networks, 3, 3, channels, out, device=dev, dtype=torch.bfloat16) / (3 * channels ** 0.5)
            flop = 2 * networks * args.batch * 32 * 32 * out * 9 * channels
            xg, wg = as_grouped(x, w)
            expected = F.conv2d(xg, wg, padding=1, groups=networks).float().view(args.batch, networks, out, 32, 32)
            expected = expected.permute(1, 0, 3, 4, 2)
            rows = []
            for setting in args.tiles:
                tiles = tuple(int(v) for v in setting.split(":"))
                error = (conv3x3_batched(x, w, tiles).float() - expected).abs().max().item()
                rows.append((f"Triton {setting} (max |diff| {error:.2g})", do_bench(lambda: conv3x3_batched(x, w, tiles))))
            for search in (False, True):
                torch.backends.cudnn.benchmark = search
                rows.append((f"cuDNN grouped (vmap's), algorithm search {'on' if search else 'off'}",
                             do_bench(lambda: F.conv2d(xg, wg, padding=1, groups=networks))))
            torch.backends.cudnn.benchmark = False
            dense_x = [x[n].permute(0, 3, 1, 2) for n in range(networks)]  # NCHW views of NHWC memory: channels-last
            dense_w = [w[n].permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last) for n in range(networks)]
            rows.append(("dense channels-last, one network after another",
                         do_bench(lambda: [F.conv2d(a, k, padding=1) for a, k in zip(dense_x, dense_w)])))
            for name, ms in rows:
                print(f"conv {channels}->{out}, M={networks}: {name}: {ms * 1e3:8.1f} us, {flop / ms / 1e9:6.1f} TFLOP/s",
                      flush=True)


if __name__ == "__main__":
    main()
