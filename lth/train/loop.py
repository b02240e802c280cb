"""Iteration-based training of a NetworkStack, with periodic evaluation and exact resume.

Everything that varies per step is a pure function of (seed, iteration): the batch order
(`lth.data.batch_indices`), the augmentation and the learning rate. A checkpoint therefore
holds only tensors (weights, optimiser state, metrics so far) and resuming from one gives
the same numbers as never stopping.

Evaluation follows the LTH protocol: validation and test every ``eval_every`` iterations;
the early-stop iteration (minimum validation loss) is derived afterwards, never acted on.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import gin
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lth.data import DataSplits, Split, augment_cifar, augment_seed, epoch_batches, steps_per_epoch
from lth.nets.stack import NetworkStack, stacked_forward
from lth.train.schedules import lr_at, parse_steps

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "tf32", "bf16")


class DivergedError(RuntimeError):
    """A network's loss became NaN or infinite."""


@gin.configurable
@dataclass(frozen=True)
class TrainConfig:
    iterations: str | int = "50000it"
    batch_size: int = 60
    optimizer: str = "adam"
    lr: float = 1.2e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple = ()
    gamma: float = 0.1
    warmup: str | int = 0
    eval_every: str | int = 100
    eval_batch_size: int = 2000  # memory only: conv activations of many networks add up
    checkpoint_every: str | int = 5000  # a checkpoint holds every network's weights and moments: not too often
    precision: str = "fp32"  # tf32: matmuls on TF32 tensor cores; bf16: autocast too (see matmul_precision)
    compile: bool = False  # torch.compile training and evaluation forward passes (stacked_losses, stacked_eval_sums)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def steps(self, train_size: int) -> "Steps":
        per_epoch = steps_per_epoch(train_size, self.batch_size)
        to_it = lambda s: parse_steps(s, per_epoch)
        return Steps(total=to_it(self.iterations), warmup=to_it(self.warmup),
                     eval_every=max(1, to_it(self.eval_every)),
                     checkpoint_every=max(1, to_it(self.checkpoint_every)),
                     milestones=tuple(to_it(m) for m in self.milestones))


@dataclass(frozen=True)
class Steps:
    """A TrainConfig's step strings resolved to iterations for one data set."""
    total: int
    warmup: int
    eval_every: int
    checkpoint_every: int
    milestones: tuple[int, ...]


@dataclass
class History:
    """Metrics of every network at every evaluation, kept as tensors until the end.

    On a GPU, ``add`` copies to pinned host memory without waiting for the device, so training
    never stops for its metrics; ``settle`` waits for the copies still in flight (``train``
    settles before it returns, so a returned History is always readable)."""
    iterations: list[int] = field(default_factory=list)
    values: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # "split/metric" -> [(M,)]
    in_flight: list[tuple[int, torch.cuda.Event]] = field(default_factory=list, repr=False)

    def add(self, iteration: int, metrics: dict[str, torch.Tensor]) -> None:
        self.iterations.append(iteration)
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(value.detach().float().to("cpu", non_blocking=True))
        if any(value.is_cuda for value in metrics.values()):
            copied = torch.cuda.Event()
            copied.record()
            self.in_flight.append((len(self.iterations) - 1, copied))

    def settle(self, in_flight: int = 0) -> int:
        """Wait until at most ``in_flight`` copies are still under way (the latest ones, which the device
        may still be computing); returns how many leading evaluations are readable."""
        while len(self.in_flight) > in_flight:
            self.in_flight.pop(0)[1].synchronize()
        return self.in_flight[0][0] if self.in_flight else len(self.iterations)

    def series(self, key: str) -> torch.Tensor:
        """(M, evaluations)."""
        self.settle()
        return torch.stack(self.values[key], dim=1)

    def state(self) -> dict:
        """For checkpoints: one (evaluations, M) tensor per metric (thousands of small tensors pickle slowly)."""
        self.settle()
        return {"iterations": list(self.iterations), "values": {k: torch.stack(v) for k, v in self.values.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "History":
        return cls(list(state["iterations"]), {k: list(v) for k, v in state["values"].items()})


def make_optimizer(params: Sequence[torch.Tensor], cfg: TrainConfig, graphed: bool = False) -> torch.optim.Optimizer:
    # A captured step reads the learning rate from a tensor that is updated in place between replays.
    lr = torch.tensor(cfg.lr, device=params[0].device) if graphed else cfg.lr
    if cfg.optimizer == "adam":
        # fused: one kernel per step for all moments instead of several multi-tensor passes
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay, capturable=graphed,
                                fused=graphed or None)
    # The fused SGD kernel reads a tensor learning rate on the device; foreach SGD would sync to the host.
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, fused=graphed or None)


