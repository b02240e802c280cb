"""Fault 5 of issue 12: under edge-popup (top-k) and Gem-Miner (threshold) only scores train.

train_ticket's sign gates train their layers' biases (its reference code does), and weight-trained
baselines keep training what they trained."""

import pytest
import torch

from lth.nets import supermask
from lth.nets.models import build_model


def _lenet300(**kwargs):
    return build_model("lenet300", (1, 28, 28), 10, seed=0, **kwargs)


@pytest.mark.parametrize("rule", ["top_k", "threshold"])
def test_score_rules_train_only_scores_even_when_the_model_has_biases(rule):
    model = supermask.to_supermask(_lenet300(), rule=rule, seed=0, density=0.5)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all(name.endswith("scores") for name in trained), trained
    stack = supermask.SupermaskStack.from_models([model])
    assert all(name.endswith("scores") for name in stack.params), sorted(stack.params)
    assert {"fc.0.bias", "fc.1.bias", "fc.2.bias"} <= set(stack.buffers)


def test_frozen_biases_still_shift_the_output():
    model = supermask.to_supermask(_lenet300(), rule="top_k", seed=0, density=0.5)
    x = torch.randn(4, 1, 28, 28)
    before = model(x)
    with torch.no_grad():
        model.fc[2].bias.add_(1.0)
    torch.testing.assert_close(model(x), before + 1.0)


def test_sign_gates_train_their_biases_as_train_ticket_does():
    model = supermask.to_supermask(_lenet300(), rule="sign", seed=0)
    trained = {name for name, p in model.named_parameters()}
    assert {"fc.0.bias", "fc.0.scores"} <= trained


def test_layers_left_unconverted_keep_training_weights_and_biases():
    model = supermask.to_supermask(_lenet300(), rule="top_k", seed=0, scored=lambda n: n == "fc.1")
    trained = {name for name, p in model.named_parameters()}
    assert {"fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias", "fc.1.scores"} == trained
