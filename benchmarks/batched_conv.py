"""Probe (issue 16, conv stacks): lth's 3x3 convolutions batched over networks (`lth.train.fused_conv`, Triton)
against the way a stack ran its convolutions before them.

Under vmap a stack's convolution is one grouped convolution over (B, M*C, H, W), and cuDNN runs grouped
convolutions far below its dense speed (it launches kernels per group and transposes around them:
benchmarks/results/h200/gpu_probe_conv.txt). `lth.train.fused_conv` computes every network's convolution as an
implicit GEMM over im2col's columns (kh, kw, c) in one kernel for the whole stack, and the weight gradient as
im2col(x)^T dy in deterministic partial sums.

    python benchmarks/batched_conv.py                  # on a GPU: Conv-2's two convolutions, bf16, M = 1, 20, 50

Prints, per layer and M, the time and TFLOP/s of the forward pass, the input gradient and the weight gradient:
lth's kernels, cuDNN's grouped convolution (vmap's) with and without cuDNN's algorithm search, and M dense
channels-last convolutions one after another; and the kernels' largest difference to cuDNN's result. The first
version of this probe (a forward kernel summing over the nine shifts, BLOCK_C channels at a time; tile sweeps of
both kernels) is in benchmarks/results/h200/batched_conv.txt.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from lth.train.fused_conv import conv3x3, conv3x3_weight_grad


def as_grouped(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (M, B, H, W, C) and w (M, 3, 3, C, O) as vmap hands them to one grouped convolution: (B, M*C, H, W) NCHW
    inputs and (M*O, C, 3, 3) weights, groups=M (its output (B, M*O, H, W))."""
    networks, batch, height, width, channels = x.shape
    xg = x.permute(1, 0, 4, 2, 3).reshape(batch, networks * channels, height, width)
    return xg, w.permute(0, 4, 3, 1, 2).reshape(networks * w.shape[-1], channels, 3, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=int, nargs="+", default=[1, 20, 50])
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--device", default="cuda", help="cpu: only under TRITON_INTERPRET=1 (the tests)")
    args = parser.parse_args()
    from triton import testing
    dev = torch.device(args.device)
    print(torch.__version__, torch.cuda.get_device_name(dev) if dev.type == "cuda" else "", flush=True)
    do_bench = testing.do_bench
    for channels, out in ((3, 64), (64, 64)):  # Conv-2's convolutions on 32x32 CIFAR images
        for networks in args.networks:
            x = torch.randn(networks, args.batch, 32, 32, channels, device=dev, dtype=torch.bfloat16)
            w = torch.randn(networks, 3, 3, channels, out, device=dev, dtype=torch.bfloat16) / (3 * channels ** 0.5)
            dy = torch.randn(networks, args.batch, 32, 32, out, device=dev, dtype=torch.bfloat16)
            flop = 2 * networks * args.batch * 32 * 32 * out * 9 * channels  # each of the three passes
            xg, wg = as_grouped(x, w)
            dyg = dy.permute(1, 0, 4, 2, 3).reshape(args.batch, networks * out, 32, 32)
            grouped_backward = lambda mask: torch.ops.aten.convolution_backward(
                dyg, xg, wg, None, [1, 1], [1, 1], [1, 1], False, [0, 0], networks, mask)
            dense = [(x[n].permute(0, 3, 1, 2), w[n].permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last),
                      dy[n].permute(0, 3, 1, 2)) for n in range(networks)]  # NCHW views of channels-last memory
            dense_backward = lambda mask: [torch.ops.aten.convolution_backward(
                g, a, k, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask) for a, k, g in dense]
            flipped = w.flip(1, 2).transpose(3, 4).contiguous()
            ours = {"forward": lambda: conv3x3(x, w, "tf32"),
                    "input gradient": lambda: conv3x3(dy, flipped, "tf32"),
                    "weight gradient": lambda: conv3x3_weight_grad(x, dy, "tf32")}
            theirs = {"forward": (lambda: F.conv2d(xg, wg, padding=1, groups=networks),
                                  lambda: [F.conv2d(a, k, padding=1) for a, k, _ in dense]),
                      "input gradient": (lambda: grouped_backward([True, False, False]),
                                         lambda: dense_backward([True, False, False])),
                      "weight gradient": (lambda: grouped_backward([False, True, False]),
                                          lambda: dense_backward([False, True, False]))}
            expected = {"forward": theirs["forward"][0]().view(args.batch, networks, out, 32, 32).permute(1, 0, 3, 4, 2),
                        "input gradient": grouped_backward([True, False, False])[0].view(
                            args.batch, networks, channels, 32, 32).permute(1, 0, 3, 4, 2),
                        "weight gradient": grouped_backward([False, True, False])[1].view(
                            networks, out, channels, 3, 3).permute(0, 3, 4, 2, 1)}
            for name, run in ours.items():
                rows = []
                reference = expected[name].float()
                error = (run().float() - reference).abs().max().item() / reference.abs().max().item()
                rows.append((f"lth.train.fused_conv (max |diff| / max {error:.2g})", do_bench(run)))
                for search in (False, True):
                    torch.backends.cudnn.benchmark = search
                    rows.append((f"cuDNN grouped (vmap's), algorithm search {'on' if search else 'off'}",
                                 do_bench(theirs[name][0])))
                torch.backends.cudnn.benchmark = False
                rows.append(("dense channels-last, one network after another", do_bench(theirs[name][1])))
                for label, ms in rows:
                    print(f"conv {channels}->{out}, M={networks}, {name}: {label}: {ms * 1e3:8.1f} us, "
                          f"{flop / ms / 1e9:6.1f} TFLOP/s", flush=True)


if __name__ == "__main__":
    main()
