"""Pruning targets, magnitude and random pruning, all over a NetworkStack's masks.

A target is a list of *groups*: each group is a set of layers pruned together to an exact
count of kept weights. Layerwise pruning has one group per layer; global pruning pools every
pruned layer in one group (layers of unpruned kinds stay in groups of their own, fully kept).
The whole density ladder is computed up front, and every prune is checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from lth.nets.stack import NetworkStack

SCOPES = ("layerwise", "global")


class DensityMismatch(AssertionError):
    """The realised density of a mask differs from its target."""


@dataclass(frozen=True)
class Group:
    layers: tuple[str, ...]
    keep: int       # weights kept in these layers together, per network
    total: int      # weights in these layers


def validate_density(density: float) -> float:
    if not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1] (the fraction of weights kept), got {density!r}")
    return float(density)


def validate_rates(rates: Mapping[str, float], kinds: Mapping[str, str]) -> dict[str, float]:
    """Per-kind pruning rates; kinds of the model that are not named are not pruned."""
    present = sorted(set(kinds.values()))
    unknown = sorted(set(rates) - set(present))
    if unknown:
        raise ValueError(f"pruning rates for layer kinds {unknown} that this model does not have; "
                         f"its kinds are {present}")
    for kind, rate in rates.items():
        if not 0 <= rate < 1:
            raise ValueError(f"pruning rate for {kind!r} must be in [0, 1), got {rate!r}")
    if not any(rate > 0 for rate in rates.values()):
        raise ValueError(f"no layer kind has a pruning rate > 0 (rates {dict(rates)}); nothing would be pruned")
    return {kind: float(rates.get(kind, 0.0)) for kind in present}


def targets(sizes: Mapping[str, int], kinds: Mapping[str, str], rates: Mapping[str, float],
            level: float, scope: str = "layerwise") -> list[Group]:
    """Groups after ``level`` rounds, each round pruning ``rate`` of what its kind has left.

    ``level`` may be fractional (one-shot pruning to an arbitrary density)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {', '.join(SCOPES)}")
    rates = validate_rates(rates, kinds)
    keep_fraction = {kind: (1 - rate) ** level for kind, rate in rates.items()}
    if scope == "layerwise":
        return [Group((name,), _round(sizes[name] * keep_fraction[kinds[name]]), sizes[name]) for name in sizes]
    pruned = [name for name in sizes if rates[kinds[name]] > 0]
    if len({rates[kinds[name]] for name in pruned}) > 1:
        raise ValueError(f"global pruning pools layers at one rate, got rates {rates}")
    total = sum(sizes[name] for name in pruned)
    groups = [Group(tuple(pruned), _round(total * keep_fraction[kinds[pruned[0]]]), total)]
    return groups + [Group((name,), sizes[name], sizes[name]) for name in sizes if name not in pruned]


def _round(x: float) -> int:
    return max(1, int(round(x)))  # never empty a layer: that would disconnect the network


def keep_count(total: int, density: float) -> int:
    """Weights kept of ``total`` at ``density``, rounded as every target here is (never zero)."""
    return _round(total * validate_density(density))


def overall_density(groups: Sequence[Group]) -> float:
    return sum(g.keep for g in groups) / sum(g.total for g in groups)


def density_ladder(sizes, kinds, rates, levels: int, scope: str = "layerwise") -> list[list[Group]]:
    """Targets of levels 0..levels (level 0 is dense)."""
    return [targets(sizes, kinds, rates, level, scope) for level in range(levels + 1)]


def level_for_density(sizes, kinds, rates, density: float, scope: str = "layerwise") -> float:
    """The (fractional) number of rounds whose overall density is ``density``."""
    density = validate_density(density)
    lo, hi = 0.0, 1.0
    while overall_density(targets(sizes, kinds, rates, hi, scope)) > density:
        hi *= 2
        if hi > 1e4:
            raise ValueError(f"density {density} is below what rates {dict(rates)} can reach")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if overall_density(targets(sizes, kinds, rates, mid, scope)) > density else (lo, mid)
    return hi


def layer_sizes(stack: NetworkStack) -> dict[str, int]:
    return {name: stack.params[name][0].numel() for name in stack.kinds}


def _top_masks(scores: dict[str, torch.Tensor], groups: Sequence[Group]) -> dict[str, torch.Tensor]:
    """Keep the ``keep`` highest scores of each group, per network. Scores are (M, ...)."""
    masks = {}
    for group in groups:
        flat = torch.cat([scores[name].flatten(1) for name in group.layers], dim=1)
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep.scatter_(1, flat.topk(group.keep, dim=1).indices, True)
        for name, part in zip(group.layers, keep.split([scores[n][0].numel() for n in group.layers], dim=1)):
            masks[name] = part.reshape(scores[name].shape)
    return masks


def magnitude_masks(stack: NetworkStack, groups: Sequence[Group]) -> dict[str, torch.Tensor]:
    """Keep the largest-magnitude surviving weights. Pruned weights score -inf, so masks nest."""
    scores = {name: torch.where(stack.masks[name].bool(), stack.params[name].detach().abs(),
                                torch.tensor(float("-inf"), device=stack.device))
              for name in stack.kinds}
    _check_feasible(stack, groups)
    masks = _top_masks(scores, groups)
    check_density(masks, groups)
    return masks


def random_masks(reference: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the same number of kept weights per layer and network as ``reference``."""
    masks = {}
    for name, ref in reference.items():
        flat = ref.flatten(1).bool()
        counts = flat.sum(1).tolist()
        scores = torch.rand(flat.shape, generator=generator, device=generator.device).to(flat.device)
        keep = torch.zeros_like(flat)
        for m, count in enumerate(counts):  # per network: counts may differ
            keep[m, scores[m].topk(int(count)).indices] = True
        masks[name] = keep.reshape(ref.shape)
    return masks


def check_density(masks: Mapping[str, torch.Tensor], groups: Sequence[Group]) -> None:
    """Raise DensityMismatch unless every group keeps exactly its target count in every network."""
    for group in groups:
        kept = sum(masks[name].flatten(1).sum(1) for name in group.layers)
        if not bool((kept == group.keep).all()):
            raise DensityMismatch(f"layers {list(group.layers)} keep {kept.tolist()} weights per network, "
                                  f"target {group.keep} of {group.total}")


def _check_feasible(stack: NetworkStack, groups: Sequence[Group]) -> None:
    for group in groups:
        alive = sum(stack.masks[name].flatten(1).sum(1) for name in group.layers)
        if bool((alive < group.keep).any()):
            raise ValueError(f"cannot keep {group.keep} weights of {list(group.layers)}: only "
                             f"{alive.int().tolist()} survive; targets must shrink from level to level")
