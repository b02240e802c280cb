"""Experiment kinds by name. A kind is its config dataclass, the roles of its TrainConfigs (each a
gin scope: "" for IMP, "pai" for pruning at init, ...), a function from a `Context` to jobs
(`lth.experiments.runner.Job`), the operative text its run folder is hashed from, and what it
writes into the manifest. `lth.experiments.runner.Runner` runs any of them; adding a kind is one
`register` call, never a copy of the loop. `lth.experiments.kinds()` lists every kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lth import validate as v
from lth.train.config import TrainConfig

# TrainConfig knobs that change memory or checkpoint cadence but never a result: left out of the hash.
NOT_HASHED_TRAIN = frozenset({"eval_batch_size", "checkpoint_every", "compile"})
# Fields added after runs were stored: hashed only when they differ from these values, so those
# runs keep their folders. A config dataclass field marks itself so with metadata {"hashed_when_set": True}.
HASHED_WHEN_SET_TRAIN = {"precision": "fp32"}


def config_lines(config, skip: frozenset[str] = frozenset()) -> list[str]:
    """``Name.field = repr(value)`` per field, minus ``skip`` and the hashed-when-set fields at their default."""
    name = type(config).__name__
    return [f"{name}.{f.name} = {getattr(config, f.name)!r}" for f in dataclasses.fields(config)
            if f.name not in skip and not (f.metadata.get("hashed_when_set") and getattr(config, f.name) == f.default)]


def train_lines(train_cfg: TrainConfig, prefix: str = "") -> list[str]:
    """``<prefix>TrainConfig.field = repr(value)`` for the fields that change results."""
    return [f"{prefix}TrainConfig.{f.name} = {getattr(train_cfg, f.name)!r}"
            for f in dataclasses.fields(train_cfg) if f.name not in NOT_HASHED_TRAIN
            and getattr(train_cfg, f.name) != HASHED_WHEN_SET_TRAIN.get(f.name, object())]


def operative_text(config, trains: Mapping[str, TrainConfig], roles: Mapping[str, str],
                   skip: frozenset[str] = frozenset()) -> str:
    """The bindings that determine a run's results, as loadable gin text: the config's fields, then
    each hashed role's TrainConfig under its text prefix (``roles``: role -> prefix, in order)."""
    lines = config_lines(config, skip)
    for role, prefix in roles.items():
        lines += train_lines(trains[role], prefix)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Kind:
    """One experiment kind.

    name: the registry key (``imp``, ``pai``, ...). config: its frozen config dataclass.
    roles: TrainConfig roles, each the gin scope it is bound in (the first role sets the
    iteration count reported for the run). jobs: Context -> iterator of Jobs (validates eagerly).
    operative: (config, trains by role) -> the text the run folder is hashed from.
    manifest: Context -> extra manifest fields. shards / data_parallel: whether torchrun may
    spread trials over processes / split each batch over processes."""
    name: str
    config: type
    roles: tuple[str, ...]
    jobs: Callable[[Any], Iterator]
    operative: Callable[[Any, Mapping[str, TrainConfig]], str]
    manifest: Callable[[Any], dict] = field(default=lambda ctx: {})
    shards: bool = False
    data_parallel: bool = False


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"experiment kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


# ---- field checks every kind's config shares (see lth.validate) ----------------------------------

def check_common(config) -> None:
    """The fields most kinds share, those that ``config`` has: experiment, dataset, synthetic_shape,
    trials, seed, split_seed, layer_collapse_ok, model, init, model_kwargs. ValueError naming the
    field, the value and what is valid."""
    from lth.data import DATASETS
    has = lambda name: hasattr(config, name)
    v.text(config, "experiment")
    if "/" in config.experiment or config.experiment.startswith("."):
        v.fail(config, "experiment", "a folder name (no '/', not starting with '.')")
    v.choice(config, "dataset", DATASETS)
    if has("synthetic_shape"):
        shape = config.synthetic_shape
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or len(shape) != 3 or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            v.fail(config, "synthetic_shape", "(C, H, W), three integers >= 1, e.g. (1, 28, 28)")
    if has("trials"):
        v.integer(config, "trials", minimum=1)
    v.seeds(config, *(n for n in ("seed", "split_seed") if has(n)))
    if has("layer_collapse_ok"):
        v.flag(config, "layer_collapse_ok")
    if has("init"):
        from lth.nets.models import INITS
        v.choice(config, "init", INITS)
    if has("model"):
        check_model(config)


def check_model(config) -> None:
    """``model`` is a model name (built in, `lth.nets.models`, or registered,
    `lth.nets.user_models.register_model`) or a factory, which is registered under its function name
    and replaced by that name (what the run folder's hash sees); ``model_kwargs`` (if the config has
    it) are arguments that model takes (a built-in model is tried on the meta device: no memory, no
    time; a registered factory's signature is read)."""
    from lth.nets.user_models import check_model_kwargs, model_name, model_names
    if not isinstance(config.model, str):
        try:
            object.__setattr__(config, "model", model_name(config.model))  # frozen dataclass: its own field
        except (TypeError, ValueError) as err:
            v.fail(config, "model", f"a model name or a named factory ({err})")
    try:
        v.choice(config, "model", model_names())
    except ValueError as err:
        raise ValueError(f"{err}; or a model of your own: lth.register_model(name, factory)") from None
    kwargs = v.mapping(config, "model_kwargs") if hasattr(config, "model_kwargs") else {}
    if not kwargs:
        return
    from lth.nets.models import _BUILDERS
    if config.model not in _BUILDERS:
        try:
            check_model_kwargs(config.model, kwargs)
        except TypeError as err:
            v.fail(config, "model_kwargs", f"arguments that model {config.model!r} takes ({err})")
        return
    import torch
    shape = (3, 32, 32) if str(config.dataset).startswith("cifar") else (1, 28, 28)
    try:
        with torch.device("meta"):
            _BUILDERS[config.model](shape, 10, **kwargs)
    except TypeError as err:
        v.fail(config, "model_kwargs", f"arguments that model {config.model!r} takes ({err})")
