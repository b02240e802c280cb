"""Deconstructing lottery tickets (Zhou, Lan, Liu & Yosinski 2019) as a kind of the one runner.

The IMP loop of `lth.experiments.imp` (its plan: model, density ladder, targets) with Zhou et al.'s
three questions, each network of a level one *variant* (the ``control`` column):

- **Mask criteria** (`lth.prune.masks.CRITERIA`): each variant named by a criterion keeps, per
  layer, the surviving weights that score highest under it (scored from its own previous level's
  start and end weights, as Zhou et al.'s iterative runs; ``strategy = 'one_shot'`` scores the dense
  network's instead), rewound to the dense network's initialisation w_0, pruned weights zero.
  ``large_final`` is IMP's ticket.
- **Kept weights** (``treatments`` reinit / reshuffle / signed_constant) and **pruned weights**
  (``frozen_init``), each on the large-final mask of its own chain: reinit draws fresh weights
  (IMP's reinit control; Zhou's code shuffles the whole layer's init, the same distribution);
  reshuffle permutes w_0's kept values among the kept positions of each layer; signed_constant is
  sign(w_0) times the std of the layer's w_0 (Zhou's ``signed_constant``); frozen_init keeps
  the pruned weights at w_0, never trained (Zhou's ``freeze_init``; `lth.nets.offsets`).
- **Supermasks**: (1) ``untrained``: one-shot masks of every criterion on w_0 (weights w_0, or their
  signed constant), evaluated without any training (Zhou's ``get_init_loss_train_lottery.py``);
  their rows have control ``untrained:<criterion>:<weights>``, iteration 0. (2) ``supermask``:
  Zhou's learned supermask: Bernoulli(sigmoid(score)) masks trained over frozen Glorot-normal or
  Glorot signed-constant weights (`lth.nets.bernoulli`), control ``supermask:<weight init>``,
  trained with ``supermask/TrainConfig`` (the lottery training with ``lottery/TrainConfig``). Every
  trained network's iteration-0 evaluation is also its untrained accuracy under its mask.

Jobs: ``level_00`` (the dense networks), ``untrained`` (evaluation only, own done marker),
``level_LL`` for each level (every variant of every trial in one stack), ``supermask``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from lth import validate as v
from lth.data import derive_seed, steps_per_epoch
from lth.experiments.imp import ImpPlan, choose
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.experiments.strong import mask_meta_rows
from lth.nets import offsets, supermask
from lth.nets.models import prunable_weights
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.prune.masks import CRITERIA, check_criterion, criterion_masks
from lth.schema import Member, metric_rows
from lth.train.evaluate import evaluate
from lth.train.loop import History

DENSE = "dense"
TREATMENTS = ("reinit", "reshuffle", "signed_constant", "frozen_init")
TREATED_CRITERION = "large_final"   # the mask every treatment is applied to
UNTRAINED_WEIGHTS = ("init", "signed_constant")
SUPERMASK_WEIGHTS = ("glorot_normal", "glorot_signed_constant")
SUPERMASK_ROLE = "supermask"
# The lottery training's TrainConfig is bound in its own scope, so a profile can shorten it for this kind
# alone (``lottery/TrainConfig.*``); unscoped TrainConfig bindings (the recipe's) apply to it as well.
LOTTERY_ROLE = "lottery"
STRATEGIES = ("iterative", "one_shot")


def untrained_control(criterion: str, weights: str) -> str:
    return f"untrained:{criterion}:{weights}"


def supermask_control(weight_init: str) -> str:
    return f"supermask:{weight_init}"


@dataclass(frozen=True)
class DeconstructConfig:
    """Zhou et al.'s deconstruction of lottery tickets.

    Attributes:
        experiment: run name (default ``"deconstruct"``).
        dataset, synthetic_shape, model, model_kwargs, init, trials, levels, densities, rates, scope,
            seed, split_seed, layer_collapse_ok: as `lth.experiments.imp.ImpConfig` (default LeNet-300-100
            on MNIST, Glorot normal, 1 trial, 20 levels at fc 20% / output 10% per level, layerwise).
        strategy: ``iterative`` (each variant prunes its own previous level, Zhou's protocol; default) or
            ``one_shot`` (every level scores the dense network).
        criteria: mask criteria trained, any of `lth.prune.masks.CRITERIA` (default all).
        treatments: variants on the large-final mask, any of reinit, reshuffle, signed_constant (kept
            weights), frozen_init (pruned weights) (default all).
        untrained_weights: weights of the untrained one-shot masks, any of init, signed_constant
            (default both; () skips the evaluation).
        supermask_weights: frozen weights of the learned Bernoulli supermask, any of glorot_normal,
            glorot_signed_constant (default both; () trains none).
    """
    experiment: str = "deconstruct"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    trials: int = 1
    levels: int = 20
    densities: tuple = ()
    rates: dict = field(default_factory=lambda: {"fc": 0.2, "output": 0.1})
    scope: str = "layerwise"
    strategy: str = "iterative"
    criteria: tuple = CRITERIA
    treatments: tuple = TREATMENTS
    untrained_weights: tuple = UNTRAINED_WEIGHTS
    supermask_weights: tuple = SUPERMASK_WEIGHTS
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = False

    def __post_init__(self):
        check_common(self)
        v.integer(self, "levels", minimum=0)
        v.items(self, "densities", each=pruning.validate_density)
        if any(b >= a for a, b in zip(self.densities, self.densities[1:])):
            v.fail(self, "densities", "fractions of weights kept, strictly decreasing (e.g. (0.5, 0.2, 0.1))")
        v.rates(self)
        v.choice(self, "scope", pruning.SCOPES)
        choose("strategy", self.strategy, STRATEGIES)
        for name, valid, what in (("criteria", CRITERIA, "mask criterion"), ("treatments", TREATMENTS, "treatment"),
                                  ("untrained_weights", UNTRAINED_WEIGHTS, "untrained weights"),
                                  ("supermask_weights", SUPERMASK_WEIGHTS, "supermask weight init")):
            v.items(self, name, distinct=True, each=lambda item, valid=valid, what=what: choose(what, item, valid))
        if self.treatments and TREATED_CRITERION not in self.criteria:
            v.fail(self, "treatments", f"() unless criteria include {TREATED_CRITERION!r} (the mask they treat)")


class DeconstructPlan(ImpPlan):
    """IMP's plan (model, ladder, targets) with Zhou et al.'s variants as the members of a level."""
    train_role = LOTTERY_ROLE

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        cfg = ctx.config
        self.variants = [*cfg.criteria, *cfg.treatments]
        self.frozen = "frozen_init" in cfg.treatments
        self.kinds = list(prunable_weights(self.model(0)))

    def members(self, level: int) -> list[Member]:
        if level == 0:
            return [Member(t, 0, DENSE) for t in self.ctx.trials]
        return [Member(t, level, c) for c in self.variants for t in self.ctx.trials]

    def level_job(self, level: int) -> Job:
        ctx, members = self.ctx, self.members(level)
        return Job(key=f"level_{level:02d}", members=members, build=lambda: self.stack(level, members),
                   train_cfg=ctx.trains[LOTTERY_ROLE], data_seeds=[ctx.data_seed(m.trial) for m in members],
                   after=lambda stack, history, snapshot: self.state(level, stack),
                   labels=[m.label() for m in members])

    def state(self, level: int, stack: NetworkStack) -> dict:
        """Level 0: the dense networks' final state and init. Later levels: each member's final
        prunable weights and masks (what the next level's criteria score)."""
        if level == 0:
            return {"final": stack.select(range(stack.size)), "init": self._init}
        return {"final": {"params": {n: stack.params[n].detach().clone() for n in stack.kinds},
                          "masks": {n: m.bool() for n, m in stack.masks.items()}}}

    def template(self) -> torch.nn.Module:
        model = self.model(0)
        return (offsets.with_offsets(model) if self.frozen else model).to("meta")

    # ---- building a level ------------------------------------------------------------------
    def _previous(self, level: int, member: Member) -> tuple[dict, dict]:
        """(final weights, masks) of the network this member prunes: its own variant one level up
        (iterative) or the dense network of its trial (one-shot, and level 1)."""
        ctx = self.ctx
        if level == 1 or ctx.config.strategy == "one_shot":
            dense, p = ctx.state("level_00")["final"], ctx.trials.index(member.trial)
            return ({n: dense["params"][n][p:p + 1] for n in self.kinds},
                    {n: dense["masks"][n][p:p + 1] for n in self.kinds})
        previous = ctx.state(f"level_{level - 1:02d}")["final"]
        p = self.members(level - 1).index(Member(member.trial, level - 1, member.control))
        return ({n: t[p:p + 1] for n, t in previous["params"].items()},
                {n: t[p:p + 1] for n, t in previous["masks"].items()})

    def _generator(self, *parts) -> torch.Generator:
        return torch.Generator(device=self.ctx.device).manual_seed(derive_seed(*parts, self.ctx.config.seed))

    def mask(self, level: int, member: Member) -> dict[str, torch.Tensor]:
        criterion = member.control if member.control in CRITERIA else TREATED_CRITERION
        final, alive = self._previous(level, member)
        init = self.dense_init(member.trial)["params"]
        generator = self._generator("criterion", criterion, member.trial, level) if criterion == "random" else None
        return criterion_masks(criterion, {n: init[n] for n in final}, final, alive, self.targets[level], generator)

    def dense_init(self, trial: int) -> dict:
        init, p = self.ctx.state("level_00")["init"], self.ctx.trials.index(trial)
        return {g: {n: t[p:p + 1] for n, t in init[g].items()} for g in ("params", "buffers")}

    def weights(self, level: int, member: Member, mask: dict[str, torch.Tensor]) -> dict:
        """The member's starting params and buffers: w_0 treated as its variant says."""
        w0 = self.dense_init(member.trial)
        params, buffers = dict(w0["params"]), dict(w0["buffers"])
        if member.control == "reinit":
            fresh = NetworkStack.from_models([self.model(self.init_seed(Member(member.trial, level, "reinit")))])
            params = {n: t.detach().to(self.ctx.device) for n, t in fresh.params.items()}
        elif member.control == "reshuffle":
            generator = self._generator("reshuffle", member.trial, level)
            params.update({n: reshuffled(params[n], mask[n], generator) for n in mask})
        elif member.control == "signed_constant":
            params.update({n: signed_constant(params[n]) for n in mask})
        if self.frozen:
            frozen = offsets.frozen_offsets(w0["params"], mask) if member.control == "frozen_init" else \
                {offsets.offset_key(n): torch.zeros_like(t) for n, t in mask.items()}
            buffers.update(frozen)
        return {"params": params, "buffers": buffers}

    def stack(self, level: int, members: list[Member]) -> NetworkStack:
        ctx = self.ctx
        if level == 0:
            stack = NetworkStack.build(self.model, [self.init_seed(m) for m in members], ctx.device)
            self._init = stack.select(range(stack.size))
            return stack
        parts = []
        for member in members:
            mask = self.mask(level, member)
            weights = self.weights(level, member, mask)
            parts.append({"params": {n: t.detach().to(ctx.device) for n, t in weights["params"].items()},
                          "buffers": {n: t.to(ctx.device) for n, t in weights["buffers"].items()},
                          "masks": {n: m.to(ctx.device, torch.float32) for n, m in mask.items()}})
        stack = NetworkStack.from_states(self.template(), parts)
        pruning.check_density(stack.masks, self.targets[level])
        return stack

    # ---- the untrained networks under one-shot masks ---------------------------------------
    def untrained(self) -> None:
        """Evaluate every criterion's one-shot mask at every level on w_0 (or its signed constant),
        untrained; rows under the job key ``untrained`` with their own done marker."""
        ctx, cfg, run = self.ctx, self.ctx.config, self.ctx.run
        key = ctx.key("untrained")
        if run.is_done(key):
            return
        dense = ctx.state("level_00")
        rows = []
        for level in range(1, len(self.targets)):
            members, parts = [], []
            for trial in ctx.trials:
                p = ctx.trials.index(trial)
                final = {n: dense["final"]["params"][n][p:p + 1] for n in self.kinds}
                alive = {n: torch.ones_like(t) for n, t in final.items()}
                w0 = self.dense_init(trial)
                for criterion in cfg.criteria:
                    gen = self._generator("untrained", criterion, trial, level) if criterion == "random" else None
                    mask = criterion_masks(criterion, {n: w0["params"][n] for n in final}, final, alive,
                                           self.targets[level], gen)
                    for weights in cfg.untrained_weights:
                        params = dict(w0["params"])
                        if weights == "signed_constant":
                            params.update({n: signed_constant(params[n]) for n in mask})
                        members.append(Member(trial, level, untrained_control(criterion, weights)))
                        parts.append({"params": params, "buffers": w0["buffers"],
                                      "masks": {n: m.to(torch.float32) for n, m in mask.items()}})
            stack = NetworkStack.from_states(self.model(0).to("meta"), parts)
            history = History()  # one evaluation, at iteration 0
            batch = ctx.trains[LOTTERY_ROLE].eval_batch_size
            history.add(0, {f"{name}/{metric}": value for name, split in (("val", ctx.data.val), ("test", ctx.data.test))
                            for metric, value in evaluate(stack, split, batch).items()})
            history.settle()
            rows += metric_rows(cfg.experiment, members, stack.density().tolist(), history)
        run.write_metrics(key, rows)
        run.mark_done(key)

    # ---- Zhou et al.'s learned supermask ------------------------------------------------------
    def supermask_job(self) -> Job:
        ctx, cfg = self.ctx, self.ctx.config
        members = [Member(t, 0, supermask_control(w)) for w in cfg.supermask_weights for t in ctx.trials]
        train_cfg = ctx.trains[SUPERMASK_ROLE]

        def build():  # a trial's two weight inits share one Glorot sample (the signed one keeps its signs)
            models = [supermask.to_supermask(self.model(ctx.init_seed(m.trial)), rule="bernoulli",
                                             seed=ctx.init_seed(m.trial), weight_init=m.control.split(":")[1])
                      for m in members]
            return supermask.SupermaskStack.from_models(models).to(ctx.device)
        return Job(key="supermask", members=members, build=build, train_cfg=train_cfg,
                   data_seeds=[ctx.data_seed(m.trial) for m in members], labels=[m.label() for m in members],
                   extra_rows=lambda stack: mask_meta_rows(stack, steps_per_epoch(len(ctx.data.train),
                                                                                  train_cfg.batch_size)))


def reshuffled(w0: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(M, *shape): per network, ``w0``'s values at the kept positions of ``mask`` permuted among those
    positions (Zhou et al.'s ``random_reshuffle``); pruned positions keep ``w0`` (the mask zeroes them)."""
    out = w0.detach().clone()
    for i in range(w0.shape[0]):
        keep = mask[i].bool()
        values = w0[i][keep]
        perm = torch.randperm(values.numel(), generator=generator, device=generator.device).to(values.device)
        out[i][keep] = values[perm]
    return out


def signed_constant(w0: torch.Tensor) -> torch.Tensor:
    """(M, *shape): sign(w0) times the std of each network's whole layer ``w0`` (Zhou et al.'s
    ``signed_constant``: np.std of the layer's initial weights)."""
    std = w0.detach().flatten(1).std(dim=1, unbiased=False)
    return w0.detach().sign() * std.view(-1, *[1] * (w0.dim() - 1))


def jobs(ctx: Context) -> Iterator[Job]:
    plan = DeconstructPlan(ctx)  # validates the ladder before any training
    yield plan.level_job(0)
    if ctx.config.untrained_weights and ctx.config.criteria and len(plan.targets) > 1:
        yield Job(key="untrained", compute=plan.untrained)
    for level in range(1, len(plan.targets)):
        if plan.variants:
            yield plan.level_job(level)
    if ctx.config.supermask_weights:
        yield plan.supermask_job()


def _operative(config: DeconstructConfig, trains) -> str:
    roles = {LOTTERY_ROLE: f"{LOTTERY_ROLE}/",
             **({SUPERMASK_ROLE: f"{SUPERMASK_ROLE}/"} if config.supermask_weights else {})}
    return operative_text(config, trains, roles)


def _manifest(ctx: Context) -> dict:
    plan = DeconstructPlan(ctx)
    return {"levels": len(plan.targets), "densities": plan.densities(), "variants": plan.variants}


KIND = register(Kind("deconstruct", DeconstructConfig, (LOTTERY_ROLE, SUPERMASK_ROLE), jobs, _operative, manifest=_manifest))
