"""Pruning at initialisation as a kind of the one runner: per method (`lth.prune.scores.METHODS`),
one job ``<method>`` trains a stack of trials x densities networks, each trial's initialisation
pruned to each density. Rows are IMP's tidy rows with level = the index of the density, control =
the method, replicate = 0, plus `MASK_SPLIT` rows of each layer's density at iteration 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from lth import validate as v
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.prune.scores import METHODS, prune_at_init
from lth.schema import MASK_SPLIT, Member
from lth.train.config import TrainConfig


@dataclass(frozen=True)
class PaiConfig:
    """Pruning at initialisation.

    Attributes:
        experiment: run name (default ``"pai"``). dataset, model, model_kwargs, init, seed, split_seed: as
            `lth.experiments.imp.ImpConfig` (trial t starts from IMP's trial-t initialisation and data order).
        methods: distinct names of `lth.prune.scores.METHODS` (snip, grasp, synflow, magnitude,
            random_<uniform|er|erk|balanced|pyramidal>); not hashed: adding one trains only it.
        densities: fractions kept, each in (0, 1] (default (0.1, 0.05, 0.02)); level = index here.
        trials: >= 1 (default 1).
        scope: ``global`` (default) or ``layerwise``, for the scored methods; the random methods take their
            per-layer densities from the rule (so another scope with only random methods is refused).
        layer_collapse_ok: train networks that lost a whole layer (default False: refuse; they stay at chance).
    """
    experiment: str = "pai"
    dataset: str = "mnist"
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    methods: tuple = ("snip", "grasp", "synflow", "magnitude", "random_erk", "random_uniform")
    densities: tuple = (0.1, 0.05, 0.02)
    trials: int = 1
    scope: str = "global"
    layer_collapse_ok: bool = False  # train networks that lost a whole layer (they stay at chance)
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        check_common(self)
        v.items(self, "methods", empty=False, distinct=True,
                each=lambda m: v.choice(self, "methods", METHODS, m, what="pruning-at-init method"))
        v.items(self, "densities", empty=False, each=pruning.validate_density)
        v.choice(self, "scope", pruning.SCOPES, what="pruning scope")
        if self.scope != "global" and all(m.startswith("random_") for m in self.methods):
            raise ValueError(f"PaiConfig.scope = {self.scope!r} has no effect when every method is random_<rule> "
                             "(they take per-layer densities from the rule): add a scored method to "
                             "PaiConfig.methods (snip, grasp, synflow, magnitude) or leave scope at 'global'")


# Which methods to run does not change any method's results: left out of the hash, so adding a
# method to a finished experiment trains only that method.
_NOT_HASHED = frozenset({"methods"})


def operative_config(config: PaiConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine the results, as loadable gin text."""
    return operative_text(config, {"pai": train_cfg}, {"pai": ""}, skip=_NOT_HASHED)


def jobs(ctx: Context) -> Iterator[Job]:
    cfg = ctx.config
    members = [Member(t, level, method) for method in cfg.methods
               for level in range(len(cfg.densities)) for t in ctx.trials]
    for method in cfg.methods:
        mine = [m for m in members if m.control == method]  # density-major, as the stack
        yield Job(key=method, members=mine, build=lambda method=method: pruned_stack(ctx, method),
                  train_cfg=ctx.trains["pai"], data_seeds=[ctx.data_seed(m.trial) for m in mine],
                  extra_rows=layer_rows, labels=[f"trial {m.trial} {method} at density {cfg.densities[m.level]:g}"
                                                 for m in mine])


def model(ctx: Context, seed: int) -> torch.nn.Module:
    cfg, data = ctx.config, ctx.data
    return build_model(cfg.model, data.input_shape, data.num_classes, init=cfg.init, seed=seed, **cfg.model_kwargs)


def pruned_stack(ctx: Context, method: str) -> NetworkStack:
    """The untrained networks of a method: each trial's initialisation, pruned to each density."""
    cfg = ctx.config
    trials = NetworkStack.build(lambda seed: model(ctx, seed), [ctx.init_seed(t) for t in ctx.trials], ctx.device)
    state = trials.state()
    seeds = [ctx.data_seed(t) for t in ctx.trials]
    parts = []
    for density in cfg.densities:
        masks = prune_at_init(trials, method, density, cfg.scope, data=ctx.data, seeds=seeds,
                              layer_collapse_ok=cfg.layer_collapse_ok, batch_size=ctx.trains["pai"].batch_size)
        parts.append({"params": state["params"], "buffers": state["buffers"], "masks": masks})
    return NetworkStack.from_states(model(ctx, 0).to("meta"), parts)  # members' order: density-major


def layer_rows(stack: NetworkStack) -> list[dict]:
    """`MASK_SPLIT` rows: each layer's density per network, at iteration 0."""
    return [{"member": i, "iteration": 0, "split": MASK_SPLIT, "metric": name, "value": value}
            for name, layer in stack.layer_densities().items() for i, value in enumerate(layer.tolist())]


KIND = register(Kind("pai", PaiConfig, ("pai",), jobs, lambda config, trains: operative_config(config, trains["pai"]),
                     manifest=lambda ctx: {"methods": list(ctx.config.methods), "densities": list(ctx.config.densities)}))
