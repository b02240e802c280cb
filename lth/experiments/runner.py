"""The one experiment loop. A kind (`lth.experiments.registry`) turns its config into *jobs*; the
runner owns everything around them, the same way for every kind:

- the device, the data (`lth.data.load_splits`, the config's dataset and split_seed), the run
  folder (`lth.store.RunDir`, named by a hash of the operative config) and its manifest (seed,
  device, started/finished time, wall time, the kind's own facts);
- per job: skip it when its done marker exists; otherwise build its stack, refuse a layer that
  keeps no weight (`lth.prune.scores.check_layer_collapse`, unless the config sets
  ``layer_collapse_ok``), train it resuming from its progress checkpoint (written in the
  background every ``TrainConfig.checkpoint_every``), build its tidy rows (`lth.schema.metric_rows`)
  and finish in the background: metrics, the job's state checkpoint, the done marker (last), the
  progress checkpoint deleted;
- learning checks: a network whose loss is not finite, ends worse than both its start and a uniform
  guess, or ends at chance accuracy is flagged (`learning_failures`): a `META_SPLIT` row
  ``failed_to_learn`` = 1 in its metrics, the manifest's ``failed_to_learn``, and no claim is judged
  on it (`lth.results.verdicts`);
- torchrun: trials spread over processes (each job's keys get a ``_shard<r>of<w>`` suffix), or
  data parallelism (every process trains all trials on its share of each batch), where the kind
  allows it.

A job's ``build`` runs only when the job is not done; a later job reads an earlier job's state with
``context.state(key)`` (from memory, or from the store when it finished in an earlier process).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lth.data import DataSplits, derive_seed, load_splits, steps_per_epoch
from lth.experiments.registry import Kind
from lth.nets import supermask
from lth.nets.stack import NetworkStack
from lth.prune.scores import check_layer_collapse
from lth.schema import META_SPLIT, Member, metric_rows
from lth.store import RunDir, config_hash
from lth.store.files import exclusive
from lth.train.config import TrainConfig
from lth.train.loop import train
from lth.train.schedules import parse_steps

FAILED_TO_LEARN = "failed_to_learn"   # META_SPLIT metric of a network that did not learn (value 1)
CHANCE_MARGIN = 1.5                   # final val accuracy <= CHANCE_MARGIN / classes: "at chance"
MIN_JUDGED_ITERATIONS = 20            # the chance test needs at least this many iterations trained
FAILURE_RULE = (f"loss not finite; or final val loss above both its start and ln(classes); or final val accuracy "
                f"<= {CHANCE_MARGIN:g} / classes after >= {MIN_JUDGED_ITERATIONS} iterations")
# What a progress checkpoint of lth.train.loop.train holds; one that lacks any is discarded.
PROGRESS_ENTRIES = ("iteration", "stack", "optimizer", "history", "snapshot")


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> cuda if available else cpu; anything else as torch.device understands it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class OutOfMemory(RuntimeError):
    """A training job did not fit the device's memory; the message names the job, its stack and what to
    lower. The jobs finished before it stay in the run folder (a rerun resumes)."""


@dataclass
class Job:
    """One unit of work with its own done marker.

    A training job: ``build()`` returns the untrained stack of ``members`` (one per network);
    it trains with ``train_cfg`` from iteration ``start`` with ``data_seeds`` (one per member).
    ``after(stack, history, snapshot)`` may return the state that later jobs need (saved as the
    checkpoint ``state_key``, default ``key``); ``extra_rows(stack)`` returns mask/meta rows
    (see `lth.schema.metric_rows`). ``experiment``: the rows' experiment column (one name or one per
    member; default the config's experiment).

    A compute job (``compute`` set, no ``build``): a step that trains nothing and has no done
    marker (e.g. SubsetSum's solve, redone and timed on every run); its return value is the run's
    output under ``key``.

    ``data``: the data set it trains and is evaluated on (default the context's; a transfer of
    tickets trains some jobs on a second data set, `lth.experiments.transfer`)."""
    key: str
    members: Sequence[Member] = ()
    build: Callable[[], NetworkStack] | None = None
    train_cfg: TrainConfig | None = None
    data_seeds: Sequence[int] = ()
    start: int = 0
    callbacks: Sequence[Callable[[int, NetworkStack], None]] = ()
    snapshot_at: int | None = None
    after: Callable[[NetworkStack, Any, dict | None], dict | None] | None = None
    extra_rows: Callable[[NetworkStack], list[dict]] | None = None
    experiment: str | Sequence[str] | None = None
    state_key: str | None = None
    labels: Sequence[str] | None = None
    compute: Callable[[], Any] | None = None
    data: DataSplits | None = None


@dataclass
class Context:
    """What a kind's jobs see: the config, the train configs by role, the data, the device, the run
    folder, this process's trials, and the states of finished jobs."""
    config: Any
    trains: Mapping[str, TrainConfig]
    data: DataSplits
    device: torch.device
    run: RunDir | None                  # None while the jobs are planned (no folder before that)
    trials: list[int]
    suffix: str = ""                    # the job keys' suffix: added trials, shard ("" for neither)
    profile: str | None = None
    states: dict = field(default_factory=dict)

    def init_seed(self, trial: int) -> int:
        return derive_seed("init", self.config.seed, trial)

    def data_seed(self, trial: int) -> int:
        return derive_seed("data", self.config.seed, trial)

    def steps_of(self, steps: str | int, role: str = "") -> int:
        """'5ep', '300it' or an int, in iterations of the ``role``'s batch size."""
        return parse_steps(steps, steps_per_epoch(len(self.data.train), self.trains[role].batch_size))

    def key(self, key: str) -> str:
        return key + self.suffix

    def state(self, key: str) -> dict:
        """The state a finished job returned from ``after`` (``key`` as the job named it)."""
        key = self.key(key)
        if key not in self.states:
            state = self.run.load_checkpoint(key)
            if state is None:  # deleted, or a metrics-only copy of the store: compute it again next time
                (self.run.path / "done" / key).unlink(missing_ok=True)
                raise FileNotFoundError(f"checkpoints/{key}.pt is missing from {self.run.path}, and a job still to "
                                        f"run starts from it; its done marker is removed: rerun and {key} is "
                                        "computed again")
            self.states[key] = state
        return self.states[key]


@dataclass
class RunResult:
    metrics: pd.DataFrame       # every finished job's tidy rows found in the run folder
    run: RunDir
    outputs: dict               # compute jobs' results by key
    trained: list[str]          # keys of the jobs trained in this call

    @property
    def failed(self) -> pd.DataFrame:
        """The networks flagged as not learning (`failed_networks`)."""
        return failed_networks(self.metrics)


class Runner:
    """One experiment of any registered kind: ``Runner(kind, config, trains, ...).run()``, ``kind``
    a `lth.experiments.registry.Kind` (``lth.experiments.kind_of("imp")``).

    ``trains``: TrainConfig by role (`lth.experiments.registry.Kind.roles`). ``shard`` = (rank,
    world): this process takes trials rank, rank + world, ... (kinds with ``shards``).
    ``data_parallel``: every process trains all trials on its share of each batch (kinds with
    ``data_parallel``). ``callbacks``: f(iteration, stack) at every evaluation of every training job.
    ``add_trials`` (>= 0, kinds with ``shards``): train that many more trials beside the config's own
    ones, in the same run folder (the config, so the folder, is unchanged): trials T .. T + n - 1 for a
    config of T trials, new seeds, their jobs keyed ``<job>_trials<T>to<T+n-1>``; results read back
    from the folder then hold all of them. The config's own trials need not have run.
    ``plan_only``: plan the jobs (validating the config against the data) but create no run folder
    (`plan`, for ``--dry-run``; ``run`` is then refused).
    ``tensorboard``: a folder for every network's metrics as TensorBoard scalars
    (`lth.train.tensorboard`); default: ``$LTH_TENSORBOARD`` if set, else off (nothing imported).
    Raises ValueError for a config or a placement the kind refuses, ImportError for TensorBoard
    output without the tensorboard package, before any folder is made."""

    def __init__(self, kind: Kind, config, trains: Mapping[str, TrainConfig], *, root: str | Path = "runs",
                 device: str | torch.device = "auto", data: DataSplits | None = None, callbacks: Sequence = (),
                 shard: tuple[int, int] = (0, 1), data_parallel: bool = False, profile: str | None = None,
                 plan_only: bool = False, tensorboard: str | Path | None = None, add_trials: int = 0):
        if not isinstance(kind, Kind):
            raise TypeError(f"kind must be a lth.experiments.registry.Kind (see lth.experiments.kind_of), got {kind!r}")
        self.kind = kind
        if not isinstance(config, kind.config):
            raise TypeError(f"kind {kind.name!r} runs a {kind.config.__name__}, got {type(config).__name__}")
        missing = set(kind.roles) - set(trains)
        if missing:
            raise ValueError(f"kind {kind.name!r} needs TrainConfigs for roles {sorted(kind.roles)}; missing {sorted(missing)}")
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard {shard}: need 0 <= rank < world")
        if world > 1 and not kind.shards:
            raise ValueError(f"{kind.name} experiments run in one process; start them without torchrun")
        if data_parallel and not kind.data_parallel:
            raise ValueError(f"{kind.name} experiments cannot train data-parallel; start them without --data-parallel")
        if isinstance(add_trials, bool) or not isinstance(add_trials, int) or add_trials < 0:
            raise ValueError(f"add_trials {add_trials!r}: need an integer >= 0 (how many trials to add)")
        if add_trials and not kind.shards:
            raise ValueError(f"{kind.name} experiments cannot add trials to a run: change the config's trials instead")
        own = getattr(config, "trials", 1)
        block = range(own, own + add_trials) if add_trials else range(own)
        trials = list(block)[rank::world]
        if not trials:
            raise ValueError(f"shard {shard} has no trials: {len(block)} trials over {world} processes")
        suffix = (f"_trials{block.start}to{block.stop - 1}" if add_trials else "") + \
            ("" if world == 1 else f"_shard{rank}of{world}")
        self.is_lead, self.data_parallel = rank == 0, data_parallel
        tensorboard = tensorboard or os.environ.get("LTH_TENSORBOARD") or None
        if tensorboard and (self.is_lead or not data_parallel):  # data-parallel replicas: the lead writes
            from lth.train.tensorboard import check_available
            check_available()
        self.tensorboard = Path(tensorboard) if tensorboard and (self.is_lead or not data_parallel) else None
        self.callbacks = list(callbacks)
        device = resolve_device(device)
        data = (data or _load_data(config)).to(device)
        self.context = Context(config, dict(trains), data, device, None, trials, suffix, profile)
        self.steps = trains[kind.roles[0]].steps(len(data.train))
        self._jobs = list(kind.jobs(self.context))  # validates the plan (e.g. IMP's rewind point) before any folder
        self.text = kind.operative(config, trains)
        self.run_path = Path(root) / config.experiment / config_hash(self.text)
        if not plan_only:
            self.context.run = RunDir(root, config.experiment, self.text)

    @property
    def run_dir(self) -> RunDir:
        return self.context.run

    def plan(self) -> list[dict]:
        """What would run, without running it: per job its key, networks, iterations (training jobs),
        and whether the run folder already marks it done."""
        ctx, rows = self.context, []
        for job in self._jobs:
            if job.compute is not None:
                rows.append({"job": job.key, "networks": 0, "iterations": 0, "done": False})
                continue
            steps = job.train_cfg.steps(len(job.data.train if job.data is not None else ctx.data.train))
            done = (self.run_path / "done" / ctx.key(job.key)).exists()
            rows.append({"job": job.key, "networks": len(job.members), "iterations": steps.total - job.start,
                         "done": done})
        return rows

    def run(self) -> RunResult:
        """Do every job not yet done; the run's metrics and the compute jobs' outputs. Another process
        running the same experiment (and shard) in the same store is waited for, then its work is reused
        (data-parallel processes share the folder by design and are not locked)."""
        ctx = self.context
        if ctx.run is None:
            raise RuntimeError("this Runner only plans (plan_only=True): make another to run")
        lock = (contextlib.nullcontext() if self.data_parallel else
                exclusive(ctx.run.path / f".lock{ctx.suffix}", f"experiment {ctx.config.experiment}"))
        with lock:
            return self._run()

    def _run(self) -> RunResult:
        ctx, outputs, trained, begun = self.context, {}, [], False
        try:
            for job in self._jobs:
                if job.compute is not None:
                    outputs[job.key] = job.compute()
                    continue
                key = ctx.key(job.key)
                if ctx.run.is_done(key):
                    continue
                if not begun and self.is_lead:  # one writer for the shared manifest
                    begun = True
                    ctx.run.begin_process(device=str(ctx.device))
                    ctx.run.write_manifest(seed=ctx.config.seed, device=str(ctx.device), **self.kind.manifest(ctx))
                try:
                    self._train(job, key)
                except torch.cuda.OutOfMemoryError as err:
                    raise OutOfMemory(
                        f"{ctx.config.experiment} {key}: out of memory on {ctx.device} with {len(job.members)} "
                        f"networks in one stack (training batch {job.train_cfg.batch_size}, evaluation "
                        f"{job.train_cfg.eval_batch_size} images at a time). Lower TrainConfig.eval_batch_size "
                        f"(memory only: the run folder stays the same) or free the device (other processes on "
                        f"it hold memory); finished jobs stay in the run folder and a rerun resumes "
                        f"from them") from err
                trained.append(key)
            ctx.run.wait_for_writes()
            metrics = ctx.run.read_metrics()
            if begun:
                failed = failed_networks(metrics)
                ctx.run.write_manifest(failed_to_learn=failed.to_dict("records"), failed_to_learn_rule=FAILURE_RULE)
        except BaseException as err:  # the last job's results may still be being written: not after the lock
            try:
                ctx.run.wait_for_writes()
            except BaseException as failed_write:
                err.add_note(f"Writing an earlier job's results failed too: {failed_write!r}")
            raise
        finally:
            if begun:
                ctx.run.end_process()
        return RunResult(metrics, ctx.run, outputs, trained)

    def _train(self, job: Job, key: str) -> None:
        ctx, run = self.context, self.context.run
        data = job.data if job.data is not None else ctx.data
        progress = f"{key}_progress"
        stack = job.build()
        if not getattr(ctx.config, "layer_collapse_ok", False):
            check_layer_collapse(_masks(stack), f"{ctx.config.experiment} {key}")
        members = list(job.members)
        labels = job.labels or [f"{job.key}: {m.label()}" for m in members]
        sink = self._sink(job, members)
        history, snapshot = train(
            stack, data, job.train_cfg, data_seeds=list(job.data_seeds), start=job.start, labels=labels,
            resume=run.load_progress(progress, required=PROGRESS_ENTRIES),
            checkpoint=lambda state: run.save_checkpoint_in_background(progress, state),
            callbacks=[*job.callbacks, *self.callbacks], snapshot_at=job.snapshot_at,
            data_parallel=self.data_parallel, desc=f"{ctx.config.experiment} {key}", sink=sink)
        if sink is not None:
            sink.close()
        state = job.after(stack, history, snapshot) if job.after is not None else None
        extra = list(job.extra_rows(stack)) if job.extra_rows is not None else []
        extra += [{"member": i, "iteration": history.iterations[-1], "split": META_SPLIT, "metric": FAILED_TO_LEARN,
                   "value": 1.0} for i, _ in learning_failures(history, data.num_classes, job.start)]
        rows = metric_rows(job.experiment or ctx.config.experiment, members, stack.density().tolist(), history, extra)
        state_key = ctx.key(job.state_key or job.key)
        if state is not None:
            ctx.states[state_key] = state

        def finish():  # the next job trains meanwhile; the done marker comes last, after both files
            run.write_metrics(key, rows)
            if state is not None:
                run.save_checkpoint(state_key, state)
            run.mark_done(key, vouch=[key, state_key] if state_key != key else None)  # gem_miner: scores_final
            run.delete_checkpoint(progress)
        run.in_background(finish, f"finish {key}", keys=[key, state_key, progress])


    def _sink(self, job: Job, members: list[Member]):
        """A TensorBoard sink for the job's networks, or None (off)."""
        if self.tensorboard is None:
            return None
        from lth.train.tensorboard import TensorBoardSink, network_folder
        ctx = self.context
        names = job.experiment or ctx.config.experiment
        names = [names] * len(members) if isinstance(names, str) else list(names)
        folders = [network_folder(n, m.trial, m.level, m.control, m.replicate) for n, m in zip(names, members)]
        return TensorBoardSink(self.tensorboard / ctx.config.experiment / ctx.run.hash, folders)


def learning_failures(history, num_classes: int, start: int = 0) -> list[tuple[int, str]]:
    """(member index, why) of each network of a trained stack that did not learn. A network did not
    learn when (1) a loss it reported is not finite; (2) its final val loss exceeds both its val loss
    at the start and ln(num_classes), the loss of a uniform guess (training made it worse than
    guessing: it diverged, e.g. Adam at lr 1e6, whose loss stays finite); or (3) after at least
    `MIN_JUDGED_ITERATIONS` iterations its final val accuracy is at most `CHANCE_MARGIN` / num_classes
    (15% for 10 classes): it ends at chance. A short smoke run that learns a little passes all three."""
    values = history.values
    if "val/loss" not in values or not values["val/loss"]:
        return []
    found = {}
    for key, series in values.items():
        if key.endswith("loss") and series:
            bad = ~torch.isfinite(torch.stack([v.reshape(-1) for v in series])).all(dim=0)
            for i in bad.nonzero().flatten().tolist():
                found.setdefault(i, f"{key} is not finite")
    first, last = values["val/loss"][0].reshape(-1), values["val/loss"][-1].reshape(-1)
    uniform = math.log(num_classes)
    for i in range(last.numel()):
        if i not in found and last[i] > max(float(first[i]), uniform):
            found[i] = (f"final val loss {float(last[i]):.3g} is above its start ({float(first[i]):.3g}) "
                        f"and above a uniform guess's (ln {num_classes} = {uniform:.3g})")
    accuracy = values.get("val/accuracy")
    if accuracy and history.iterations[-1] - start >= MIN_JUDGED_ITERATIONS:
        chance = CHANCE_MARGIN / num_classes
        for i, value in enumerate(accuracy[-1].reshape(-1).tolist()):
            if i not in found and value <= chance:
                found[i] = f"final val accuracy {value:.3f} <= {CHANCE_MARGIN:g} / {num_classes} classes (chance)"
    return sorted(found.items())


def failed_networks(metrics: pd.DataFrame) -> pd.DataFrame:
    """The networks flagged ``failed_to_learn`` in tidy ``metrics``: columns experiment, trial,
    level, density, control, replicate (empty when none)."""
    columns = ["experiment", "trial", "level", "density", "control", "replicate"]
    if metrics.empty or "metric" not in metrics:
        return pd.DataFrame(columns=columns)
    flagged = metrics[(metrics.split == META_SPLIT) & (metrics.metric == FAILED_TO_LEARN) & (metrics.value > 0)]
    return flagged[columns].drop_duplicates().reset_index(drop=True)


def _masks(stack: NetworkStack) -> dict[str, torch.Tensor]:
    """The masks that decide which weights a network keeps: a supermask stack's score masks, else the stack's."""
    if isinstance(stack, supermask.SupermaskStack) and supermask.scored_layers(stack.template):
        return stack.layer_masks()
    return stack.masks


def _load_data(config) -> DataSplits:
    extra = {"synthetic_shape": tuple(config.synthetic_shape)} \
        if config.dataset == "synthetic" and hasattr(config, "synthetic_shape") else {}
    return load_splits(config.dataset, seed=config.split_seed, **extra)

