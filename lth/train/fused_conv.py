"""The training loss of a stack of Conv-2/4/6 networks with its 3x3 convolutions as Triton kernels batched over
networks.

Under vmap a stack's convolution is one grouped convolution, and cuDNN runs grouped convolutions far below its
dense speed: it launches kernels per group and transposes between layouts around them. On one H200 a stack of 20
Conv-2s spent 2.6 of its 6.9 ms per bf16 step in the weight gradient of the 3-channel first layer alone
(benchmarks/results/h200/gpu_probe_conv.txt). Here every network's convolution is an implicit GEMM over
im2col's columns (kh, kw, c) in one kernel for the whole stack, on channels-last activations (M, B, H, W, C):
the forward pass, the input gradient (the forward kernel on the output gradient with the weights flipped and
transposed) and the weight gradient (im2col(x)^T dy, its sum over pixels split into partial sums that torch adds
in a fixed order, so that a run's result does not depend on scheduling). Measured against cuDNN's grouped
convolution by benchmarks/batched_conv.py (REPRODUCIBILITY.md, "Against the best idioms").

Used by `lth.train.step.TrainStep` for plain stacks of `lth.nets.models.ConvNet` of at most 64 channels (Conv-2),
compiled, at bf16, on a GPU with Triton; for those of at most 128 (Conv-4; `conv_layers` says which) and at fp32
and tf32 on request. The arithmetic is the stack's own (ReLU after every convolution, a 2x2 max-pool closing each
pair, the flattened features in NCHW order through the fully connected layers, mean cross-entropy), up to
floating-point rounding (tests/train/test_fused_conv.py).
"""

from __future__ import annotations

import functools
import torch
import torch.nn.functional as F

from lth.nets.models import ConvNet
from lth.nets.stack import NetworkStack
from lth.train.triton_support import block, cdiv, processors

MAX_OUT_CHANNELS = 128  # the weight gradient's program holds all output channels of a row block
# TrainStep takes the kernels by default where they were measured faster than cuDNN's grouped convolutions: on one
# H200, Conv-2's 64-channel convolutions (benchmarks/results/h200/batched_conv.txt); Conv-4's 128 on request
FAST_UP_TO_CHANNELS = 64


def widest(stack: NetworkStack) -> int:
    """The most output channels of a `ConvNet` stack's convolutions."""
    return max(conv.out_channels for conv in stack.template.conv)


def conv_layers(stack: NetworkStack) -> tuple[tuple, tuple] | None:
    """((weight, bias or None) names of the convolutions, the same of the linear layers) of a plain stack of
    `ConvNet`s whose convolutions the kernels take (at most MAX_OUT_CHANNELS outputs), else None."""
    if type(stack) is not NetworkStack or type(stack.template) is not ConvNet:
        return None
    if widest(stack) > MAX_OUT_CHANNELS:
        return None
    names = lambda prefix, layers: tuple((f"{prefix}.{i}.weight", f"{prefix}.{i}.bias" if layer.bias is not None
                                          else None) for i, layer in enumerate(layers))
    return names("conv", stack.template.conv), names("fc", stack.template.fc)


