"""Mask makers over a stack's groups: the top scores of each group, magnitude and random masks.

Every mask here keeps an exact number of weights, ranked by the package's one top-k,
`lth.nets.counts.top_k_mask` (ties broken by position, the same on every device). Which counts
to keep (ladders, groups) and the checks of a result live in `lth.prune.targets`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from lth.nets.counts import top_k_mask
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
