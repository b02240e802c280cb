"""Mask makers over a stack's groups: the top scores of each group, magnitude and random masks.

Every mask here keeps an exact number of weights, ranked by the package's one top-k,
`lth.nets.counts.top_k_mask` (ties broken by position, the same on every device). Which counts
to keep (ladders, groups) and the checks of a result live in `lth.prune.targets`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from lth.nets.counts import row_ranks, top_k_mask
from lth.prune.targets import Group, check_density, check_feasible


def top_masks(scores: Mapping[str, torch.Tensor], groups: Sequence[Group]) -> dict[str, torch.Tensor]:
    """Per group, keep its ``keep`` highest scores pooled over the group's layers, per network.

    ``scores``: layer name -> (M, *weight shape) float (a pruned weight should score -inf so masks
    nest). Returns layer name -> (M, *weight shape) bool, exactly ``group.keep`` True per network
    and group. Raises ValueError if a group keeps more weights than it has."""
    masks = {}
    for group in groups:
        flat = torch.cat([scores[name].flatten(1) for name in group.layers], dim=1)
        keep = top_k_mask(flat, group.keep)
        for name, part in zip(group.layers, keep.split([scores[n][0].numel() for n in group.layers], dim=1)):
            masks[name] = part.reshape(scores[name].shape)
    return masks


def magnitude_masks(stack, groups: Sequence[Group]) -> dict[str, torch.Tensor]:
    """Masks (layer -> (M, *weight shape) bool) keeping each group's ``keep`` largest-|weight|
    surviving weights of a NetworkStack. Pruned weights score -inf, so masks nest. Raises ValueError
    if a group keeps more than survive, DensityMismatch if a result misses its target."""
    scores = {name: torch.where(stack.masks[name].bool(), stack.params[name].detach().abs(),
                                torch.tensor(float("-inf"), device=stack.device))
              for name in stack.kinds}
    check_feasible(stack.masks, groups)
    masks = top_masks(scores, groups)
    check_density(masks, groups)
    return masks


def random_masks(reference: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Uniformly random masks (layer -> bool, the reference's shape (M, ...)) with the same number
    of kept weights per layer and network as ``reference`` (0/1 or bool masks). Scores are drawn
    from ``generator`` on its own device, so the masks depend only on it."""
    masks = {}
    for name, ref in reference.items():
        flat = ref.flatten(1).bool()
        counts = flat.sum(1)
        scores = torch.rand(flat.shape, generator=generator, device=generator.device).to(flat.device)
        masks[name] = top_k_mask(scores, counts).reshape(ref.shape)
    return masks


# ---- Zhou et al.'s mask criteria ------------------------------------------------------------------
# Zhou, Lan, Liu & Yosinski 2019 ("Deconstructing lottery tickets", get_weight_init.py of
# uber-research/deconstructing-lottery-tickets): a criterion scores each surviving weight from its
# value at the start (w_i) and the end (w_f) of training; the highest scores are kept.
CRITERIA = ("large_final", "small_final", "large_init", "small_init", "large_init_large_final",
            "large_final_same_sign", "magnitude_increase", "movement", "random")


def check_criterion(criterion) -> str:
    """``criterion`` itself; ValueError naming it and listing `CRITERIA` unless it is one of them."""
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"unknown mask criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    return criterion


def criterion_scores(criterion: str, init: torch.Tensor, final: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(M, N) scores of one group's weights (flattened, per network) under a Zhou et al. criterion:

    large_final |w_f|, small_final -|w_f|, large_init |w_i|, small_init -|w_i|, magnitude_increase
    |w_f| - |w_i|, movement |w_f - w_i|, large_final_same_sign |w_f| where sign(w_f) = sign(w_i)
    else 0, random uniform draws from ``generator`` (required), and large_init_large_final
    min(rank |w_i|, rank |w_f|): its top-k is the set in the top j of both rankings for the
    largest j that keeps k (Zhou et al.'s code bisects one shared percentile to the same end).
    ``init``, ``final``: (M, N) floats. Raises ValueError for an unknown criterion."""
    check_criterion(criterion)
    a, b = init.abs(), final.abs()
    if criterion == "random":
        if generator is None:
            raise ValueError("the random criterion needs a generator")
        return torch.rand(final.shape, generator=generator, device=generator.device).to(final.device)
    if criterion == "large_init_large_final":
        return torch.minimum(row_ranks(a), row_ranks(b)).to(final.dtype)
    return {"large_final": lambda: b, "small_final": lambda: -b, "large_init": lambda: a, "small_init": lambda: -a,
            "magnitude_increase": lambda: b - a, "movement": lambda: (final - init).abs(),
            "large_final_same_sign": lambda: torch.where(init.sign() == final.sign(), b, torch.zeros_like(b)),
            }[criterion]()


def criterion_masks(criterion: str, init: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor],
                    alive: Mapping[str, torch.Tensor], groups: Sequence[Group],
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Masks (layer -> (M, *weight shape) bool) keeping each group's ``keep`` best-scoring surviving
    weights under ``criterion`` (`criterion_scores`, computed over the group's layers pooled).

    ``init``, ``final``: layer -> (M, *shape) weights at the start and end of training; ``alive``:
    layer -> (M, *shape) 0/1 masks they trained under (pruned weights score -inf, so masks nest).
    Raises ValueError for an unknown criterion or a group that keeps more than survive,
    DensityMismatch if a result misses its target."""
    check_criterion(criterion)
    check_feasible(alive, groups)
    scores = {}
    for group in groups:
        flat = lambda d: torch.cat([d[name].detach().flatten(1) for name in group.layers], dim=1)
        score = criterion_scores(criterion, flat(init), flat(final), generator)
        score = torch.where(flat(alive).bool(), score, torch.tensor(float("-inf"), device=score.device))
        sizes = [init[name][0].numel() for name in group.layers]
        for name, part in zip(group.layers, score.split(sizes, dim=1)):
            scores[name] = part.reshape(init[name].shape)
    masks = top_masks(scores, groups)
    check_density(masks, groups)
    return masks
