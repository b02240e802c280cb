"""Iteration-based training of a NetworkStack, with periodic evaluation and exact resume.

Everything that varies per step is a pure function of (seed, iteration): the batch order
(`lth.data.batch_indices`), the augmentation and the learning rate. A checkpoint therefore
holds only tensors (weights, optimiser state, metrics so far) and resuming from one gives
the same numbers as never stopping.

Evaluation follows the LTH protocol: validation and test every ``eval_every`` iterations;
the early-stop iteration (minimum validation loss) is derived afterwards, never acted on.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from lth.data import DataSplits
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.schedules import lr_at
from lth.train.step import (GRAPH_STEPS, TrainStep, _broadcast_from_lead, _replica, make_optimizer,
                            matmul_precision, use_cuda_graphs)

# Evaluations whose metrics may still be on their way to the host: the host runs this far ahead of
# the device (LeNet stacks: ~0.2 s), so its pauses (a new epoch's permutations, ~40 ms for 20 networks;
# the checkpoint writer's thread holding the GIL while it pickles) never idle it.
METRICS_IN_FLIGHT = 16


class DivergedError(RuntimeError):
    """A network's loss became NaN or infinite."""


@dataclass
class History:
    """Metrics of every network at every evaluation, kept as tensors until the end.

    On a GPU, ``add`` copies to pinned host memory without waiting for the device, so training
    never stops for its metrics; ``settle`` waits for the copies still in flight (``train``
    settles before it returns, so a returned History is always readable). The GPU's own copies are
    kept too (a few bytes per network and evaluation), so ``state(wait=False)`` need not wait."""
    iterations: list[int] = field(default_factory=list)
    values: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # "split/metric" -> [(M,)]
    in_flight: list[tuple[int, torch.cuda.Event]] = field(default_factory=list, repr=False)
    on_device: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)  # as values, on the GPU

    def add(self, iteration: int, metrics: dict[str, torch.Tensor]) -> None:
        self.iterations.append(iteration)
        for key, value in metrics.items():
            value = value.detach().float()
            self.values.setdefault(key, []).append(value.to("cpu", non_blocking=True))
            if value.is_cuda:
                self.on_device.setdefault(key, []).append(value)
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

    def state(self, wait: bool = True) -> dict:
        """For checkpoints: one (evaluations, M) tensor per metric (thousands of small tensors pickle slowly).
        ``wait=False``: where every evaluation has its GPU copy, those tensors are stacked on the GPU, without
        waiting for the device (`lth.store.RunDir.save_checkpoint_in_background` copies them to the host)."""
        on_device = {k: v for k, v in self.on_device.items() if len(v) == len(self.values[k])}
        if wait or len(on_device) < len(self.values):
            self.settle()
            on_device = {}
        return {"iterations": list(self.iterations),
                "values": {k: torch.stack(on_device.get(k, v)) for k, v in self.values.items()}}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | None = None) -> "History":
        """The History a checkpoint's ``state()`` holds (its tensors on any device); with a GPU ``device``,
        with GPU copies as ``add`` keeps them."""
        history = cls(list(state["iterations"]), {k: list(v.cpu()) for k, v in state["values"].items()})
        if device is not None and torch.device(device).type == "cuda":
            history.on_device = {k: list(v.to(device)) for k, v in state["values"].items()}
        return history


def quiet() -> bool:
    """Progress bars stay silent under CI, when LTH_QUIET is set, and when tqdm's own TQDM_DISABLE is."""
    return any(os.environ.get(name) for name in ("CI", "LTH_QUIET", "TQDM_DISABLE"))


def train(stack: NetworkStack, data: DataSplits, cfg: TrainConfig, *, data_seeds: Sequence[int],
          start: int = 0, labels: Sequence[str] | None = None, resume: dict | None = None,
          checkpoint: Callable[[dict], None] | None = None,
          callbacks: Sequence[Callable[[int, NetworkStack], None]] = (),
          snapshot_at: int | None = None, desc: str = "train",
          data_parallel: bool = False, sink=None) -> tuple[History, dict | None]:
    """Train every network of ``stack`` (in place) from iteration ``start`` to the schedule's end.

    ``data_seeds``: one int per network (M of them), its data order. ``labels``: M names used in
    error messages. ``resume``: a state previously passed to ``checkpoint``, which is called every
    ``cfg.checkpoint_every`` iterations with a dict of fresh tensors (some on the stack's device; training
    does not touch them again) without waiting for the device, so the last few evaluations it holds may
    not have been checked for divergence yet: a resumed run checks them first. ``callbacks``:
    ``f(iteration, stack)`` after every evaluation; one may prune with ``stack.set_masks`` (pruned
    weights stay exactly zero).
    ``snapshot_at``: an iteration at which a copy of the stack's state is taken (weight rewinding).
    ``data_parallel``: every process of the initialised torch.distributed group trains the same
    networks on its share of each batch, gradients averaged over processes (DDP's scheme).
    ``sink``: an object whose ``add(iteration, {'split/metric': (M,) host tensor})`` receives each
    evaluation once it is on the host (e.g. `lth.train.tensorboard.TensorBoardSink`); None: no work.

    Returns the evaluation History ('val/loss', 'val/accuracy', 'test/...', 'train/batch_loss',
    and 'train/loss', 'train/accuracy' at the end; each (M,) per evaluation) and the snapshot (or None).
    Raises ValueError for a wrong number of data seeds or a start outside the schedule,
    DivergedError when a network's validation loss becomes non-finite."""
    with matmul_precision(cfg.precision):
        return _train(stack, data, cfg, data_seeds=data_seeds, start=start, labels=labels, resume=resume,
                      checkpoint=checkpoint, callbacks=callbacks, snapshot_at=snapshot_at, desc=desc,
                      data_parallel=data_parallel, sink=sink)


