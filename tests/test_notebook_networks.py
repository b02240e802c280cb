"""The follow-up notebooks run a conv net beside LeNet-300-100 on the paper profile only (quick and smoke skip
it: `lth.notebook.network_recipes`). Their conv path is executed here at the smoke profile's size, with the
conv profiles widened to smoke for the test: each network's figures and tables under its own names in one
folder, and both networks' claims in one claims.csv (the deconstruct one rejudged to the same table)."""

import ast
import re
from pathlib import Path

import pandas as pd
import pytest

from lth import config, notebook
from lth.data import DataSplits, DatasetNotFound, Split, load_splits
from lth.results import claims
from lth.results.rejudge import rejudge

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# notebook -> (kind, the conv net's file suffix, its figures and tables, the claims rows: LeNet's, the conv net's)
CONV_PATHS = {
    "lmc_instability": ("lmc", "_resnet20", ["instability", "path_k0", "pairs"], claims.LMC_LENET, claims.LMC_RESNET20),
    "transfer_tickets": ("transfer", "_conv2", ["transfer_accuracy", "transfer", "gaps", "networks"],
                         claims.TRANSFER_MNIST, claims.TRANSFER_MNIST),
    "deconstruct_tickets": ("deconstruct", "_conv2", ["criteria", "treatments", "untrained", "levels", "networks"],
                            claims.DECONSTRUCT, claims.DECONSTRUCT_CONV),
}


def parameters(name: str) -> dict:
    """The notebook's parameters cell, as values."""
    source = (NOTEBOOKS / f"{name}.py").read_text()
    cell = source.split('# %% tags=["parameters"]\n', 1)[1].split("# %%", 1)[0]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell).body}


def execute(name: str, **values) -> None:
    """Run the notebook's cells in this process, its parameters replaced by ``values`` (as papermill injects them)."""
    source = (NOTEBOOKS / f"{name}.py").read_text()
    head, tail = source.split('# %% tags=["parameters"]\n', 1)
    cell, rest = tail.split("# %%", 1)
    injected = "\n".join(f"{key} = {value!r}" for key, value in values.items())
    exec(compile(f"{head}{cell}\n{injected}\n# %%{rest}", f"{name}.py", "exec"), {"__name__": "__notebook__"})


def first_examples(load, sizes=(120, 40, 60)):
    """``load`` (lth.data.load_splits) cut to the first train / val / test examples: Conv-2 on all of MNIST
    costs a CPU minutes per evaluation, and the files and claims tested here do not depend on the sizes."""
    def loaded(name, **kwargs):
        full = load(name, **kwargs)
        train, val, test = (Split(s.x[:n], s.y[:n]) for s, n in zip((full.train, full.val, full.test), sizes))
        return DataSplits(full.name, train, val, test, full.num_classes, full.input_shape, full.augment)
    return loaded


def test_the_conv_recipe_runs_on_the_paper_profile_only():
    assert notebook.network_recipes("a", "b", "paper") == {"lenet300": "a", "conv": "b"}
    assert notebook.network_recipes("a", "b", "quick") == notebook.network_recipes("a", "b", "smoke") == \
        {"lenet300": "a", "conv": ""}
    assert notebook.network_recipes("a", "", "paper")["conv"] == ""
    assert "quick profile runs LeNet-300-100 only" in notebook.skipped("conv", "quick")


@pytest.mark.parametrize("name", [*CONV_PATHS, "rewinding"])
def test_each_notebook_names_a_conv_recipe_of_its_kind(name):
    kind = CONV_PATHS.get(name, ("imp",))[0]
    recipe = config.load_recipe(parameters(name)["conv_config"], profile="paper", kind=kind)
    assert recipe.config.model in ("conv2", "resnet20")
    assert "fashion_mnist" in (recipe.config.dataset, getattr(recipe.config, "target", None))  # CIFAR-10 is absent
    source = (NOTEBOOKS / f"{name}.py").read_text()  # one call picks the networks (lth.notebook decides which run)
    assert source.count("run_networks(config, conv_config, profile") + source.count(
        "network_recipes(config, conv_config, profile)") == 1


@pytest.mark.parametrize("name", CONV_PATHS)
def test_the_conv_path_writes_its_own_files_and_claims_beside_lenet(name, tmp_path, monkeypatch, capsys):
    kind, suffix, files, lenet_claims, conv_claims = CONV_PATHS[name]
    if kind == "transfer":  # a transfer needs two real data sets of one shape (smoke: MNIST and Fashion-MNIST)
        try:
            load_splits("mnist"), load_splits("fashion_mnist")
        except DatasetNotFound:
            pytest.skip("MNIST / Fashion-MNIST are not available here (set LTH_DATA)")
        from lth.experiments import runner, transfer
        for module in (runner, transfer):
            monkeypatch.setattr(module, "load_splits", first_examples(load_splits))
        bindings = ["transfer/TrainConfig.batch_size = 4", "transfer/TrainConfig.iterations = '10it'",
                    "transfer/TrainConfig.eval_every = 10"]  # Conv-2 on 28x28 inputs: ~3 CPU-steps/s at batch 60
    else:
        bindings = []
    monkeypatch.setattr(notebook, "CONV_PROFILES", ("paper", "smoke"))
    execute(name, profile="smoke", bindings=bindings, output_dir=str(tmp_path / "figures"), root=str(tmp_path / "runs"), device="cpu")
    folder = tmp_path / "figures" / "smoke" / name
    written = {path.name for path in folder.iterdir()}
    for stem in files:
        extension = "csv" if stem in ("pairs", "transfer", "gaps", "networks", "levels") else "png"
        assert {f"{stem}.{extension}", f"{stem}{suffix}.{extension}"} <= written, (stem, sorted(written))
    experiment = config.load_recipe(parameters(name)["conv_config"], profile="smoke").config.experiment
    assert any(re.fullmatch(rf"{experiment}-\w+\.manifest\.json", n) for n in written)  # its provenance
    table = pd.read_csv(folder / "claims.csv")
    assert len(table) == len(lenet_claims) + len(conv_claims)
    assert set(table.verdict) <= {"not judged", "not run"}  # smoke
    if kind == "transfer":
        assert table.figure.str.endswith("(LeNet-300-100)").sum() == table.figure.str.endswith("(Conv-2)").sum() \
            == len(conv_claims)
    if kind == "deconstruct":  # the conv claims rejudged from networks_conv2.csv give the same table
        rejudge(folder.parent)  # (numbers may move in the last digit: networks.csv keeps 6 significant digits)
        again = pd.read_csv(folder / "claims.csv")
        columns = ["figure", "claim", "verdict", "n"]
        pd.testing.assert_frame_equal(again[columns], table[columns])
        assert not (folder / f"supermask{suffix}.png").exists()  # the conv recipe trains no supermask
    assert "skipped" not in capsys.readouterr().out
