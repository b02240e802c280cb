"""Pruning targets: how many weights each group of layers keeps, level by level, and the checks.

The masks that meet a target are made in `lth.prune.masks`. A target is a list of *groups*: each
group is a set of layers pruned together to an exact count of kept weights. Layerwise pruning has one group per layer; global pruning pools every
pruned layer in one group (layers of unpruned kinds stay in groups of their own, fully kept).
The whole density ladder is computed up front, and every prune is checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from lth.nets.counts import keep_count, round_count, validate_density  # noqa: F401  (this layer's names too)
from lth.nets.stack import NetworkStack

SCOPES = ("layerwise", "global")


class DensityMismatch(AssertionError):
    """The realised density of a mask differs from its target."""


@dataclass(frozen=True)
class Group:
    """Layers pruned together: ``keep`` of their ``total`` weights survive, per network."""
    layers: tuple[str, ...]
    keep: int       # weights kept in these layers together, per network
    total: int      # weights in these layers


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
        return [Group((name,), round_count(sizes[name] * keep_fraction[kinds[name]]), sizes[name]) for name in sizes]
    pruned = [name for name in sizes if rates[kinds[name]] > 0]
    if len({rates[kinds[name]] for name in pruned}) > 1:
        raise ValueError(f"global pruning pools layers at one rate, got rates {rates}")
    total = sum(sizes[name] for name in pruned)
    groups = [Group(tuple(pruned), round_count(total * keep_fraction[kinds[pruned[0]]]), total)]
    return groups + [Group((name,), sizes[name], sizes[name]) for name in sizes if name not in pruned]


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
    """Prunable weight name -> its number of weights in one network."""
    return {name: stack.params[name][0].numel() for name in stack.kinds}


def check_density(masks: Mapping[str, torch.Tensor], groups: Sequence[Group]) -> None:
    """Raise DensityMismatch unless every group keeps exactly its target count in every network."""
    for group in groups:
        kept = sum(masks[name].flatten(1).sum(1) for name in group.layers)
        if not bool((kept == group.keep).all()):
            raise DensityMismatch(f"layers {list(group.layers)} keep {kept.tolist()} weights per network, "
                                  f"target {group.keep} of {group.total}")


def check_feasible(masks: Mapping[str, torch.Tensor], groups: Sequence[Group]) -> None:
    """Raise ValueError unless every group of ``masks`` (layer -> (M, ...) 0/1) still has at least its
    target count alive in every network (targets must shrink from level to level)."""
    for group in groups:
        alive = sum(masks[name].flatten(1).sum(1) for name in group.layers)
        if bool((alive < group.keep).any()):
            raise ValueError(f"cannot keep {group.keep} weights of {list(group.layers)}: only "
                             f"{alive.int().tolist()} survive; targets must shrink from level to level")