def _train(stack: NetworkStack, data: DataSplits, cfg: TrainConfig, *, data_seeds: Sequence[int], start: int,
           labels: Sequence[str] | None, resume: dict | None, checkpoint: Callable[[dict], None] | None,
           callbacks: Sequence[Callable[[int, NetworkStack], None]], snapshot_at: int | None,
           desc: str, data_parallel: bool, sink) -> tuple[History, dict | None]:
    if len(data_seeds) != stack.size:
        raise ValueError(f"{len(data_seeds)} data seeds for a stack of {stack.size} networks")
    labels = list(labels) if labels is not None else [f"network {i}" for i in range(stack.size)]
    steps = cfg.steps(len(data.train))
    if not 0 <= start <= steps.total:
        raise ValueError(f"start iteration {start} outside the schedule [0, {steps.total}]")
    replica = _replica(cfg.batch_size) if data_parallel else None
    graphed = use_cuda_graphs(stack.device) and replica is None  # collectives stay outside graphs
    optimizer = make_optimizer(list(stack.params.values()), cfg)
    stack.track(optimizer)  # a mask set mid-training (a callback) zeroes this optimiser's state there too
    history, snapshot, iteration = History(), None, start
    if resume is not None:
        stack.load_state(resume["stack"])
        optimizer.load_state_dict(resume["optimizer"])
        history = History.from_state(resume["history"], stack.device)
        snapshot, iteration = resume["snapshot"], resume["iteration"]
    if snapshot_at is not None and snapshot_at == iteration and snapshot is None:
        snapshot = stack.state()
    step = TrainStep(stack, data, optimizer, data_seeds, cfg.batch_size, graphed,
                     chunk=min(GRAPH_STEPS, steps.eval_every), precision=cfg.precision, replica=replica,
                     compile=cfg.compile)
    graphs = {} if graphed else None  # captured evaluation passes, one per split
    evaluator = lambda split, graph=True: evaluate(stack, split, cfg.eval_batch_size, cfg.precision, cfg.compile,
                                                   graphs=graphs if graph else None)

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
        if sink is not None:  # (evaluation index, iteration, where each metric's value sits in the history)
            unsent.append((len(history.iterations) - 1, it, {k: len(history.values[k]) - 1 for k in metrics}))

    unsent: list[tuple[int, int, dict[str, int]]] = []

    def send(readable: int) -> None:
        """Hand the sink the evaluations now readable on the host."""
        while unsent and unsent[0][0] < readable:
            _, it, where = unsent.pop(0)
            sink.add(it, {k: history.values[k][i] for k, i in where.items()})

    checked = [0]  # evaluations checked for divergence (a checkpoint may hold a few not yet checked)

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

    check_finite(len(history.iterations))  # a resumed history (on the host) first
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
            if sink is not None:
                send(readable)
            if readable and not bar.disable:
                bar.set_postfix(val_acc=f"{float(history.values['val/accuracy'][readable - 1].mean()):.4f}", refresh=False)
            for callback in callbacks:
                callback(iteration, stack)
            if checkpoint is not None and iteration % steps.checkpoint_every == 0 and iteration < steps.total:
                # Nothing here waits for the device (a drained queue would let the checkpoint writer's
                # thread stall training): the last few evaluations in it may be unchecked for divergence,
                # and a run resumed from it checks them first. Deep copy: state_dict() aliases the moments.
                checkpoint({"iteration": iteration, "stack": stack.state(),
                            "optimizer": copy.deepcopy(optimizer.state_dict()),
                            "history": history.state(wait=False), "snapshot": snapshot})
    bar.close()
    check_finite(history.settle())
    if sink is not None:
        send(len(history.iterations))
    return history, snapshot
