"""The input layer's weight gradient computed inside the masked Adam update (fully connected stacks, GPU).

In a stack of LeNet-300-100s the input layer holds 88% of the weights, and a step is bound by memory
traffic: autograd writes that layer's weight gradient, (M, in, out), and the optimiser update reads it
back. Here autograd stops at the layer's output instead: the forward pass adds a zero tensor
``probe`` ((M, B, out), requiring grad) to the layer's pre-activation and uses the weight detached, so
backward delivers ``probe.grad`` = G, the loss's gradient with respect to the pre-activation (for
batch 60 and 784 inputs, 1/13 of the weight's size). One Triton kernel then computes each
(in, out) tile of the weight gradient, X^T G (X: the batch, (M, B, in)), multiplies it by the mask and
applies Adam to that tile of weights and moments in place: the weight gradient never reaches memory.

Same arithmetic as `lth.train.optim`'s Adam (torch.optim.Adam's rule with L2 weight decay, gradient
multiplied by the mask), up to floating-point rounding: the weight gradient is summed in fp32 (under
``TrainConfig.precision = 'tf32'`` the unfused step's matmul would round its inputs to TF32);
tests/train/test_input_layer.py checks the kernel and the step against the unfused arithmetic.

Used by `lth.train.step.TrainStep` where `fusable` says so (a plain `NetworkStack` of
`lth.nets.models.FC`, Adam, fp32 or tf32, batches gathered from device-resident data, Triton on a
GPU); ``LTH_FUSE_INPUT_LAYER=0`` turns it off. With ``TRITON_INTERPRET=1`` (set before import) the
kernel runs on a CPU, slowly: that is how the tests check it without a GPU.
"""

from __future__ import annotations

import functools
import os

import torch

from lth.train.optim import adam_state

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch builds ship without Triton
    triton = None

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def fusable(stack, optimizer: torch.optim.Optimizer, plain_batches: bool, autocast: bool) -> bool:
    """Whether `TrainStep` computes ``stack``'s input-layer weight gradient inside the update: a plain
    `NetworkStack` of `lth.nets.models.FC` nets, an Adam optimiser without amsgrad, no bf16 autocast,
    batches indexed from device-resident data (``plain_batches``: no augmentation, no data-parallel
    share), and Triton on a CUDA device (or interpreted on a CPU). ``LTH_FUSE_INPUT_LAYER=0``: never."""
    from lth.nets.models import FC
    from lth.nets.stack import NetworkStack
    if os.environ.get("LTH_FUSE_INPUT_LAYER", "1") == "0" or triton is None:
        return False
    on_device = stack.device.type == "cuda" or (INTERPRETED and stack.device.type == "cpu")
    adam = type(optimizer) is torch.optim.Adam and not optimizer.param_groups[0].get("amsgrad")
    return (on_device and adam and plain_batches and not autocast and type(stack) is NetworkStack
            and type(stack.template) is FC)


class InputLayerUpdate:
    """The fused update of one stack's input layer (``fc.0.weight``; the other tensors keep
    `lth.train.optim.masked_update`). ``probe``: the zero (M, B, out) tensor whose gradient is G."""

    def __init__(self, stack, optimizer: torch.optim.Optimizer, batch_size: int):
        self.name = "fc.0.weight"
        self.weight = stack.params[self.name]
        self.keep = stack.gradient_masks[self.name]
        self.optimizer = optimizer
        self.state = adam_state(optimizer, self.weight)
        networks, out_features, _ = self.weight.shape
        self.probe = torch.zeros(networks, batch_size, out_features, device=self.weight.device, requires_grad=True)

    def before_forward(self) -> None:
        self.probe.grad = None  # backward writes a fresh G (it would add to an old one)

    def update(self, x: torch.Tensor, lr: torch.Tensor, compile: bool) -> None:
        """Adam on the input layer from the batch ``x`` ((M, B, in)) and ``probe.grad``; ``lr``: 0-dim tensor."""
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        scalars = (_compiled_scalars if compile else adam_scalars)(self.state["step"], lr, beta1, beta2)
        masked_adam_outer(self.weight.detach(), self.state["exp_avg"], self.state["exp_avg_sq"], self.keep, x,
                          self.probe.grad, scalars, beta1, beta2, group["eps"], group["weight_decay"])


def adam_scalars(step: torch.Tensor, lr: torch.Tensor, beta1: float, beta2: float) -> torch.Tensor:
    """Count the step (``step`` += 1, in place) and return (2,) [lr / (1 - beta1^step), sqrt(1 - beta2^step)]:
    Adam's step size and second-moment correction as `lth.train.optim` computes them (Kingma & Ba 2015)."""
    step.add_(1)
    return torch.stack([lr / (1 - beta1 ** step), (1 - beta2 ** step).sqrt()])


