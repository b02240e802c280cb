"""Gem-Miner's iterative freezing (Sreenivasan et al.): every T epochs, the lowest scores of a
`SupermaskStack` are zeroed for good, so that the fraction of scores still free falls as e^{-c j}
and reaches the target density at the last epoch.

A frozen score's ``keep`` buffer is 0: its mask is 0 whatever the score, and `project_scores`
holds the score at 0."""

from __future__ import annotations

import math

import torch

from lth.nets.counts import keep_count, row_ranks, validate_density
from lth.nets.supermask import SupermaskStack, key_prefix, scored_layers


def freezing_schedule(epochs: int, period: int, target: float) -> list[tuple[int, float]]:
    """(epoch j, density bound e^{-c j}) every ``period`` epochs up to ``epochs``, c = ln(1/s)/E:
    the bound reaches the target density s at the last epoch. Raises ValueError for a target
    outside (0, 1], or ``epochs`` / ``period`` below 1."""
    target = validate_density(target)
    if epochs < 1 or period < 1:
        raise ValueError(f"need epochs >= 1 and a freezing period >= 1, got {epochs} and {period}")
    c = math.log(1 / target) / epochs
    points = list(range(period, epochs + 1, period))
    if not points or points[-1] != epochs:
        points.append(epochs)  # the last freeze lands on the target itself
    return [(j, math.exp(-c * j)) for j in points]


@torch.no_grad()
def freeze_lowest(stack: SupermaskStack, bound: float) -> None:
    """Zero for good the lowest scores of each network (all scored layers pooled), so that at
    most ``keep_count(N, bound)`` scores stay free: their ``keep`` drops to 0."""
    stack.project_scores()
    layers = list(scored_layers(stack.template))
    scores = torch.cat([stack.params[key_prefix(n) + "scores"].flatten(1) for n in layers], dim=1)
    keeps = torch.cat([stack.buffers[key_prefix(n) + "keep"].flatten(1) for n in layers], dim=1)
    free = keep_count(scores.shape[1], bound)
    ranked = torch.where(keeps > 0, scores, torch.full_like(scores, -1.0))  # frozen ones stay frozen
    new_keep = (row_ranks(ranked) >= scores.shape[1] - free).to(keeps.dtype) * keeps
    start = 0
    for name in layers:
        p = key_prefix(name)
        size = stack.buffers[p + "keep"][0].numel()
        stack.buffers[p + "keep"].copy_(new_keep[:, start:start + size].view_as(stack.buffers[p + "keep"]))
        start += size
    stack.project_scores()
