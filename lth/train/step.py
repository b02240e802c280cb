"""The optimiser step of a NetworkStack: the optimiser, the step captured as a CUDA graph, precision.

`TrainStep` runs chunks of steps from device-resident batches; on a GPU each chunk is captured
once as a CUDA graph and replayed. Anything the captured step reads (masks, learning rates,
optimiser state) must therefore be updated in place, never replaced (`NetworkStack.set_masks`
does so). Data parallelism (torchrun) averages gradients over processes, outside graphs.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from lth.data import DataSplits, augment_cifar, augment_seed, epoch_batches, steps_per_epoch
from lth.nets.models import ConvNet
from lth.nets.stack import NetworkStack, stacked_forward
from lth.train import fused_conv, fused_mlp, triton_support
from lth.train.config import TrainConfig
from lth.train.optim import compile_per_shape, masked_update

def make_optimizer(params: Sequence[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``cfg`` names over ``params`` (Adam, or SGD with cfg's momentum and nesterov; cfg's lr
    and weight decay): the holder of the hyperparameters and the state that `TrainStep` updates with
    `lth.train.optim.masked_update` (its own ``step()`` is never called). The stack's masks must be set
    through `NetworkStack.set_masks` for pruned weights to stay zero; `lth.train.loop.train` tracks the
    optimiser for that."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a timing's end); nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def use_cuda_graphs(device: torch.device) -> bool:
    """Capture the training step as a CUDA graph on GPUs (LTH_CUDA_GRAPHS=0 turns it off)."""
    return device.type == "cuda" and os.environ.get("LTH_CUDA_GRAPHS", "1") != "0"


GRAPH_STEPS = 100  # most steps captured in one CUDA graph


class TrainStep:
    """Optimiser steps of every network in the stack, from device-resident batches.

    Steps run in chunks of ``chunk`` consecutive steps whose batch indices and learning rates
    are filled into fixed device buffers before the chunk starts, so the same body runs eagerly
    (CPU, and the first steps on a GPU) or is captured as a CUDA graph and replayed with
    identical arithmetic: on a GPU the host launches one graph per chunk instead of about fifty
    kernels per step, so a slow or busy CPU never starves the GPU. Augmented data (drawn on the
    host side of the graph) goes one step at a time.

    ``fused``: the loss through Triton kernels written for the stack's model: for `FC` stacks (LeNet-300-100) the
    last two layers, the loss and their gradients in one kernel (`lth.train.fused_mlp`); for `ConvNet` stacks of at
    most 128 channels (Conv-2, Conv-4) the 3x3 convolutions batched over networks (`lth.train.fused_conv`). None:
    where that is the fast path (compiled, on a GPU with Triton; FC stacks at tf32 of at most
    ``fused_mlp.FAST_UP_TO`` networks, where Triton's full-precision matmuls are slower than cuBLAS's at fp32;
    ConvNet stacks of at most ``fused_conv.FAST_UP_TO_CHANNELS`` channels (Conv-2) at bf16). True raises ValueError
    for a stack or precision neither takes; at fp32 the fused convolutions are true fp32, where cuDNN's use TF32
    by torch's default."""

    WARMUP = 3  # eager steps before capture (lazy initialisation must not happen inside a graph)

    def __init__(self, stack: NetworkStack, data: DataSplits, optimizer: torch.optim.Optimizer,
                 seeds: Sequence[int], batch_size: int, graphed: bool, chunk: int = 1, precision: str = "fp32",
                 replica: tuple[int, int] | None = None, compile: bool = False, fused: bool | None = None):
        self.stack, self.data, self.optimizer = stack, data, optimizer
        self.replica = replica  # (rank, world) under data parallelism: this process's share of each batch
        self.seeds, self.batch_size = list(seeds), batch_size
        self.graphed, self.graphs, self.eager_steps = graphed, {}, 0
        self.chunk = 1 if data.augment else max(1, chunk)
        self.autocast = precision == "bf16"
        self.compile = compile
        self.fused = _fused_loss(stack, batch_size, precision, compile, fused)
        self.losses = compiled(stacked_losses) if compile else stacked_losses
        self.indexed_losses = compiled(indexed_losses) if compile else indexed_losses
        self.per_epoch = steps_per_epoch(len(data.train), batch_size)
        self.epoch, self.batches, self.lrs = None, None, None
        device = stack.device
        self.plan = torch.zeros(self.chunk, stack.size, batch_size, dtype=torch.long, device=device)
        self.lr_plan = torch.zeros(self.chunk, device=device)
        self.x = torch.zeros(stack.size, batch_size, *data.input_shape, device=device) if data.augment else None
        self.running = torch.zeros(stack.size, device=device)  # training loss summed since it was last read
        self.one = torch.ones((), device=device)  # backward's seed, made once rather than filled every step

    def run(self, start: int, lrs: Sequence[float]) -> None:
        """Steps ``start, start + 1, ...`` with learning rates ``lrs`` (one per step)."""
        done = 0
        while done < len(lrs):
            count = self.chunk if len(lrs) - done >= self.chunk else 1
            self._prepare(start + done, lrs[done:done + count])
            self._launch(count)
            done += count

    def _prepare(self, start: int, lrs: Sequence[float]) -> None:
        """Fill the batch-index and learning-rate buffers for steps ``start .. start+len(lrs)-1``."""
        filled = 0
        while filled < len(lrs):
            epoch, j = divmod(start + filled, self.per_epoch)
            if epoch != self.epoch:
                self.epoch = epoch
                self.batches = epoch_batches(len(self.data.train), self.batch_size, self.seeds, epoch, self.stack.device)
            take = min(len(lrs) - filled, self.per_epoch - j)
            self.plan[filled:filled + take].copy_(self.batches[j:j + take])
            filled += take
        if self.data.augment:  # one generator per network keeps its stream independent of the stack
            x = self.data.train.x[self.plan[0]]
            self.x.copy_(torch.stack([augment_cifar(x[m], _generator(augment_seed(s, start), x.device))
                                      for m, s in enumerate(self.seeds)]))
        lrs = list(lrs)
        if lrs != self.lrs:  # schedules are mostly flat: copy only on change
            values = torch.tensor(lrs)
            self.lr_plan[:len(lrs)].copy_(values.pin_memory() if self.lr_plan.is_cuda else values, non_blocking=True)
        self.lrs = lrs

    def _launch(self, count: int) -> None:
        self.stack.train(True)
        if count in self.graphs:
            self.graphs[count].replay()
        elif self.graphed and self.eager_steps >= self.WARMUP:
            self._capture(count)
            self.graphs[count].replay()
        else:
            for k in range(count):
                self._body(k)
            self.eager_steps += count

    def _body(self, k: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)  # inside a graph: fresh gradients, never accumulated
        stack, idx = self.stack, self.plan[k]
        if self.data.augment or self.replica is not None:
            x = self.x if self.data.augment else self.data.train.x[idx]
            y = self.data.train.y[idx]
            if self.replica is not None:
                rank, world = self.replica
                x, y = x[:, rank::world], y[:, rank::world]
            total, losses = self.losses(stack.template, stack.params, stack.buffers, x, y, self.autocast, self.fused)
            total.backward(self.one)  # networks are independent: each gets its own gradient
            if self.replica is not None:  # equal shares: the mean of the shares' gradients is the batch's
                losses = _all_mean([losses] + [p.grad for p in stack.params.values() if p.grad is not None])[0]
            self.running += losses
        else:  # the batch gather and the running loss inside the (compiled) loss: fewer kernels per step
            self.indexed_losses(stack.template, stack.params, stack.buffers, self.data.train.x, self.data.train.y,
                                idx, self.running, self.autocast, self.fused).backward(self.one)
        self._update(k)

    def _update(self, k: int) -> None:
        """Step k's optimiser update of the whole stack, after backward."""
        stack = self.stack
        stack.before_update()
        # step k's slot of the plan: a captured step keeps reading that address
        names = list(stack.params)
        masked_update(self.optimizer, [stack.params[n] for n in names], [stack.gradient_masks.get(n) for n in names],
                      self.lr_plan[k], compile=self.compile)

    def _capture(self, count: int) -> None:
        torch.cuda.synchronize()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for k in range(count):
                self._body(k)
        self.graphs[count] = graph

    def take_running_loss(self) -> torch.Tensor:
        value = self.running.clone()
        self.running.zero_()
        return value