_compiled_scalars = torch.compile(adam_scalars, dynamic=False)


def masked_adam_outer(weight: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, keep: torch.Tensor,
                      x: torch.Tensor, grad_out: torch.Tensor, scalars: torch.Tensor, beta1: float, beta2: float,
                      eps: float, weight_decay: float) -> None:
    """In place: Adam on stacked linear weights ``weight`` ((M, out, in), any strides shared by ``exp_avg``,
    ``exp_avg_sq`` and the bool mask ``keep``) with gradient ``keep * (grad_out^T x)`` per network
    (``x``: (M, B, in) layer inputs; ``grad_out``: (M, B, out) loss gradient at the layer's output),
    plus ``weight_decay * weight``. ``scalars``: `adam_scalars` of this step. One Triton kernel; the
    weight gradient is summed over the batch in fp32 (fused multiply-adds, no TF32 rounding).
    Raises ValueError if the four (M, out, in) tensors do not share one layout."""
    if not weight.stride() == exp_avg.stride() == exp_avg_sq.stride() == keep.stride():
        raise ValueError("masked_adam_outer needs weight, exp_avg, exp_avg_sq and keep in one layout, got strides "
                         f"{[t.stride() for t in (weight, exp_avg, exp_avg_sq, keep)]}")
    networks, out_features, in_features = weight.shape
    grid = (networks, triton.cdiv(in_features, TILES[0]), triton.cdiv(out_features, TILES[1]))
    _masked_adam_outer_kernel[grid](
        weight, exp_avg, exp_avg_sq, keep, x, grad_out, scalars, x.shape[1], in_features, out_features,
        *weight.stride(), *x.stride(), *grad_out.stride(), beta1, beta2, eps, weight_decay,
        HAS_DECAY=weight_decay != 0, BLOCK_IN=TILES[0], BLOCK_OUT=TILES[1], num_warps=TILES[2])


TILES = (32, 64, 4)  # (inputs, outputs) per program, warps per program (benchmarks/gpu_probe.py --input-layer)

if triton is not None:
    @triton.jit
    def _masked_adam_outer_kernel(w_ptr, m_ptr, v_ptr, keep_ptr, x_ptr, g_ptr, scalars_ptr, batch, n_in, n_out,
                                  s_wm, s_wo, s_wi, s_xm, s_xb, s_xi, s_gm, s_gb, s_go, beta1, beta2, eps,
                                  weight_decay, HAS_DECAY: tl.constexpr, BLOCK_IN: tl.constexpr,
                                  BLOCK_OUT: tl.constexpr):
        # One (BLOCK_IN, BLOCK_OUT) tile of one network's weights: the gradient tile as a sum of the batch's
        # outer products in registers, laid out as the weights are, so the update reads nothing else.
        net = tl.program_id(0)
        rows = tl.program_id(1) * BLOCK_IN + tl.arange(0, BLOCK_IN)    # input features
        cols = tl.program_id(2) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)  # output features
        x_at = x_ptr + net * s_xm + rows * s_xi
        g_at = g_ptr + net * s_gm + cols * s_go
        grad = tl.zeros((BLOCK_IN, BLOCK_OUT), dtype=tl.float32)
        for b in range(0, batch):
            xb = tl.load(x_at + b * s_xb, mask=rows < n_in, other=0.0)
            gb = tl.load(g_at + b * s_gb, mask=cols < n_out, other=0.0)
            grad += xb[:, None] * gb[None, :]
        at = net * s_wm + rows[:, None] * s_wi + cols[None, :] * s_wo
        inside = (rows[:, None] < n_in) & (cols[None, :] < n_out)
        w = tl.load(w_ptr + at, mask=inside, other=0.0)
        grad = grad * tl.load(keep_ptr + at, mask=inside, other=0).to(tl.float32)
        if HAS_DECAY:
            grad = grad + weight_decay * w
        m = tl.load(m_ptr + at, mask=inside, other=0.0)
        v = tl.load(v_ptr + at, mask=inside, other=0.0)
        m = m + (1 - beta1) * (grad - m)  # torch's lerp_(grad, 1 - beta1) for 1 - beta1 < 0.5
        v = v * beta2 + (1 - beta2) * grad * grad
        step_size = tl.load(scalars_ptr)
        root_correction = tl.load(scalars_ptr + 1)
        w = w - step_size * m / (tl.sqrt_rn(v) / root_correction + eps)
        tl.store(w_ptr + at, w, mask=inside)
        tl.store(m_ptr + at, m, mask=inside)
        tl.store(v_ptr + at, v, mask=inside)
