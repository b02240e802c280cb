"""Per-layer densities: the rules that spread a global density over layers (uniform, ER, ERK,
balanced, pyramidal), whole-number keep counts that add up exactly, and the pruning-at-init
targets (groups of layers with exact counts, `lth.prune.targets.Group`)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.prune.targets import Group

RULES = ("uniform", "er", "erk", "balanced", "pyramidal")


# ---- per-layer densities for random pruning ------------------------------------------------

def layer_densities(sizes: Mapping[str, int], shapes: Mapping[str, Sequence[int]], kinds: Mapping[str, str],
                    density: float, rule: str = "erk") -> dict[str, float]:
    """The fraction kept per layer under ``rule``, such that sum(density_l * N_l) = density * N.

    ``sizes``, ``shapes`` (one network's weight shape) and ``kinds`` name the same layers, in model
    order (pyramidal counts depth in that order, from 1).

    - uniform: every layer at ``density``.
    - er / erk (Evci et al.): density_l = eps * (n_in + n_out) / (n_in * n_out) (ER) or
      eps * sum(shape) / prod(shape) (ERK, kernel dims included); a layer that would exceed 1 is
      made dense and eps re-solved over the others.
    - balanced (Gadhikar et al.): every layer keeps the same number X of weights, capped at its
      size; the capacity the capped layers cannot take is spread over the others.
    - pyramidal (Gadhikar et al.): density_l = p^l (l = 1 for the first layer), with p solving
      sum N_l p^l = density * N.
    """
    density = pruning.validate_density(density)
    if rule not in RULES:
        raise ValueError(f"unknown layer density rule {rule!r}; valid: {', '.join(RULES)}")
    if set(sizes) != set(shapes) or set(sizes) != set(kinds):
        raise ValueError(f"sizes, shapes and kinds must name the same layers; got {sorted(sizes)}, "
                         f"{sorted(shapes)}, {sorted(kinds)}")
    names = list(sizes)
    target = density * sum(sizes.values())
    if rule == "uniform":
        return {name: density for name in names}
    if rule in ("er", "erk"):
        raw = {name: _erdos_renyi(shapes[name], with_kernel=rule == "erk") for name in names}
        return _scaled_densities(sizes, raw, target)
    if rule == "balanced":
        return _balanced_densities(sizes, target)
    return _pyramidal_densities(sizes, target)


def _erdos_renyi(shape: Sequence[int], with_kernel: bool) -> float:
    if with_kernel:
        return sum(shape) / math.prod(shape)
    n_out, n_in = shape[0], shape[1]  # Linear (out, in); Conv2d (out, in, kh, kw): kernel ignored
    return (n_in + n_out) / (n_in * n_out)


def _scaled_densities(sizes: Mapping[str, int], raw: Mapping[str, float], target: float) -> dict[str, float]:
    dense: set[str] = set()
    while True:
        free = [name for name in sizes if name not in dense]
        if not free:  # only density 1 makes every layer dense
            return {name: 1.0 for name in sizes}
        budget = target - sum(sizes[name] for name in dense)
        eps = budget / sum(raw[name] * sizes[name] for name in free)
        # Making a layer dense only raises eps for the rest (it took less than eps * raw * N), so
        # every layer over 1 can be made dense at once.
        over = {name for name in free if eps * raw[name] > 1}
        if not over:
            return {name: 1.0 if name in dense else eps * raw[name] for name in sizes}
        dense |= over


def _balanced_densities(sizes: Mapping[str, int], target: float) -> dict[str, float]:
    capped: set[str] = set()
    while True:
        free = [name for name in sizes if name not in capped]
        if not free:
            return {name: 1.0 for name in sizes}
        per_layer = (target - sum(sizes[name] for name in capped)) / len(free)
        full = {name for name in free if sizes[name] <= per_layer}
        if not full:
            return {name: 1.0 if name in capped else per_layer / sizes[name] for name in sizes}
        capped |= full


def _pyramidal_densities(sizes: Mapping[str, int], target: float) -> dict[str, float]:
    counts = list(sizes.values())
    kept = lambda p: sum(n * p ** depth for depth, n in enumerate(counts, 1))
    lo, hi = 0.0, 1.0  # kept(p) rises with p, and kept(1) = N >= target
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) < target else (lo, mid)
    return {name: hi ** depth for depth, name in enumerate(sizes, 1)}


def keep_counts(sizes: Mapping[str, int], densities: Mapping[str, float], total: int) -> dict[str, int]:
    """Whole numbers of weights per layer, near density_l * N_l, that add up to exactly ``total``
    (largest remainders get the spare weights; ties go to the earlier layer)."""
    if not 0 <= total <= sum(sizes.values()):
        raise ValueError(f"cannot keep {total} of {sum(sizes.values())} weights")
    names = list(sizes)
    ideal = {name: round(min(1.0, max(0.0, densities[name])) * sizes[name], 9) for name in names}
    counts = {name: int(math.floor(ideal[name])) for name in names}
    remainder = {name: ideal[name] - counts[name] for name in names}
    spare = total - sum(counts.values())
    by_remainder = sorted(names, key=lambda name: -remainder[name])  # sort is stable: model order on ties
    while spare > 0:
        for name in (n for n in by_remainder if counts[n] < sizes[n]):
            if spare == 0:
                break
            counts[name] += 1
            spare -= 1
    while spare < 0:
        for name in (n for n in reversed(by_remainder) if counts[n] > 0):
            if spare == 0:
                break
            counts[name] -= 1
            spare += 1
    return counts


# ---- targets -----------------------------------------------------------------------------

def layer_shapes(stack: NetworkStack) -> dict[str, tuple[int, ...]]:
    return {name: tuple(stack.params[name].shape[1:]) for name in stack.kinds}


def pai_targets(sizes: Mapping[str, int], density: float, scope: str = "global") -> list[Group]:
    """The groups pruned to exact counts: every prunable layer together (global), or each layer to
    uniform density with counts that add up to the global count (layerwise), so that the overall
    density is the same in both scopes."""
    if scope not in pruning.SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {', '.join(pruning.SCOPES)}")
    total = sum(sizes.values())
    keep = pruning.keep_count(total, density)
    if scope == "global":
        return [Group(tuple(sizes), keep, total)]
    counts = keep_counts(sizes, {name: density for name in sizes}, keep)
    return [Group((name,), counts[name], sizes[name]) for name in sizes]


def random_targets(sizes: Mapping[str, int], shapes: Mapping[str, Sequence[int]], kinds: Mapping[str, str],
                   density: float, rule: str) -> list[Group]:
    """One group per layer, with the rule's per-layer densities and the exact global count."""
    densities = layer_densities(sizes, shapes, kinds, density, rule)
    counts = keep_counts(sizes, densities, pruning.keep_count(sum(sizes.values()), density))
    return [Group((name,), counts[name], sizes[name]) for name in sizes]

