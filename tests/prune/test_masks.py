"""The one exact-count top-k: counts exact per network, ties by position, the same everywhere."""

import pytest
import torch
from torch.func import vmap

from lth.nets import supermask
from lth.nets.counts import top_k_mask
from lth.prune.masks import top_masks
from lth.prune.targets import Group


def test_top_k_keeps_exactly_k_per_row_even_among_ties():
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0], [3.0, 2.0, 2.0, 2.0, 2.0]])
    kept = top_k_mask(scores, torch.tensor([2, 3]))
    assert kept.sum(1).tolist() == [2, 3]
    assert kept.tolist() == [[False, False, True, True, False], [True, False, False, True, True]]  # later ties win


def test_top_k_refuses_a_count_larger_than_the_row():
    with pytest.raises(ValueError, match="cannot keep 6 of 5"):
        top_k_mask(torch.zeros(1, 5), 6)


def test_supermask_groups_and_pruning_rank_the_same_way():
    scores = torch.randn(3, 40).round(decimals=1)  # plenty of ties
    by_rows = top_k_mask(scores, 7)
    by_vmap = vmap(lambda s: supermask.top_k_hard(s, torch.tensor(7)))(scores.view(3, 5, 8)).view(3, 40).bool()
    by_group = top_masks({"a": scores[:, :16], "b": scores[:, 16:]}, [Group(("a", "b"), 7, 40)])
    assert torch.equal(by_rows, by_vmap)
    assert torch.equal(by_rows, torch.cat([by_group["a"], by_group["b"]], 1))
