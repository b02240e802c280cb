"""The weight gradient of a stack's first linear layer and its masked Adam update in one Triton kernel.

In a stacked LeNet-300-100 step the first layer (784 -> 300) holds 88% of the weights. Through autograd its weight
gradient is a batched matmul that writes M x 300 x 784 floats to memory only for the optimiser update to read them
back; on one H200 at 20 networks that matmul took ~14 us and the update (every weight, gradient, mask and two
moments, read and written once) ~38 us of a ~114 us step (benchmarks/results/h200/gpu_probe_fused_mlp.txt). Here each
program computes one tile of that gradient from the batch (``dZ^T @ x``, a matmul over the batch's 60 rows) and
applies Adam to the same tile of the weight and its moments, so the gradient never reaches memory and the step
streams the layer's state once.

Used by `lth.train.step.TrainStep` with the fused tail of `lth.train.fused_mlp` (FC stacks, compiled, on a GPU)
when the optimiser is plain Adam (`first_layer`): the first layer's pre-activation ``x @ W^T`` is computed without
autograd, autograd gives its gradient ``dZ`` (and the bias's), `masked_update` updates every other tensor and
`update` this one. The arithmetic is `lth.train.optim`'s masked Adam (torch.optim.Adam's rule with L2 weight decay
on the gradient multiplied by the mask, the same bias corrections, `adam_scalars`), the gradient's matmul at the
tail's precision (TF32 tensor cores for tf32, full fp32 for fp32): equal to autograd's gradient and the unfused
update up to floating-point rounding (tests/train/test_fused_adam.py; on a CPU under ``TRITON_INTERPRET=1``).
Pruned weights stay exactly zero: their gradient is masked, their moments are zero, so their update is zero.
"""

from __future__ import annotations

import functools

import torch

from lth.nets.stack import NetworkStack
from lth.train import optim
from lth.train.triton_support import block, cdiv

# (input columns, output columns) of a program's tile, and its warps; the weight's output dimension is its fast one
# in lth's gradient layout (lth.nets.stack), so tiles run along it
TILE_IN, TILE_OUT, WARPS = 64, 64, 4
GRADIENT = "dot"  # the gradient's tile by tl.dot ('dot') or by a loop of outer products over the batch ('outer')


def first_layer(stack: NetworkStack, optimizer: torch.optim.Optimizer, layers: tuple[tuple[str, str], ...]
                ) -> tuple[str, str] | None:
    """(weight name, bias name) of the first linear layer of an FC stack whose loss runs through the fused tail
    (``layers`` from `lth.train.fused_mlp.tail_layers`) if `update` can take its weight: the optimiser is plain
    `torch.optim.Adam` (no amsgrad, decoupled weight decay or maximize) and at least one layer comes before the
    tail's two; else None."""
    group = optimizer.param_groups[0]
    if type(optimizer) is not torch.optim.Adam or any(group.get(k) for k in ("amsgrad", "decoupled_weight_decay",
                                                                               "maximize")):
        return None
    if len(layers) < 3 or stack.params[layers[0][0]].dim() != 3:
        return None
    return layers[0]


