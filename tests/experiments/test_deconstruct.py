"""Deconstructing lottery tickets (Zhou et al. 2019): each mask criterion's scores by hand, realised
densities equal their targets, the Bernoulli supermask trains its scores and never its weights and
draws the same masks on every call, the kept/pruned weight treatments, bad settings refused before
training, and a killed run resumes to the same numbers."""

import pandas as pd
import pytest
import torch

from lth.experiments import kind_of
from lth.experiments.deconstruct import DeconstructConfig, reshuffled, signed_constant
from lth.experiments.runner import Runner
from lth.nets import bernoulli, offsets, supermask
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.prune.masks import CRITERIA, criterion_masks, criterion_scores
from lth.prune.targets import Group
from lth.train.config import TrainConfig

FAST = TrainConfig(iterations="6it", batch_size=20, optimizer="adam", lr=1e-3, eval_every="2it", checkpoint_every="2it")
SUPER = TrainConfig(iterations="6it", batch_size=20, optimizer="sgd", lr=100.0, momentum=0.9, eval_every="2it",
                    checkpoint_every="2it")

W_I = torch.tensor([[0.5, -0.1, 0.3, -0.4]])
W_F = torch.tensor([[0.2, -0.6, -0.3, -0.1]])


@pytest.mark.parametrize("criterion, expected", [
    ("large_final", [0.2, 0.6, 0.3, 0.1]), ("small_final", [-0.2, -0.6, -0.3, -0.1]),
    ("large_init", [0.5, 0.1, 0.3, 0.4]), ("small_init", [-0.5, -0.1, -0.3, -0.4]),
    ("magnitude_increase", [-0.3, 0.5, 0.0, -0.3]), ("movement", [0.3, 0.5, 0.6, 0.3]),
    ("large_final_same_sign", [0.2, 0.6, 0.0, 0.1]),
    # ranks of |w_i| = (3, 0, 1, 2), of |w_f| = (1, 3, 2, 0): the min of each pair
    ("large_init_large_final", [1.0, 0.0, 1.0, 0.0])])
def test_each_criterion_scores_a_tiny_example_as_worked_by_hand(criterion, expected):
    assert torch.allclose(criterion_scores(criterion, W_I, W_F), torch.tensor([expected]), atol=1e-6)


def test_joint_criterion_keeps_the_quadrant_and_random_needs_a_generator():
    alive = {"w": torch.ones(1, 4)}
    kept = criterion_masks("large_init_large_final", {"w": W_I}, {"w": W_F}, alive, [Group(("w",), 2, 4)])
    assert kept["w"].tolist() == [[True, False, True, False]]  # the top 3 of both rankings: Zhou's quadrant
    with pytest.raises(ValueError, match="generator"):
        criterion_scores("random", W_I, W_F)
    with pytest.raises(ValueError, match="large_final, small_final"):
        criterion_scores("biggest", W_I, W_F)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_realised_density_equals_the_target_and_masks_nest(criterion):
    g = torch.Generator().manual_seed(0)
    init = {"a": torch.randn(2, 30, 20, generator=g), "b": torch.randn(2, 10, 30, generator=g)}
    final = {n: t + torch.randn(t.shape, generator=g) for n, t in init.items()}
    alive = {n: (torch.rand(t.shape, generator=g) < 0.6).float() for n, t in init.items()}
    groups = [Group(("a",), 123, 600), Group(("b",), 45, 300)]
    masks = criterion_masks(criterion, init, final, alive, groups, torch.Generator().manual_seed(1))
    assert [int(masks["a"][i].sum()) for i in range(2)] == [123, 123]
    assert [int(masks["b"][i].sum()) for i in range(2)] == [45, 45]
    assert all(not (masks[n].bool() & ~alive[n].bool()).any() for n in masks)  # only survivors are kept


def test_the_bernoulli_supermask_trains_scores_and_never_its_weights():
    model = supermask.to_supermask(build_model("lenet300", (1, 4, 4), 10, seed=0), rule="bernoulli", seed=3,
                                   weight_init="glorot_signed_constant")
    stack = supermask.SupermaskStack.from_models([model, model])
    assert set(stack.params) == {"fc.0.scores", "fc.1.scores", "fc.2.scores"}  # weights and biases are buffers
    assert all(float(s.detach().abs().max()) == 0 for s in stack.params.values())  # logits from 0: p = 0.5
    weight = stack.buffers["fc.0.weight"].clone()
    assert torch.allclose(weight.abs(), weight.abs()[0, 0, 0].expand_as(weight))  # one constant, signs kept
    stack.train(True)
    x = torch.randn(2, 8, 1, 4, 4)
    stack(x).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stack.params.values())
    assert stack.buffers["fc.0.draws"].tolist() == [1, 1]  # one draw per training forward pass
    stack.train(False)
    with torch.no_grad():
        a, b = stack(x), stack(x)
    assert torch.equal(a, b)  # evaluation reads one fixed sample without advancing
    density = float(stack.density()[0])
    assert 0.45 < density < 0.55 and torch.equal(stack.buffers["fc.0.weight"], weight)


