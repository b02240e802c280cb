"""Networks on the straight line between two networks, and their error along it (Frankle et al. 2020).

For pairs of networks A and B of one architecture (stack states with a leading pair dim M), the
point at α ∈ [0, 1] is W(α) = (1 − α)·W_A + α·W_B for every parameter (masked weights included: they
are 0 in both networks of a pair that shares its mask). α = 0 gives A and α = 1 gives B exactly.
Masks of the point are the union of the pair's masks (a weight is kept where either keeps it).

BatchNorm: running statistics of an interpolated network are not the interpolated statistics of its
ends (the activations' statistics are not linear in the weights). When the architecture has
BatchNorm, `path_errors` recomputes them at every point on a fixed sample of training examples
(train mode, the cumulative average of every batch's statistics, as BatchNorm with momentum=None);
networks without BatchNorm are evaluated as interpolated (nothing to recompute).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lth.data import Split
from lth.nets.stack import NetworkStack
from lth.train.evaluate import evaluate

MIN_POINTS = 3  # the two ends and at least one point between them


def grid(points: int) -> list[float]:
    """``points`` evenly spaced α from 0 to 1 inclusive (the paper: 30). ValueError below `MIN_POINTS`."""
    if isinstance(points, bool) or not isinstance(points, int) or points < MIN_POINTS:
        raise ValueError(f"an interpolation grid needs an int >= {MIN_POINTS} points (both ends and one between), "
                         f"got {points!r}")
    return [p / (points - 1) for p in range(points)]


def interpolate(a: dict, b: dict, alphas: Sequence[float]) -> dict:
    """The states of the networks at ``alphas`` between the pairs (a[m], b[m]).

    ``a``, ``b``: stack states ({'params', 'buffers', 'masks'}: name -> (M, ...)) of the same
    architecture. Returns one state of len(alphas) * M networks, alpha-major (network p * M + m is
    pair m at alphas[p]). Float buffers are interpolated like weights (BatchNorm statistics: see
    `recompute_batchnorm`); integer buffers (batch counters) are taken from ``a``.
    Raises ValueError for an α outside [0, 1] or states whose names or shapes differ."""
    for alpha in alphas:
        if not 0 <= alpha <= 1:
            raise ValueError(f"interpolation coefficient {alpha!r} is outside [0, 1]")
    for group in ("params", "buffers", "masks"):
        if a[group].keys() != b[group].keys():
            raise ValueError(f"the two networks' {group} differ: {sorted(a[group])} vs {sorted(b[group])}")
        for name in a[group]:
            if a[group][name].shape != b[group][name].shape:
                raise ValueError(f"{group} {name}: shapes {tuple(a[group][name].shape)} and "
                                 f"{tuple(b[group][name].shape)} differ")

    def line(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            return torch.cat([x] * len(alphas))
        # (1 - α)·x + α·y is exactly x at α = 0 and exactly y at α = 1 (x, y finite)
        return torch.cat([(1 - alpha) * x + alpha * y for alpha in alphas])

    with torch.no_grad():
        params = {n: line(a["params"][n].detach(), b["params"][n].detach()) for n in a["params"]}
        buffers = {n: line(a["buffers"][n], b["buffers"][n]) for n in a["buffers"]}
        masks = {n: torch.cat([torch.maximum(a["masks"][n], b["masks"][n])] * len(alphas)) for n in a["masks"]}
    return {"params": params, "buffers": buffers, "masks": masks}


def batchnorm_modules(template: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of an architecture that track running statistics."""
    return [m for m in template.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm(stack: NetworkStack, x: torch.Tensor, batch_size: int) -> None:
    """Replace every network's BatchNorm running statistics by the average of the batch statistics
    over ``x`` ((N, C, H, W) training examples, shared by all networks) in batches of ``batch_size``:
    running mean and variance reset, then batch i updates them with momentum 1 / (i + 1), which
    leaves their mean over the batches (PyTorch's momentum=None). No-op without BatchNorm.
    The stack is left in eval mode."""
    layers = batchnorm_modules(stack.template)
    if not layers:
        return
    for name, buffer in stack.buffers.items():
        if name.endswith("running_mean") or name.endswith("num_batches_tracked"):
            buffer.zero_()
        elif name.endswith("running_var"):
            buffer.fill_(1.0)
    saved = [m.momentum for m in layers]
    try:
        stack.train(True)
        for i, start in enumerate(range(0, len(x), batch_size)):
            for m in layers:
                m.momentum = 1.0 / (i + 1)
            stack(x[start:start + batch_size], shared_input=True)
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum
        stack.train(False)


def path_errors(template: nn.Module, a: dict, b: dict, alphas: Sequence[float], splits: dict[str, Split], *,
                bn_x: torch.Tensor | None = None, bn_batch_size: int = 500, eval_batch_size: int = 2000,
                max_networks: int = 120) -> dict[str, torch.Tensor]:
    """Error and loss along the line between each pair: {'<split>_error': (len(alphas), M), '<split>_loss': ...}
    for every split in ``splits`` (name -> Split). Error is a fraction in [0, 1].

    ``bn_x``: training examples on which BatchNorm statistics are recomputed at every point
    (`recompute_batchnorm`); required when the architecture has BatchNorm (ValueError otherwise).
    ``max_networks``: networks evaluated at once (memory only; results do not depend on it)."""
    if batchnorm_modules(template) and bn_x is None:
        raise ValueError("the architecture has BatchNorm: pass training examples (bn_x) to recompute its "
                         "running statistics at each point")
    pairs = next(iter(a["params"].values())).shape[0]
    per_pass = max(1, max_networks // pairs)
    out: dict[str, list[torch.Tensor]] = {}
    for first in range(0, len(alphas), per_pass):
        chunk = list(alphas[first:first + per_pass])
        stack = NetworkStack.from_states(template, [interpolate(a, b, chunk)])
        if bn_x is not None:
            recompute_batchnorm(stack, bn_x, bn_batch_size)
        for name, split in splits.items():
            result = evaluate(stack, split, eval_batch_size)
            out.setdefault(f"{name}_error", []).append((1 - result["accuracy"]).reshape(len(chunk), pairs))
            out.setdefault(f"{name}_loss", []).append(result["loss"].reshape(len(chunk), pairs))
    return {key: torch.cat(parts).cpu() for key, parts in out.items()}


def barrier(errors: torch.Tensor) -> torch.Tensor:
    """Instability (error-barrier height) per pair from (points, M) errors along the path whose first and
    last points are the two ends: max over the path minus the mean of the two ends' errors. (M,)."""
    if errors.dim() != 2 or errors.shape[0] < 2:
        raise ValueError(f"errors must be (points >= 2, pairs), got shape {tuple(errors.shape)}")
    return errors.max(0).values - (errors[0] + errors[-1]) / 2
