"""Pruning at initialisation as a kind of the one runner: per method (`lth.prune.scores.METHODS`),
one job ``<method>`` trains a stack of trials x densities networks, each trial's initialisation
pruned to each density. Rows are IMP's tidy rows with level = the index of the density, control =
the method, replicate = 0, plus `MASK_SPLIT` rows of each layer's density at iteration 0.

SNIP's own choices that differ from ours (Lee et al. 2019's code, namhoonlee/snip-public) are options:
TensorFlow's variance-scaling init (``init = 'variance_scaling'``), fresh weights after scoring
(``reinit_after_scoring``: the code scores one draw and trains another) and biases ranked in the same
top-k as the weights (``prune_biases``: scored on a variance-scaling draw, trained from zero, pruned
ones held at zero). ``variants`` adds jobs ``snip+<variant>`` with any of them switched on, so an
ablation trains in one experiment beside plain SNIP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from lth import validate as v
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.data import derive_seed
from lth.nets.models import BIAS, build_model, prunable_weights, variance_scaling_
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
        reinit_after_scoring: train fresh weights (a new draw of ``init``) under the masks found on the
            scored ones, as SNIP's code does (default False: train the scored weights). Hashed only when True.
        prune_biases: rank every Linear/Conv2d bias with the weights in one top-k (scored methods only),
            the densities then counting weights and biases, as SNIP's κ; biases are scored on a
            variance-scaling draw (SNIP's code) and trained from 0 (default False: biases unpruned).
            Hashed only when True.
        variants: extra jobs ``snip+<variant>`` (when snip is a method), each variant a '+'-joined set of
            `VARIANT_PARTS` switched on for it (``variance_scaling``: that init; ``reinit``; ``biases``),
            e.g. ('reinit', 'variance_scaling+reinit+biases') (default (): none); not hashed, like methods.
            Variants are SNIP's choices, so they apply to snip only; the other methods run plain.
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
    reinit_after_scoring: bool = field(default=False, metadata={"hashed_when_set": True})
    prune_biases: bool = field(default=False, metadata={"hashed_when_set": True})
    variants: tuple = ()

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
        v.flag(self, "reinit_after_scoring")
        v.flag(self, "prune_biases")
        v.items(self, "variants", distinct=True, each=lambda variant: variant_parts(variant))
        if self.prune_biases and any(m.startswith("random_") for m in self.methods):
            raise ValueError(f"PaiConfig.methods = {tuple(self.methods)!r}: PaiConfig.prune_biases needs scored "
                             "methods (snip, grasp, synflow, magnitude); random_<rule> methods take per-layer "
                             "densities of weights only")


VARIANT_PARTS = ("variance_scaling", "reinit", "biases")


def variant_parts(variant: str) -> frozenset[str]:
    """The SNIP choices a variant switches on: ``'variance_scaling+reinit'`` -> {variance_scaling, reinit}.
    ValueError naming the variant unless it is a '+'-joined set of distinct `VARIANT_PARTS`."""
    parts = variant.split("+") if isinstance(variant, str) else [None]
    if not parts or len(set(parts)) != len(parts) or not set(parts) <= set(VARIANT_PARTS):
        raise ValueError(f"PaiConfig.variants: {variant!r} is not a '+'-joined set of distinct "
                         f"{', '.join(VARIANT_PARTS)} (e.g. 'variance_scaling+reinit')")
    return frozenset(parts)


# Which methods to run does not change any method's results: left out of the hash, so adding a
# method to a finished experiment trains only that method.
_NOT_HASHED = frozenset({"methods", "variants"})


def operative_config(config: PaiConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine the results, as loadable gin text."""
    return operative_text(config, {"pai": train_cfg}, {"pai": ""}, skip=_NOT_HASHED)


def jobs(ctx: Context) -> Iterator[Job]:
    cfg = ctx.config
    for method in cfg.methods:
        for variant in ("", *(cfg.variants if method == "snip" else ())):
            control = f"{method}+{variant}" if variant else method
            mine = [Member(t, level, control) for level in range(len(cfg.densities)) for t in ctx.trials]
            yield Job(key=control, members=mine,  # density-major, as the stack
                      build=lambda method=method, variant=variant: pruned_stack(ctx, method, variant),
                      train_cfg=ctx.trains["pai"], data_seeds=[ctx.data_seed(m.trial) for m in mine],
                      extra_rows=layer_rows, labels=[f"trial {m.trial} {control} at density {cfg.densities[m.level]:g}"
                                                     for m in mine])


def model(ctx: Context, seed: int, init: str | None = None, prune_biases: bool = False) -> torch.nn.Module:
    """One network of trial seed ``seed``; ``prune_biases`` marks its biases prunable (and draws them
    from TensorFlow's variance scaling, as SNIP's code scores them)."""
    cfg, data = ctx.config, ctx.data
    net = build_model(cfg.model, data.input_shape, data.num_classes, init=init or cfg.init, seed=seed,
                      **cfg.model_kwargs)
    if prune_biases:
        net.prune_biases = True
        generator = torch.Generator().manual_seed(derive_seed("pai_bias", seed))
        with torch.no_grad():
            for name, kind in prunable_weights(net).items():
                if kind == BIAS:
                    variance_scaling_(net.get_parameter(name), generator)
    return net


def pruned_stack(ctx: Context, method: str, variant: str = "") -> NetworkStack:
    """The untrained networks of a method (and variant): each trial's initialisation, pruned to each
    density; with reinit, fresh weights of the same init under those masks; pruned biases train from 0."""
    cfg = ctx.config
    parts = variant_parts(variant) if variant else frozenset()
    init = "variance_scaling" if "variance_scaling" in parts else cfg.init
    biases = cfg.prune_biases or "biases" in parts
    make = lambda seed: model(ctx, seed, init, biases)
    trials = NetworkStack.build(make, [ctx.init_seed(t) for t in ctx.trials], ctx.device)
    trained = trials
    if cfg.reinit_after_scoring or "reinit" in parts:
        trained = NetworkStack.build(make, [derive_seed("pai_reinit", ctx.init_seed(t)) for t in ctx.trials], ctx.device)
    state = trained.state()
    params = {n: torch.zeros_like(p) if trials.kinds.get(n) == BIAS else p for n, p in state["params"].items()}
    seeds = [ctx.data_seed(t) for t in ctx.trials]
    stacked = []
    for density in cfg.densities:
        masks = prune_at_init(trials, method, density, cfg.scope, data=ctx.data, seeds=seeds,
                              layer_collapse_ok=cfg.layer_collapse_ok, batch_size=ctx.trains["pai"].batch_size)
        stacked.append({"params": params, "buffers": state["buffers"], "masks": masks})
    return NetworkStack.from_states(make(0).to("meta"), stacked)  # members' order: density-major


def layer_rows(stack: NetworkStack) -> list[dict]:
    """`MASK_SPLIT` rows: each layer's density per network, at iteration 0."""
    return [{"member": i, "iteration": 0, "split": MASK_SPLIT, "metric": name, "value": value}
            for name, layer in stack.layer_densities().items() for i, value in enumerate(layer.tolist())]


KIND = register(Kind("pai", PaiConfig, ("pai",), jobs, lambda config, trains: operative_config(config, trains["pai"]),
                     manifest=lambda ctx: {"methods": list(ctx.config.methods), "densities": list(ctx.config.densities)}))
