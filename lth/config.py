"""gin configs: named recipes in ``lth/recipes/``, profiles that scale them, and clear errors for bad bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import gin

from lth.paths import RECIPES

PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A config file or binding that gin cannot apply."""


def recipes() -> list[str]:
    return sorted(p.name[:-4] for p in RECIPES.iterdir() if p.name.endswith(".gin"))


def resolve(config: str | Path) -> Path:
    """A path to a .gin file, or the name of a recipe in gin/ (e.g. 'lth_lenet300')."""
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
    import lth.experiments.imp  # noqa: F401  (registers the configurables before parsing)
    import lth.experiments.pai  # noqa: F401  (PaiConfig: the profiles bind it too)
    import lth.experiments.subsetsum  # noqa: F401  (SubsetSumConfig: the profiles bind it too)
    import lth.experiments.strong  # noqa: F401  (the strong-ticket configs: the profiles bind them too)
    gin.clear_config()
    files = [resolve(c) for c in configs] + ([profile_path(profile)] if profile else [])
    for path in files:
        _parse(lambda: gin.parse_config_file(str(path)), f"in {path}")
    for binding in bindings:
        _parse(lambda: gin.parse_config(binding), f"in binding {binding!r}")


def _parse(parse, where: str) -> None:
    try:
        parse()
    except (ValueError, SyntaxError, KeyError, TypeError) as err:
        raise ConfigError(f"bad gin config {where}: {err}\nconfigurables and their parameters:\n"
                          f"{configurables_help()}") from err


def configurables_help() -> str:
    import dataclasses
    from lth.experiments.imp import ImpConfig
    from lth.experiments.pai import PaiConfig
    from lth.experiments.strong import SCOPES
    from lth.experiments.subsetsum import SubsetSumConfig
    from lth.train.loop import TrainConfig
    return "\n".join(f"  {cls.__name__}: {', '.join(f.name for f in dataclasses.fields(cls))}"
                     for cls in (ImpConfig, PaiConfig, *SCOPES, SubsetSumConfig, TrainConfig))