def stacked_logits(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                    x: torch.Tensor, autocast: bool, shared_input: bool = False) -> torch.Tensor:
    """(M, B, classes) fp32 logits, the forward pass under bf16 autocast if asked."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        return stacked_forward(template, params, buffers, x, shared_input).float()


def stacked_losses(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                   x: torch.Tensor, y: torch.Tensor, autocast: bool,
                   fused: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over networks, to call ``backward()`` on as it is (seed 1: the fused tail's gradients assume it);
    (M,) detached) mean training loss of each network of a stack on its batch. The sum is taken here so a compiled
    step fuses it into the loss. ``fused``: from `TrainStep`, the fused kernels' loss (`lth.train.fused_mlp`,
    `lth.train.fused_conv`), or None for the stack's forward pass."""
    if fused is not None and fused[0] == "mlp":
        losses = fused_mlp.fc_losses(params, fused[1], x, y, fused[2], unit_seed=True)
    elif fused is not None:
        losses = fused_conv.conv_losses(params, fused[1], x, y, fused[2])
    else:
        logits = stacked_logits(template, params, buffers, x, autocast)
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
    return losses.sum(), losses.detach()


def indexed_losses(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                   x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, running: torch.Tensor,
                   autocast: bool, fused: tuple | None = None) -> torch.Tensor:
    """`stacked_losses` of the batches ``x[idx]``, ``y[idx]`` (``idx``: (M, B) example indices into a
    whole split), adding each network's loss to ``running`` ((M,), in place); returns the sum over
    networks to call backward on. Compiled, the label gather and the running sum fuse into the loss."""
    total, losses = stacked_losses(template, params, buffers, x[idx], y[idx], autocast, fused)
    running.add_(losses)
    return total


