"""Fault 1 of issue 12: a mask set while training (after the optimiser has state) must hold.

A callback that prunes at iteration 30 of 60 finds momentum buffers and Adam moments already
filled at the positions it prunes; those must not move the pruned weights again, and the stack's
reported density must be what is really non-zero."""

import pytest
import torch

from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig
from lth.train.loop import train

CONFIGS = {
    "sgd_momentum": TrainConfig(iterations=60, batch_size=20, optimizer="sgd", lr=0.05, momentum=0.9, eval_every=10),
    "sgd_nesterov_wd": TrainConfig(iterations=60, batch_size=20, optimizer="sgd", lr=0.05, momentum=0.9,
                                   nesterov=True, weight_decay=5e-4, eval_every=10),
    "adam": TrainConfig(iterations=60, batch_size=20, optimizer="adam", lr=1e-2, eval_every=10),
    "adam_wd": TrainConfig(iterations=60, batch_size=20, optimizer="adam", lr=1e-2, weight_decay=0.1, eval_every=10),
}


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU"))]


def _stack(device="cpu"):
    return NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, widths=(32, 16)), [1, 2], device)


def _half_masks(stack, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(stack.params[n].shape, generator=g) < 0.5).float().to(stack.device) for n in stack.kinds}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_mask_set_by_a_callback_mid_training_keeps_pruned_weights_exactly_zero(synthetic, name, device):
    """On a GPU the steps run as captured CUDA graphs: the new masks must reach them too."""
    stack = _stack(device)
    masks = _half_masks(stack)
    synthetic = synthetic.to(device)

    def prune_at_30(iteration, stack):
        if iteration == 30:
            stack.set_masks(masks)

    train(stack, synthetic, CONFIGS[name], data_seeds=[0, 1], callbacks=[prune_at_30])
    for layer, mask in masks.items():
        weights = stack.params[layer].detach()
        moved = int((weights[mask == 0] != 0).sum())
        assert moved == 0, f"{layer}: {moved} pruned weights came back under {name}"
    nonzero = sum((stack.params[n].detach() != 0).flatten(1).sum(1) for n in stack.kinds)
    total = sum(stack.params[n][0].numel() for n in stack.kinds)
    torch.testing.assert_close(stack.density(), nonzero / total)
    assert torch.all(stack.density() < 0.55)


def test_density_refuses_to_report_a_mask_its_weights_do_not_follow():
    stack = _stack()
    stack.set_masks(_half_masks(stack))
    with torch.no_grad():
        stack.params["fc.0.weight"].add_(1.0)  # weights changed behind the mask's back
    with pytest.raises(AssertionError, match="fc.0.weight"):
        stack.density()


def test_setting_a_mask_updates_the_tensors_a_captured_step_reads():
    stack = _stack()
    before = {n: stack.masks[n] for n in stack.kinds}
    before_bool = dict(stack.gradient_masks)
    stack.set_masks(_half_masks(stack))
    for name, mask in before.items():
        assert stack.masks[name] is mask, f"{name}: set_masks replaced the mask tensor (a CUDA graph keeps the old one)"
        keep = stack.gradient_masks[name]
        assert keep is before_bool[name], f"{name}: set_masks replaced the bool mask the update reads"
        assert keep.dtype == torch.bool and keep.stride() == stack.params[name].stride()
        assert torch.equal(keep, mask != 0), f"{name}: the bool mask the update reads differs from the mask"
