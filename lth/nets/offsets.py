"""Pruned weights frozen at a value instead of zero (Zhou et al.'s "mask-0" action ``freeze_init``).

The one mask mechanism stays as it is: the trained weight is ``weight * mask``, exactly zero where
pruned (`lth.nets.stack.NetworkStack`). `with_offsets` gives every Linear/Conv2d of a model an
``offset`` buffer (zeros) added to its weight in the forward pass, so a layer computes with
``weight * mask + offset``; setting ``offset = w_0 * (1 - mask)`` freezes the pruned weights at
their initial values w_0 (Zhou et al.'s FreezeDense/FreezeConv2D: ``kernel * mask + (1 - mask) * init``).
A buffer is never trained, and its zeros change nothing for the networks of a stack that keep zeros,
so both kinds of network share one stack. Parameter names are unchanged (``fc1.weight``), and the
layers stay Linear/Conv2d, so `lth.nets.models.prunable_weights` sees the same layers and kinds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OFFSET = "offset"


class OffsetLinear(nn.Linear):
    """nn.Linear computing with ``weight + offset`` (``offset`` a buffer of the weight's shape)."""

    def forward(self, x):
        return F.linear(x, self.weight + self.offset, self.bias)


class OffsetConv2d(nn.Conv2d):
    """nn.Conv2d computing with ``weight + offset``."""

    def forward(self, x):
        return self._conv_forward(x, self.weight + self.offset, self.bias)


def with_offsets(model: nn.Module) -> nn.Module:
    """``model`` (in place; returned) with every Linear/Conv2d computing with ``weight + offset``,
    ``offset`` a zero buffer (state key ``<layer>.offset``). Outputs are unchanged until an offset is set."""
    for name, module in list(model.named_modules()):
        if type(module) in (nn.Linear, nn.Conv2d):
            module.__class__ = OffsetLinear if isinstance(module, nn.Linear) else OffsetConv2d
            module.register_buffer(OFFSET, torch.zeros_like(module.weight))
    return model


def offset_key(weight_name: str) -> str:
    """The offset buffer's state key of a prunable weight: 'fc1.weight' -> 'fc1.offset'."""
    return weight_name.rpartition(".")[0] + "." + OFFSET if "." in weight_name else OFFSET


def frozen_offsets(init: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Offset buffers (state key -> (M, *shape)) that hold the pruned weights at ``init``:
    ``init * (1 - mask)`` per prunable weight (``init``, ``masks``: weight name -> (M, *shape))."""
    return {offset_key(name): init[name].detach() * (1 - masks[name].to(init[name].dtype)) for name in masks}
