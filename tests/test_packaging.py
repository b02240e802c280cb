"""A wheel of lth, installed outside this checkout, runs a recipe from any folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _uv() -> list[str]:
    if shutil.which("uv"):
        return ["uv"]
    for python in ("python3", sys.executable):
        if subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    pytest.skip("uv is not installed (./setup.sh installs it)")


@pytest.mark.slow
def test_wheel_installed_elsewhere_runs_the_smoke_recipe_from_any_folder(tmp_path):
    from lth.data import DatasetNotFound, load_splits
    try:
        load_splits("mnist")
    except DatasetNotFound:
        pytest.skip("real MNIST not available (set LTH_DATA)")
    uv = _uv()
    wheels, site, outside = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    outside.mkdir()
    subprocess.run([*uv, "build", "--wheel", "--out-dir", str(wheels), str(REPO)], check=True, capture_output=True)
    (wheel,) = wheels.glob("lth-*.whl")
    subprocess.run([*uv, "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    # The dependencies come from this environment; lth itself only from the installed wheel.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site), "LTH_QUIET": "1",
           "LTH_DATA": os.environ.get("LTH_DATA", ""), "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-c", "import lth; print(lth.__file__)"], cwd=outside, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site)
    result = subprocess.run([sys.executable, "-m", "lth", "run", "lth_lenet300", "-p", "smoke", "--device", "cpu"],
                            cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((outside / "runs" / "lth_lenet300").glob("*/config.gin")), "the run folder is made where it ran"
