"""gin configs: named recipes in ``gin/``, profiles that scale them, and clear errors for bad bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import gin

REPO_ROOT = Path(__file__).resolve().parents[1]
GIN_DIR = REPO_ROOT / "gin"
PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A config file or binding that gin cannot apply."""


def recipes() -> list[str]:
    return sorted(p.stem for p in GIN_DIR.glob("*.gin"))


def resolve(config: str | Path) -> Path:
    """A path to a .gin file, or the name of a recipe in gin/ (e.g. 'lth_lenet300')."""
    path = Path(config)
    if path.suffix == ".gin" and path.exists():
        return path
    named = GIN_DIR / f"{config}.gin"
    if named.exists():
        return named
    raise ConfigError(f"no gin config {str(config)!r}: not a file, and not one of the recipes in "
                      f"{GIN_DIR}: {', '.join(recipes())}")


def profile_path(profile: str) -> Path:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return GIN_DIR / "profiles" / f"{profile}.gin"


def load(configs: Sequence[str | Path], *, profile: str | None = None, bindings: Sequence[str] = ()) -> None:
    """Clear gin, then apply the configs, the profile and the bindings in that order (later wins).

    Each piece is parsed on its own, so an error names the file or the binding at fault."""
    import lth.imp  # noqa: F401  (registers the configurables before parsing)
    import lth.pai  # noqa: F401  (PaiConfig: the profiles bind it too)
    import lth.subsetsum_experiment  # noqa: F401  (SubsetSumConfig: the profiles bind it too)
    import lth.strong  # noqa: F401  (the strong-ticket configs: the profiles bind them too)
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
    from lth.imp import ImpConfig
    from lth.pai import PaiConfig
    from lth.strong import SCOPES
    from lth.subsetsum_experiment import SubsetSumConfig
    from lth.training import TrainConfig
    return "\n".join(f"  {cls.__name__}: {', '.join(f.name for f in dataclasses.fields(cls))}"
                     for cls in (ImpConfig, PaiConfig, *SCOPES, SubsetSumConfig, TrainConfig))
