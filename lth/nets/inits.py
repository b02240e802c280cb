"""Weight initialisation of Linear/Conv2d layers (and BatchNorm's affine parameters), by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

INITS = ("glorot_normal", "kaiming_normal", "kaiming_uniform", "default")


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")


_WEIGHT_INITS: dict[str, Callable[..., torch.Tensor]] = {
    "glorot_normal": lambda t, g: nn.init.xavier_normal_(t, generator=g),
    "kaiming_normal": lambda t, g: nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu", generator=g),
    "kaiming_uniform": lambda t, g: nn.init.kaiming_uniform_(t, mode="fan_in", nonlinearity="relu", generator=g),
}


@torch.no_grad()
def initialize(model: nn.Module, init: str, generator: torch.Generator | None = None) -> None:
    """Re-initialise ``model`` in place: Linear/Conv2d weights by ``init``, their biases to 0, BatchNorm
    weight 1 and bias 0. ``"default"`` leaves everything as torch constructed it.

    Samples are drawn on the generator's device and then copied, so a CPU generator gives the same weights
    whatever device the model lives on.
    """
    check_init(init)
    if init == "default":
        return
    fill = _WEIGHT_INITS[init]
    device = generator.device if generator is not None else torch.device("cpu")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            sample = torch.empty(module.weight.shape, dtype=module.weight.dtype, device=device)
            module.weight.copy_(fill(sample, generator))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            module.weight.fill_(1.0)
            module.bias.zero_()
