"""Edge-popup (Ramanujan et al.) as a kind: top-k supermasks on frozen signed-constant or
Kaiming-normal weights at each density, beside the same network trained densely."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from lth.experiments.runner import Context, Job
from lth import validate as v
from lth.experiments.strong import (DENSE, dense_stack, job, register_strong, supermask_stack, sweep,
                                    validate_common, validate_densities, validate_names)
from lth.nets import supermask
from lth.nets.models import build_model
from lth.schema import Member

NETWORKS = ("lenet300", "conv2", "conv4", "conv6")


@dataclass(frozen=True)
class EdgePopupConfig:
    """Edge-popup supermasks.

    Attributes:
        experiment: run name (default ``"strong_edgepopup"``).
        dataset: as ImpConfig (default ``"mnist"``); synthetic_shape: (C, H, W) of ``synthetic`` data (default (1, 28, 28)).
        networks: any of lenet300, conv2, conv4, conv6 (default ("lenet300", "conv4")), all without biases.
        weight_inits: frozen weights, any of `lth.nets.supermask.WEIGHT_INITS` (default signed_constant, kaiming_normal).
        densities: fractions kept, each in (0, 1] (hidden-networks' k; default (0.9, 0.7, 0.5, 0.3, 0.1, 0.05)).
        dense_baseline: also train each network's weights densely (default True).
        trials: >= 1 (default 1); seed, split_seed: as ImpConfig (default 0).
        layer_collapse_ok: train networks whose mask keeps no weight of some layer (default False: refuse).
            Hashed only when True.
    """
    experiment: str = "strong_edgepopup"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("lenet300", "conv4")
    weight_inits: tuple = ("signed_constant", "kaiming_normal")
    densities: tuple = (0.9, 0.7, 0.5, 0.3, 0.1, 0.05)
    dense_baseline: bool = True
    trials: int = 1
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = field(default=False, metadata={"hashed_when_set": True})

    def __post_init__(self):
        validate_common(self)
        validate_densities(self.densities)
        validate_names(self, "weight_inits", supermask.WEIGHT_INITS, "weight init")
        validate_names(self, "networks", NETWORKS, "edge-popup network")
        v.flag(self, "dense_baseline")


def jobs(ctx: Context) -> Iterator[Job]:
    cfg, data, trials = ctx.config, ctx.data, ctx.trials
    for name in cfg.networks:
        make = lambda trial, name=name: build_model(name, data.input_shape, data.num_classes, bias=False,
                                                    init="kaiming_normal", seed=ctx.init_seed(trial))
        for init in cfg.weight_inits:
            members, densities = sweep(trials, cfg.densities, init)
            yield job(ctx, f"{name}-{init}", name, members, densities, "edgepopup",
                      lambda make=make, init=init, m=members, d=densities: supermask_stack(
                          ctx, make, [(mm.trial, dd) for mm, dd in zip(m, d)], rule="top_k", weight_init=init),
                      plain=(name, {"bias": False}, init))
        if cfg.dense_baseline:
            yield job(ctx, f"{name}-{DENSE}", name, [Member(t, 0, DENSE) for t in trials], [1.0] * len(trials),
                      "edgepopup_weights", lambda make=make: dense_stack(ctx, make, trials))


KIND = register_strong("edgepopup", EdgePopupConfig, jobs)
