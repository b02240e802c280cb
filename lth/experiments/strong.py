"""What the strong-ticket kinds share (`edgepopup`, `pensia`, `gem_miner`, `train_ticket`):
their train-config roles and operative text, the stack builders, the rows they add, the control names.

Each kind lists jobs, one stack each (every density and trial of a sweep together). Rows are IMP's
tidy rows with ``experiment`` = the network (e.g. ``lenet300``), ``control`` = the method or variant,
``level`` = the index of the target density; split ``mask`` holds per-layer densities and split
``meta`` the number of scored weights and the iterations per epoch. Score networks train with
``<scope>/TrainConfig`` (role ``<scope>``), weight-trained networks (dense baselines, fine-tuning)
with ``<scope>_weights/TrainConfig`` (role ``<scope>_weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

from lth.data import steps_per_epoch
from lth import validate as v
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets import supermask
from lth.nets.papers import seeded
from lth.nets.stack import NetworkStack
from lth.prune import targets as pruning
from lth.schema import MASK_SPLIT, META_SPLIT, Member
from lth.train.config import TrainConfig

DENSE = "dense"   # control of the weight-trained baselines
GEM_BEFORE_FINETUNE = "gem_miner_scores"
GEM = "gem_miner"
SANITY_CHECKS = ("shuffle", "reinit", "invert")


def validate_common(config) -> None:
    """The fields every strong kind shares (`lth.experiments.registry.check_common`)."""
    check_common(config)


def validate_densities(densities) -> None:
    if isinstance(densities, (str, bytes)) or not isinstance(densities, (tuple, list)) or not densities:
        raise ValueError(f"densities = {densities!r}: must be a tuple of at least one density (fraction of weights "
                         "kept, in (0, 1]), e.g. (0.5, 0.1)")
    for density in densities:
        pruning.validate_density(density)


def validate_names(config, name: str, valid, what: str) -> None:
    """A tuple field whose items are each one of ``valid`` (not empty)."""
    v.items(config, name, empty=False, each=lambda item: v.choice(config, name, valid, item, what=what))


def operative(scope: str, weights_role: bool = True) -> Callable[[object, Mapping[str, TrainConfig]], str]:
    """The operative text of a strong kind: its config, ``<scope>/TrainConfig`` and (where it trains
    something) ``<scope>_weights/TrainConfig``."""
    roles = {scope: f"{scope}/", **({f"{scope}_weights": f"{scope}_weights/"} if weights_role else {})}
    return lambda config, trains: operative_text(config, trains, roles)


def register_strong(name: str, config: type, jobs, weights_role: bool = True) -> Kind:
    roles = (name, f"{name}_weights") if weights_role else (name,)
    return register(Kind(name, config, roles, jobs, operative(name, weights_role),
                         manifest=lambda ctx: {"groups": [job.key for job in jobs(ctx)]}))


def sweep(trials: Sequence[int], densities: Sequence[float], control: str) -> tuple[list[Member], list[float]]:
    """Members trial-minor, density-major, and each member's target density."""
    members = [Member(t, level, control) for level in range(len(densities)) for t in trials]
    return members, [densities[m.level] for m in members]


def job(ctx: Context, key: str, network: str, members: Sequence[Member], densities: Sequence[float],
        role: str, build: Callable[[], NetworkStack], plain: tuple[str, dict, str] | None = None, **extra) -> Job:
    """A strong-ticket job: rows named by the network, with mask and meta rows. ``plain`` = (model,
    model_kwargs, weight_init) of a supermask job: its state (`ticket_record`, entry ``ticket``) is
    kept, so that `lth.tickets` can export each network as seeds and a mask."""
    train_cfg = ctx.trains[role]
    if plain is not None and "after" not in extra:
        extra["after"] = lambda stack, history, snapshot: {"ticket": ticket_record(ctx, stack, members, network, plain)}
    labels = [f"{network} {m.control} trial {m.trial} density {d:g}" for m, d in zip(members, densities)]
    return Job(key=key, members=list(members), build=build, train_cfg=train_cfg, experiment=network,
               data_seeds=[ctx.data_seed(m.trial) for m in members], labels=labels,
               extra_rows=lambda stack: mask_meta_rows(stack, steps_per_epoch(len(ctx.data.train), train_cfg.batch_size)),
               **extra)


def ticket_record(ctx: Context, stack: supermask.SupermaskStack, members: Sequence[Member], network: str,
                  plain: tuple[str, dict, str]) -> dict:
    """The final supermasks of a job as `lth.tickets.export_ticket` reads them from its checkpoint:
    `lth.nets.supermask.portable_state` (masks, seeds, the other tensors), the members (trial, level,
    control, replicate per row), the network's name, the `lth.nets.models.build_model` model and
    kwargs of its architecture, the frozen weights' init, the data set and its (C, H, W) and classes."""
    model, model_kwargs, weight_init = plain
    return {**supermask.portable_state(stack, weight_init), "members": [[m.trial, m.level, m.control, m.replicate] for m in members],
            "network": network, "model": model, "model_kwargs": dict(model_kwargs), "weight_init": weight_init,
            "dataset": ctx.config.dataset, "input_shape": list(ctx.data.input_shape),
            "num_classes": int(ctx.data.num_classes)}


def mask_meta_rows(stack: NetworkStack, per_epoch: int) -> list[dict]:
    """Per network: each layer's density (`MASK_SPLIT`), the scored weights and the iterations per epoch (`META_SPLIT`)."""
    layers = stack.layer_densities()
    scored_masks = isinstance(stack, supermask.SupermaskStack) and supermask.scored_layers(stack.template)
    masks = stack.layer_masks() if scored_masks else stack.masks
    scored = sum(m[0].numel() for m in masks.values())
    rows = []
    for i in range(stack.size):
        rows += [{"member": i, "iteration": 0, "split": MASK_SPLIT, "metric": name, "value": float(values[i])}
                 for name, values in layers.items()]
        rows.append({"member": i, "iteration": 0, "split": META_SPLIT, "metric": "scored_weights", "value": scored})
        rows.append({"member": i, "iteration": 0, "split": META_SPLIT, "metric": "steps_per_epoch", "value": per_epoch})
    return rows


def supermask_stack(ctx: Context, make: Callable[[int], nn.Module], trials_densities: Sequence[tuple[int, float]],
                    **convert) -> supermask.SupermaskStack:
    """One supermask network per (trial, density): a trial's networks share weights and scores."""
    models = [supermask.to_supermask(seeded(lambda: make(t), ctx.init_seed(t)), seed=ctx.init_seed(t),
                                     density=d, **convert) for t, d in trials_densities]
    return supermask.SupermaskStack.from_models(models).to(ctx.device)


def dense_stack(ctx: Context, make: Callable[[int], nn.Module], trials: Sequence[int], **convert) -> NetworkStack:
    """Weight-trained baselines; ``convert`` (e.g. frozen convs) goes through `to_supermask`."""
    models = []
    for t in trials:
        model = seeded(lambda: make(t), ctx.init_seed(t))
        if convert:
            model = supermask.to_supermask(model, seed=ctx.init_seed(t), **convert)
        models.append(model)
    cls = supermask.SupermaskStack if convert else NetworkStack
    return cls.from_models(models).to(ctx.device)
