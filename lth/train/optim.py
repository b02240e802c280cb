"""The masked optimiser update of a NetworkStack: Adam or SGD on the gradient of ``weight * mask``.

One function per optimiser updates every tensor of the stack: it multiplies each gradient by its
mask, applies weight decay and the optimiser's rule, and writes weights and state in place. Under
``torch.compile`` (``TrainConfig.compile``) Inductor fuses it, with combo kernels, into a couple of
kernels for the whole stack, each reading every weight, gradient, mask and moment once: on one H200
the update of a stack of 20 LeNet-300-100s runs at the memory bandwidth, where PyTorch's fused
Adam after a separate gradient-masking pass took about 2.5 times as long (benchmarks/side_by_side.py).
Uncompiled (the default), the gradients are masked in place and torch's own fused Adam or SGD kernel
applies the rule: one vectorised pass per tensor, where this module's functions run op by op would make
about ten (a stack of 20 LeNet-300-100s on two cores: 59 against 6 ms per update; on one H200, captured
in CUDA graphs, 4,216 against 2,550 steps per second, `benchmarks/gpu_probe.py --eager-update`).

The state lives in the ``torch.optim`` optimiser ``lth.train.step.make_optimizer`` builds, in its
own layout (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``; SGD: ``momentum_buffer``), so checkpoints
(``state_dict``), resume and `NetworkStack.track` (zeroing state where a mask is set) are those of
``torch.optim``. The arithmetic is ``torch.optim.Adam``'s (Kingma & Ba 2015 with PyTorch's L2 weight
decay) and ``torch.optim.SGD``'s (momentum without dampening, optional Nesterov), equal to them up to
floating-point rounding (tests/train/test_optim.py).

Pruned weights stay exactly zero: their gradient is masked to zero, their state is zero (set where
the mask is set), so every update there is zero, with or without weight decay (the weight is zero).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd


def masked_update(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                  masks: Sequence[torch.Tensor | None], lr: torch.Tensor, compile: bool = False,
                  torch_fused: bool | None = None) -> None:
    """One step of ``optimizer``'s rule (Adam or SGD, its hyperparameters from its first param group) on
    ``params`` (leaf tensors with ``.grad``; those without a gradient are skipped), each gradient first
    multiplied by its mask (same shape as the parameter, 0/1 or bool: `NetworkStack.gradient_masks` are bool,
    a byte per weight for the update to read; None: unmasked). ``lr``: a 0-dim tensor
    on the parameters' device (a captured CUDA graph reads it; a Python float would be baked in).
    ``compile``: run the torch.compile'd update (one compilation per architecture and optimiser).
    ``torch_fused``: mask the gradients in place, then run torch's fused Adam / SGD kernel (None: when
    uncompiled and every weight is dense with its gradient and state in its layout, as autograd and lth
    make them, on a CPU or a GPU).
    Raises TypeError for an optimiser other than torch.optim.Adam or torch.optim.SGD (subclasses such as AdamW
    included), or one set for amsgrad, decoupled weight decay, maximize or dampening;
    ValueError for torch_fused=True with a weight, gradient or state its kernels cannot walk."""
    group = optimizer.param_groups[0]
    adam = type(optimizer) is torch.optim.Adam  # not subclasses: AdamW's decoupled decay is another rule
    if not (adam or type(optimizer) is torch.optim.SGD):
        raise TypeError(f"masked_update supports torch.optim.Adam and torch.optim.SGD, got {type(optimizer).__name__}")
    unsupported = [k for k in ("amsgrad", "decoupled_weight_decay", "maximize", "dampening") if group.get(k)]
    if unsupported:
        raise TypeError(f"masked_update: {type(optimizer).__name__} with {', '.join(unsupported)} is not supported "
                        "(lth's rule: plain Adam with L2 weight decay, or SGD without dampening)")
    live = [(p, m) for p, m in zip(params, masks) if p.grad is not None]
    weights = [p.detach() for p, _ in live]
    grads = [p.grad for p, _ in live]
    mask_list = [m for _, m in live]
    if adam:
        state = [_adam_state(optimizer, p) for p, _ in live]
        per_weight = [[s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state]]
    else:
        per_weight = [[_sgd_state(optimizer, p) for p, _ in live] if group["momentum"] else [None] * len(live)]
    # torch's fused kernels walk each tensor's memory in order: only for dense weights whose gradient and state
    # share their layout (autograd's gradients and lth's state do; a checkpoint or caller may not)
    walkable = all(_dense(w) and all(t is None or _same_layout(w, t) for t in (g, *others))
                   for w, g, *others in zip(weights, grads, *per_weight))
    if torch_fused is None:
        torch_fused = walkable and not compile
    elif torch_fused and not walkable:
        raise ValueError("masked_update(torch_fused=True) needs dense weights with gradients and optimiser state "
                         "in their layout")
    if torch_fused:
        masked = [(g, m) for g, m in zip(grads, mask_list) if m is not None]
        if masked:
            torch._foreach_mul_([g for g, _ in masked], [m for _, m in masked])
        lr = float(lr) if lr.device.type == "cpu" else lr  # a device tensor stays one (CUDA graphs read it)
    if adam:
        beta1, beta2 = group["betas"]
        steps = [s["step"] for s in state]
        if torch_fused:
            torch_adam(weights, grads, *per_weight, [], steps, fused=True, amsgrad=False, beta1=beta1, beta2=beta2,
                       lr=lr, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        else:
            scalars = (_compiled(adam_scalars) if compile else adam_scalars)(steps, lr, beta1, beta2)
            (_compiled(_adam) if compile else _adam)(weights, grads, mask_list, *per_weight, scalars, beta1, beta2,
                                                     group["eps"], group["weight_decay"])
    elif torch_fused:  # momentum buffers start at zero (see _sgd): never torch's first-step special case
        torch_sgd(weights, grads, *per_weight, fused=True, weight_decay=group["weight_decay"],
                  momentum=group["momentum"], lr=lr, dampening=0.0, nesterov=group["nesterov"], maximize=False)
    else:
        (_compiled(_sgd) if compile else _sgd)(weights, grads, mask_list, *per_weight, lr, group["momentum"],
                                               group["nesterov"], group["weight_decay"])


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its memory without gaps or overlaps (in any dimension order)."""
    expected = 1
    for stride, size in sorted((st, n) for n, st in zip(t.shape, t.stride()) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape and strides (strides of dimensions of size 1 do not matter)."""
    return a.shape == b.shape and all(x == y for n, x, y in zip(a.shape, a.stride(), b.stride()) if n > 1)


def adam_scalars(steps: Sequence[torch.Tensor], lr: torch.Tensor, beta1: float,
                 beta2: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Count a step of each tensor (``steps``: its 0-dim step counts, += 1 in place) and return its
    (step size lr / (1 - beta1^step), sqrt(1 - beta2^step)): Adam's bias corrections (Kingma & Ba 2015).
    A function of its own so that, compiled, they are computed once per tensor: inside the update's
    kernel Inductor would recompute them, two powers and a square root, for every weight."""
    out = []
    with torch.no_grad():  # a with-block, not the decorator: see compile_per_shape
        for step in steps:
            step.add_(1)
            out.append((lr / (1 - beta1 ** step), (1 - beta2 ** step).sqrt()))
    return out


def _adam(weights, grads, masks, exp_avgs, exp_avg_sqs, scalars, beta1: float, beta2: float, eps: float,
          weight_decay: float) -> None:
    with torch.no_grad():
        for p, g, mask, m, v, (step_size, root_correction2) in zip(weights, grads, masks, exp_avgs, exp_avg_sqs,
                                                                   scalars):
            if mask is not None:
                g = g * mask
            if weight_decay:
                g = g + weight_decay * p
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            p.sub_(step_size * m / (v.sqrt() / root_correction2 + eps))


def _sgd(weights, grads, masks, buffers, lr, momentum: float, nesterov: bool, weight_decay: float) -> None:
    # A zero momentum buffer gives torch's first step exactly (buffer = gradient, no dampening).
    with torch.no_grad():
        for p, g, mask, buf in zip(weights, grads, masks, buffers):
            if mask is not None:
                g = g * mask
            if weight_decay:
                g = g + weight_decay * p
            if buf is not None:
                buf.mul_(momentum).add_(g)
                g = g + momentum * buf if nesterov else buf
            p.sub_(lr * g)


def _adam_state(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict:
    state = optimizer.state[p]
    if not state:  # torch.optim.Adam's layout (capturable: the step count on the parameter's device)
        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    elif state["step"].device != p.device:  # a state saved by torch's non-capturable Adam
        state["step"] = state["step"].to(p.device, torch.float32)
    return state


def _sgd_state(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    state = optimizer.state[p]
    if state.get("momentum_buffer") is None:
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state["momentum_buffer"]


RECOMPILE_LIMIT = 64  # compiled variants kept per function (torch's default, 8, is reached by a few architectures)


def compile_per_shape(fn: Callable, options: dict | None = None) -> Callable:
    """``torch.compile(fn, dynamic=False)``: code specialised to each stack's shapes (each architecture,
    stack size and batch compiles once per process), with Dynamo's recompile limit raised to at least
    RECOMPILE_LIMIT, since past the limit a function silently runs uncompiled. The limit counts per code
    object: a function compiled this way must not be wrapped by a decorator such as ``@torch.no_grad()``
    (all such functions run through one wrapper frame and would share one count); use a with-block."""
    for limit in ("recompile_limit", "cache_size_limit"):  # the name before torch 2.6
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), RECOMPILE_LIMIT))
            break
    return torch.compile(fn, dynamic=False, options=options)


@functools.cache
def _compiled(fn: Callable) -> Callable:
    # combo kernels: the per-tensor updates become one or two kernels instead of one (or more) per tensor
    return compile_per_shape(fn, {"combo_kernels": True} if torch.cuda.is_available() else None)
