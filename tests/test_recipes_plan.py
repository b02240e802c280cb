"""Every shipped recipe plans its jobs under the laptop profiles: a profile whose settings contradict
each other (say a freeze period that is not a multiple of the evaluation interval) fails here, not
minutes into ./run_all.sh."""

import pytest

from lth import cli, config
from lth.data import DatasetNotFound, load_splits


def _needs(dataset: str) -> None:
    if dataset == "synthetic":
        return
    try:
        load_splits(dataset)
    except DatasetNotFound:
        pytest.skip(f"{dataset} is not available here (set LTH_DATA)")


@pytest.mark.parametrize("profile", ["smoke", "quick"])
@pytest.mark.parametrize("recipe", config.recipes())
def test_every_recipe_plans_under_the_laptop_profiles(recipe, profile, tmp_path, capsys):
    _needs(config.load_recipe(recipe, profile=profile).config.dataset)
    code = cli.main(["run", recipe, "-p", profile, "--root", str(tmp_path), "--device", "cpu", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "not made: dry run" in out and not any(tmp_path.iterdir())
