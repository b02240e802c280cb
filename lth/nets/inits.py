"""Weight initialisation of Linear/Conv2d layers (and BatchNorm's affine parameters), by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

INITS = ("glorot_normal", "kaiming_normal", "kaiming_uniform", "variance_scaling", "default")


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")


_WEIGHT_INITS: dict[str, Callable[..., torch.Tensor]] = {
    "glorot_normal": lambda t, g: nn.init.xavier_normal_(t, generator=g),
    "kaiming_normal": lambda t, g: nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu", generator=g),
    "kaiming_uniform": lambda t, g: nn.init.kaiming_uniform_(t, mode="fan_in", nonlinearity="relu", generator=g),
    "variance_scaling": lambda t, g: variance_scaling_(t, g),
}
# TensorFlow's truncation correction: the std of a unit normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def variance_scaling_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """TensorFlow 1's ``tf.variance_scaling_initializer()`` at its defaults (scale 1, mode fan_in,
    truncated normal), the initialiser of SNIP's code (Lee et al. 2019, namhoonlee/snip-public):
    a normal truncated at two of its standard deviations, scaled so that the truncated values have
    standard deviation sqrt(1 / fan_in). fan_in: in_features (Linear), in_channels * kh * kw (Conv2d),
    the length of a 1-D tensor (a bias, as TensorFlow counts it). In place; returns ``tensor``."""
    fan_in = tensor.shape[0] if tensor.dim() == 1 else nn.init._calculate_fan_in_and_fan_out(tensor)[0]
    std = (1.0 / fan_in) ** 0.5 / _TRUNCATED_STD
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std, generator=generator)


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
