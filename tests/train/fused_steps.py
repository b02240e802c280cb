"""What the fused kernels' tests (test_fused_mlp.py, test_fused_conv.py) share: a check of compiled steps with and
without a fused path, imported by the scripts those tests run under Triton's interpreter (so a plain module rather
than a fixture), and the masked stacks, gradients and gradient distances of their GPU tests."""

from typing import Callable, Sequence

import torch

from lth.data import DataSplits, load_splits
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer, matmul_precision, stacked_losses


def half_masks(stack: NetworkStack) -> dict[str, torch.Tensor]:
    """Masks at density about 0.5 for every maskable tensor of ``stack``, the same at every call (on the CPU)."""
    return {n: (torch.rand(m.shape, generator=torch.Generator().manual_seed(1)) < 0.5).float()
            for n, m in stack.masks.items()}


def assert_fused_steps_match(make: Callable[[], NetworkStack], data: DataSplits, seeds: Sequence[int], batch: int,
                             steps: int) -> None:
    """``steps`` compiled fp32 SGD steps (momentum 0.9) of the masked stack ``make()`` builds, with TrainStep's fused
    kernels and without them: the same running loss and weights, to rounding, and masked weights stay zero. (SGD
    rather than Adam: Adam's steps hardly depend on the gradient's scale, so a gradient wrong by a factor would
    pass.)"""
    finals = []
    for fused in (False, True):
        stack = make()
        stack.set_masks(half_masks(stack))
        optimizer = make_optimizer(list(stack.params.values()), TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9))
        step = TrainStep(stack, data, optimizer, seeds, batch, False, precision="fp32", compile=True, fused=fused)
        assert (step.fused is not None) == fused
        with matmul_precision("fp32"):
            step.run(0, [0.05] * steps)
        stack.check_masks()
        finals.append(({n: p.detach().clone() for n, p in stack.params.items()}, step.take_running_loss()))
    torch.testing.assert_close(finals[1][1], finals[0][1], rtol=1e-5, atol=1e-6)
    for n in finals[0][0]:
        torch.testing.assert_close(finals[1][0][n], finals[0][0][n], rtol=1e-4, atol=1e-5)


def masked_gpu_stack(model: str, shape: tuple[int, int, int]):
    """A stack of three ``model`` networks on a GPU with masks at density about 0.5, synthetic data of ``shape`` and
    one batch of 60 per network: (data, make (a fresh unmasked stack), masks, the masked stack, x, y)."""
    data = load_splits("synthetic", synthetic_shape=shape, synthetic_sizes=(3000, 100, 100), device="cuda")
    make = lambda: NetworkStack.build(lambda s: build_model(model, shape, 10, seed=s), [0, 1, 2], "cuda")
    masks = half_masks(make())
    stack = make()
    stack.set_masks(masks)
    return data, make, masks, stack, data.train.x[:180].view(3, 60, *shape), data.train.y[:180].view(3, 60)


def stack_gradients(stack: NetworkStack, x: torch.Tensor, y: torch.Tensor, matmuls: str, autocast: bool = False,
                    fused: tuple | None = None) -> dict[str, torch.Tensor]:
    """Each tensor's gradient of the stack's summed training loss on (x, y) (`lth.train.step.stacked_losses`: its
    own forward pass, under bf16 autocast if asked, or ``fused``, a fused path as `TrainStep` names it), with torch's
    matmuls at ``matmuls`` ('fp32' or 'tf32')."""
    for p in stack.params.values():
        p.grad = None
    with matmul_precision(matmuls):
        stacked_losses(stack.template, stack.params, stack.buffers, x, y, autocast, fused)[0].backward()
    return {n: p.grad.clone() for n, p in stack.params.items()}


def distances(grads: dict[str, torch.Tensor], exact: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each tensor's distance to ``exact``, relative to the exact tensor's norm."""
    return {n: ((grads[n] - exact[n]).norm() / exact[n].norm()).item() for n in exact}
