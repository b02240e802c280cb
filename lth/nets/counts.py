"""Exact counts of kept weights: the one density check, the one rounding rule, the one top-k.

Every mask of the package keeps an exact number of weights. `keep_count` turns a density into
that number, and `top_k_mask` is the single top-k routine: pruning targets and masks
(`lth.prune.masks`), pruning at initialisation (`lth.prune.scores`) and edge-popup's supermask
layers (`lth.nets.supermask.top_k_hard`, inside every forward pass) all rank through it, and
`row_ranks` (what it ranks with) also orders score inversion and Gem-Miner's freezing. It ranks
with a stable sort, so ties are broken by position (of equal scores the later positions are kept)
the same way on every device, and the count never depends on ties. It sits with the networks
(the lowest layer that needs it) so that `lth.nets` never imports `lth.prune`.
"""

from __future__ import annotations

import torch


def validate_density(density: float) -> float:
    """``density`` (the fraction of weights kept) as a float; raises ValueError unless in (0, 1]."""
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1] (the fraction of weights kept), got {density!r}")
    return float(density)


def round_count(x: float) -> int:
    """A weight count rounded to the nearest int, never below 1: an empty layer would disconnect
    the network (emptying one on purpose is an explicit opt-in elsewhere)."""
    return max(1, int(round(x)))


def keep_count(total: int, density: float) -> int:
    """Weights kept of ``total`` at ``density`` in (0, 1], rounded as every target here is (never
    zero). Raises ValueError for a density outside (0, 1]."""
    return round_count(total * validate_density(density))


def row_ranks(scores: torch.Tensor) -> torch.Tensor:
    """(M, N) long: each entry's rank within its row of ``scores`` (M, N), 0 = the smallest, by a
    stable sort (of equal scores the earlier position ranks lower; NaN ranks highest). Works under
    ``vmap`` and ``torch.compile``."""
    order = scores.argsort(dim=1, stable=True)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter(1, order, positions)


def top_k_mask(scores: torch.Tensor, kept: int | torch.Tensor) -> torch.Tensor:
    """(M, N) bool: in each row of ``scores`` (M, N), True at the ``kept`` largest entries, exactly
    that many (ties broken by position: the later of equal scores is kept; NaN ranks highest).

    ``kept``: an int or an (M,) / 0-d integer tensor (rows may keep different counts), each in
    [0, N]. Works under ``vmap`` (a 0-d ``kept`` per network) and ``torch.compile``.
    Raises ValueError for an int ``kept`` outside [0, N] or scores that are not 2-d."""
    if scores.dim() != 2:
        raise ValueError(f"scores must be (M, N), got shape {tuple(scores.shape)}")
    n = scores.shape[1]
    if isinstance(kept, int) and not 0 <= kept <= n:
        raise ValueError(f"cannot keep {kept} of {n} entries: kept must be in [0, {n}]")
    rank = row_ranks(scores)
    threshold = n - (kept.reshape(-1, 1) if torch.is_tensor(kept) else kept)
    return rank >= threshold
