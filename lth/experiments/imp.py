"""Iterative magnitude pruning (the lottery-ticket experiment) as a kind of the one runner.

Level 0 trains the dense networks of every trial. Each later level prunes the surviving
weights of the previous level's ticket (iterative) or of the dense network (one-shot) to the
level's target density, rewinds, and trains again. Rewinding is to the initialisation, to the
weights of iteration k (weight rewinding), or keeps the final weights and replays the
learning-rate schedule from iteration k (learning-rate rewinding, Renda et al. 2020); or the final
weights are fine-tuned for as long at the schedule's last learning rate (Renda et al.'s fine-tuning
baseline). Learning-rate rewinding under a schedule that is constant from k on is refused: it
would be fine-tuning under another name.

Controls are siblings of a level's tickets in the same stack: a random reinitialisation of the
ticket (same mask, fresh weights) and a random mask with the ticket's per-layer densities
(same weights). All of a level's networks train at once, as one job ``level_<LL>`` whose state
(final weights, init, the rewind snapshot) the next level prunes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from lth.data import derive_seed
from lth import validate as v
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets.models import build_model, prunable_weights
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.prune.masks import magnitude_masks, random_masks
from lth.schema import Member
from lth.train.config import TrainConfig
from lth.train.schedules import constant_from, lr_at

STRATEGIES = ("iterative", "one_shot")
REWINDS = ("init", "weights", "lr", "finetune")
CONTROLS = ("reinit", "random_mask")


@dataclass(frozen=True)
class ImpConfig:
    """Iterative magnitude pruning.

    Attributes:
        experiment: run name, the run folder's parent (default ``"lth"``).
        dataset: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` or ``synthetic`` (default ``"mnist"``).
        model: a name of `lth.nets.models.build_model` (default ``"lenet300"``); model_kwargs: its extra arguments.
        init: weight initialisation, e.g. ``glorot_normal`` (default).
        trials: independent repetitions, >= 1 (default 1).
        levels: pruning levels after the dense one, >= 0 (default 20); ignored when ``densities`` is set.
        densities: explicit ladder of fractions kept, each in (0, 1], strictly decreasing (default (): use ``levels``).
        rates: fraction of surviving weights pruned per level, by layer kind (default fc 0.2, output 0.1).
        scope: ``layerwise`` (each layer at its rate, default) or ``global`` (one ranking of all layers).
        strategy: ``iterative`` (prune the previous ticket, default) or ``one_shot`` (prune the dense network).
        rewind: ``init`` (default), ``weights`` (to iteration k), ``lr`` (final weights, schedule replayed
            from k; refused by `ImpPlan` where the schedule is constant from k on: a no-op) or ``finetune``
            (final weights, trained from k to the end at the schedule's last learning rate, Renda et al.'s
            baseline). ``weights``, ``lr`` and ``finetune`` all retrain T - k iterations.
        rewind_iteration: k, in iterations (int or ``'500it'``) or epochs (``'2ep'``); 0 by default;
            only meaningful with rewind ``weights``, ``lr`` or ``finetune``.
        controls: any of ``reinit`` and ``random_mask`` (default both).
        reinits: random reinitialisations per ticket and level, >= 0 (default 1).
        seed: seeds initialisations, data orders and controls (default 0); split_seed: the validation split (default 0).
        layer_collapse_ok: train networks that lost every weight of a layer (default False: refuse them).
            Hashed only when True, so runs stored before it existed keep their folders.
    """
    experiment: str = "lth"
    dataset: str = "mnist"
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    trials: int = 1
    levels: int = 20
    densities: tuple = ()
    rates: dict = field(default_factory=lambda: {"fc": 0.2, "output": 0.1})
    scope: str = "layerwise"
    strategy: str = "iterative"
    rewind: str = "init"
    rewind_iteration: str | int = 0
    controls: tuple = CONTROLS
    reinits: int = 1
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = field(default=False, metadata={"hashed_when_set": True})

    def __post_init__(self):
        check_common(self)
        v.integer(self, "levels", minimum=0)
        v.items(self, "densities", each=pruning.validate_density)
        v.rates(self)
        v.choice(self, "scope", pruning.SCOPES)
        choose("strategy", self.strategy, STRATEGIES)
        choose("rewind", self.rewind, REWINDS)
        v.steps(self, "rewind_iteration", minimum=0)
        v.items(self, "controls", each=lambda control: choose("control", control, CONTROLS))
        v.integer(self, "reinits", minimum=0)
        if any(b >= a for a, b in zip(self.densities, self.densities[1:])):
            raise ValueError(f"ImpConfig.densities = {tuple(self.densities)!r}: densities are fractions of weights "
                             "kept and must strictly decrease (e.g. (0.5, 0.2, 0.1)); a sparsity ladder "
                             "(fractions pruned) must be given as 1 - sparsity")
        if self.rewind == "init" and self.rewind_iteration not in (0, "0", "0it", "0ep"):
            raise ValueError(f"ImpConfig.rewind_iteration = {self.rewind_iteration!r} has no effect with "
                             "rewind = 'init': set ImpConfig.rewind = 'weights', 'lr' or 'finetune' to rewind to that iteration")


def choose(what: str, value, valid: Sequence[str]) -> None:
    """ValueError naming ``value`` and the valid choices unless ``value`` is one of them."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


class ImpPlan:
    """An IMP experiment's fixed parts: the template model, the level targets, the rewind point."""
    train_role = ""  # the TrainConfig role of the pruned networks' training (a subclass may scope it)

    def __init__(self, ctx: Context):
        cfg, self.ctx = ctx.config, ctx
        template = self.model(0)
        kinds = prunable_weights(template)
        sizes = {name: p.numel() for name, p in template.named_parameters() if name in kinds}
        if cfg.densities:
            levels = [pruning.level_for_density(sizes, kinds, cfg.rates, d, cfg.scope) for d in cfg.densities]
        else:
            levels = range(1, cfg.levels + 1)
        self.targets = [pruning.targets(sizes, kinds, cfg.rates, level, cfg.scope) for level in [0, *levels]]
        total = ctx.trains[self.train_role].steps(len(ctx.data.train)).total
        k = ctx.steps_of(getattr(cfg, "rewind_iteration", 0), self.train_role)  # deconstruct: no rewinding, 0
        if not 0 <= k < total:
            raise ValueError(f"rewind_iteration {cfg.rewind_iteration!r} = {k} it is outside "
                             f"[0, {total}) of the training schedule")
        self.rewind_iteration = k
        train = ctx.trains[self.train_role]
        steps = train.steps(len(ctx.data.train))
        if getattr(cfg, "rewind", None) == "lr" and constant_from(k, total=total, schedule=train.schedule,
                                                milestones=steps.milestones, warmup=steps.warmup):
            raise ValueError(
                f"ImpConfig.rewind = 'lr' replays the learning-rate schedule from iteration {k}, but under "
                f"TrainConfig.schedule = {train.schedule!r} (milestones {tuple(train.milestones)}, warmup "
                f"{train.warmup!r}, {total} iterations) the rate is constant from {k} to the end: rewinding it "
                "is a no-op, the same as fine-tuning. Use a schedule that decays after k (TrainConfig.schedule = "
                "'multistep' with a milestone after k, or 'cosine'; the rewind_lenet300 and rewind_conv recipes "
                "do) or ImpConfig.rewind = 'finetune'")
        self.finetune_lr = lr_at(total - 1, lr=train.lr, total=total, schedule=train.schedule,
                                 milestones=steps.milestones, gamma=train.gamma)

    def model(self, seed: int) -> torch.nn.Module:
        cfg, data = self.ctx.config, self.ctx.data
        return build_model(cfg.model, data.input_shape, data.num_classes, init=cfg.init, seed=seed, **cfg.model_kwargs)

    def densities(self) -> list[float]:
        return [pruning.overall_density(groups) for groups in self.targets]

    def init_seed(self, member: Member) -> int:
        if member.control == "reinit":
            return derive_seed("reinit", self.ctx.config.seed, member.trial, member.level, member.replicate)
        return derive_seed("init", self.ctx.config.seed, member.trial)

    def members(self, level: int) -> list[Member]:
        cfg, trials = self.ctx.config, self.ctx.trials
        out = [Member(t, level) for t in trials]
        if level > 0:
            if "reinit" in cfg.controls:
                out += [Member(t, level, "reinit", r) for t in trials for r in range(cfg.reinits)]
            if "random_mask" in cfg.controls:
                out += [Member(t, level, "random_mask") for t in trials]
        return out

    def job(self, level: int) -> Job:
        cfg, ctx = self.ctx.config, self.ctx
        members = self.members(level)
        weights_rewind = level == 0 and cfg.rewind == "weights" and self.rewind_iteration
        train = ctx.trains[""]
        if level > 0 and cfg.rewind == "finetune":  # the schedule's last rate, held from k to the end
            train = dataclasses.replace(train, schedule="constant", lr=self.finetune_lr, milestones=(), warmup=0)
        return Job(
            key=f"level_{level:02d}", members=members, build=lambda: self.stack(level, members),
            train_cfg=train, data_seeds=[ctx.data_seed(m.trial) for m in members],
            start=0 if level == 0 or cfg.rewind == "init" else self.rewind_iteration,
            snapshot_at=self.rewind_iteration if weights_rewind else None,
            after=lambda stack, history, snapshot: self.state(level, stack, snapshot),
            labels=[m.label() for m in members])

    def state(self, level: int, stack: NetworkStack, snapshot: dict | None) -> dict:
        """What later levels need: the tickets' final weights, their init, the rewind snapshot (level 0)."""
        trials = len(self.ctx.trials)
        init = self._init if level == 0 else self.ctx.state(f"level_{level - 1:02d}")["init"]
        state = {"final": stack.select(range(trials)), "init": init}
        if snapshot is not None:  # the weights of iteration k, for weight rewinding
            state["rewind"] = {k: {n: t[:trials] for n, t in v.items()} for k, v in snapshot.items()}
        return state

    def stack(self, level: int, members: list[Member]) -> NetworkStack:
        """The untrained networks of a level."""
        ctx, cfg = self.ctx, self.ctx.config
        if level == 0:
            stack = NetworkStack.build(self.model, [self.init_seed(m) for m in members], ctx.device)
            self._init = stack.select(range(len(ctx.trials)))
            return stack
        masks, rewound = self.tickets(level)
        parts = []
        for member in members:
            reinit = self.init_seed(member) if member.control == "reinit" else None
            shuffle = derive_seed("random_mask", cfg.seed, member.trial, level) if member.control == "random_mask" \
                else None
            parts.append(self.part(member.trial, masks, rewound, reinit_seed=reinit, mask_seed=shuffle))
        stack = NetworkStack.from_states(self.template(), parts)
        pruning.check_density({n: m[:len(ctx.trials)] for n, m in stack.masks.items()}, self.targets[level])
        return stack

    def tickets(self, level: int) -> tuple[dict, dict]:
        """This process's tickets of ``level`` >= 1, one row per trial of ``ctx.trials``: the masks (weight
        name -> (trials, *shape) bool) that magnitude pruning of the previous level's (iterative) or the
        dense (one-shot) networks gives at the level's targets, and the weights they rewind to
        (``{"params", "buffers"}``: init, iteration k's or the final weights, by ``rewind``)."""
        ctx, cfg = self.ctx, self.ctx.config
        previous, dense = ctx.state(f"level_{level - 1:02d}"), ctx.state("level_00")
        source = previous if cfg.strategy == "iterative" else dense  # what this level prunes
        tickets = NetworkStack.from_states(self.template(), [source["final"]])
        masks = magnitude_masks(tickets, self.targets[level])
        if cfg.rewind in ("lr", "finetune"):
            rewound = source["final"]
        elif cfg.rewind == "weights" and self.rewind_iteration:
            rewound = dense["rewind"]
        else:
            rewound = dense["init"]
        return masks, rewound

    def part(self, trial: int, masks: dict, rewound: dict, *, reinit_seed: int | None = None,
             mask_seed: int | None = None) -> dict:
        """One network's state (``{"params", "buffers", "masks"}`` on the device) from ``trial``'s row of
        `tickets`: the ticket itself; with ``reinit_seed``, its mask on fresh weights of that seed (random
        reinitialisation); with ``mask_seed``, a uniformly random mask with the ticket's kept count in
        every layer (`lth.prune.masks.random_masks`, drawn on the device from that seed) on its weights."""
        ctx = self.ctx
        p = ctx.trials.index(trial)  # its row in this shard's states
        weights = {g: {n: v[p:p + 1] for n, v in rewound[g].items()} for g in ("params", "buffers")}
        mask = {n: v[p:p + 1] for n, v in masks.items()}
        if reinit_seed is not None:
            fresh = NetworkStack.from_models([self.model(reinit_seed)])
            weights = {g: getattr(fresh, g) for g in ("params", "buffers")}
        if mask_seed is not None:
            mask = random_masks(mask, torch.Generator(device=ctx.device).manual_seed(mask_seed))
        return {"params": {n: v.detach().to(ctx.device) for n, v in weights["params"].items()},
                "buffers": {n: v.to(ctx.device) for n, v in weights["buffers"].items()},
                "masks": {n: v.to(ctx.device) for n, v in mask.items()}}

    def template(self) -> torch.nn.Module:
        return self.model(0).to("meta")


def jobs(ctx: Context) -> Iterator[Job]:
    plan = ImpPlan(ctx)  # validates the ladder and the rewind point before any training
    return (plan.job(level) for level in range(len(plan.targets)))


def operative_config(config: ImpConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine an IMP run's results, as loadable gin text."""
    return operative_text(config, {"": train_cfg}, {"": ""})


def _manifest(ctx: Context) -> dict:
    plan = ImpPlan(ctx)
    return {"levels": len(plan.targets), "densities": plan.densities()}


KIND = register(Kind("imp", ImpConfig, ("",), jobs, lambda config, trains: operative_config(config, trains[""]),
                     manifest=_manifest, shards=True, data_parallel=True))
