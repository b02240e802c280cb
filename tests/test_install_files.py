"""The three install descriptions (uv.lock, requirements.lock.txt, environment.yml) name the same versions."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        if "version" in package:
            versions.setdefault(_normal(package["name"]), set()).add(package["version"])
    return versions


def pinned_requirements(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line):
            pins[_normal(match.group(1).split("[")[0])] = match.group(2)
    return pins


def test_requirements_lock_pins_exactly_the_versions_of_uv_lock():
    locked = locked_versions()
    pins = pinned_requirements((REPO / "requirements.lock.txt").read_text())
    assert pins, "requirements.lock.txt pins nothing"
    wrong = {name: (version, sorted(locked.get(name, ()))) for name, version in pins.items()
             if version not in locked.get(name, ())}
    assert not wrong, f"requirements.lock.txt differs from uv.lock (pin, locked): {wrong}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = _normal(re.split(r"[<>=!~; ]", requirement, maxsplit=1)[0])
        assert name in pins, f"{name} (a dependency in pyproject.toml) is missing from requirements.lock.txt"


def test_environment_yml_installs_the_lock_file_and_the_projects_python():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*-r requirements\.lock\.txt\s*$", text, re.M), "environment.yml must install the lock file"
    assert not pinned_requirements(text.replace("- ", "")), "environment.yml pins packages of its own: use the lock file"
    python = re.search(r"^\s*-\s*python=(\d+\.\d+)", text, re.M).group(1)
    minimum = re.search(r">=\s*(\d+\.\d+)", tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split("."))), (python, minimum)


def test_pinned_requirements_reads_markers_and_extras():
    assert pinned_requirements("a-b==1.0 ; python_version < '3.12'\n  # via x\nc[d]==2\n") == {"a-b": "1.0", "c": "2"}