def use_cuda_graphs(device: torch.device) -> bool:
    """Capture the training step as a CUDA graph on GPUs (LTH_CUDA_GRAPHS=0 turns it off)."""
    return device.type == "cuda" and os.environ.get("LTH_CUDA_GRAPHS", "1") != "0"


GRAPH_STEPS = 100  # most steps captured in one CUDA graph
# Evaluations whose metrics may still be on their way to the host: the host runs this far ahead of
# the device, so its own pauses (a new epoch's permutations, ~40 ms for 20 networks) never idle it.
METRICS_IN_FLIGHT = 4


class TrainStep:
    """Optimiser steps of every network in the stack, from device-resident batches.

    Steps run in chunks of ``chunk`` consecutive steps whose batch indices and learning rates
    are filled into fixed device buffers before the chunk starts, so the same body runs eagerly
    (CPU, and the first steps on a GPU) or is captured as a CUDA graph and replayed with
    identical arithmetic: on a GPU the host launches one graph per chunk instead of about fifty
    kernels per step, so a slow or busy CPU never starves the GPU. Augmented data (drawn on the
    host side of the graph) goes one step at a time."""

    WARMUP = 3  # eager steps before capture (lazy initialisation must not happen inside a graph)

    def __init__(self, stack: NetworkStack, data: DataSplits, optimizer: torch.optim.Optimizer,
                 seeds: Sequence[int], batch_size: int, graphed: bool, chunk: int = 1, precision: str = "fp32",
                 replica: tuple[int, int] | None = None, compile: bool = False):
        self.stack, self.data, self.optimizer = stack, data, optimizer
        self.replica = replica  # (rank, world) under data parallelism: this process's share of each batch
        self.seeds, self.batch_size = list(seeds), batch_size
        self.graphed, self.graphs, self.eager_steps = graphed, {}, 0
        self.chunk = 1 if data.augment else max(1, chunk)
        self.autocast = precision == "bf16"
        self.losses = compiled(stacked_losses) if compile else stacked_losses
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
        if self.graphed and lrs != self.lrs:  # schedules are mostly flat: copy only on change
            self.lr_plan[:len(lrs)].copy_(torch.tensor(lrs).pin_memory(), non_blocking=True)
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
        for group in self.optimizer.param_groups:
            # graphed: the optimiser reads step k's slot of the plan (a captured step keeps that address)
            group["lr"] = self.lr_plan[k] if self.graphed else self.lrs[k]
        self.optimizer.zero_grad(set_to_none=True)  # inside a graph: fresh gradients, never accumulated
        idx = self.plan[k]
        x = self.x if self.data.augment else self.data.train.x[idx]
        y = self.data.train.y[idx]
        if self.replica is not None:
            rank, world = self.replica
            x, y = x[:, rank::world], y[:, rank::world]
        total, losses = self.losses(self.stack.template, self.stack.params, self.stack.buffers, x, y, self.autocast)
        total.backward(self.one)  # networks are independent: each gets its own gradient
        if self.replica is not None:  # equal shares: the mean of the shares' gradients is the batch's
            losses = _all_mean([losses] + [p.grad for p in self.stack.params.values() if p.grad is not None])[0]
        self.stack.mask_gradients()
        self.optimizer.step()
        self.running += losses

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


def _stacked_logits(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                    x: torch.Tensor, autocast: bool, shared_input: bool = False) -> torch.Tensor:
    """(M, B, classes) fp32 logits, the forward pass under bf16 autocast if asked."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        return stacked_forward(template, params, buffers, x, shared_input).float()


def stacked_losses(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                   x: torch.Tensor, y: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over networks, to call backward on; (M,) detached) mean training loss of each network of a
    stack on its batch. The sum is taken here so a compiled step fuses it into the loss."""
    logits = _stacked_logits(template, params, buffers, x, autocast)
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
    return losses.sum(), losses.detach()


@functools.cache
def compiled(fn: Callable) -> Callable:
    """One ``torch.compile`` of ``fn`` per process: its code is kept for every stack of the same
    architecture and shapes, so the levels of an IMP run (a new stack each) compile once."""
    return torch.compile(fn, dynamic=False)


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


