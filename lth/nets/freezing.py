"""Gem-Miner's iterative freezing (Sreenivasan et al. 2022, "Rare Gems", Algorithm 1; its official code,
ksreenivasan/pruning_is_enough `hc_iter`): every T epochs of mining, the lowest scores of a
`SupermaskStack` are zeroed for good, each freeze removing the same fraction of the scores still
free, so that the bound on the free fraction falls geometrically and reaches the target density
at the last freeze, which comes one period *before* the end of mining (the code freezes after
epochs T, 2T, ... below E: 29 freezes of 10.7% each for ResNet-20 at 3.72% kept, E = 150, T = 5).
Training continues after the last freeze, and the BatchNorm statistics of the mined mask are
recomputed after each freeze (`lth.experiments.gem_miner`).

A frozen score's ``keep`` buffer is 0: its mask is 0 whatever the score, and `project_scores`
holds the score at 0."""

from __future__ import annotations

import math

import torch

from lth.nets.counts import keep_count, row_ranks, validate_density
from lth.nets.supermask import SupermaskStack, key_prefix, scored_layers


def freezing_schedule(total: int, period: int, target: float) -> list[tuple[int, float]]:
    """The freezes of a mining run of ``total`` iterations (or epochs) with a freezing period of
    ``period``: ``(iteration, density bound)`` at every multiple of ``period`` strictly below
    ``total`` (K = ceil(total / period) - 1 freezes: the official code's floor((E - 1) / T), e.g. 29
    for E = 150, T = 5), the j-th bounding the free fraction to target^(j / K) = e^{-c j T} with
    c = ln(1 / target) / (K T) (each freeze keeps target^(1 / K) of the scores still free; the
    last reaches the target). Raises ValueError for a target outside (0, 1], ``total`` or
    ``period`` below 1, or a period that leaves no freeze before the end (period >= total)."""
    target = validate_density(target)
    if total < 1 or period < 1:
        raise ValueError(f"need a mining length >= 1 and a freezing period >= 1, got {total} and {period}")
    freezes = math.ceil(total / period) - 1
    if freezes < 1:
        raise ValueError(f"a freezing period of {period} leaves no freeze before the end of mining ({total}): "
                         "the period must be shorter than mining")
    return [(j * period, target ** (j / freezes)) for j in range(1, freezes + 1)]


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
