"""Pensia et al. Experiment 2 as a kind: redundant (RedLayer, r paths per weight) and
parameter-matched wide networks pruned by edge-popup, beside the dense trained target."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator

from lth.experiments.runner import Context, Job
from lth import validate as v
from lth.experiments.strong import (DENSE, dense_stack, job, register_strong, supermask_stack, sweep,
                                    validate_common, validate_densities, validate_names)
from lth.nets import supermask
from lth.nets.papers import PENSIA_NETWORKS, matched_widths, pensia_network, pensia_plain, redundant_weights
from lth.schema import Member
from lth.train.config import TrainConfig


@dataclass(frozen=True)
class PensiaConfig:
    """Redundant vs wide random networks under edge-popup.

    Attributes:
        experiment: run name (default ``"strong_pensia"``).
        dataset: as ImpConfig (default ``"mnist"``); synthetic_shape: (C, H, W) of synthetic data (default (1, 28, 28)).
        networks: any of fc2, fc4, lenet5 (`lth.nets.papers.PENSIA_NETWORKS`; default all).
        variants: any of ``red`` (RedLayer) and ``wide`` (as many weights; default both).
        densities: fractions kept, each in (0, 1]; Pensia's --sparsity is the fraction *pruned*:
            density = 1 - sparsity (default (0.5, 0.25, 0.1, 0.05, 0.02)).
        redundancy: r, paths per weight, >= 1 (default 5); also sets the wide networks' size.
        redundant_relu: a ReLU inside each RedLayer (default False); only meaningful with variant ``red``.
        weight_init: the frozen weights, one of `lth.nets.supermask.WEIGHT_INITS` (default kaiming_normal).
        network_lr: learning rate by network, replacing TrainConfig.lr (default {"lenet5": 0.01}, Pensia's).
        dense_baseline: also train the dense target (default True).
        trials: >= 1 (default 1); seed, split_seed: as ImpConfig (default 0).
        layer_collapse_ok: train networks whose mask keeps no weight of some layer (default False: refuse).
            Hashed only when True.
    """
    experiment: str = "strong_pensia"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("fc2", "fc4", "lenet5")
    variants: tuple = ("red", "wide")
    densities: tuple = (0.5, 0.25, 0.1, 0.05, 0.02)
    redundancy: int = 5
    redundant_relu: bool = False
    weight_init: str = "kaiming_normal"
    network_lr: dict = field(default_factory=lambda: {"lenet5": 0.01})
    dense_baseline: bool = True
    trials: int = 1
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = field(default=False, metadata={"hashed_when_set": True})

    def __post_init__(self):
        validate_common(self)
        validate_densities(self.densities)
        validate_names(self, "networks", PENSIA_NETWORKS, "Pensia network")
        validate_names(self, "variants", ("red", "wide"), "Pensia variant")
        v.integer(self, "redundancy", minimum=1)
        v.flag(self, "redundant_relu")
        v.choice(self, "weight_init", supermask.WEIGHT_INITS, what="weight init")
        v.mapping(self, "network_lr")
        for name, lr in self.network_lr.items():
            v.choice(self, "network_lr", PENSIA_NETWORKS, name, what="PensiaConfig.network_lr network")
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
                v.fail(self, "network_lr", f"learning rates > 0 by network, e.g. {{'lenet5': 0.01}} ({name!r}: {lr!r})")
        v.flag(self, "dense_baseline")
        if self.redundant_relu and "red" not in self.variants:
            raise ValueError("PensiaConfig.redundant_relu = True has no effect without the 'red' variant: "
                             "add 'red' to PensiaConfig.variants")


def _lr(cfg: TrainConfig, config: PensiaConfig, name: str) -> TrainConfig:
    lr = config.network_lr.get(name)
    return cfg if lr is None else dataclasses.replace(cfg, lr=float(lr))


def jobs(ctx: Context) -> Iterator[Job]:
    cfg, data, trials = ctx.config, ctx.data, ctx.trials
    for name in cfg.networks:
        target = redundant_weights(pensia_network(name, data), cfg.redundancy)
        widths = {"red": None, "wide": matched_widths(name, data, target)}
        convs_frozen = (lambda n: n.startswith("conv")) if name == "lenet5" else None
        for variant in cfg.variants:
            make = lambda trial, name=name, w=widths[variant]: pensia_network(name, data, w)
            convert = dict(rule="top_k", weight_init=cfg.weight_init, frozen=convs_frozen,
                           redundancy=cfg.redundancy if variant == "red" else 0, redundant_relu=cfg.redundant_relu)
            members, densities = sweep(trials, cfg.densities, variant)
            yielded = job(ctx, f"{name}-{variant}", name, members, densities, "pensia",
                          lambda make=make, convert=convert, m=members, d=densities: supermask_stack(
                              ctx, make, [(mm.trial, dd) for mm, dd in zip(m, d)], **convert),
                          plain=(*pensia_plain(name, widths[variant]), cfg.weight_init))
            yield dataclasses.replace(yielded, train_cfg=_lr(yielded.train_cfg, cfg, name))
        if cfg.dense_baseline:  # LeNet-5's baseline trains its fc layers over the same frozen random convs
            convert = dict(rule="top_k", weight_init=cfg.weight_init, frozen=convs_frozen,
                           scored=lambda n: False) if name == "lenet5" else {}
            yielded = job(ctx, f"{name}-{DENSE}", name, [Member(t, 0, DENSE) for t in trials], [1.0] * len(trials),
                          "pensia_weights", lambda name=name, convert=convert: dense_stack(
                              ctx, lambda t: pensia_network(name, data), trials, **convert))
            yield dataclasses.replace(yielded, train_cfg=_lr(yielded.train_cfg, cfg, name))


KIND = register_strong("pensia", PensiaConfig, jobs)
