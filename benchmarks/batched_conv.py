"""Probe (issue 16, conv stacks): can a 3x3 convolution batched over networks beat the way a stack runs its
convolutions now?

Under vmap a stack's convolution is one grouped convolution over (B, M*C, H, W), and cuDNN runs grouped
convolutions far below its dense speed (it launches kernels per group and transposes around them:
benchmarks/results/h200/gpu_probe_conv.txt). Here each network's convolution is an implicit GEMM in one Triton
kernel for the whole stack: program (pixel block, output-channel block, network) sums over the 3x3 window and
the input channels, reading its network's channels-last input tile at each of the nine shifts ('same' zero
padding, stride 1). A second forward kernel treats (kh, kw, c) as one reduction index (im2col's columns), which
suits Conv-2's 3-channel first layer (27 columns in one block of 32). The weight gradient, im2col(x)^T dy summed
over the pixels in deterministic partial sums, is the kernel that matters most: cuDNN's grouped weight gradient of
Conv-2's first layer took 2.6 of a stack of 20's 6.9 ms per step (gpu_probe_conv.txt). The input gradient of a
'same' 3x3 convolution is the forward kernel on dy with the weights flipped and transposed (not timed here).
On one H200 (benchmarks/results/h200/batched_conv.txt) the nine-shift forward kernel was 1.2-1.4x cuDNN's grouped
convolution at 20 and 50 networks.

    python benchmarks/batched_conv.py                        # on a GPU: Conv-2's two convolutions, bf16, M = 1, 20, 50
    python benchmarks/batched_conv.py --networks 20 --tiles 128:64:32:4 64:64:64:4 --grad-tiles 128:32:4

Prints, per layer and M, the time and TFLOP/s of the forward pass and of the weight gradient: these kernels at
each tile setting, cuDNN's grouped convolution (vmap's) with and without cuDNN's algorithm search, and M dense
channels-last convolutions one after another. Checked against torch's convolution on a CPU under
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


@functools.cache
def _im2col_kernels():
    import triton
    import triton.language as tl
    global _patch  # a jitted function calls others through its module's globals

    @triton.jit
    def _patch(x_ptr, n, rp, j, s_xn, s_xb, s_xh, s_xw, B: tl.constexpr, H: tl.constexpr, W: tl.constexpr,
               C: tl.constexpr):
        # (pixels, j) tile of network n's im2col matrix: row p = (b, h, w), column j = (kh, kw, c)
        b, h, w = rp // (H * W), (rp // W) % H, rp % W
        kh, kw, c = j // (3 * C), (j // C) % 3, j % C
        hh, ww = h[:, None] + kh[None, :] - 1, w[:, None] + kw[None, :] - 1
        inside = (rp[:, None] < B * H * W) & (j[None, :] < 9 * C) & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        pointers = x_ptr + n * s_xn + b[:, None] * s_xb + hh * s_xh + ww * s_xw + c[None, :]
        return tl.load(pointers, mask=inside, other=0.0)

    @triton.jit
    def forward(x_ptr, w_ptr, y_ptr, s_xn, s_xb, s_xh, s_xw,
                B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr, O: tl.constexpr,
                BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_J: tl.constexpr, PRECISION: tl.constexpr):
        # y[n] (B*H*W, O) = im2col(x[n]) (B*H*W, 9C) @ w[n] (9C, O); w contiguous (M, 3, 3, C, O)
        pid_p, pid_o, n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        rp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        ro = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
        acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
        for j0 in range(0, 9 * C, BLOCK_J):
            j = j0 + tl.arange(0, BLOCK_J)
            a = _patch(x_ptr, n, rp, j, s_xn, s_xb, s_xh, s_xw, B, H, W, C)
            k = tl.load(w_ptr + n * 9 * C * O + j[:, None] * O + ro[None, :],
                        mask=(j[:, None] < 9 * C) & (ro[None, :] < O), other=0.0)
            acc = tl.dot(a, k, acc, input_precision=PRECISION)
        tl.store(y_ptr + n * B * H * W * O + rp[:, None] * O + ro[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=(rp[:, None] < B * H * W) & (ro[None, :] < O))

    @triton.jit
    def weight_grad(x_ptr, dy_ptr, part_ptr, s_xn, s_xb, s_xh, s_xw,
                    B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr, O: tl.constexpr,
                    SPLIT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_J: tl.constexpr,
                    PRECISION: tl.constexpr):
        # program (j block, s, n): im2col(x[n])^T dy[n] over the pixel blocks s, s + SPLIT, ... into partial s
        pid_j, s, n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
        ro = tl.arange(0, BLOCK_O)
        acc = tl.zeros((BLOCK_J, BLOCK_O), dtype=tl.float32)
        for p0 in range(0, B * H * W, SPLIT * BLOCK_P):  # constant bounds: a block past the pixels is all masked
            rp = p0 + s * BLOCK_P + tl.arange(0, BLOCK_P)
            a = _patch(x_ptr, n, rp, j, s_xn, s_xb, s_xh, s_xw, B, H, W, C)
            g = tl.load(dy_ptr + n * B * H * W * O + rp[:, None] * O + ro[None, :],
                        mask=(rp[:, None] < B * H * W) & (ro[None, :] < O), other=0.0)
            acc = tl.dot(tl.trans(a), g, acc, input_precision=PRECISION)
        part = part_ptr + (n * SPLIT + s) * 9 * C * O
        tl.store(part + j[:, None] * O + ro[None, :], acc, mask=(j[:, None] < 9 * C) & (ro[None, :] < O))

    return forward, weight_grad


def conv3x3_im2col_batched(x: torch.Tensor, w: torch.Tensor, tiles: tuple[int, int, int, int] = (128, 64, 32, 4)
                           ) -> torch.Tensor:
    """`conv3x3_batched` with the reduction over (kh, kw, c) as one index of im2col's columns, BLOCK_J of them per
    step (all 27 of a 3-channel input in one block of 32, where the other kernel pads each of the nine shifts'
    3 channels to 16): x (M, B, H, W, C) contiguous, w (M, 3, 3, C, O) contiguous; ``tiles``: BLOCK_P, BLOCK_O,
    BLOCK_J (at least 16), warps."""
    networks, batch, height, width, channels = x.shape
    out = w.shape[-1]
    x, w = x.contiguous(), w.contiguous()
    block_p, block_o, block_j, warps = tiles
    y = x.new_empty(networks, batch, height, width, out)
    grid = (-(-batch * height * width // block_p), -(-out // block_o), networks)
    _im2col_kernels()[0][grid](x, w, y, *x.stride()[:4], B=batch, H=height, W=width, C=channels, O=out,
                               BLOCK_P=block_p, BLOCK_O=block_o, BLOCK_J=block_j, PRECISION=_precision(x.dtype),
                               num_warps=warps)
    return y


def conv3x3_weight_grad_batched(x: torch.Tensor, dy: torch.Tensor, programs: int = 512,
                                tiles: tuple[int, int, int] = (128, 32, 4)) -> torch.Tensor:
    """Each network's weight gradient of its 3x3 'same' convolution (stride 1): x (M, B, H, W, C) inputs, dy
    (M, B, H, W, O) output gradients, both contiguous; returns (M, 3, 3, C, O) fp32. The sum over the B*H*W
    pixels is split into partial sums (enough programs, about ``programs``, to fill the GPU) that torch adds
    in a fixed order: the same result at every run. ``tiles``: BLOCK_P (pixels per step), BLOCK_J (rows (kh, kw,
    c) per program, at least 16), warps; all O output channels per program (O up to 128)."""
    networks, batch, height, width, channels = x.shape
    out = dy.shape[-1]
    x, dy = x.contiguous(), dy.contiguous()
    block_p, block_j, warps = tiles
    j_blocks = -(-9 * channels // block_j)
    pixel_blocks = -(-batch * height * width // block_p)
    split = max(1, min(pixel_blocks, -(-programs // (j_blocks * networks))))
    partial = x.new_empty(networks, split, 9 * channels, out, dtype=torch.float32)
    _im2col_kernels()[1][(j_blocks, split, networks)](
        x, dy, partial, *x.stride()[:4], B=batch, H=height, W=width, C=channels, O=out, SPLIT=split,
        BLOCK_P=block_p, BLOCK_O=max(16, 1 << (out - 1).bit_length()), BLOCK_J=block_j,
        PRECISION=_precision(x.dtype), num_warps=warps)
    return partial.sum(1).view(networks, 3, 3, channels, out)


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
    parser.add_argument("--tiles", nargs="+", default=["128:64:32:4", "128:64:64:8"],
                        help="BLOCK_P:BLOCK_O:BLOCK_C:warps settings of the nine-shift forward kernel")
    parser.add_argument("--im2col-tiles", nargs="+", default=["128:64:32:4", "128:64:64:8"],
                        help="BLOCK_P:BLOCK_O:BLOCK_J:warps settings of the im2col forward kernel")
    parser.add_argument("--grad-tiles", nargs="+", default=["128:32:4", "128:64:8", "256:32:8"],
                        help="BLOCK_P:BLOCK_J:warps settings of the weight-gradient kernel")
    parser.add_argument("--batch", type=int, default=60)
    args = parser.parse_args()
    from triton.testing import do_bench
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(dev), flush=True)
    parse = lambda setting: tuple(int(v) for v in setting.split(":"))
    for channels, out in ((3, 64), (64, 64)):  # Conv-2's convolutions on 32x32 CIFAR images
        for networks in args.networks:
            x = torch.randn(networks, args.batch, 32, 32, channels, device=dev, dtype=torch.bfloat16)
            w = torch.randn(networks, 3, 3, channels, out, device=dev, dtype=torch.bfloat16) / (3 * channels ** 0.5)
            dy = torch.randn(networks, args.batch, 32, 32, out, device=dev, dtype=torch.bfloat16)
            flop = 2 * networks * args.batch * 32 * 32 * out * 9 * channels  # of the forward pass or the weight gradient
            xg, wg = as_grouped(x, w)
            dyg = dy.permute(1, 0, 4, 2, 3).reshape(args.batch, networks * out, 32, 32)
            expected = F.conv2d(xg, wg, padding=1, groups=networks).float().view(args.batch, networks, out, 32, 32)
            expected = expected.permute(1, 0, 3, 4, 2)
            grouped_grad = lambda: torch.ops.aten.convolution_backward(
                dyg, xg, wg, None, [1, 1], [1, 1], [1, 1], False, [0, 0], networks, [False, True, False])[1]
            expected_grad = grouped_grad().float().view(networks, out, channels, 3, 3).permute(0, 3, 4, 2, 1)
            rows = []
            for setting in args.tiles:
                tiles = parse(setting)
                error = (conv3x3_batched(x, w, tiles).float() - expected).abs().max().item()
                rows.append((f"forward, Triton nine shifts {setting} (max |diff| {error:.2g})",
                             do_bench(lambda: conv3x3_batched(x, w, tiles))))
            for setting in args.im2col_tiles:
                tiles = parse(setting)
                error = (conv3x3_im2col_batched(x, w, tiles).float() - expected).abs().max().item()
                rows.append((f"forward, Triton im2col {setting} (max |diff| {error:.2g})",
                             do_bench(lambda: conv3x3_im2col_batched(x, w, tiles))))
            for search in (False, True):
                torch.backends.cudnn.benchmark = search
                rows.append((f"forward, cuDNN grouped (vmap's), algorithm search {'on' if search else 'off'}",
                             do_bench(lambda: F.conv2d(xg, wg, padding=1, groups=networks))))
            torch.backends.cudnn.benchmark = False
            dense_x = [x[n].permute(0, 3, 1, 2) for n in range(networks)]  # NCHW views of NHWC memory: channels-last
            dense_w = [w[n].permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last) for n in range(networks)]
            dense_dy = [dy[n].permute(0, 3, 1, 2) for n in range(networks)]
            rows.append(("forward, dense channels-last, one network after another",
                         do_bench(lambda: [F.conv2d(a, k, padding=1) for a, k in zip(dense_x, dense_w)])))
            scale = expected_grad.abs().max().item()
            for setting in args.grad_tiles:
                tiles = parse(setting)
                error = (conv3x3_weight_grad_batched(x, dy, tiles=tiles) - expected_grad).abs().max().item() / scale
                rows.append((f"weight gradient, Triton {setting} (max |diff| / max {error:.2g})",
                             do_bench(lambda: conv3x3_weight_grad_batched(x, dy, tiles=tiles))))
            for search in (False, True):
                torch.backends.cudnn.benchmark = search
                rows.append((f"weight gradient, cuDNN grouped (vmap's), algorithm search {'on' if search else 'off'}",
                             do_bench(grouped_grad)))
            torch.backends.cudnn.benchmark = False
            rows.append(("weight gradient, dense channels-last, one network after another", do_bench(lambda: [
                torch.ops.aten.convolution_backward(g, a, k, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                    [False, True, False])[1]
                for a, k, g in zip(dense_x, dense_w, dense_dy)])))
            for name, ms in rows:
                print(f"conv {channels}->{out}, M={networks}: {name}: {ms * 1e3:8.1f} us, {flop / ms / 1e9:6.1f} TFLOP/s",
                      flush=True)


if __name__ == "__main__":
    main()