def _fused_loss(stack: NetworkStack, batch_size: int, precision: str, compile: bool, wanted: bool | None
                ) -> tuple | None:
    """('mlp', layers, Triton matmul precision) or ('conv', layers, precision) for `stacked_losses` when the
    stack's loss runs through `lth.train.fused_mlp` or `lth.train.fused_conv` (see `TrainStep`), else None."""
    if wanted is False or (wanted is None and not (compile and stack.device.type == "cuda")):
        return None
    triton = triton_support.available()
    tail = fused_mlp.tail_layers(stack, batch_size) if precision in ("fp32", "tf32") and triton else None
    convs = fused_conv.conv_layers(stack) if triton else None
    if tail and (wanted or (precision == "tf32" and stack.size <= fused_mlp.FAST_UP_TO)):
        return "mlp", tail, "ieee" if precision == "fp32" else "tf32"
    if convs and (wanted or (precision == "bf16" and fused_conv.widest(stack) <= fused_conv.FAST_UP_TO_CHANNELS)):
        return "conv", convs, precision
    if wanted is None:
        return None
    got = f"got a {type(stack).__name__} of {type(stack.template).__name__}"
    if not triton:
        raise ValueError(f"fused=True needs Triton (torch's CUDA wheels ship it); {got}")
    if convs is None and isinstance(stack.template, ConvNet):
        raise ValueError(f"fused=True takes plain NetworkStacks of ConvNets of at most {fused_conv.MAX_OUT_CHANNELS} "
                         f"channels per convolution; {got} of {fused_conv.widest(stack)}")
    raise ValueError(f"fused=True needs a plain NetworkStack of FC networks with biases (last hidden width <= "
                     f"{fused_mlp.MAX_HIDDEN}, <= {fused_mlp.MAX_CLASSES} classes, batch <= {fused_mlp.MAX_BATCH}) "
                     f"at precision 'fp32' or 'tf32', or of ConvNets; {got}, batch {batch_size}, precision "
                     f"{precision!r}")


@functools.cache
def compiled(fn: Callable) -> Callable:
    """One ``torch.compile`` of ``fn`` per process: its code is kept for every stack of the same
    architecture and shapes, so the levels of an IMP run (a new stack each) compile once."""
    return compile_per_shape(fn)


def _replica(batch_size: int) -> tuple[int, int]:
    import torch.distributed as dist
    if not dist.is_initialized():
        raise RuntimeError("data parallel training needs torch.distributed initialised (start it with torchrun)")
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world} processes; "
                         f"use a multiple of {world}")
    return rank, world


@torch.no_grad()
def _all_mean(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average tensors in place over the processes of the default group."""
    import torch.distributed as dist
    for tensor in tensors:
        dist.all_reduce(_dense_view(tensor))
        tensor.div_(dist.get_world_size())
    return tensors


@torch.no_grad()
def _broadcast_from_lead(tensors: list[torch.Tensor]) -> None:
    import torch.distributed as dist
    for tensor in tensors:
        dist.broadcast(_dense_view(tensor), src=0)


def _dense_view(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous view of a dense tensor stored in another dimension order (collectives need one)."""
    order = sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))
    return tensor.permute(order)


@contextlib.contextmanager
def matmul_precision(precision: str):
    """fp32 keeps PyTorch's defaults (full-precision matmuls; convolutions on GPUs already use TF32);
    tf32 and bf16 let matmuls use TF32 tensor cores, bf16 autocasts the forward pass as well."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest" if precision == "fp32" else "high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
