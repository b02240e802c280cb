"""The user's own models: any ``nn.Module`` factory, registered by name, runs IMP, pruning at
initialisation and their controls like the built-in models of `lth.nets.models`.

    import lth
    lth.register_model("my_mlp", lambda input_shape, num_classes: MyMLP(input_shape, num_classes))
    # then ImpConfig(model="my_mlp", ...), or `ImpConfig.model = 'my_mlp'` in a gin recipe

A gin recipe may also import the module that registers it (``import my_package.models``) or pass the
factory itself (``ImpConfig.model = @my_mlp`` after ``gin.external_configurable(my_mlp)``): a callable
model is registered under its function name, which is what the run folder's hash sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from lth.nets.models import _BUILDERS, _REGISTERED, MODELS

__all__ = ["check_model_kwargs", "model_name", "model_names", "register_model"]


def register_model(name: str, factory: Callable[..., nn.Module] | None = None):
    """Make ``factory`` a model named ``name``: IMP, pruning at initialisation and their controls then
    run on it wherever a model is named (``ImpConfig.model``, ``PaiConfig.model``, gin recipes,
    `build_model`, ``lth.load_ticket``). Returns ``factory``; without one, a decorator.

    ``factory`` is called with keyword arguments only: the config's ``model_kwargs``, plus
    ``input_shape`` ((C, H, W) ints) and ``num_classes`` (int) where its signature names them. It
    returns an ``nn.Module`` from (B, C, H, W) inputs to (B, num_classes) logits whose forward runs
    under ``torch.func.vmap`` (no ``.item()``, no branch on data values). Its prunable weights are
    the weights of its ``nn.Linear`` and ``nn.Conv2d`` layers, with kinds as `prunable_weights`;
    BatchNorm statistics are buffers of each network, as in every stack. Registering a name again
    replaces its factory (a rerun notebook cell). Runs are stored by the model's name, not its code:
    give a changed architecture a new name.

    Raises ValueError for a name that is not a non-empty identifier-like string or is a built-in
    model's, TypeError for a factory that is not callable."""
    if factory is None:
        return lambda f: register_model(name, f)
    if not isinstance(name, str) or not name.strip() or any(c.isspace() or c in "'\"/" for c in name):
        raise ValueError(f"model name {name!r}: must be a non-empty string without spaces, quotes or '/'")
    if name in _BUILDERS:
        raise ValueError(f"model name {name!r} is a built-in model's; built-in: {', '.join(MODELS)}")
    if not callable(factory):
        raise TypeError(f"model factory for {name!r} must be callable (a function or class returning an "
                        f"nn.Module), got {type(factory).__name__} {factory!r}")
    _REGISTERED[name] = factory
    return factory


def model_names() -> tuple[str, ...]:
    """The built-in models, then the registered ones."""
    return MODELS + tuple(n for n in _REGISTERED if n not in _BUILDERS)


def model_name(model: str | Callable[..., nn.Module]) -> str:
    """A config's ``model`` as a name: a string as it is; a callable (e.g. gin's ``@my_mlp``)
    registered under its function name (``__name__``). Raises ValueError for a callable without a
    usable name (a lambda) or one whose name another function already holds, TypeError for anything else."""
    if isinstance(model, str):
        return model
    if not callable(model):
        raise TypeError(f"model must be a name or a callable returning an nn.Module, got {type(model).__name__}")
    target = inspect.unwrap(model)
    name = getattr(target, "__name__", "")
    if not name.isidentifier():
        raise ValueError(f"model factory {model!r} has no usable name ({name!r}); register it with "
                         "lth.register_model(name, factory) and name it in the config")
    held = inspect.unwrap(_REGISTERED.get(name, target))
    if (held.__module__, held.__qualname__) != (target.__module__, target.__qualname__):
        raise ValueError(f"model name {name!r} is already registered for {held.__module__}.{held.__qualname__}; "
                         f"register {target.__module__}.{target.__qualname__} under another name with "
                         "lth.register_model(name, factory)")
    register_model(name, model)
    return name


def check_model_kwargs(name: str, kwargs: dict) -> None:
    """TypeError unless registered model ``name``'s factory accepts ``kwargs`` (by its signature)."""
    try:
        signature = inspect.signature(_REGISTERED[name])
    except (TypeError, ValueError):  # no signature to read (some builtins): the call will tell
        return
    signature.bind_partial(**kwargs)