def conv_losses(params: dict[str, torch.Tensor], layers: tuple[tuple, tuple], x: torch.Tensor, y: torch.Tensor,
                precision: str) -> torch.Tensor:
    """(M,) mean cross-entropy of each network of a `ConvNet` stack on its batch: ``x`` (M, B, C, H, W) images,
    ``y`` (M, B) int64 labels, ``params`` the stack's tensors, ``layers`` from `conv_layers`. ``precision``:
    'bf16' (activations and weights in bf16, fp32 sums, as torch's autocast), 'tf32' or 'fp32' (true fp32
    convolutions, where the stack's own cuDNN convolutions use TF32 by torch's default).

    The pool comes before the bias and ReLU (the same values: a bias is one constant per channel, and ReLU and
    max commute), over the convolution's stored output, so that the backward pass finds the maxima by comparing
    tensors that were written to memory. After a bias and ReLU fused by Inductor, which keeps bf16 intermediates in
    fp32 registers, the backward pass compared unrounded values with the rounded maximum, found no match in many
    windows and dropped their gradient: Conv-2 stacks trained markedly slower at bf16
    (benchmarks/results/h200/conv2_bf16_pool.txt). Tied maxima share the gradient (torch's max_pool2d gives it to
    one of them)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    matmuls = "ieee" if precision == "fp32" else "tf32"
    convs, linears = layers
    h = x.to(dtype).permute(0, 1, 3, 4, 2).contiguous()  # channels-last
    for i, (weight, bias) in enumerate(convs):
        h = torch.ops.lth.conv3x3(h, params[weight].to(dtype).permute(0, 3, 4, 2, 1).contiguous(), matmuls)
        if i % 2 == 1:  # a 2x2 max-pool closes every pair (an odd last row or column is dropped, as max_pool2d does)
            m, b, height, width, c = h.shape
            h = h[:, :, :height // 2 * 2, :width // 2 * 2].reshape(m, b, height // 2, 2, width // 2, 2, c).amax((3, 5))
        if bias is not None:
            h = h + params[bias].to(dtype)[:, None, None, None, :]
        h = torch.relu(h)
    h = h.permute(0, 1, 4, 2, 3).flatten(2)  # the template's flatten order (C, H, W)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i, (weight, bias) in enumerate(linears):
            w = params[weight].transpose(1, 2)
            h = torch.bmm(h, w) if bias is None else torch.baddbmm(params[bias].unsqueeze(1), h, w)
            if i < len(linears) - 1:
                h = torch.relu(h)
    return F.cross_entropy(h.float().transpose(1, 2), y, reduction="none").mean(1)


# ---- the kernels --------------------------------------------------------------------------------

@functools.cache
def _kernels():
    """The Triton kernels, made on first use (importing lth needs no Triton; TRITON_INTERPRET set before the
    first call runs them on a CPU)."""
    import triton
    import triton.language as tl
    global _patch  # a jitted function calls another through its module's globals

    @triton.jit
    def _patch(x_ptr, n, rp, j, B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr):
        # (pixels, j) tile of network n's im2col matrix: row p = (b, h, w), column j = (kh, kw, c); zero padding
        b, h, w = rp // (H * W), (rp // W) % H, rp % W
        kh, kw, c = j // (3 * C), (j // C) % 3, j % C
        hh, ww = h[:, None] + kh[None, :] - 1, w[:, None] + kw[None, :] - 1
        inside = (rp[:, None] < B * H * W) & (j[None, :] < 9 * C) & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        return tl.load(x_ptr + n * B * H * W * C + ((b[:, None] * H + hh) * W + ww) * C + c[None, :], mask=inside,
                       other=0.0)

    @triton.jit
    def forward(x_ptr, w_ptr, y_ptr, B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr,
                O: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_J: tl.constexpr,
                PRECISION: tl.constexpr):
        # program (pixel block, output block, network n): y[n] (B*H*W, O) = im2col(x[n]) (B*H*W, 9C) @ w[n] (9C, O)
        # int64 network index: a stack's activations may pass 2^31 elements (64 Conv-2s at batch 512)
        pid_p, pid_o, n = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
        rp = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        ro = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
        acc = tl.zeros((BLOCK_P, BLOCK_O), dtype=tl.float32)
        for j0 in range(0, 9 * C, BLOCK_J):
            j = j0 + tl.arange(0, BLOCK_J)
            a = _patch(x_ptr, n, rp, j, B, H, W, C)
            k = tl.load(w_ptr + n * 9 * C * O + j[:, None] * O + ro[None, :],
                        mask=(j[:, None] < 9 * C) & (ro[None, :] < O), other=0.0)
            acc = tl.dot(a, k, acc, input_precision=PRECISION)
        tl.store(y_ptr + n * B * H * W * O + rp[:, None] * O + ro[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=(rp[:, None] < B * H * W) & (ro[None, :] < O))

    @triton.jit
    def weight_grad(x_ptr, dy_ptr, part_ptr, B: tl.constexpr, H: tl.constexpr, W: tl.constexpr, C: tl.constexpr,
                    O: tl.constexpr, SPLIT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_O: tl.constexpr,
                    BLOCK_J: tl.constexpr, PRECISION: tl.constexpr):
        # program (row block, s, network n): im2col(x[n])^T dy[n] over pixel blocks s, s + SPLIT, ... into partial s
        pid_j, s, n = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
        j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
        ro = tl.arange(0, BLOCK_O)
        acc = tl.zeros((BLOCK_J, BLOCK_O), dtype=tl.float32)
        for p0 in range(0, B * H * W, SPLIT * BLOCK_P):  # constant bounds: a block past the pixels is all masked
            rp = p0 + s * BLOCK_P + tl.arange(0, BLOCK_P)
            a = _patch(x_ptr, n, rp, j, B, H, W, C)
            g = tl.load(dy_ptr + n * B * H * W * O + rp[:, None] * O + ro[None, :],
                        mask=(rp[:, None] < B * H * W) & (ro[None, :] < O), other=0.0)
            acc = tl.dot(tl.trans(a), g, acc, input_precision=PRECISION)
        part = part_ptr + (n * SPLIT + s) * 9 * C * O
        tl.store(part + j[:, None] * O + ro[None, :], acc, mask=(j[:, None] < 9 * C) & (ro[None, :] < O))

    return forward, weight_grad


def forward_tiles(channels: int) -> tuple[int, int, int, int]:
    """(BLOCK_P pixels, BLOCK_O outputs, BLOCK_J im2col columns, warps) of the forward kernel: on one H200 (Conv-2,
    bf16) 32 columns and 4 warps for a 3-channel input (its 27 columns in one block), 64 and 8 otherwise."""
    return (128, 64, 32, 4) if 9 * channels <= 32 else (128, 64, 64, 8)


def grad_tiles(channels: int) -> tuple[int, int, int]:
    """(BLOCK_P pixels, BLOCK_J im2col columns, warps) of the weight-gradient kernel, measured like `forward_tiles`."""
    return (128, 32, 4) if 9 * channels <= 32 else (128, 64, 8)


def _check(op: str, x: torch.Tensor, other: torch.Tensor, precision: str, shapes_ok: bool, wanted: str) -> None:
    # the kernels index contiguous memory and ignore strides: refuse what they would read wrongly
    if precision not in ("tf32", "ieee"):
        raise ValueError(f"precision must be 'tf32' or 'ieee', got {precision!r}")
    if not shapes_ok:
        raise ValueError(f"{op} needs {wanted}; got {tuple(x.shape)} and {tuple(other.shape)}")
    if not (x.is_contiguous() and other.is_contiguous()) or x.dtype != other.dtype or x.device != other.device:
        raise ValueError(f"{op} needs contiguous tensors of one dtype on one device; got {x.dtype} "
                         f"(contiguous: {x.is_contiguous()}) on {x.device} and {other.dtype} (contiguous: "
                         f"{other.is_contiguous()}) on {other.device}")


@torch.library.custom_op("lth::conv3x3", mutates_args=())
def conv3x3(x: torch.Tensor, w: torch.Tensor, precision: str) -> torch.Tensor:
    """Each network's 3x3 'same' convolution (stride 1, zero padding, no bias): x (M, B, H, W, C) channels-last,
    w (M, 3, 3, C, O), both contiguous and of one dtype (fp32 or bf16); returns (M, B, H, W, O) in that dtype,
    summed in fp32. ``precision``: 'tf32' or 'ieee', the matmuls of fp32 inputs (bf16 inputs use bf16 tensor
    cores). Raises ValueError for other shapes, layouts or precisions."""
    _check("conv3x3", x, w, precision, x.dim() == w.dim() == 5 and w.shape[1:3] == (3, 3) and
           w.shape[3] == x.shape[4] and w.shape[0] == x.shape[0], "x (M, B, H, W, C) and w (M, 3, 3, C, O)")
    networks, batch, height, width, channels = x.shape
    out = w.shape[-1]
    y = x.new_empty(networks, batch, height, width, out)
    block_p, block_o, block_j, warps = forward_tiles(channels)
    grid = (cdiv(batch * height * width, block_p), cdiv(out, block_o), networks)
    _kernels()[0][grid](x, w, y, B=batch, H=height, W=width, C=channels, O=out, BLOCK_P=block_p, BLOCK_O=block_o,
                        BLOCK_J=block_j, PRECISION=precision, num_warps=warps)
    return y


@conv3x3.register_fake
def _(x, w, precision):
    return x.new_empty(*x.shape[:4], w.shape[-1])


@torch.library.custom_op("lth::conv3x3_weight_grad", mutates_args=())
def conv3x3_weight_grad(x: torch.Tensor, dy: torch.Tensor, precision: str) -> torch.Tensor:
    """The weight gradient of `conv3x3`: x (M, B, H, W, C) and dy (M, B, H, W, O), contiguous, O at most
    MAX_OUT_CHANNELS; returns (M, 3, 3, C, O) in x's dtype. The sum over the B*H*W pixels is split in enough
    partial sums to fill the GPU, added in a fixed order: the same result at every run. Raises ValueError for
    other shapes, layouts or precisions."""
    _check("conv3x3_weight_grad", x, dy, precision, x.dim() == dy.dim() == 5 and x.shape[:4] == dy.shape[:4],
           "x (M, B, H, W, C) and dy (M, B, H, W, O)")
    networks, batch, height, width, channels = x.shape
    out = dy.shape[-1]
    if out > MAX_OUT_CHANNELS:
        raise ValueError(f"conv3x3_weight_grad takes at most {MAX_OUT_CHANNELS} output channels, got {out}")
    block_p, block_j, warps = grad_tiles(channels)
    row_blocks, pixel_blocks = cdiv(9 * channels, block_j), cdiv(batch * height * width, block_p)
    split = max(1, min(pixel_blocks, cdiv(4 * processors(x.device), row_blocks * networks)))
    partial = x.new_empty(networks, split, 9 * channels, out, dtype=torch.float32)
    _kernels()[1][(row_blocks, split, networks)](
        x, dy, partial, B=batch, H=height, W=width, C=channels, O=out, SPLIT=split, BLOCK_P=block_p,
        BLOCK_O=block(out), BLOCK_J=block_j, PRECISION=precision, num_warps=warps)
    return partial.sum(1).view(networks, 3, 3, channels, out).to(x.dtype)


@conv3x3_weight_grad.register_fake
def _(x, dy, precision):
    return x.new_empty(x.shape[0], 3, 3, x.shape[-1], dy.shape[-1])


def _setup(ctx, inputs, output):
    x, w, precision = inputs
    ctx.save_for_backward(x, w)
    ctx.precision = precision


def _backward(ctx, dy):
    x, w = ctx.saved_tensors
    dy = dy.contiguous()
    # the input's gradient: a 'same' convolution of dy with each kernel flipped and its channels swapped
    dx = conv3x3(dy, w.flip(1, 2).transpose(3, 4).contiguous(), ctx.precision) if ctx.needs_input_grad[0] else None
    dw = conv3x3_weight_grad(x, dy, ctx.precision) if ctx.needs_input_grad[1] else None
    return dx, dw, None


conv3x3.register_autograd(_backward, setup_context=_setup)

