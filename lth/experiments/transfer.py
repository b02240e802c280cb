"""Tickets across data sets (Morcos, Yu, Paganini, Tian 2019; Mehta 2019) as a kind of the one runner.

A ticket (its mask and the weights it rewinds to) found by IMP on one data set is trained on
another. Both directions run: IMP runs on the source (``dataset``) and on the target (``target``),
exactly as the IMP kind (`lth.experiments.imp.ImpPlan`: the same density ladder, pruning, rewinding
and seeds on both), and at every sparse level each data set's stack also trains the *other* data
set's ticket of that level, beside:

- ``none``: the data set's own IMP ticket (the reference a transferred ticket is compared with);
- ``transfer``: the other data set's ticket, its mask and its rewound weights unchanged;
- ``reinit``: the transferred mask on fresh weights (random reinitialisation; Morcos et al. did not
  use this stronger control, papers.md §11d.2);
- ``random_mask``: a uniformly random mask with the transferred ticket's kept count in every layer,
  on the transferred ticket's weights. A random mask is independent of the weights, so at
  ``rewind = 'init'`` this is distributed exactly as Morcos's random ticket (random mask, fresh init).

Every trial starts from one initialisation W0 on both data sets (`lth.experiments.runner.Context.init_seed`),
so at ``rewind = 'init'`` a transferred ticket and the target's own differ only in their masks.
All networks of one (level, data set) train in one stack; a stack trains on one data set, so a
level is two jobs: ``level_LL_<dataset>`` (after the dense ``level_00_<dataset>``).

Rows: ``experiment`` = the data set the network trained and was evaluated on (the target);
``control`` as above; the source of a transferred ticket is the other data set.

A ticket transfers unchanged only between data sets of one input shape and one class count
(MNIST and Fashion-MNIST: 1x28x28, 10 classes); any other pair is refused before training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator

from lth import validate as v
from lth.data import DATASETS, DataSplits, derive_seed, load_splits, shape_of
from lth.experiments.imp import CONTROLS, ImpPlan, choose
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.schema import TICKET, Member
from lth.train.config import TrainConfig

ROLE = "transfer"             # the gin scope of this kind's TrainConfig (transfer/TrainConfig.*)
TRANSFER = "transfer"         # control of a transferred ticket
REWINDS = ("init", "weights")


@dataclass(frozen=True)
class TransferConfig:
    """Transfer of IMP tickets between two data sets, both directions.

    Attributes:
        experiment: run name (default ``"transfer"``).
        dataset: one data set (the source of the tickets trained on ``target``), default ``"mnist"``;
            target: the other (the source of the tickets trained on ``dataset``), default
            ``"fashion_mnist"``. Both in `lth.data.DATASETS`, different, with one input shape and one
            class count (checked here: ValueError naming both and what a transfer would need).
        synthetic_shape: (C, H, W) of ``synthetic`` data (default (1, 28, 28)).
        model, model_kwargs, init, trials, levels, densities, rates, scope, strategy, seed,
            split_seed, layer_collapse_ok: as `lth.experiments.imp.ImpConfig` (trials default 3).
        rewind: ``init`` (default) or ``weights`` (to iteration k of the source's dense training);
            rewind_iteration: k (default 0). Learning-rate rewinding transfers trained weights, not a
            ticket: refused.
        controls: any of ``reinit`` and ``random_mask`` (default both), of the transferred ticket.
        reinits: random reinitialisations per transferred ticket, >= 0 (default 1).
    """
    experiment: str = "transfer"
    dataset: str = "mnist"
    target: str = "fashion_mnist"
    synthetic_shape: tuple = (1, 28, 28)
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    trials: int = 3
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
    layer_collapse_ok: bool = False

    def __post_init__(self):
        check_common(self)
        v.choice(self, "target", DATASETS)
        if self.target == self.dataset:
            v.fail(self, "target", f"a data set other than TransferConfig.dataset ({self.dataset!r}): tickets "
                                   "transfer from one data set to another")
        check_compatible(self.dataset, self.target, tuple(self.synthetic_shape))
        v.integer(self, "levels", minimum=0)
        v.items(self, "densities", each=pruning.validate_density)
        v.rates(self)
        v.choice(self, "scope", pruning.SCOPES)
        v.choice(self, "strategy", ("iterative", "one_shot"))
        if self.rewind == "lr":
            v.fail(self, "rewind", "'init' or 'weights': learning-rate rewinding would carry the source's "
                                   "trained weights to the target (fine-tuning), not a ticket")
        v.choice(self, "rewind", REWINDS)
        v.steps(self, "rewind_iteration", minimum=0)
        v.items(self, "controls", distinct=True, each=lambda control: choose("control", control, CONTROLS))
        v.integer(self, "reinits", minimum=0)
        if any(b >= a for a, b in zip(self.densities, self.densities[1:])):
            v.fail(self, "densities", "fractions of weights kept that strictly decrease, e.g. (0.5, 0.2, 0.1)")
        if self.rewind == "init" and self.rewind_iteration not in (0, "0", "0it", "0ep"):
            v.fail(self, "rewind_iteration", "0 with rewind = 'init' (set TransferConfig.rewind = 'weights' "
                                             "to rewind to an iteration)")


def check_compatible(source: str, target: str, synthetic_shape: tuple = (1, 28, 28)) -> None:
    """ValueError unless a ticket of ``source`` can train on ``target`` unchanged: the same input
    shape (C, H, W) and the same number of classes. The message names both data sets, what differs
    and what a transfer between them would need."""
    (shape_a, classes_a), (shape_b, classes_b) = (shape_of(name, synthetic_shape) for name in (source, target))
    problems, needs = [], []
    if shape_a != shape_b:
        problems.append(f"input shapes differ ({source}: {'x'.join(map(str, shape_a))}, "
                        f"{target}: {'x'.join(map(str, shape_b))})")
        needs.append("the inputs brought to one shape (resizing or padding the images, and one channel count) "
                     "so that the ticket's first layer fits both")
    if classes_a != classes_b:
        problems.append(f"class counts differ ({source}: {classes_a}, {target}: {classes_b})")
        needs.append("a new output layer for the target's classes (Morcos et al.'s treatment of it was not "
                     "found; not implemented here)")
    if problems:
        raise ValueError(f"cannot transfer tickets between {source} and {target}: {'; '.join(problems)}. "
                         f"A ticket transfers unchanged only between data sets of one input shape and one "
                         f"class count (e.g. mnist and fashion_mnist); this would need {' and '.join(needs)}")


def _view(ctx: Context, data: DataSplits) -> Context:
    """``ctx`` as IMP on one of the two data sets sees it: that data set, this kind's TrainConfig as
    IMP's, and store keys suffixed with the data set's name (states shared with ``ctx``)."""
    return dataclasses.replace(ctx, data=data, trains={"": ctx.trains[ROLE]}, suffix=f"_{data.name}{ctx.suffix}",
                               states=ctx.states)


class TransferPlan:
    """IMP on both data sets (`ImpPlan` each, on a view of the context), and the stacks that train
    each data set's own tickets beside the other's."""

    def __init__(self, ctx: Context):
        cfg, self.ctx = ctx.config, ctx
        a = ctx.data
        b = load_splits(cfg.target, seed=cfg.split_seed, synthetic_shape=tuple(cfg.synthetic_shape)).to(ctx.device)
        if a.input_shape != b.input_shape or a.num_classes != b.num_classes:  # the data as loaded (e.g. given data)
            raise ValueError(f"cannot transfer tickets between {a.name} ({'x'.join(map(str, a.input_shape))}, "
                             f"{a.num_classes} classes) and {b.name} ({'x'.join(map(str, b.input_shape))}, "
                             f"{b.num_classes} classes): a ticket transfers unchanged only between data sets "
                             "of one input shape and one class count")
        target = b
        self.names = (cfg.dataset, cfg.target)
        self.views = {cfg.dataset: _view(ctx, ctx.data), cfg.target: _view(ctx, target)}
        self.imp = {name: ImpPlan(view) for name, view in self.views.items()}  # validates ladder and rewind point

    def other(self, name: str) -> str:
        return self.names[1 - self.names.index(name)]

    def plan(self, name: str) -> ImpPlan:
        """IMP on data set ``name``, its view given the run folder (made after the jobs are planned)."""
        self.views[name].run = self.ctx.run
        return self.imp[name]

    def members(self, level: int) -> list[Member]:
        """Own tickets, then the transferred ones and their controls (trial-major within each)."""
        cfg, trials = self.ctx.config, self.ctx.trials
        out = [Member(t, level) for t in trials]
        if level > 0:
            out += [Member(t, level, TRANSFER) for t in trials]
            if "reinit" in cfg.controls:
                out += [Member(t, level, "reinit", r) for t in trials for r in range(cfg.reinits)]
            if "random_mask" in cfg.controls:
                out += [Member(t, level, "random_mask") for t in trials]
        return out

    def job(self, level: int, name: str) -> Job:
        view, members = self.views[name], self.members(level)
        plan = self.imp[name]
        base = plan.job(level) if level == 0 else None  # the dense networks: IMP's own level 0
        return Job(key=f"level_{level:02d}_{name}", members=members, data=view.data,
                   build=lambda: self.stack(level, name, members), train_cfg=view.trains[""],
                   data_seeds=[view.data_seed(m.trial) for m in members],
                   start=base.start if base else (0 if self.ctx.config.rewind == "init" else plan.rewind_iteration),
                   snapshot_at=base.snapshot_at if base else None, experiment=name,
                   after=lambda stack, history, snapshot: self.plan(name).state(level, stack, snapshot),
                   labels=[f"on {name}: {m.label()}" for m in members])

    def stack(self, level: int, name: str, members: list[Member]) -> NetworkStack:
        """The untrained networks of ``level`` on data set ``name``: level 0 as IMP's; at level >= 1
        its own tickets first (what its next level prunes), then the other data set's."""
        own = self.plan(name)
        if level == 0:
            return own.stack(0, members)
        cfg, trials = self.ctx.config, len(self.ctx.trials)
        source = self.other(name)
        found = {name: own.tickets(level), source: self.plan(source).tickets(level)}
        parts = []
        for m in members:
            origin = name if m.control == TICKET else source
            masks, rewound = found[origin]
            reinit = derive_seed("transfer_reinit", cfg.seed, source, m.trial, level, m.replicate) \
                if m.control == "reinit" else None
            shuffle = derive_seed("transfer_random_mask", cfg.seed, source, m.trial, level) \
                if m.control == "random_mask" else None
            parts.append(self.imp[origin].part(m.trial, masks, rewound, reinit_seed=reinit, mask_seed=shuffle))
        stack = NetworkStack.from_states(own.template(), parts)
        target = own.targets[level]
        pruning.check_density({n: mask[:trials] for n, mask in stack.masks.items()}, target)
        pruning.check_density({n: mask[trials:2 * trials] for n, mask in stack.masks.items()}, target)
        return stack


def jobs(ctx: Context) -> Iterator[Job]:
    plan = TransferPlan(ctx)  # loads the target, checks both data sets and the ladder before any folder
    levels = len(plan.imp[ctx.config.dataset].targets)
    return iter([plan.job(level, name) for level in range(levels) for name in plan.names])


def operative_config(config: TransferConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine a transfer run's results, as loadable gin text."""
    return operative_text(config, {ROLE: train_cfg}, {ROLE: f"{ROLE}/"})


def _manifest(ctx: Context) -> dict:
    source = ImpPlan(_view(ctx, ctx.data))  # the ladder is the same on both data sets
    return {"levels": len(source.targets), "datasets": [ctx.config.dataset, ctx.config.target],
            "densities": source.densities()}


KIND = register(Kind("transfer", TransferConfig, (ROLE,), jobs,
                     lambda config, trains: operative_config(config, trains[ROLE]), manifest=_manifest))