def preactivation(x_all: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``x_all[idx]`` flattened to (M, B, in) and the first layer's ``x @ W^T`` (M, B, out), neither
    tracked by autograd (the weight's gradient is `update`'s): ``x_all`` (N, ...) a whole split, ``idx`` (M, B)."""
    with torch.no_grad():  # a with-block: the function is compiled (see optim.compile_per_shape)
        x = x_all[idx].flatten(2)
        return x, torch.bmm(x, weight.transpose(1, 2))


def update(optimizer: torch.optim.Adam, weight: torch.Tensor, mask: torch.Tensor | None, x: torch.Tensor,
           dz: torch.Tensor, lr: torch.Tensor, precision: str, compile: bool = False) -> None:
    """One masked Adam step of ``weight`` (M, out, in), any strides, fp32, with the gradient ``dz^T @ x`` of each
    network: ``x`` (M, B, in) the layer's input, ``dz`` (M, B, out) the gradient of the loss with respect to its
    output, both fp32; ``mask`` the weight's bool gradient mask (`NetworkStack.gradient_masks`, its layout) or None;
    ``lr`` a 0-dim tensor on the weight's device (a captured CUDA graph reads it); ``precision`` 'tf32' or 'ieee'
    for the gradient's matmul; ``compile``: the bias corrections through the compiled `adam_scalars` (one kernel).
    The hyperparameters come from the optimiser's first param group, the state is its own (``step``, ``exp_avg``,
    ``exp_avg_sq``; moments not in the weight's layout are copied into it once). Raises ValueError for another
    precision, shapes that do not match or a mask not in the weight's layout."""
    if precision not in ("tf32", "ieee"):
        raise ValueError(f"precision must be 'tf32' or 'ieee', got {precision!r}")
    networks, outputs, inputs = weight.shape
    if x.shape[::2] != (networks, inputs) or dz.shape != (networks, x.shape[1], outputs):
        raise ValueError(f"update: x {tuple(x.shape)} and dz {tuple(dz.shape)} do not fit a weight of "
                         f"{tuple(weight.shape)} (want (M, B, in) and (M, B, out))")
    if mask is not None and mask.stride() != weight.stride():
        raise ValueError("update: the mask must be in the weight's layout (NetworkStack.gradient_masks are)")
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    state = optim.adam_state(optimizer, weight)
    for key in ("exp_avg", "exp_avg_sq"):
        if state[key].stride() != weight.stride():  # e.g. from a checkpoint: the kernel walks one set of strides
            state[key] = torch.empty_like(weight).copy_(state[key])
    scalars = optim.compiled_update(optim.adam_scalars) if compile else optim.adam_scalars
    (step_size, root_correction2), = scalars([state["step"]], lr, beta1, beta2)
    _kernel()[(networks, cdiv(inputs, TILE_IN), cdiv(outputs, TILE_OUT))](
        x, dz, weight.detach(), weight if mask is None else mask.view(torch.uint8), state["exp_avg"],
        state["exp_avg_sq"], step_size, root_correction2, *x.stride(), *dz.stride(), *weight.stride(),
        x.shape[1], outputs, inputs, 1 - beta1, beta2, 1 - beta2, group["eps"], group["weight_decay"],
        BP=block(x.shape[1]), BI=TILE_IN, BO=TILE_OUT, MASKED=mask is not None, DECAY=group["weight_decay"] != 0,
        PRECISION=precision, OUTER=GRADIENT == "outer", num_warps=WARPS)


@functools.cache
def _kernel():
    """The Triton kernel, made on first use (importing lth needs no Triton; TRITON_INTERPRET set before the first
    call runs it on a CPU)."""
    import triton
    import triton.language as tl

    @triton.jit
    def linear_adam(x_ptr, dz_ptr, w_ptr, keep_ptr, m_ptr, v_ptr, step_size_ptr, root_ptr,
                    s_xn: tl.constexpr, s_xb: tl.constexpr, s_xi: tl.constexpr, s_dn: tl.constexpr,
                    s_db: tl.constexpr, s_do: tl.constexpr, s_wn: tl.constexpr, s_wo: tl.constexpr,
                    s_wi: tl.constexpr, B: tl.constexpr, O: tl.constexpr, I: tl.constexpr,
                    one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
                    BP: tl.constexpr, BI: tl.constexpr, BO: tl.constexpr, MASKED: tl.constexpr, DECAY: tl.constexpr,
                    PRECISION: tl.constexpr, OUTER: tl.constexpr):
        # Program (n, i, o): network n's weight tile of inputs i * BI .. and outputs o * BO .., held as (BI, BO).
        # Strides and sizes are constants (one compilation per layer shape): a row of LeNet's weight starts every
        # 300 floats, which Triton's run-time specialisation (multiples of 16) would not see as 16-byte aligned,
        # leaving every load and store a scalar one
        n, ti, to = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        rb, ri, ro = tl.arange(0, BP), ti * BI + tl.arange(0, BI), to * BO + tl.arange(0, BO)
        b_ok, i_ok, o_ok = rb < B, ri < I, ro < O
        at = n * s_wn + ri[:, None] * s_wi + ro[None, :] * s_wo
        ok = i_ok[:, None] & o_ok[None, :]
        # the state's loads first: they stream from memory while the gradient's tile is computed
        p = tl.load(w_ptr + at, mask=ok, other=0.0)
        m = tl.load(m_ptr + at, mask=ok, other=0.0)
        v = tl.load(v_ptr + at, mask=ok, other=0.0)
        if MASKED:
            keep = tl.load(keep_ptr + at, mask=ok, other=0) != 0
        if OUTER:  # sum over the batch of outer products, fp32 FMAs in the state's layout
            g = tl.zeros((BI, BO), dtype=tl.float32)
            for b in range(0, B):
                xb = tl.load(x_ptr + n * s_xn + b * s_xb + ri * s_xi, mask=i_ok, other=0.0)
                db = tl.load(dz_ptr + n * s_dn + b * s_db + ro * s_do, mask=o_ok, other=0.0)
                g += xb[:, None] * db[None, :]
        else:
            x = tl.load(x_ptr + n * s_xn + rb[:, None] * s_xb + ri[None, :] * s_xi,
                        mask=b_ok[:, None] & i_ok[None, :], other=0.0)
            dz = tl.load(dz_ptr + n * s_dn + rb[:, None] * s_db + ro[None, :] * s_do,
                         mask=b_ok[:, None] & o_ok[None, :], other=0.0)
            g = tl.dot(tl.trans(x), dz, input_precision=PRECISION)  # (BI, BO): the gradient's tile, transposed
        if MASKED:
            g = tl.where(keep, g, 0.0)
        if DECAY:
            g = g + weight_decay * p
        m = m + one_minus_beta1 * (g - m)  # torch's lerp(m, g, 1 - beta1) for a weight below 0.5
        v = v * beta2 + one_minus_beta2 * (g * g)
        denominator = tl.sqrt_rn(v) / tl.load(root_ptr) + eps
        p = p - tl.load(step_size_ptr) * m / denominator
        tl.store(m_ptr + at, m, mask=ok)
        tl.store(v_ptr + at, v, mask=ok)
        tl.store(w_ptr + at, p, mask=ok)

    return linear_adam
