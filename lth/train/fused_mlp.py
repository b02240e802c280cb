"""The training loss of a stack of fully connected networks with its last two layers fused into a Triton kernel.

A stacked LeNet-300-100 step on a GPU is a chain of small kernels: with torch's batched matmuls the layers
after the first (300 -> 100 -> 10), the loss and their backward pass are about fifteen launches of a few
microseconds each, most of them too small to fill the GPU. Here one kernel computes, for every network, that
tail (hidden layer, ReLU, output layer, softmax cross-entropy) and all its gradients, in the forward pass;
the backward pass only scales them by the loss's gradient (or, where the caller starts backward from the sum
of the losses, hands them on as they are). Each network's work is split over several
programs (each recomputes the small forward pass and writes its share of the hidden layer's weight gradient
and of the input gradient), so that a few networks still fill the GPU. The first layer (784 -> 300 for
LeNet-300-100) and any layers before the tail stay batched matmuls, large enough for cuBLAS, and autograd
computes their gradients from the tail's input gradient.

Used by `lth.train.step.TrainStep` for `lth.nets.models.FC` stacks (LeNet-300-100 and the ``fc`` model) with
biases (`tail_layers` says which), compiled, at tf32, on a GPU with Triton, up to FAST_UP_TO networks; at fp32
on request (``TrainStep(fused=True)``). The arithmetic is the unfused path's: the mean cross-entropy of
``relu(a @ W2^T + b2) @ W3^T + b3``, its matmuls at the same precision (TF32 tensor cores for tf32, full fp32
for fp32), equal to it up to floating-point rounding (tests/train/test_fused_mlp.py; on a CPU under
``TRITON_INTERPRET=1``). Measured in REPRODUCIBILITY.md ("Against the best idioms").
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import nn

from lth.nets.models import FC
from lth.nets.stack import NetworkStack
from lth.train.triton_support import block, cdiv, processors

# The kernel keeps (batch x hidden) tiles in registers and shared memory: these bounds (padded to 64 x 128 x 16,
# LeNet-300-100's batch of 60, 100 hidden units, 10 classes) are the shapes that ran on a GPU
MAX_BATCH, MAX_HIDDEN, MAX_CLASSES = 64, 128, 16
# Stacks up to this size take the fused tail by default, at tf32: on one H200 (LeNet-300-100) it was faster at 1
# and 20 networks, and slower at 50 and 100, where torch's batched matmuls fill the GPU; at fp32 ('ieee', no
# tensor cores) it was slower at 1 and 20 (benchmarks/gpu_probe.py, benchmarks/side_by_side.py; REPRODUCIBILITY.md)
FAST_UP_TO = 32


def tail_layers(stack: NetworkStack, batch: int) -> tuple[tuple[str, str], ...] | None:
    """(weight name, bias name) of every linear layer of ``stack``, in order, if its training loss can run
    through the fused tail: a plain `NetworkStack` of `FC` networks (nn.Linear layers only, at least one hidden
    layer, with biases, no buffers), the last hidden width at most MAX_HIDDEN, at most MAX_CLASSES classes and
    ``batch`` at most MAX_BATCH examples per network; else None."""
    template = stack.template
    if type(stack) is not NetworkStack or type(template) is not FC or stack.buffers:  # a subclass may differ
        return None
    linears = list(template.fc)
    if len(linears) < 2 or any(type(layer) is not nn.Linear or layer.bias is None for layer in linears):
        return None
    names = tuple((f"fc.{i}.weight", f"fc.{i}.bias") for i in range(len(linears)))
    if set(stack.params) != {name for pair in names for name in pair}:
        return None
    hidden, classes = linears[-1].in_features, linears[-1].out_features
    if hidden > MAX_HIDDEN or classes > MAX_CLASSES or batch > MAX_BATCH:
        return None
    return names


def fc_losses(params: dict[str, torch.Tensor], layers: Sequence[tuple[str, str]], x: torch.Tensor, y: torch.Tensor,
              precision: str, unit_seed: bool = False) -> torch.Tensor:
    """(M,) mean cross-entropy of each network of an `FC` stack on its batch: ``x`` (M, B, ...) inputs (flattened
    here), ``y`` (M, B) int64 labels, ``params`` the stack's tensors (weights (M, out, in)), ``layers`` from
    `tail_layers`, ``precision`` 'tf32' (TF32 tensor cores) or 'ieee' (full fp32) for the tail's matmuls,
    ``unit_seed`` as in `mlp_tail` (True only where backward starts from the sum of the losses, seed 1). The
    layers before the last two are batched matmuls (+ ReLU); the last two and the loss are the fused kernels."""
    h = x.flatten(2)
    for weight, bias in layers[:-2]:
        h = torch.relu(torch.baddbmm(params[bias].unsqueeze(1), h, params[weight].transpose(1, 2)))
    (w2, b2), (w3, b3) = layers[-2:]
    return torch.ops.lth.mlp_tail(h, params[w2], params[b2], params[w3], params[b3], y, precision, unit_seed)[0]


# ---- the kernels --------------------------------------------------------------------------------

@functools.cache
def _kernel():
    """The Triton kernel, made on first use (so that importing lth needs no Triton, and TRITON_INTERPRET set
    before the first call runs it on a CPU)."""
    import triton
    import triton.language as tl

    @triton.jit
    def mlp_tail(a_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, y_ptr,
                 loss_ptr, da_ptr, dw2_ptr, db2_ptr, dw3_ptr, db3_ptr,
                 s_an, s_ab, s_ak, s_w2n, s_w2o, s_w2i, s_w3n, s_w3o, s_w3i, s_yn, s_yb,
                 B: tl.constexpr, K: tl.constexpr, H: tl.constexpr, C: tl.constexpr,  # one compilation per shape
                 BP: tl.constexpr, HP: tl.constexpr, CP: tl.constexpr, BK: tl.constexpr, SPLIT: tl.constexpr,
                 PRECISION: tl.constexpr):
        # Program (n, s): network n's a (B, K), W2 (H, K), b2 (H,), W3 (C, H), b3 (C,), labels (B,). Every
        # program of a network computes its forward pass and output gradients; program s writes the gradients
        # of W2's columns and of a's columns k0 .. k0 + BK - 1 for k0 = s * BK, (s + SPLIT) * BK, ...
        n = tl.program_id(0)
        s = tl.program_id(1)
        rb, rh, rc, rk = tl.arange(0, BP), tl.arange(0, HP), tl.arange(0, CP), tl.arange(0, BK)
        b_ok, h_ok, c_ok = rb < B, rh < H, rc < C
        a_base, w2_base = a_ptr + n * s_an, w2_ptr + n * s_w2n
        z2 = tl.zeros((BP, HP), dtype=tl.float32)
        for k0 in range(0, K, BK):
            kk = k0 + rk
            a = tl.load(a_base + rb[:, None] * s_ab + kk[None, :] * s_ak, mask=b_ok[:, None] & (kk[None, :] < K),
                        other=0.0)
            w = tl.load(w2_base + kk[:, None] * s_w2i + rh[None, :] * s_w2o, mask=(kk[:, None] < K) & h_ok[None, :],
                        other=0.0)
            z2 = tl.dot(a, w, z2, input_precision=PRECISION)
        z2 += tl.load(b2_ptr + n * H + rh, mask=h_ok, other=0.0)[None, :]
        a2 = tl.where(b_ok[:, None] & (z2 > 0), z2, 0.0)  # padded rows would be relu(b2): zero them
        w3t = tl.load(w3_ptr + n * s_w3n + rh[:, None] * s_w3i + rc[None, :] * s_w3o,
                      mask=h_ok[:, None] & c_ok[None, :], other=0.0)  # (HP, CP): W3 transposed
        logits = tl.dot(a2, w3t, input_precision=PRECISION)
        logits += tl.load(b3_ptr + n * C + rc, mask=c_ok, other=0.0)[None, :]
        logits = tl.where(c_ok[None, :], logits, float("-inf"))
        labels = tl.load(y_ptr + n * s_yn + rb * s_yb, mask=b_ok, other=0)
        top = tl.max(logits, 1)
        e = tl.exp(logits - top[:, None])
        total = tl.sum(e, 1)
        hit = rc[None, :] == labels[:, None]
        # d(mean loss)/d(logits) = (softmax - onehot) / B
        dlogits = tl.where(b_ok[:, None] & c_ok[None, :], (e / total[:, None] - tl.where(hit, 1.0, 0.0)) / B, 0.0)
        dz2 = tl.where(a2 > 0, tl.dot(dlogits, tl.trans(w3t), input_precision=PRECISION), 0.0)  # (BP, HP)
        if s == 0:
            per_example = top + tl.log(total) - tl.sum(tl.where(hit, logits, 0.0), 1)
            tl.store(loss_ptr + n, tl.sum(tl.where(b_ok, per_example, 0.0), 0) / B)
            dw3t = tl.dot(tl.trans(a2), dlogits, input_precision=PRECISION)  # (HP, CP)
            tl.store(dw3_ptr + n * s_w3n + rh[:, None] * s_w3i + rc[None, :] * s_w3o, dw3t,
                     mask=h_ok[:, None] & c_ok[None, :])
            tl.store(db3_ptr + n * C + rc, tl.sum(dlogits, 0), mask=c_ok)
            tl.store(db2_ptr + n * H + rh, tl.sum(dz2, 0), mask=h_ok)
        dw2_base, da_base = dw2_ptr + n * s_w2n, da_ptr + n * B * K
        for k0 in range(0, K, SPLIT * BK):  # constant bounds: a block past K is all masked
            kk = k0 + s * BK + rk
            k_ok = kk < K
            a = tl.load(a_base + rb[:, None] * s_ab + kk[None, :] * s_ak, mask=b_ok[:, None] & k_ok[None, :], other=0.0)
            dw2t = tl.dot(tl.trans(a), dz2, input_precision=PRECISION)  # (BK, HP): W2's gradient, transposed
            tl.store(dw2_base + kk[:, None] * s_w2i + rh[None, :] * s_w2o, dw2t, mask=k_ok[:, None] & h_ok[None, :])
            w = tl.load(w2_base + kk[:, None] * s_w2i + rh[None, :] * s_w2o, mask=k_ok[:, None] & h_ok[None, :],
                        other=0.0)
            da = tl.dot(dz2, tl.trans(w), input_precision=PRECISION)  # (BP, BK): the input's gradient
            tl.store(da_base + rb[:, None] * K + kk[None, :], da, mask=b_ok[:, None] & k_ok[None, :])

    return mlp_tail


def tiles(networks: int) -> tuple[int, int]:
    """(columns of the tail's input per loop step, warps per program) for a stack of ``networks``: on one H200
    (LeNet-300-100, tf32) 32 columns and 4 warps were 4-8% faster at 1 to 8 networks, 7% slower at 20
    (benchmarks/results/h200/gpu_probe_fused_mlp.txt)."""
    return (32, 4) if networks <= 8 else (64, 8)


@torch.library.custom_op("lth::mlp_tail", mutates_args=())
def mlp_tail(a: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, w3: torch.Tensor, b3: torch.Tensor,
             y: torch.Tensor, precision: str, unit_seed: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(M,) mean cross-entropy of ``relu(a @ W2^T + b2) @ W3^T + b3`` against ``y`` and its gradients with respect
    to a, w2, b2, w3, b3 (each weight's in the weight's own strides, so autograd stores it without a copy):
    a (M, B, K) fp32, w2 (M, H, K), b2 (M, H), w3 (M, C, H), b3 (M, C) (any strides), y (M, B) int64.
    ``precision``: 'tf32' or 'ieee' for the matmuls. ``unit_seed``: the caller promises that backward reaches
    each network's loss with gradient 1 (as ``losses.sum().backward()`` does), so the backward pass hands on the
    kernel's gradients as they are (no scaling kernels); any other seed then gives wrong gradients.
    Raises ValueError for another precision."""
    if precision not in ("tf32", "ieee"):
        raise ValueError(f"precision must be 'tf32' or 'ieee', got {precision!r}")
    loss, *grads = _outputs(a, w2, b2, w3, b3)
    networks, batch, width = a.shape
    # enough programs per network to fill the GPU, each with at least one block of the input's columns
    block_k, warps = tiles(networks)
    split = max(1, min(cdiv(width, block_k), cdiv(2 * processors(a.device), networks)))
    _kernel()[(networks, split)](
        a, w2, b2.contiguous(), w3, b3.contiguous(), y, loss, *grads,
        *a.stride(), *w2.stride(), *w3.stride(), *y.stride(), B=batch, K=width, H=w2.shape[1], C=w3.shape[1],
        BP=block(batch), HP=block(w2.shape[1]), CP=block(w3.shape[1]), BK=block_k, SPLIT=split, PRECISION=precision,
        num_warps=warps)
    return loss, *grads


@mlp_tail.register_fake
def _(a, w2, b2, w3, b3, y, precision, unit_seed=False):
    return _outputs(a, w2, b2, w3, b3)


def _outputs(a, w2, b2, w3, b3) -> tuple[torch.Tensor, ...]:
    like = lambda t: torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    return a.new_empty(a.shape[0]), a.new_empty(a.shape), like(w2), b2.new_empty(b2.shape), like(w3), b3.new_empty(b3.shape)


def _setup(ctx, inputs, output):
    ctx.mark_non_differentiable(*output[1:])
    ctx.save_for_backward(*output[1:])
    ctx.unit_seed = inputs[-1]


def _backward(ctx, grad, *unused):
    # the kernel's gradients are those of each network's loss; scale them by the loss's gradient unless the
    # caller promised it is 1 (at 20 networks the scaling was four small kernels, ~5 us of a ~114 us step)
    grads = ctx.saved_tensors
    if not ctx.unit_seed:
        grads = (g * grad.view(-1, *[1] * (g.dim() - 1)) for g in grads)
    return (*grads, None, None, None)


mlp_tail.register_autograd(_backward, setup_context=_setup)
