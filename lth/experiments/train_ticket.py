"""catid/train_ticket as a kind: gates (sign of a score) on seeded random weights vs the same
network trained normally, both with ``train_ticket/TrainConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from lth import validate as v
from lth.experiments.runner import Context, Job
from lth.experiments.strong import dense_stack, job, register_strong, supermask_stack, validate_common, validate_names
from lth.nets import supermask
from lth.nets.papers import TICKET_NETWORKS, TICKET_PLAIN
from lth.nets.supermask import key_prefix
from lth.schema import Member


@dataclass(frozen=True)
class TrainTicketConfig:
    """Gated weights (train_ticket).

    Attributes:
        experiment: run name (default ``"strong_train_ticket"``).
        dataset: as ImpConfig (default ``"mnist"``); synthetic_shape: (C, H, W) of synthetic data (default (1, 28, 28)).
        networks: any of `lth.nets.papers.TICKET_NETWORKS` (mlp, cnn; default both).
        weight_init: the frozen random weights, one of `lth.nets.supermask.WEIGHT_INITS` (default kaiming_normal).
        gate_init: the value every gate starts at, > 0 (default 1.0, train_ticket's: all gates on). A gate turns
            off once its score crosses 0, so under Adam (steps of about lr each) a gate starting at g needs
            about g / lr steps of one sign to close: a smaller start lets gates close within a short schedule.
            Hashed only when set.
        trials: >= 1 (default 1); seed, split_seed: as ImpConfig (default 0).
        layer_collapse_ok: train networks whose gates keep no weight of some layer (default False: refuse).
            Hashed only when True.
    """
    experiment: str = "strong_train_ticket"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("mlp", "cnn")
    weight_init: str = "kaiming_normal"
    gate_init: float = field(default=1.0, metadata={"hashed_when_set": True})
    trials: int = 1
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = field(default=False, metadata={"hashed_when_set": True})

    def __post_init__(self):
        validate_common(self)
        validate_names(self, "networks", TICKET_NETWORKS, "train_ticket network")
        v.choice(self, "weight_init", supermask.WEIGHT_INITS, what="weight init")
        v.number(self, "gate_init", above=0)


def jobs(ctx: Context) -> Iterator[Job]:
    cfg, data, trials = ctx.config, ctx.data, ctx.trials
    ones = [1.0] * len(trials)
    for name in cfg.networks:
        make_net, gated = TICKET_NETWORKS[name]
        make = lambda t, make_net=make_net: make_net(data)
        yield job(ctx, f"{name}-gated", name, [Member(t, 0, "gated") for t in trials], ones, "train_ticket",
                  lambda make=make, gated=gated: gated_stack(ctx, make, gated), plain=(*TICKET_PLAIN[name], cfg.weight_init))
        yield job(ctx, f"{name}-baseline", name, [Member(t, 0, "baseline") for t in trials], ones, "train_ticket",
                  lambda make=make: dense_stack(ctx, make, trials))


def gated_stack(ctx: Context, make, gated: tuple[str, ...]) -> supermask.SupermaskStack:
    """The gated networks of every trial: gates (scores under the 'sign' rule) on the layers named
    ``gated``, all starting at ``gate_init``."""
    stack = supermask_stack(ctx, make, [(t, 1.0) for t in ctx.trials], rule="sign", weight_init=ctx.config.weight_init,
                            scored=lambda n: n in gated)
    with torch.no_grad():
        for name in supermask.scored_layers(stack.template):
            stack.params[key_prefix(name) + "scores"].mul_(ctx.config.gate_init)  # 'ones' times the start
    return stack


KIND = register_strong("train_ticket", TrainTicketConfig, jobs, weights_role=False)
