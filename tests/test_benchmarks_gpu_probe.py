"""benchmarks/gpu_probe.py's step variants compute what lth's TrainStep computes (checked on a CPU, so a
GPU measurement of them compares speed, not different arithmetic)."""

import sys
from pathlib import Path

import pytest
import torch

from lth.data import load_splits
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_probe  # noqa: E402


def trained(kind, model, data, cfg, relayout=None, **kwargs):
    torch.manual_seed(0)
    stack = NetworkStack.build(lambda s: build_model(model, data.input_shape, 10, seed=s, **kwargs), [0, 1])
    stack.set_masks({n: (torch.rand(m.shape) < 0.5).float() for n, m in stack.masks.items()})
    step = kind(stack, data, make_optimizer(list(stack.params.values()), cfg), [0, 1], cfg.batch_size, False)
    if relayout:
        relayout(stack, step)
    step.run(0, [cfg.lr] * 2)
    stack.check_masks()
    return {n: p.detach() for n, p in stack.params.items()}, step.take_running_loss()


@pytest.mark.parametrize("variant", ["streams", "channels_last"])
def test_conv_stack_variants_equal_the_vmapped_stack(variant):
    data = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(200, 50, 50))
    # SGD: Adam turns float rounding in near-zero gradients into updates of up to lr
    cfg = TrainConfig(batch_size=8, optimizer="sgd", lr=0.01, momentum=0.9)
    reference = trained(TrainStep, "conv2", data, cfg)
    kind, relayout = ((gpu_probe.StreamedStep, gpu_probe.channels_last_weights) if variant == "streams"
                      else (TrainStep, gpu_probe.channels_last))
    params, losses = trained(kind, "conv2", data, cfg, relayout)
    for name in params:
        torch.testing.assert_close(params[name], reference[0][name], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses, reference[1])


def test_whole_step_equals_train_step():
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(200, 50, 50))
    cfg = TrainConfig(batch_size=8, optimizer="adam", lr=1e-3)
    kind = gpu_probe.whole_step_kind({})
    reference = trained(TrainStep, "fc", data, cfg, widths=(32, 16))
    params, losses = trained(kind, "fc", data, cfg, widths=(32, 16))
    for name in params:
        torch.testing.assert_close(params[name], reference[0][name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses, reference[1])


@pytest.mark.parametrize("kind", ["CorrectionsInlineStep", "TorchFusedStep"])
def test_update_variants_equal_train_step(kind):
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(200, 50, 50))
    cfg = TrainConfig(batch_size=8, optimizer="adam", lr=1e-3, weight_decay=0.01)
    reference = trained(TrainStep, "fc", data, cfg, widths=(32, 16))
    params, losses = trained(getattr(gpu_probe, kind), "fc", data, cfg, widths=(32, 16))
    for name in params:
        torch.testing.assert_close(params[name], reference[0][name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses, reference[1])
