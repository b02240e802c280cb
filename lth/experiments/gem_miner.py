"""Gem-Miner (Sreenivasan et al.) as a kind: bounded scores, L2 on scores, iterative freezing
(job ``gem_miner_scores``), then fine-tuning with the mask fixed (job ``finetune``), with the
sanity checks (layerwise shuffle, weight reinit, score inversion) fine-tuned alike.

Freezing follows the official code's schedule (`lth.nets.freezing.freezing_schedule`: the last
freeze one period before the end of mining). A freeze changes every network, so the BatchNorm
running statistics gathered under the old mask no longer fit: after each freeze, and before the
mined mask's final evaluation, they are recomputed on ``bn_examples`` training examples
(`lth.train.interpolate.recompute_batchnorm`); a mask evaluated with stale statistics can score
chance although it is accurate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from lth import validate as v
from lth.data import derive_seed
from lth.experiments.registry import Kind, operative_text, register
from lth.experiments.runner import Context, Job
from lth.experiments.strong import (GEM, GEM_BEFORE_FINETUNE, SANITY_CHECKS, job, supermask_stack, ticket_record,
                                    validate_common)
from lth.nets import supermask
from lth.nets.controls import fixed_mask_state, inverted_masks, reseeded_weights, shuffled_masks
from lth.nets.freezing import freeze_lowest, freezing_schedule
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.schema import Member
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.interpolate import recompute_batchnorm

SCORES_STATE = "scores_final"   # the checkpoint of the trained scores, which fine-tuning starts from


@dataclass(frozen=True)
class GemMinerConfig:
    """Gem-Miner.

    Attributes:
        experiment: run name (default ``"strong_gem_miner"``).
        dataset: as ImpConfig (default ``"fashion_mnist"``; CIFAR-10 is the paper's, see the recipe);
            synthetic_shape: (C, H, W) of synthetic data (default (3, 32, 32)).
        model: a `lth.nets.models` name, without biases (default ``"resnet20"``).
        density: fraction kept in (0, 1] (default 0.0372: Rare Gems' "sparsity" 3.72 % kept).
        l2: lambda of lambda * ||p||^2 on the scores, >= 0 (default 3e-5; applied as SGD weight decay 2 * lambda).
        freeze_period: T, scores are frozen every T (``'5ep'`` default, or iterations) strictly before the end of
            mining (`lth.nets.freezing.freezing_schedule`); a multiple of the evaluation interval, shorter than mining.
        bn_examples: training examples (a seeded sample; 0: all) on which BatchNorm statistics are recomputed
            after each freeze and before the mined mask's final evaluation, >= 0 (default 10000).
        weight_init: the frozen weights, one of `lth.nets.supermask.WEIGHT_INITS` (default signed_constant).
        controls: sanity checks, any of shuffle, reinit, invert (default all).
        trials: >= 1 (default 1); seed, split_seed: as ImpConfig (default 0).
        layer_collapse_ok: fine-tune networks whose mask keeps no weight of some layer (default False: refuse).
            Hashed only when True.
    """
    experiment: str = "strong_gem_miner"
    dataset: str = "fashion_mnist"
    synthetic_shape: tuple = (3, 32, 32)
    model: str = "resnet20"
    density: float = 0.0372
    l2: float = 3e-5
    freeze_period: str = "5ep"
    bn_examples: int = 10000
    weight_init: str = "signed_constant"
    controls: tuple = SANITY_CHECKS
    trials: int = 1
    seed: int = 0
    split_seed: int = 0
    layer_collapse_ok: bool = field(default=False, metadata={"hashed_when_set": True})

    def __post_init__(self):
        validate_common(self)
        pruning.validate_density(self.density)
        v.number(self, "l2", minimum=0)
        v.steps(self, "freeze_period", minimum=1)
        v.integer(self, "bn_examples", minimum=0)
        v.choice(self, "weight_init", supermask.WEIGHT_INITS, what="weight init")
        v.items(self, "controls", each=lambda c: v.choice(self, "controls", SANITY_CHECKS, c, what="sanity check"))


def score_train(config: GemMinerConfig, trains: Mapping[str, TrainConfig]) -> dict[str, TrainConfig]:
    """The train configs with the L2 on the scores as SGD weight decay: lambda * ||p||^2 has gradient
    2 lambda p, SGD's weight decay 2 lambda, the same update. ValueError where that cannot hold."""
    scores = trains["gem_miner"]
    if scores.weight_decay:
        raise ValueError(f"Gem-Miner's score training takes its L2 from GemMinerConfig.l2, not "
                         f"TrainConfig.weight_decay ({scores.weight_decay}); bind gem_miner/TrainConfig."
                         "weight_decay = 0")
    if scores.optimizer != "sgd":
        raise ValueError("Gem-Miner's L2 on the scores is applied as SGD weight decay: use optimizer 'sgd'")
    return {**trains, "gem_miner": dataclasses.replace(scores, weight_decay=2 * config.l2)}


def operative(config: GemMinerConfig, trains: Mapping[str, TrainConfig]) -> str:
    return operative_text(config, score_train(config, trains),
                          {"gem_miner": "gem_miner/", "gem_miner_weights": "gem_miner_weights/"})


def jobs(ctx: Context) -> Iterator[Job]:
    cfg = ctx.config
    ctx.trains = score_train(cfg, ctx.trains)
    scores_cfg = ctx.trains["gem_miner"]
    steps = scores_cfg.steps(len(ctx.data.train))
    period = ctx.steps_of(cfg.freeze_period, "gem_miner")
    if period < 1 or period % steps.eval_every:
        raise ValueError(f"the freezing period ({cfg.freeze_period} = {period} iterations) must be a "
                         f"positive multiple of the evaluation interval ({steps.eval_every} iterations): "
                         "freezing runs where training calls back, after an evaluation")
    if period >= steps.total:
        raise ValueError(f"the freezing period ({cfg.freeze_period} = {period} iterations) must be shorter than "
                         f"mining ({steps.total} iterations): every freeze comes before the end of mining")
    freezes = dict(freezing_schedule(steps.total, period, cfg.density))
    bn_x = ctx.data.train.sample(cfg.bn_examples, derive_seed("gem_miner_bn", cfg.seed)).x

    with_bn = {"bn_affine": False} if cfg.model.startswith(("resnet", "vgg")) else {}
    plain = (cfg.model, {"bias": False, **with_bn}, cfg.weight_init)  # the architecture of an exported ticket

    def network(trial: int):
        return build_model(cfg.model, ctx.data.input_shape, ctx.data.num_classes, bias=False,
                           init="kaiming_normal", seed=ctx.init_seed(trial), **with_bn)

    def score_stack() -> supermask.SupermaskStack:
        return supermask_stack(ctx, network, [(t, 1.0) for t in ctx.trials], rule="threshold",
                               weight_init=cfg.weight_init)

    def freeze(iteration: int, stack) -> None:
        if iteration in freezes:
            freeze_lowest(stack, freezes[iteration])
            recompute_batchnorm(stack, bn_x, scores_cfg.batch_size)

    def last_evaluation(stack, history, snapshot) -> dict:
        # The mined masks' final numbers, with BatchNorm statistics recomputed under them.
        recompute_batchnorm(stack, bn_x, scores_cfg.batch_size)
        for name, split in (("val", ctx.data.val), ("test", ctx.data.test)):
            for metric, value in evaluate(stack, split, scores_cfg.eval_batch_size).items():
                history.values[f"{name}/{metric}"][-1] = value.detach().float().cpu()
        # fine-tuning starts from the state; `lth.tickets` exports the tickets from its record
        return {**stack.state(), "ticket": ticket_record(ctx, stack, scores_members, cfg.model, plain)}

    def finetune_stack(controls) -> NetworkStack:
        """trials x (Gem-Miner, each sanity check): the mined masks fixed, weights trained."""
        scores = score_stack()
        scores.load_state(ctx.state(SCORES_STATE))
        masks = scores.layer_masks()
        states = []
        for control in controls:
            if control == "shuffle":
                state = fixed_mask_state(scores, shuffled_masks(masks, cfg.seed))
            elif control == "invert":
                state = fixed_mask_state(scores, inverted_masks(scores, masks))
            elif control == "reinit":
                state = fixed_mask_state(
                    scores, masks, reseeded_weights(scores, cfg.seed, cfg.weight_init))
            else:
                state = fixed_mask_state(scores, masks)
            states.append(state)
        return NetworkStack.from_states(network(0).to("meta"), states).to(ctx.device)

    trials, controls = ctx.trials, [GEM, *cfg.controls]
    scores_members = [Member(t, 0, GEM_BEFORE_FINETUNE) for t in trials]
    ft_members = [Member(t, 0, c) for c in controls for t in trials]
    return iter([
        job(ctx, GEM_BEFORE_FINETUNE, cfg.model, scores_members, [cfg.density] * len(trials), "gem_miner",
            score_stack, callbacks=[freeze], after=last_evaluation, state_key=SCORES_STATE),
        job(ctx, "finetune", cfg.model, ft_members, [cfg.density] * len(ft_members), "gem_miner_weights",
            lambda: finetune_stack(controls)),
    ])


KIND = register(Kind("gem_miner", GemMinerConfig, ("gem_miner", "gem_miner_weights"), jobs, operative,
                     manifest=lambda ctx: {"groups": [GEM_BEFORE_FINETUNE, "finetune"]}))
