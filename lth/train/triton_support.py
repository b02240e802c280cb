"""What the Triton kernels of `lth.train.fused_mlp` and `lth.train.fused_conv` share: whether Triton is there, how
many programs fill a GPU, ceiling division for grid sizes and power-of-two tile sides."""

from __future__ import annotations

import functools
import importlib.util

import torch


def available() -> bool:
    """Whether Triton can be imported (it ships with torch's CUDA wheels on Linux)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def processors(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA ``device`` (grids are sized to fill them); 2 elsewhere (Triton's
    interpreter on a CPU, the tests)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2


def cdiv(a: int, b: int) -> int:
    """Ceiling of a / b for positive integers."""
    return -(-a // b)


def block(size: int) -> int:
    """The smallest power of two >= ``size`` and >= 16 (tl.dot's least tile side): a tile holding ``size``."""
    return max(16, 1 << (int(size) - 1).bit_length())
