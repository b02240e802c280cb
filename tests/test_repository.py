"""What is committed: no path of the machine that wrote a file, and run configs that hash to their names.

Both checks read only the repository (no data, no GPU). The path check needs git (it reads what
`git ls-files` lists) and is skipped without it or outside a git checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Absolute paths of a machine, and the workplace's data folder beside the checkout. Written so that
# this file's own source does not match them.
MACHINE_PATH = re.compile(r"/(?:work|root|tmp|Users)/|/home/\w|\.\./shared")
SHARED = re.compile(r"\.\./shared")
# The CI script runs a clean clone with the shared folder beside it and may name it; nothing else may.
MAY_NAME_SHARED = {".ci/run"}
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pdf", ".pt", ".pth", ".npz", ".npy", ".gz", ".tgz", ".zip", ".whl"}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)


def _tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not available")
    top = _git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.decode().strip()).resolve() != REPO:
        pytest.skip(f"{REPO} is not a git checkout")
    listed = _git("ls-files", "-z")
    assert listed.returncode == 0, listed.stderr.decode()
    return [name for name in listed.stdout.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte in its first 8 KiB, as git decides)."""
    if path.is_symlink():
        return os.readlink(path)  # a link's target is committed text too
    if path.suffix.lower() in BINARY_SUFFIXES or not path.is_file():
        return None  # not text, or listed in the index but gone from the work tree
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def machine_paths(name: str, text: str) -> list[str]:
    """`file:line: match` for each machine path in one file's text."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in MACHINE_PATH.finditer(line):
            if name in MAY_NAME_SHARED and SHARED.fullmatch(match.group()):
                continue
            found.append(f"{name}:{number}: {match.group()!r} in {line.strip()[:160]!r}")
    return found


def test_machine_path_pattern():
    """The pattern itself: what it must find and what it must leave alone."""
    for line in ["/" + "work/main/data", "x /" + "root/.cache", "/" + "tmp/store", "/" + "home/alice",
                 "/" + "Users/bob/x", "LTH_DATA=.." + "/shared/data"]:
        assert machine_paths("a.md", line), line
    for line in ["runs/lth_conv/abc123/metrics.csv", "data/cifar-10-batches-py", "/home/", "a/b/../c",
                 "https://example.org/docs/x", "$(cd .. && pwd)/shared/data"]:
        assert not machine_paths("a.md", line), line
    assert not machine_paths(".ci/run", "LTH_DATA=.." + "/shared/data")
    assert machine_paths(".ci/run", "cd /" + "work/main")


def test_no_machine_paths_in_tracked_files():
    offences = []
    for name in _tracked_files():
        if name.startswith(".venv/"):
            continue
        text = _text(REPO / name)
        if text is not None:
            offences += machine_paths(name, text)
    assert not offences, "absolute paths of a machine in committed files:\n" + "\n".join(offences)


# ---- committed run configs ------------------------------------------------------------------------

FIGURES = REPO / "figures" / "paper"
CONFIG_NAME = re.compile(r"(?P<experiment>.+)-(?P<hash>[0-9a-f]{12})\.config\.gin")
CONFIGS = sorted(FIGURES.rglob("*.config.gin"))


def test_paper_figures_have_run_configs():
    assert CONFIGS, f"no *.config.gin under {FIGURES}"
    misnamed = [str(p.relative_to(REPO)) for p in CONFIGS if not CONFIG_NAME.fullmatch(p.name)]
    assert not misnamed, f"run configs not named <experiment>-<12 hex hash>.config.gin: {misnamed}"


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(FIGURES)) for p in CONFIGS])
def test_run_config_hashes_to_its_name(path: Path):
    from lth.store import config_hash

    named = CONFIG_NAME.fullmatch(path.name)
    assert named, path.name
    assert config_hash(path.read_text(encoding="utf-8")) == named["hash"], (
        f"{path.relative_to(REPO)} hashes to {config_hash(path.read_text(encoding='utf-8'))}, "
        f"not to the {named['hash']} in its name: the config was edited after the run"
    )
    manifest = path.with_name(path.name.replace(".config.gin", ".manifest.json"))
    if manifest.is_file():  # the run's manifest, beside it, names the same run
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        assert recorded.get("config_hash") == named["hash"], manifest.name
        assert recorded.get("experiment") == named["experiment"], manifest.name


def test_the_readme_verdict_counts_are_those_of_the_committed_claims():
    """The README's first screen counts the committed paper-profile verdicts: those counts must be what the
    committed claims.csv files say (no number a run did not produce)."""
    import re
    from collections import Counter
    import pandas as pd
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("Of its "):readme.index("each\nmiss") if "each\nmiss" in readme else None]
    paragraph = " ".join(paragraph.split())
    counts = Counter()
    for path in (REPO / "figures" / "paper").glob("*/claims.csv"):
        counts.update(pd.read_csv(path).verdict)
    assert f"Of its {sum(counts.values())} claim rows" in paragraph
    for verdict in ("reproduced", "not reproduced", "inconclusive", "not comparable", "not judged", "not run"):
        assert re.search(rf"\b{counts[verdict]} {verdict}\b", paragraph), (verdict, counts[verdict], paragraph)
