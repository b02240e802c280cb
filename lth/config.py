"""The only module that touches gin: named recipes in ``lth/recipes/``, profiles that scale them,
clear errors for bad bindings, and `load_recipe`, which returns a typed `Recipe` (kind, config
dataclass, train configs by role, operative text). Everything below receives its config as an
argument; the config dataclasses are plain frozen dataclasses that this module registers with gin."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gin

from lth.experiments import kinds
from lth.experiments.registry import Kind
from lth.paths import RECIPES
from lth.train.config import TrainConfig

PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A config file or binding that gin cannot apply."""


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe.

    kind: the experiment kind's name (`lth.experiments.registry.KINDS`). config: its config
    dataclass as bound. trains: TrainConfig by role (the kind's gin scopes). text: the operative
    config, the run folder's hash is computed from it. profile: the profile applied, or None.
    recipe_config: the config as the recipe alone binds it (no profile, no bindings: the paper's data set)."""
    kind: str
    config: Any
    trains: dict
    text: str
    profile: str | None = None
    recipe_config: Any = None

    @property
    def spec(self) -> Kind:
        return kinds()[self.kind]


def _register() -> dict[type, Any]:
    """gin configurables for every kind's config class and TrainConfig: class -> what gin calls."""
    out = {}
    for cls in [TrainConfig, *(k.config for k in kinds().values())]:
        if cls in out:
            continue
        try:
            out[cls] = gin.external_configurable(cls, name=cls.__name__)
        except ValueError:  # already decorated where it is defined
            out[cls] = cls
    return out


_CONFIGURABLES = _register()


def recipes() -> list[str]:
    return sorted(p.name[:-4] for p in RECIPES.iterdir() if p.name.endswith(".gin"))


def resolve(config: str | Path) -> Path:
    """A path to a .gin file, or the name of a recipe in lth/recipes (e.g. 'lth_lenet300')."""
    path = Path(config)
    if path.suffix == ".gin" and path.exists():
        return path
    named = RECIPES / f"{config}.gin"
    if named.is_file():
        return Path(str(named))
    raise ConfigError(f"no gin config {str(config)!r}: not a file, and not one of the recipes in "
                      f"lth/recipes: {', '.join(recipes())}")


def profile_path(profile: str) -> Path:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return Path(str(RECIPES / "profiles" / f"{profile}.gin"))


def load(configs: Sequence[str | Path], *, profile: str | None = None, bindings: Sequence[str] = ()) -> None:
    """Clear gin, then apply the configs, the profile and the bindings in that order (later wins).

    Each piece is parsed on its own, so an error names the file or the binding at fault."""
    gin.clear_config()
    files = [resolve(c) for c in configs] + ([profile_path(profile)] if profile else [])
    for path in files:
        _parse(lambda: gin.parse_config_file(str(path)), f"in {path}")
    for binding in bindings:
        _parse(lambda: gin.parse_config(binding), f"in binding {binding!r}")


def load_recipe(configs: str | Path | Sequence[str | Path], profile: str | None = None,
                bindings: Sequence[str] = (), kind: str | None = None) -> Recipe:
    """Load recipes (names in lth/recipes or .gin paths), a profile and bindings into a `Recipe`.

    The kind is the one whose config the recipes bind (by its ``experiment``); IMP when none does.
    ``kind``: the kind the caller runs (e.g. a notebook's 'imp'): a recipe of another kind is refused.
    Raises ConfigError for a file or binding gin cannot apply, for recipes of several kinds, for a
    binding of another kind's config, or for a recipe not of ``kind``; ValueError for a bad value (named)."""
    configs = [configs] if isinstance(configs, (str, Path)) else list(configs)
    load(configs)
    check_kinds(configs, bindings, None)  # recipes of several kinds: named before gin's own complaint
    kind_found = bound_kind()
    check_kinds(configs, bindings, kind_found, expected=kind)
    kind = kind_found
    recipe_config = _build(kind.config)
    load(configs, profile=profile, bindings=bindings)
    config = _build(kind.config)
    trains = {role: _build(TrainConfig, role) for role in kind.roles}
    return Recipe(kind.name, config, trains, kind.operative(config, trains), profile, recipe_config)


def kind_of_recipe(config: str | Path) -> str | None:
    """The kind a recipe file is of: the kind whose config class it binds (IMP: ImpConfig); None for a
    file that binds only TrainConfig (it can join a recipe of any kind)."""
    found = sorted(_kinds_named(resolve(config).read_text(encoding="utf-8")))
    return found[0] if len(found) == 1 else (", ".join(found) or None)


def _kinds_named(text: str) -> set[str]:
    """Kinds whose config class a gin text binds (``[scope/]ClassName.field = ...``, comments skipped)."""
    by_class = {k.config.__name__: k.name for k in kinds().values()}
    named = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for match in re.finditer(r"(?:^|[\s/])(\w+)\.\w+\s*=", line):
            if match.group(1) in by_class:
                named.add(by_class[match.group(1)])
    return named


def binds_other_kind(binding: str, kind: str) -> bool:
    """Whether a binding sets the config of a kind other than ``kind`` (e.g. 'PaiConfig.trials = 2' for 'imp')."""
    return bool(_kinds_named(binding) - {kind})


def check_kinds(configs: Sequence[str | Path], bindings: Sequence[str], kind: Kind | None,
                expected: str | None = None) -> None:
    """ConfigError unless every recipe file and binding is of one kind (``kind``, the one loaded; None:
    check the files only), and that kind is ``expected`` (when given). The message names the files and
    their kinds."""
    per_file = {str(c): _kinds_named(resolve(c).read_text(encoding="utf-8")) for c in configs}
    of_files = set().union(*per_file.values()) if per_file else set()
    if len(of_files) > 1:
        described = "; ".join(f"{c}: {', '.join(sorted(k)) or 'any kind'}" for c, k in per_file.items())
        raise ConfigError(f"recipes of different experiment kinds given together ({described}); "
                          f"run one kind at a time, e.g. `python -m lth run {next(iter(per_file))}`")
    if kind is None:
        return
    for binding in bindings:
        other = _kinds_named(binding) - {kind.name}
        if other:
            raise ConfigError(f"binding {binding!r} sets a {', '.join(sorted(other))} config, but the recipe is of "
                              f"kind {kind.name} (its config is {kind.config.__name__}); bind "
                              f"{kind.config.__name__}.<field> instead")
    if expected is not None and kind.name != expected:
        names = [r for r in recipes() if kind_of_recipe(r) == expected]
        raise ConfigError(f"recipe {', '.join(map(str, configs))} is of kind {kind.name}, but this runs {expected} "
                          f"experiments; use a recipe of kind {expected}" + (f": {', '.join(names)}" if names else ""))


def describe_recipe(config: str | Path) -> str:
    """The first comment line of a recipe file (its one-line description), '' if it has none."""
    for line in resolve(config).read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip().rstrip(",:;")
        if line.strip():
            break
    return ""


def bound_kind() -> Kind:
    """The kind whose config the loaded gin files bind (its ``experiment``); IMP when none does
    (profiles bind every kind's fields, never the experiment)."""
    found = [k for k in kinds().values() if k.name != "imp" and _binds(f"{k.config.__name__}.experiment")]
    if len(found) > 1:
        raise ConfigError(f"the recipe binds the experiment of several kinds: {', '.join(k.name for k in found)}")
    return found[0] if found else kinds()["imp"]


def _build(cls: type, scope: str = ""):
    """An instance of ``cls`` as gin binds it in ``scope`` ("" for none)."""
    make = _CONFIGURABLES[cls]
    try:
        if scope:
            with gin.config_scope(scope):
                made = make()
        else:
            made = make()
    except ValueError as err:  # the dataclass's own one line, without gin's "In call to configurable" note
        raise ValueError(str(err).split("\n  In call to configurable")[0].strip()) from None
    return cls(**{f.name: getattr(made, f.name) for f in dataclasses.fields(cls)}) if type(made) is not cls else made


def _binds(parameter: str) -> bool:
    try:
        gin.query_parameter(parameter)
    except ValueError:
        return False
    return True


def _parse(parse, where: str) -> None:
    try:
        parse()
    except (ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ConfigError(f"bad gin config {where}: {err}\nconfigurables and their parameters:\n"
                          f"{configurables_help()}") from err


def configurables_help() -> str:
    return "\n".join(f"  {cls.__name__}: {', '.join(f.name for f in dataclasses.fields(cls))}" for cls in _CONFIGURABLES)
