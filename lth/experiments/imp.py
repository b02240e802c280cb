"""Iterative magnitude pruning (the lottery-ticket experiment) as a plain function over levels.

Level 0 trains the dense networks of every trial. Each later level prunes the surviving
weights of the previous level's ticket (iterative) or of the dense network (one-shot) to the
level's target density, rewinds, and trains again. Rewinding is to the initialisation, to the
weights of iteration k (weight rewinding), or keeps the final weights and replays the
learning-rate schedule from iteration k (learning-rate rewinding).

Controls are siblings of a level's tickets in the same stack: a random reinitialisation of the
ticket (same mask, fresh weights) and a random mask with the ticket's per-layer densities
(same weights). All of a level's networks train at once.

Every level writes its metrics, a checkpoint and a done marker to the run's folder (named by
a hash of the operative config): rerunning skips finished levels, and a level killed midway
resumes from its last progress checkpoint with the same numbers.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import gin
import pandas as pd
import torch

from lth.prune import targets as pruning
from lth.data import DataSplits, derive_seed, load_splits, steps_per_epoch

from lth.nets.stack import NetworkStack
from lth.nets.models import build_model, prunable_weights
from lth.train.schedules import parse_steps
from lth.store import RunDir
from lth.train.loop import TrainConfig, train

STRATEGIES = ("iterative", "one_shot")
REWINDS = ("init", "weights", "lr")
CONTROLS = ("reinit", "random_mask")
TICKET = "none"  # the control column's value for the ticket itself


@gin.configurable
@dataclass(frozen=True)
class ImpConfig:
    experiment: str = "lth"
    dataset: str = "mnist"
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    trials: int = 1
    levels: int = 20
    densities: tuple = ()          # explicit density ladder (fractions kept); overrides ``levels``
    rates: dict = field(default_factory=lambda: {"fc": 0.2, "output": 0.1})
    scope: str = "layerwise"
    strategy: str = "iterative"
    rewind: str = "init"
    rewind_iteration: str | int = 0
    controls: tuple = CONTROLS
    reinits: int = 1               # random reinitialisations per ticket and level
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        _choose("strategy", self.strategy, STRATEGIES)
        _choose("rewind", self.rewind, REWINDS)
        for control in self.controls:
            _choose("control", control, CONTROLS)
        for density in self.densities:
            pruning.validate_density(density)
        if self.trials < 1 or self.reinits < 0 or self.levels < 0:
            raise ValueError(f"need trials >= 1, reinits >= 0, levels >= 0; got {self.trials}, "
                             f"{self.reinits}, {self.levels}")


def _choose(what: str, value, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


# Knobs that change memory or checkpoint cadence but never a result: left out of the run's hash.
_NOT_HASHED = {"eval_batch_size", "checkpoint_every", "compile"}
# Added after runs were stored: hashed only when set, so those runs keep their folders.
_HASHED_WHEN_SET = {"precision": "fp32"}


def operative_config(config, train_cfg: TrainConfig, skip: frozenset[str] = frozenset()) -> str:
    """The bindings of an experiment config (ImpConfig, PaiConfig) and its TrainConfig that
    determine the results, as loadable gin text; ``skip`` leaves more of the config's fields out."""
    name = type(config).__name__
    lines = [f"{name}.{f.name} = {getattr(config, f.name)!r}" for f in dataclasses.fields(config)
             if f.name not in skip]
    lines += [f"TrainConfig.{f.name} = {getattr(train_cfg, f.name)!r}"
              for f in dataclasses.fields(train_cfg) if f.name not in _NOT_HASHED
              and getattr(train_cfg, f.name) != _HASHED_WHEN_SET.get(f.name, object())]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Member:
    """One network of a level's stack."""
    trial: int
    control: str = TICKET
    replicate: int = 0

    def label(self, level: int) -> str:
        return f"trial {self.trial} level {level} ({self.control}{'' if self.control != 'reinit' else f' #{self.replicate}'})"


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Experiment:
    """One IMP experiment: config, data, the level targets and the run folder."""

    def __init__(self, config: ImpConfig, train_cfg: TrainConfig, *, root: str | Path = "runs",
                 device: str | torch.device = "auto", data: DataSplits | None = None,
                 callbacks: Sequence = (), shard: tuple[int, int] = (0, 1), data_parallel: bool = False):
        self.config, self.train_cfg = config, train_cfg
        # Trials are independent chains: shard (rank, world) trains trials rank, rank + world, ...
        # (one process per GPU under torchrun) and writes its own files into the shared run folder.
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard {shard}: need 0 <= rank < world")
        self.trials = list(range(config.trials))[rank::world]
        if not self.trials:
            raise ValueError(f"shard {shard} has no trials: {config.trials} trials over {world} processes")
        self.shard_suffix = "" if world == 1 else f"_shard{rank}of{world}"
        self.is_lead = rank == 0
        self.data_parallel = data_parallel  # every process trains all trials on its share of each batch
        self.callbacks = list(callbacks)  # called as f(iteration, stack) at every evaluation
        self.device = resolve_device(device)
        self.data = (data or load_splits(config.dataset, seed=config.split_seed)).to(self.device)
        self.run = RunDir(root, config.experiment, operative_config(config, train_cfg))
        template = self._model(0)
        self.kinds = prunable_weights(template)
        sizes = {name: p.numel() for name, p in template.named_parameters() if name in self.kinds}
        if config.densities:
            levels = [pruning.level_for_density(sizes, self.kinds, config.rates, d, config.scope)
                      for d in config.densities]
        else:
            levels = range(1, config.levels + 1)
        self.targets = [pruning.targets(sizes, self.kinds, config.rates, level, config.scope)
                        for level in [0, *levels]]
        self.steps = train_cfg.steps(len(self.data.train))
        k = self.steps_of(config.rewind_iteration)
        if not 0 <= k < self.steps.total:
            raise ValueError(f"rewind_iteration {config.rewind_iteration!r} = {k} it is outside "
                             f"[0, {self.steps.total}) of the training schedule")
        self.rewind_iteration = k

    def steps_of(self, steps) -> int:
        return parse_steps(steps, steps_per_epoch(len(self.data.train), self.train_cfg.batch_size))

    @property
    def num_levels(self) -> int:
        return len(self.targets)

    def densities(self) -> list[float]:
        return [pruning.overall_density(groups) for groups in self.targets]

    # ---- networks ---------------------------------------------------------------------
    def _model(self, seed: int) -> torch.nn.Module:
        return build_model(self.config.model, self.data.input_shape, self.data.num_classes,
                           init=self.config.init, seed=seed, **self.config.model_kwargs)

    def init_seed(self, member: Member, level: int) -> int:
        if member.control == "reinit":
            return derive_seed("reinit", self.config.seed, member.trial, level, member.replicate)
        return derive_seed("init", self.config.seed, member.trial)

    def data_seed(self, member: Member) -> int:
        # Controls see the same data order as their ticket: they differ in one thing only.
        return derive_seed("data", self.config.seed, member.trial)

    def members(self, level: int) -> list[Member]:
        trials = self.trials
        out = [Member(t) for t in trials]
        if level > 0:
            if "reinit" in self.config.controls:
                out += [Member(t, "reinit", r) for t in trials for r in range(self.config.reinits)]
            if "random_mask" in self.config.controls:
                out += [Member(t, "random_mask") for t in trials]
        return out

    # ---- the driver -------------------------------------------------------------------
    def run_all(self) -> pd.DataFrame:
        """Train every level not yet done; returns the experiment's tidy metrics.

        Finished levels are not reloaded: only the checkpoints that the first unfinished level
        needs (the dense level and the level before it) are read, so a store that holds only
        metrics (e.g. results copied back from a GPU machine) is complete as it is."""
        keys = [f"level_{level:02d}{self.shard_suffix}" for level in range(self.num_levels)]
        todo = [level for level, key in enumerate(keys) if not self.run.is_done(key)]
        if not todo:
            return self.run.read_metrics()
        started = time.time()
        if self.is_lead:  # one writer for the shared manifest
            self.run.write_manifest(seed=self.config.seed, device=str(self.device),
                                    started_at=datetime.now(timezone.utc).isoformat(),
                                    levels=self.num_levels, densities=self.densities())
        first = todo[0]
        dense = self._load_done(keys[0]) if first > 0 else None
        previous = self._load_done(keys[first - 1]) if first > 0 else None
        for level in range(first, self.num_levels):
            previous = self._train_level(level, keys[level], previous, dense)
            dense = previous if level == 0 else dense
        self.run.wait_for_writes()
        if self.is_lead:
            self.run.write_manifest(finished_at=datetime.now(timezone.utc).isoformat(),
                                    wall_time_s=round(time.time() - started, 2))
        return self.run.read_metrics()

    def _load_done(self, key: str) -> dict:
        state = self.run.load_checkpoint(key)
        if state is None:
            raise FileNotFoundError(f"level {key} is marked done in {self.run.path} but its checkpoint is "
                                    f"missing; delete {self.run.path / 'done' / key} to retrain it")
        return state

    def run_level(self, level: int, previous: dict | None, dense: dict | None) -> dict:
        """Train one level, or load it if it is done; returns the tickets' state after training."""
        key = f"level_{level:02d}{self.shard_suffix}"
        if self.run.is_done(key):
            return self._load_done(key)
        return self._train_level(level, key, previous, dense)

    def level_stack(self, level: int, previous: dict | None, dense: dict | None):
        """The untrained networks of a level: (members, stack, start iteration, tickets' init)."""
        members = self.members(level)
        if level == 0:
            stack = NetworkStack.build(self._model, [self.init_seed(m, 0) for m in members], self.device)
            return members, stack, 0, stack.select(range(len(self.trials)))
        source = previous if self.config.strategy == "iterative" else dense  # what this level prunes
        masks = self._prune(source, level)
        stack = self._level_stack(level, members, self._rewind_state(source, dense), masks)
        start = 0 if self.config.rewind == "init" else self.rewind_iteration
        return members, stack, start, previous["init"]

    def _train_level(self, level: int, key: str, previous: dict | None, dense: dict | None) -> dict:
        cfg, trials = self.config, len(self.trials)
        members, stack, start, init = self.level_stack(level, previous, dense)
        progress_key = f"{key}_progress"
        history, snapshot = train(
            stack, self.data, self.train_cfg, data_seeds=[self.data_seed(m) for m in members],
            start=start, labels=[m.label(level) for m in members],
            resume=self.run.load_checkpoint(progress_key),
            checkpoint=lambda state: self.run.save_checkpoint_in_background(progress_key, state),
            callbacks=self.callbacks,
            snapshot_at=self.rewind_iteration if (level == 0 and cfg.rewind == "weights" and self.rewind_iteration) else None,
            data_parallel=self.data_parallel,
            desc=f"{cfg.experiment} level {level}/{self.num_levels - 1}")
        rows = _rows(cfg.experiment, level, members, stack.density().tolist(), history)
        state = {"final": stack.select(range(trials)), "init": init}
        if snapshot is not None:  # level 0 only: the weights of iteration k, for weight rewinding
            state["rewind"] = {k: {n: t[:trials] for n, t in v.items()} for k, v in snapshot.items()}

        def finish():  # the next level trains meanwhile; the done marker comes last, after both files
            self.run.write_metrics(key, rows)
            self.run.save_checkpoint(key, state)
            self.run.mark_done(key)
            self.run.delete_checkpoint(progress_key)
        self.run.in_background(finish, f"finish {key}")
        return state

    def _prune(self, source: dict, level: int) -> dict[str, torch.Tensor]:
        tickets = NetworkStack.from_states(self._template(), [source["final"]])
        return pruning.magnitude_masks(tickets, self.targets[level])

    def _template(self) -> torch.nn.Module:
        return self._model(0).to("meta")

    def _rewind_state(self, source: dict, dense: dict) -> dict:
        """The tickets' weights before training this level (masks are applied by the stack)."""
        if self.config.rewind == "lr":
            return source["final"]
        if self.config.rewind == "weights" and self.rewind_iteration:
            return dense["rewind"]
        return dense["init"]

    def _level_stack(self, level: int, members: list[Member], rewound: dict,
                     masks: dict[str, torch.Tensor]) -> NetworkStack:
        parts = []
        for member in members:
            t, p = member.trial, self.trials.index(member.trial)  # p: its row in this shard's states
            weights = {g: {n: v[p:p + 1] for n, v in rewound[g].items()} for g in ("params", "buffers")}
            mask = {n: v[p:p + 1] for n, v in masks.items()}
            if member.control == "reinit":
                fresh = NetworkStack.from_models([self._model(self.init_seed(member, level))])
                weights = {g: getattr(fresh, g) for g in ("params", "buffers")}
            elif member.control == "random_mask":
                generator = torch.Generator(device=self.device).manual_seed(
                    derive_seed("random_mask", self.config.seed, t, level))
                mask = pruning.random_masks(mask, generator)
            parts.append({"params": {n: v.detach().to(self.device) for n, v in weights["params"].items()},
                          "buffers": {n: v.to(self.device) for n, v in weights["buffers"].items()},
                          "masks": {n: v.to(self.device) for n, v in mask.items()}})
        stack = NetworkStack.from_states(self._template(), parts)
        pruning.check_density({n: m[:len(self.trials)] for n, m in stack.masks.items()}, self.targets[level])
        return stack


def _rows(experiment: str, level: int, members: list[Member], densities: list[float], history) -> list[dict]:
    rows = []
    for key, values in history.values.items():
        split, metric = key.split("/")
        series = torch.stack(values, dim=1)  # (M, evaluations)
        iterations = history.iterations[-series.shape[1]:]  # train/* metrics start after iteration 0
        for m, member in enumerate(members):
            for iteration, value in zip(iterations, series[m].tolist()):
                rows.append({"experiment": experiment, "trial": member.trial, "level": level,
                             "density": densities[m], "control": member.control, "replicate": member.replicate,
                             "iteration": iteration, "split": split, "metric": metric, "value": value})
    return rows
