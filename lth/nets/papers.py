"""The papers' own small networks, for the strong-ticket experiments: Pensia et al.'s targets without
biases (and their parameter-matched wide versions, and the RedLayer weight count), and
catid/train_ticket's MLP and CNN."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from lth.data import DataSplits
from lth.nets.models import LeNet5, TicketCNN, build_model  # noqa: F401  (TicketCNN: its old home)


def _fc(data: DataSplits, widths: Sequence[int], bias: bool = False) -> nn.Module:
    return build_model("fc", data.input_shape, data.num_classes, widths=tuple(widths), bias=bias, init="kaiming_normal")


PENSIA_WIDTHS = {"fc2": (500,), "fc4": (500, 500, 500), "lenet5": (120, 84)}
PENSIA_NETWORKS = tuple(PENSIA_WIDTHS)


def pensia_network(name: str, data: DataSplits, widths: Sequence[int] | None = None) -> nn.Module:
    """Pensia's targets without biases: FC 784-500-10, FC 784-500-500-500-10, LeNet-5 (its 400-wide
    flatten, fc 120-84-10); ``widths`` replaces the hidden widths (the wide baselines)."""
    widths = tuple(widths or PENSIA_WIDTHS[name])
    if name != "lenet5":
        return _fc(data, widths)
    model = LeNet5(data.input_shape, data.num_classes, bias=False)
    sizes = [model.fc[0].in_features, *widths, data.num_classes]
    model.fc = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:]))
    return model


def pensia_plain(name: str, widths: Sequence[int] | None = None) -> tuple[str, dict]:
    """(model, model_kwargs) of `lth.nets.models.build_model` whose architecture is
    ``pensia_network(name, data, widths)`` (its exported tickets are rebuilt from them)."""
    widths = list(widths or PENSIA_WIDTHS[name])
    return ("lenet5", {"bias": False, "widths": widths}) if name == "lenet5" else ("fc", {"widths": widths, "bias": False})


def fc_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def redundant_weights(model: nn.Module, r: int) -> int:
    """Weights of the RedLayer version: in * r + in * r * out per Linear."""
    return sum(m.in_features * r * (1 + m.out_features) for m in model.modules() if isinstance(m, nn.Linear))


def matched_widths(name: str, data: DataSplits, target: int) -> tuple[int, ...]:
    """Hidden widths scaled by one common factor so that the fc weights come closest to ``target``
    (Pensia's Wide nets: the redundant net's parameter count; 2508 for FC 784-500-10)."""
    base = PENSIA_WIDTHS[name]
    first = pensia_network(name, data).fc[0].in_features

    def count(scale: float) -> int:
        sizes = [first, *(max(1, round(w * scale)) for w in base), data.num_classes]
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    low, high = 1.0, 64.0
    for _ in range(60):  # the count grows with the scale: bisect
        mid = (low + high) / 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    best = min((low, high), key=lambda s: abs(count(s) - target))
    return tuple(max(1, round(w * best)) for w in base)


# network -> (builder, names of the gated layers): train_ticket gates the middle layers only.
TICKET_NETWORKS: dict[str, tuple[Callable[[DataSplits], nn.Module], tuple[str, ...]]] = {
    "mlp": (lambda data: _fc(data, (512, 256, 128), bias=True), ("fc.1", "fc.2")),
    "cnn": (lambda data: TicketCNN(data.input_shape, data.num_classes), ("fc.0",)),
}


# network -> (model, model_kwargs) of build_model with its architecture (for exported tickets)
TICKET_PLAIN: dict[str, tuple[str, dict]] = {"mlp": ("fc", {"widths": [512, 256, 128], "bias": True}),
                                             "cnn": ("ticket_cnn", {})}


def seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Construction draws from torch's global RNG: fork it so every network is a pure function of its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()