@torch.no_grad()
def stacked_eval_sums(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                      x: torch.Tensor, y: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) summed loss and (M,) number of correct predictions of every network on one batch ``x``
    shared by all of them. Compiled, the bias and activation passes that vmap leaves after each
    batched matmul fuse with each other and with the loss."""
    logits = _stacked_logits(template, params, buffers, x, autocast, shared_input=True)  # (M, B, C)
    loss = F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none").sum(1)
    return loss, (logits.argmax(-1) == y).sum(1)


def evaluate(stack: NetworkStack, split: Split, batch_size: int = 2000, precision: str = "fp32",
             compile: bool = False) -> dict[str, torch.Tensor]:
    """Mean loss and accuracy of every network on a whole split: {'loss': (M,), 'accuracy': (M,)}."""
    stack.train(False)
    sums = compiled(stacked_eval_sums) if compile else stacked_eval_sums
    loss = torch.zeros(stack.size, device=stack.device)
    correct = torch.zeros(stack.size, device=stack.device)
    for start in range(0, len(split), batch_size):
        x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        batch_loss, batch_correct = sums(stack.template, stack.params, stack.buffers, x, y, precision == "bf16")
        loss += batch_loss
        correct += batch_correct
    return {"loss": loss / len(split), "accuracy": correct / len(split)}


class Evaluator:
    """``evaluate`` for one stack; on a GPU each split's whole pass is captured once as a CUDA graph
    (the validation and test sets are fixed tensors, evaluated hundreds of times per training)."""

    def __init__(self, stack: NetworkStack, batch_size: int, graphed: bool, precision: str = "fp32",
                 compile: bool = False):
        self.stack, self.batch_size, self.graphed = stack, batch_size, graphed
        self.precision, self.compile = precision, compile
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]] = {}

    def __call__(self, split: Split, graph: bool = True) -> dict[str, torch.Tensor]:
        run = lambda: evaluate(self.stack, split, self.batch_size, self.precision, self.compile)
        if not (self.graphed and graph):
            return run()
        key = id(split)
        if key not in self.graphs:
            run()  # warm up outside the capture
            torch.cuda.synchronize()
            captured = torch.cuda.CUDAGraph()
            with torch.cuda.graph(captured):
                outputs = run()
            self.graphs[key] = (captured, outputs)
        captured, outputs = self.graphs[key]
        captured.replay()
        return {name: value.clone() for name, value in outputs.items()}


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


def quiet() -> bool:
    """Progress bars stay silent under CI and when LTH_QUIET is set."""
    return bool(os.environ.get("CI") or os.environ.get("LTH_QUIET"))


def train(stack: NetworkStack, data: DataSplits, cfg: TrainConfig, *, data_seeds: Sequence[int],
          start: int = 0, labels: Sequence[str] | None = None, resume: dict | None = None,
          checkpoint: Callable[[dict], None] | None = None,
          callbacks: Sequence[Callable[[int, NetworkStack], None]] = (),
          snapshot_at: int | None = None, desc: str = "train",
          data_parallel: bool = False) -> tuple[History, dict | None]:
    """Train every network of ``stack`` from iteration ``start`` to the schedule's end.

    ``data_seeds`` gives each network its data order. ``resume`` is a state previously passed
    to ``checkpoint``. ``snapshot_at`` returns a copy of the weights taken at that iteration
    (weight rewinding). Returns the evaluation history and that snapshot (or None).
    ``data_parallel``: every process of the initialised torch.distributed group trains the same
    networks on its share of each batch, gradients averaged over processes (DDP's scheme).
    """
    with matmul_precision(cfg.precision):
        return _train(stack, data, cfg, data_seeds=data_seeds, start=start, labels=labels, resume=resume,
                      checkpoint=checkpoint, callbacks=callbacks, snapshot_at=snapshot_at, desc=desc,
                      data_parallel=data_parallel)


def _train(stack: NetworkStack, data: DataSplits, cfg: TrainConfig, *, data_seeds: Sequence[int], start: int,
           labels: Sequence[str] | None, resume: dict | None, checkpoint: Callable[[dict], None] | None,
           callbacks: Sequence[Callable[[int, NetworkStack], None]], snapshot_at: int | None,
           desc: str, data_parallel: bool) -> tuple[History, dict | None]:
    if len(data_seeds) != stack.size:
        raise ValueError(f"{len(data_seeds)} data seeds for a stack of {stack.size} networks")
    labels = list(labels) if labels is not None else [f"network {i}" for i in range(stack.size)]
    steps = cfg.steps(len(data.train))
    if not 0 <= start <= steps.total:
        raise ValueError(f"start iteration {start} outside the schedule [0, {steps.total}]")
    replica = _replica(cfg.batch_size) if data_parallel else None
    graphed = use_cuda_graphs(stack.device) and replica is None  # collectives stay outside graphs
    optimizer = make_optimizer(list(stack.params.values()), cfg, graphed)
    history, snapshot, iteration = History(), None, start
    if resume is not None:
        stack.load_state(resume["stack"])
        optimizer.load_state_dict(resume["optimizer"])
        history = History.from_state(resume["history"])
        snapshot, iteration = resume["snapshot"], resume["iteration"]
    if snapshot_at is not None and snapshot_at == iteration and snapshot is None:
        snapshot = stack.state()
    step = TrainStep(stack, data, optimizer, data_seeds, cfg.batch_size, graphed,
                     chunk=min(GRAPH_STEPS, steps.eval_every), precision=cfg.precision, replica=replica,
                     compile=cfg.compile)
    evaluator = Evaluator(stack, cfg.eval_batch_size, graphed, cfg.precision, cfg.compile)

    def record(it: int, steps_since: int) -> None:
        if replica is not None:  # as DDP: the lead's BatchNorm statistics, so every replica stays identical
            _broadcast_from_lead(list(stack.buffers.values()))
        metrics = {}
        for name, split in (("val", data.val), ("test", data.test)):
            for metric, value in evaluator(split).items():
                metrics[f"{name}/{metric}"] = value
        if steps_since:
            metrics["train/batch_loss"] = step.take_running_loss() / steps_since
        if it == steps.total:  # once per training: not worth a graph's memory
            for metric, value in evaluator(data.train, graph=False).items():
                metrics[f"train/{metric}"] = value
        history.add(it, metrics)

    checked = [len(history.iterations)]  # evaluations already checked for divergence (resumed ones were)

    def check_finite(readable: int) -> None:
        """Raise on the first newly readable evaluation with a non-finite validation loss (on a GPU a
        few evaluations behind the device, so the host never waits for it)."""
        for index in range(checked[0], readable):
            finite = torch.isfinite(history.values["val/loss"][index])
            if not bool(finite.all()):
                bad = [labels[i] for i in (~finite).nonzero().flatten().tolist()]
                raise DivergedError(
                    f"{', '.join(bad)} diverged (non-finite validation loss) by iteration {history.iterations[index]} "
                    f"(lr {cfg.lr}, optimizer {cfg.optimizer}); results saved so far are kept. "
                    "Lower the learning rate or add warmup.")
        checked[0] = max(checked[0], readable)

    if not history.iterations:
        record(iteration, 0)
    bar = tqdm(total=steps.total - start, initial=iteration - start, desc=desc, disable=quiet(),
               unit="it", leave=False)
    steps_since = 0
    while iteration < steps.total:
        # Run up to the next evaluation (or the rewinding snapshot) in one go: a few graph launches.
        stop = min(steps.total, (iteration // steps.eval_every + 1) * steps.eval_every)
        if snapshot_at is not None and iteration < snapshot_at < stop:
            stop = snapshot_at
        step.run(iteration, [lr_at(i, lr=cfg.lr, total=steps.total, schedule=cfg.schedule,
                                   milestones=steps.milestones, gamma=cfg.gamma, warmup=steps.warmup)
                             for i in range(iteration, stop)])
        steps_since += stop - iteration
        iteration = stop
        if snapshot_at is not None and iteration == snapshot_at:
            snapshot = stack.state()
        if iteration % steps.eval_every == 0 or iteration == steps.total:
            record(iteration, steps_since)
            steps_since = 0
            bar.update(iteration - bar.n - start)
            readable = history.settle(METRICS_IN_FLIGHT)
            check_finite(readable)
            if readable and not bar.disable:
                bar.set_postfix(val_acc=f"{float(history.values['val/accuracy'][readable - 1].mean()):.4f}", refresh=False)
            for callback in callbacks:
                callback(iteration, stack)
            if checkpoint is not None and iteration % steps.checkpoint_every == 0 and iteration < steps.total:
                check_finite(history.settle())  # a checkpoint never holds a diverged network
                # deep copy: state_dict() aliases the live moment buffers
                checkpoint({"iteration": iteration, "stack": stack.state(),
                            "optimizer": copy.deepcopy(optimizer.state_dict()),
                            "history": history.state(), "snapshot": snapshot})
    bar.close()
    check_finite(history.settle())
    return history, snapshot


def _generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
