"""Where `lth` reads and writes, for a source checkout and for an installed wheel alike.

- Recipes and profiles ship inside the package (`lth/recipes/`), read with `importlib.resources`.
- Relative output paths (`runs/`, `figures/`, `report/`) are taken from the *workspace*:
  `$LTH_HOME` if set, else the source checkout this package was imported from (so a notebook
  opened from `notebooks/` and papermill started at the root write the same places), else the
  current folder.
- Data sets: `$LTH_DATA` if set, else `<workspace>/data`, then `~/.cache/lth/data`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

RECIPES = resources.files("lth") / "recipes"


def workspace() -> Path:
    """The folder relative paths are taken from (see the module docstring)."""
    if os.environ.get("LTH_HOME"):
        return Path(os.environ["LTH_HOME"]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


def resolve(path: str | Path) -> Path:
    """``path`` if absolute, else ``path`` inside the workspace."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else workspace() / path


def data_roots() -> list[Path]:
    """The folders searched for data sets, in order."""
    if os.environ.get("LTH_DATA"):
        return [Path(os.environ["LTH_DATA"]).expanduser()]
    return [workspace() / "data", Path.home() / ".cache" / "lth" / "data"]
