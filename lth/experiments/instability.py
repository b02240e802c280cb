"""Instability analysis and linear mode connectivity (Frankle, Dziugaite, Roy, Carbin 2020) as a kind.

For each trial, a network trained from its initialisation W0 is forked at each iteration k of a
ladder (``rewind_iterations``): two copies of W_k train to the end of the schedule (iterations k..T,
fresh optimiser state, the schedule continued from k) with different data orders. The error of the
networks on the straight line between the two ends, at ``points`` evenly spaced α, gives the
instability: max_α error(α) − mean(error(0), error(1)), on test and on train data
(`lth.train.interpolate`).

IMP subnetworks (Algorithm 2 of the paper, IMP with rewinding to k): level 0 is the dense network;
level L ≥ 1 keeps the largest-magnitude surviving weights of level L − 1's copy 0 trained to the end
(from the same k), at the level's target density (`lth.prune.targets`, as `lth.experiments.imp`),
and rewinds them to W_k. Every level is forked and interpolated as the dense one. The masks are
found here (not read from another run), so each k has its own IMP ladder, as in the paper.

Jobs, in order:
  ``parent``            the trials' dense networks trained from W0 to T; W_k saved at each k.
  ``level_LL_k<k>``     per level L and k: 2 copies x trials, from m_L ⊙ W_k, trained k..T; then
                        the path between each trial's two copies is evaluated and its rows are
                        stored with the job's metrics (under the job's done marker). Its state
                        (the checkpoint the next level prunes) holds copy 0 of each trial only.
                        (One stack per k: `lth.train.loop.train` starts a whole stack at one
                        iteration, so copies forked at different k cannot share a stack.)
The path is evaluated inside each fork job rather than in one compute job at the end so that a run
resumes on another machine from small checkpoints (the parent's W_k and the last level's copy 0),
not from every level's two copies.

Random controls (``controls``, at ``control_levels``): beside the IMP subnetwork of level L forked at k,
the same fork stack trains two copies of (a) ``random_mask``: a uniformly random mask with the IMP
mask's kept count in every layer, on W_k (random pruning), and (b) ``reinit``: the IMP mask on fresh
initial weights (random reinitialisation), trained from k like the rest. Their pairs are interpolated
as every other; their control is ``k<k>_<control>`` (e.g. ``k500_random_mask``). Off by default: runs
stored before they existed keep their folders.

Rows: the training jobs' tidy rows with control ``k<k>`` (or ``k<k>_<control>``) and replicate = the copy
(0, 1); the parent's control is ``parent``. Path rows: control ``k<k>``, replicate 0, split `PATH_SPLIT`, iteration = the
point's index p (α = p / (points − 1)), metric ``test_error``, ``train_error``, ``test_loss``,
``train_loss`` (errors as fractions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from lth import validate as v
from lth.data import Split, derive_seed
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets.models import build_model, prunable_weights
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.prune.masks import magnitude_masks, random_masks
from lth.schema import Member
from lth.train.config import TrainConfig
from lth.train.interpolate import MIN_POINTS, grid, path_errors

ROLE = "lmc"            # the gin scope of this kind's TrainConfig (lmc/TrainConfig.*)
PARENT = "parent"       # control of the parents' rows
PATH_SPLIT = "path"     # split of the interpolation rows
COPIES = 2
CONTROLS = ("random_mask", "reinit")  # random pruning, random reinitialisation of the IMP subnetwork


def control(k: int, variant: str = "") -> str:
    """The control column of networks forked at iteration k, e.g. 'k500'; of a random control of the
    subnetwork forked there, e.g. 'k500_random_mask' (``variant`` one of `CONTROLS`)."""
    return f"k{k}_{variant}" if variant else f"k{k}"


def _split_control(control_name: str) -> tuple[int, str]:
    head, _, variant = control_name.partition("_") if isinstance(control_name, str) else ("", "", "")
    if not (head.startswith("k") and head[1:].isdigit()) or (variant and variant not in CONTROLS):
        raise ValueError(f"{control_name!r} is not a fork control ('k<iteration>' or 'k<iteration>_<control>', "
                         f"control one of {', '.join(CONTROLS)})")
    return int(head[1:]), variant


def k_of(control_name: str) -> int:
    """The fork iteration of a `control` name; ValueError for another control."""
    return _split_control(control_name)[0]


def variant_of(control_name: str) -> str:
    """'' for a dense network or an IMP subnetwork, else its random control ('random_mask', 'reinit')."""
    return _split_control(control_name)[1]


@dataclass(frozen=True)
class LmcConfig:
    """Instability analysis (linear mode connectivity) of dense networks and IMP subnetworks.

    Attributes:
        experiment: run name (default ``"lmc"``).
        dataset, model, model_kwargs, init, seed, split_seed: as `lth.experiments.imp.ImpConfig`;
            synthetic_shape: (C, H, W) of ``synthetic`` data (default (1, 28, 28)).
        trials: independent initialisations, >= 1 (default 3); each gives one pair per (level, k).
        rewind_iterations: the ladder of fork points k, distinct and increasing, each an int of
            iterations or a step string ('500it', '2ep'); every k must lie in [0, T) of the schedule
            and k > 0 must be a multiple of the TrainConfig's eval_every (W_k is taken at an
            evaluation) (default (0, '100it', '500it', '2000it')).
        points: α values on [0, 1], both ends included, >= 3 (default 30, the paper's).
        levels: IMP levels after the dense one, >= 0 (default 0: dense networks only).
        rates: fraction of surviving weights pruned per level, by layer kind (default fc 0.2, output 0.1).
        scope: ``layerwise`` (default) or ``global``.
        train_eval_examples: training examples (a seeded sample) on which train error along the path
            is measured, >= 0; 0 = the whole training split (default 0).
        bn_examples: training examples (a seeded sample) on which BatchNorm statistics are recomputed
            at each point, >= 1 (default 10000; unused without BatchNorm).
        layer_collapse_ok: train networks that lost a whole layer (default False: refuse).
        controls: random controls of the IMP subnetworks, any of ``random_mask`` and ``reinit``
            (default (): none). Hashed only when set, so runs stored before it existed keep their folders.
        control_levels: the sparse levels (each in [1, levels]) at which the controls are forked
            (default (): every sparse level). Hashed only when set.
    """
    experiment: str = "lmc"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    trials: int = 3
    rewind_iterations: tuple = (0, "100it", "500it", "2000it")
    points: int = 30
    levels: int = 0
    rates: dict = field(default_factory=lambda: {"fc": 0.2, "output": 0.1})
    scope: str = "layerwise"
    train_eval_examples: int = 0
    bn_examples: int = 10000
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = False
    controls: tuple = field(default=(), metadata={"hashed_when_set": True})
    control_levels: tuple = field(default=(), metadata={"hashed_when_set": True})

    def __post_init__(self):
        check_common(self)
        v.items(self, "rewind_iterations", empty=False, distinct=True)
        for k in self.rewind_iterations:
            try:
                _check_duration(k)
            except ValueError:
                v.fail(self, "rewind_iterations", "iterations >= 0: ints or step strings like '500it' or '2ep'")
        if isinstance(self.points, bool) or not isinstance(self.points, int) or self.points < MIN_POINTS:
            v.fail(self, "points", f"an int >= {MIN_POINTS} (both ends of the path and at least one point "
                                   "between; the paper uses 30)")
        v.integer(self, "levels", minimum=0)
        v.rates(self)
        v.choice(self, "scope", pruning.SCOPES)
        v.integer(self, "train_eval_examples", minimum=0)
        v.integer(self, "bn_examples", minimum=1)
        v.items(self, "controls", distinct=True, each=lambda c: v.choice(self, "controls", CONTROLS, c,
                                                                          "LmcConfig control"))
        v.items(self, "control_levels", distinct=True)
        for level in self.control_levels:
            if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= self.levels:
                v.fail(self, "control_levels", f"sparse levels, integers in [1, {self.levels}] (LmcConfig.levels)")
        if self.control_levels and not self.controls:
            v.fail(self, "control_levels", "() without LmcConfig.controls (set the controls to fork there)")


def _check_duration(k) -> None:
    """ValueError unless ``k`` is a duration (int >= 0 or '<n>it' / '<n>ep')."""
    from lth.train.schedules import parse_steps
    if isinstance(k, bool) or parse_steps(k, 1) < 0:
        raise ValueError(k)


class LmcPlan:
    """The fixed parts of an instability run: the fork points, the IMP targets, the members."""

    def __init__(self, ctx: Context):
        cfg, self.ctx = ctx.config, ctx
        train = ctx.trains[ROLE]
        steps = train.steps(len(ctx.data.train))
        self.total = steps.total
        ks = [ctx.steps_of(k, ROLE) for k in cfg.rewind_iterations]
        for given, k in zip(cfg.rewind_iterations, ks):
            if not 0 <= k < steps.total:
                raise ValueError(f"LmcConfig.rewind_iterations: {given!r} = iteration {k} is at or beyond the end "
                                 f"of training ({steps.total} iterations): a fork point must lie in [0, {steps.total})")
            if k and k % steps.eval_every:
                raise ValueError(f"LmcConfig.rewind_iterations: {given!r} = iteration {k} is not a multiple of "
                                 f"{ROLE}/TrainConfig.eval_every ({steps.eval_every} iterations); W_k is taken at an "
                                 "evaluation: choose k on that grid or make eval_every divide every k")
        if ks != sorted(ks) or len(set(ks)) != len(ks):
            raise ValueError(f"LmcConfig.rewind_iterations {tuple(cfg.rewind_iterations)!r} = iterations {ks}: "
                             "they must be distinct and increasing")
        self.ks = ks
        template = self.model(0)
        kinds = prunable_weights(template)
        sizes = {name: p.numel() for name, p in template.named_parameters() if name in kinds}
        self.targets = [pruning.targets(sizes, kinds, cfg.rates, level, cfg.scope) for level in range(cfg.levels + 1)]
        self.snapshots: dict[int, dict] = {}
        self._splits = None  # (splits to evaluate paths on, BatchNorm examples), made once

    def model(self, seed: int) -> torch.nn.Module:
        cfg, data = self.ctx.config, self.ctx.data
        return build_model(cfg.model, data.input_shape, data.num_classes, init=cfg.init, seed=seed, **cfg.model_kwargs)

    def template(self) -> torch.nn.Module:
        return self.model(0).to("meta")

    def densities(self) -> list[float]:
        return [pruning.overall_density(groups) for groups in self.targets]

    def copy_seed(self, trial: int, level: int, k: int, copy: int) -> int:
        return derive_seed("lmc_copy", self.ctx.config.seed, trial, level, k, copy)

    # ---- the parent: W0 -> T, W_k kept at every k ----------------------------------------------
    def parent_job(self) -> Job:
        ctx = self.ctx
        members = [Member(t, 0, PARENT) for t in ctx.trials]
        return Job(key="parent", members=members, build=self.parent_stack, train_cfg=ctx.trains[ROLE],
                   data_seeds=[ctx.data_seed(t) for t in ctx.trials], callbacks=[self.snapshot],
                   after=lambda stack, history, snapshot: self.parent_state(),
                   labels=[f"parent trial {m.trial}" for m in members])

    def parent_stack(self) -> NetworkStack:
        stack = NetworkStack.build(self.model, [self.ctx.init_seed(t) for t in self.ctx.trials], self.ctx.device)
        self.snapshots[0] = _weights(stack)
        return stack

    def snapshot(self, iteration: int, stack: NetworkStack) -> None:
        """Callback: keep W_k (saved at once, so a resumed parent still has the k it passed)."""
        if iteration in self.ks and iteration > 0:
            state = _weights(stack)
            self.snapshots[iteration] = state
            self.ctx.run.save_checkpoint(self.ctx.key(f"parent_w{iteration}"), state)

    def parent_state(self) -> dict:
        rewind = {}
        for k in self.ks:
            if k not in self.snapshots:  # passed before a resume: saved by that process
                state = self.ctx.run.load_checkpoint(self.ctx.key(f"parent_w{k}"))
                if state is None:
                    raise FileNotFoundError(f"W_{k} of the parent networks (checkpoints/parent_w{k}.pt) is missing "
                                            f"from {self.ctx.run.path}; delete checkpoints/parent_progress.pt "
                                            "there and rerun: the parent then trains again from W0")
                self.snapshots[k] = state
            rewind[k] = self.snapshots[k]
        return {"rewind": rewind}

    # ---- the forks: level L, iteration k -------------------------------------------------------
    def variants(self, level: int) -> list[str]:
        """'' (the IMP subnetwork or dense network), then the random controls forked at ``level``."""
        cfg = self.ctx.config
        at = level > 0 and (not cfg.control_levels or level in cfg.control_levels)
        return ["", *(cfg.controls if at else ())]

    def members(self, level: int, k: int) -> list[Member]:
        """Per variant (`variants`), trial-major, copy-minor: the two copies of a pair are neighbours."""
        return [Member(t, level, control(k, variant), c) for variant in self.variants(level)
                for t in self.ctx.trials for c in range(COPIES)]

    def key(self, level: int, k: int) -> str:
        return f"level_{level:02d}_k{k}"

    def fork_job(self, level: int, k: int) -> Job:
        ctx, members = self.ctx, self.members(level, k)
        return Job(key=self.key(level, k), members=members, build=lambda: self.fork_stack(level, k),
                   train_cfg=ctx.trains[ROLE], start=k,
                   data_seeds=[self.copy_seed(m.trial, level, k, m.replicate) for m in members],
                   after=lambda stack, history, snapshot: {"final": stack.select(range(0, COPIES * len(ctx.trials), COPIES))},
                   extra_rows=lambda stack: self.path_rows(stack),
                   labels=[f"level {level} k {k} {variant_of(m.control) or 'trial'} {m.trial} copy {m.replicate}"
                           for m in members])

    def fork_stack(self, level: int, k: int) -> NetworkStack:
        """2 copies per trial of m_L ⊙ W_k (member order: trial-major, copy-minor), then those of each
        random control at this level (`variants`)."""
        ctx, trials = self.ctx, len(self.ctx.trials)
        rewound = ctx.state("parent")["rewind"][k]
        rewound = {g: {n: t.to(ctx.device) for n, t in rewound[g].items()} for g in ("params", "buffers")}
        if level == 0:
            masks = {n: torch.ones_like(rewound["params"][n]) for n in prunable_weights(self.template())}
        else:
            previous = ctx.state(self.key(level - 1, k))["final"]  # copy 0 of each trial
            copy0 = {g: {n: t.to(ctx.device) for n, t in previous[g].items()} for g in ("params", "buffers", "masks")}
            tickets = NetworkStack.from_states(self.template(), [copy0])
            found = magnitude_masks(tickets, self.targets[level])
            masks = {n: m.to(rewound["params"][n].dtype) for n, m in found.items()}
        twice = lambda t: t.repeat_interleave(COPIES, dim=0)
        states = []
        for variant in self.variants(level):
            weights, kept = rewound, masks
            if variant == "random_mask":  # random pruning: the same count per layer, on W_k
                generator = torch.Generator(device=ctx.device).manual_seed(
                    derive_seed("lmc_random_mask", ctx.config.seed, level, k))
                kept = {n: m.to(masks[n].dtype) for n, m in random_masks(masks, generator).items()}
            elif variant == "reinit":  # the IMP mask on fresh initial weights
                fresh = NetworkStack.build(self.model, [derive_seed("lmc_reinit", ctx.config.seed, t, level, k)
                                                        for t in ctx.trials], ctx.device).state()
                weights = {g: fresh[g] for g in ("params", "buffers")}
            states.append({"params": {n: twice(t) for n, t in weights["params"].items()},
                           "buffers": {n: twice(t) for n, t in weights["buffers"].items()},
                           "masks": {n: twice(m) for n, m in kept.items()}})
        stack = NetworkStack.from_states(self.template(), states)
        pruning.check_density({n: m[::COPIES][:trials] for n, m in stack.masks.items()}, self.targets[level])
        return stack

    # ---- the paths -------------------------------------------------------------------------------
    def path_rows(self, stack: NetworkStack) -> list[dict]:
        """Rows of the error and loss along the line between each trial's two trained copies (members
        2t and 2t + 1 of a fork stack), attached to copy 0 (see the module docstring)."""
        ctx, cfg = self.ctx, self.ctx.config
        if self._splits is None:
            self._splits = ({"test": ctx.data.test, "train": self._sample(cfg.train_eval_examples, "train_eval")},
                            self._sample(cfg.bn_examples, "bn").x)
        splits, bn_x = self._splits
        alphas = grid(cfg.points)
        ends = [stack.select(range(c, stack.size, COPIES)) for c in range(COPIES)]
        found = path_errors(self.template(), ends[0], ends[1], alphas, splits, bn_x=bn_x,
                            bn_batch_size=ctx.trains[ROLE].batch_size, eval_batch_size=ctx.trains[ROLE].eval_batch_size)
        return [{"member": COPIES * i, "iteration": p, "split": PATH_SPLIT, "metric": metric,
                 "value": float(values[p, i])}
                for metric, values in found.items() for i in range(values.shape[1]) for p in range(len(alphas))]

    def _sample(self, count: int, purpose: str) -> Split:
        """A seeded sample of ``count`` training examples (the whole split for 0 or count >= its size)."""
        return self.ctx.data.train.sample(count, derive_seed(purpose, self.ctx.config.seed))


def _weights(stack: NetworkStack) -> dict:
    """A dense stack's weights and buffers (its masks are all ones: not kept)."""
    state = stack.state()
    return {"params": state["params"], "buffers": state["buffers"]}


def jobs(ctx: Context) -> Iterator[Job]:
    plan = LmcPlan(ctx)  # validates the fork points before any folder or training
    return iter([plan.parent_job(), *(plan.fork_job(level, k) for level in range(ctx.config.levels + 1)
                                      for k in plan.ks)])


def operative_config(config: LmcConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine an instability run's results, as loadable gin text."""
    return operative_text(config, {ROLE: train_cfg}, {ROLE: f"{ROLE}/"})


def _manifest(ctx: Context) -> dict:
    plan = LmcPlan(ctx)
    return {"levels": len(plan.targets), "densities": plan.densities(), "rewind_iterations": plan.ks,
            "points": ctx.config.points}


KIND = register(Kind("lmc", LmcConfig, (ROLE,), jobs, lambda config, trains: operative_config(config, trains[ROLE]),
                     manifest=_manifest))