def test_bernoulli_noise_is_uniform_and_a_pure_function_of_its_integers():
    seed, draw = torch.tensor(12345), torch.tensor(7)
    u = bernoulli.uniform((100_000,), seed, draw, 0)
    assert torch.equal(u, bernoulli.uniform((100_000,), seed, draw, 0))
    assert not torch.equal(u, bernoulli.uniform((100_000,), seed, draw + 1, 0))
    assert not torch.equal(u, bernoulli.uniform((100_000,), seed, draw, 1))
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float((u < 0.2).float().mean()) - 0.2) < 0.01
    scores = torch.zeros(5, requires_grad=True)
    bernoulli.mask_with_gradient(scores, seed, draw, True).sum().backward()
    assert torch.allclose(scores.grad, torch.full((5,), 0.25))  # sigmoid'(0), straight through


def test_kept_weight_treatments_and_frozen_pruned_weights():
    w0 = torch.randn(2, 5, 4)
    mask = (torch.rand(2, 5, 4) < 0.5).float()
    shuffled = reshuffled(w0, mask, torch.Generator().manual_seed(0))
    for i in range(2):
        keep = mask[i].bool()
        assert torch.equal(shuffled[i][keep].sort().values, w0[i][keep].sort().values)
    constant = signed_constant(w0)
    assert torch.equal(constant.sign(), w0.sign())
    assert torch.allclose(constant.abs()[0], w0[0].std(unbiased=False).expand(5, 4))
    model = offsets.with_offsets(build_model("lenet300", (1, 4, 4), 10, seed=0))
    x = torch.randn(3, 16)
    before = model(x.view(3, 1, 4, 4))
    model.fc[0].offset.copy_(torch.ones_like(model.fc[0].weight))
    assert not torch.allclose(before, model(x.view(3, 1, 4, 4)))
    assert "fc.0.weight" in dict(model.named_parameters()) and "fc.0.offset" in dict(model.named_buffers())


@pytest.mark.parametrize("field, value, message", [
    ("criteria", ("large_final", "biggest"), "unknown mask criterion 'biggest'; valid: large_final, small_final"),
    ("treatments", ("rewind_twice",), "unknown treatment 'rewind_twice'; valid: reinit"),
    ("strategy", "sometimes", "unknown strategy 'sometimes'"),
    ("supermask_weights", ("kaiming_normal",), "glorot_normal, glorot_signed_constant"),
    ("densities", (0.1, 0.5), "strictly decreasing")])
def test_bad_settings_are_refused_before_training(field, value, message):
    with pytest.raises(ValueError, match=message):
        DeconstructConfig(**{field: value})
    with pytest.raises(ValueError, match="large_final"):
        DeconstructConfig(criteria=("movement",))  # treatments need the large-final mask


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, synthetic):
    config = DeconstructConfig(dataset="synthetic", levels=2, trials=1,
                               criteria=("large_final", "large_init_large_final", "random"))
    run = lambda root, callbacks=(): Runner(kind_of("deconstruct"), config, {"lottery": FAST, "supermask": SUPER}, root=root,
                                            device="cpu", data=synthetic, callbacks=callbacks)
    whole = run(tmp_path / "whole").run().metrics
    for victim in (lambda s: s.size == 7 and not isinstance(s, supermask.SupermaskStack),
                   lambda s: isinstance(s, supermask.SupermaskStack)):
        def kill(iteration, stack, victim=victim):
            if iteration == 4 and victim(stack):
                raise Killed
        with pytest.raises(Killed):
            run(tmp_path / "killed", [kill]).run()
    resumed = run(tmp_path / "killed").run().metrics
    key = ["experiment", "control", "level", "trial", "replicate", "split", "metric", "iteration"]
    pd.testing.assert_frame_equal(resumed.sort_values(key).reset_index(drop=True),
                                  whole.sort_values(key).reset_index(drop=True))
    controls = set(resumed.control)
    assert {"dense", "frozen_init", "reshuffle", "supermask:glorot_normal", "untrained:random:signed_constant"} <= controls
    level = resumed[(resumed.level == 2) & (resumed.split == "test")]
    assert level.groupby("control").density.nunique().eq(1).all()
    assert level.density.nunique() == 1  # every variant at the level's one target
