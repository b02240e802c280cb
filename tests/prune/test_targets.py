"""Targets, magnitude and random pruning: exact counts, nesting, per-layer densities."""

import pytest
import torch

from lth.prune import targets as pruning
from lth.prune.masks import magnitude_masks, random_masks
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model, prunable_weights

LENET_RATES = {"fc": 0.2, "output": 0.1}


def lenet_sizes():
    model = build_model("lenet300", (1, 28, 28), 10, seed=0)
    kinds = prunable_weights(model)
    return {n: p.numel() for n, p in model.named_parameters() if n in kinds}, kinds


@pytest.mark.parametrize("level,percent", [(3, 51.3), (7, 21.1), (9, 13.5), (11, 8.7), (15, 3.6), (18, 1.9), (20, 1.2)])
def test_lenet_ladder_matches_the_papers_pm_labels(level, percent):
    sizes, kinds = lenet_sizes()
    ladder = pruning.density_ladder(sizes, kinds, LENET_RATES, 20)
    assert round(100 * pruning.overall_density(ladder[level]), 1) == percent


def test_output_layer_pruned_at_its_own_rate():
    sizes, kinds = lenet_sizes()
    groups = {g.layers[0]: g for g in pruning.targets(sizes, kinds, LENET_RATES, 1)}
    assert groups["fc.0.weight"].keep == round(0.8 * 784 * 300)
    assert groups["fc.2.weight"].keep == 900  # 10% of 1,000


def stack_of(seeds):
    return NetworkStack.build(lambda s: build_model("lenet300", (1, 28, 28), 10, seed=s), seeds)


@pytest.mark.parametrize("scope", pruning.SCOPES)
def test_magnitude_masks_nest_and_hit_the_ladder_exactly(scope):
    stack = stack_of([0, 1])
    sizes = pruning.layer_sizes(stack)
    ladder = pruning.density_ladder(sizes, stack.kinds, {"fc": 0.2, "output": 0.2} if scope == "global" else LENET_RATES, 6, scope)
    previous = {n: m.clone() for n, m in stack.masks.items()}
    g = torch.Generator().manual_seed(0)
    for level in range(1, 7):
        with torch.no_grad():  # stand-in for training: perturb the surviving weights
            for n in stack.kinds:
                stack.params[n].add_(0.05 * torch.randn(stack.params[n].shape, generator=g))
        masks = magnitude_masks(stack, ladder[level])
        stack.set_masks(masks)
        for n, m in stack.masks.items():
            assert torch.all(m <= previous[n]), f"mask of {n} grew back at level {level}"
        kept = sum(m.flatten(1).sum(1) for m in stack.masks.values())
        assert kept.tolist() == [sum(gr.keep for gr in ladder[level])] * 2
        previous = {n: m.clone() for n, m in stack.masks.items()}


def test_magnitude_keeps_the_largest_survivors_of_either_sign():
    stack = stack_of([0])
    groups = pruning.targets(pruning.layer_sizes(stack), stack.kinds, LENET_RATES, 1)
    masks = magnitude_masks(stack, groups)
    w = stack.params["fc.0.weight"][0].detach()
    kept, pruned = w[masks["fc.0.weight"][0]].abs(), w[~masks["fc.0.weight"][0]].abs()
    assert kept.min() >= pruned.max()
    assert (w[masks["fc.0.weight"][0]] < 0).any()  # the peers' bug: masking by value froze negative weights


def test_random_masks_keep_per_layer_counts_and_differ():
    stack = stack_of([0, 1])
    groups = pruning.targets(pruning.layer_sizes(stack), stack.kinds, LENET_RATES, 5)
    reference = magnitude_masks(stack, groups)
    masks = random_masks(reference, torch.Generator().manual_seed(3))
    for n, ref in reference.items():
        assert torch.equal(masks[n].flatten(1).sum(1), ref.flatten(1).sum(1))
        assert not torch.equal(masks[n], ref)
    again = random_masks(reference, torch.Generator().manual_seed(3))
    assert all(torch.equal(again[n], masks[n]) for n in masks)


def test_one_shot_level_for_any_density():
    sizes, kinds = lenet_sizes()
    for density in (0.5, 0.211, 0.05):
        level = pruning.level_for_density(sizes, kinds, LENET_RATES, density)
        assert abs(pruning.overall_density(pruning.targets(sizes, kinds, LENET_RATES, level)) - density) < 1e-4


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, float("nan"), "half"])
def test_density_outside_unit_interval_is_rejected(bad):
    sizes, kinds = lenet_sizes()
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
        pruning.level_for_density(sizes, kinds, LENET_RATES, bad)


def test_bad_rates_and_scope_name_the_value():
    sizes, kinds = lenet_sizes()
    with pytest.raises(ValueError, match=r"\['conv'\].*\['fc', 'output'\]"):
        pruning.targets(sizes, kinds, {"conv": 0.1}, 1)
    with pytest.raises(ValueError, match="'fc' must be in"):
        pruning.targets(sizes, kinds, {"fc": 1.0}, 1)
    with pytest.raises(ValueError, match="'local'.*layerwise, global"):
        pruning.targets(sizes, kinds, LENET_RATES, 1, scope="local")


def test_density_check_catches_a_miss():
    stack = stack_of([0])
    groups = pruning.targets(pruning.layer_sizes(stack), stack.kinds, LENET_RATES, 1)
    with pytest.raises(pruning.DensityMismatch, match="fc.0.weight"):
        pruning.check_density(stack.masks, groups)
