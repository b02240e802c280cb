"""Bad inputs through `python -m lth run` (in process: `lth.cli.main`) and the notebooks' `run`: each is
refused with exit 2 and one message naming the field, the value or the kinds; no run folder is made,
and a run folder already in the store keeps every byte. Plus: a run that does not learn is flagged
and never judged (issue 14)."""

import re
import hashlib
from pathlib import Path

import pytest
import torch

from lth import cli
from lth.config import ConfigError

SMOKE = ["-p", "smoke", "--device", "cpu"]
SYNTHETIC = {"imp": "ImpConfig.dataset = 'synthetic'", "pai": "PaiConfig.dataset = 'synthetic'",
             "edgepopup": "EdgePopupConfig.dataset = 'synthetic'", "gem_miner": "GemMinerConfig.dataset = 'synthetic'",
             "pensia": "PensiaConfig.dataset = 'synthetic'", "train_ticket": "TrainTicketConfig.dataset = 'synthetic'",
             "subsetsum": "SubsetSumConfig.dataset = 'synthetic'", "lmc": "LmcConfig.dataset = 'synthetic'",
             "transfer": "TransferConfig.dataset = 'synthetic'"}
RECIPE = {"imp": "lth_lenet300", "pai": "pai_lenet300", "edgepopup": "strong_edgepopup", "gem_miner": "strong_gem_miner",
          "pensia": "strong_pensia_redundant", "train_ticket": "strong_train_ticket", "subsetsum": "pensia_subsetsum",
          "lmc": "lmc_lenet300", "transfer": "transfer_lenet300"}

# (kind, binding, what the message must name): wrong types and meaningless values (issue 14, item 2)
BAD_BINDINGS = [
    ("imp", "ImpConfig.levels = 'three'", ["ImpConfig.levels = 'three'", "integer"]),
    ("imp", "ImpConfig.trials = 2.5", ["ImpConfig.trials = 2.5", "integer >= 1"]),
    ("imp", "ImpConfig.model_kwargs = {'depth': 3}", ["ImpConfig.model_kwargs", "depth", "lenet300"]),
    ("imp", "ImpConfig.rates = {'fc': 1.5}", ["ImpConfig.rates", "1.5", "[0, 1)"]),
    ("imp", "ImpConfig.controls = 'reinit'", ["ImpConfig.controls = 'reinit'", "tuple"]),
    ("imp", "ImpConfig.seed = -1", ["ImpConfig.seed = -1", ">= 0"]),
    ("imp", "TrainConfig.lr = 'fast'", ["TrainConfig.lr = 'fast'", "> 0"]),
    ("imp", "TrainConfig.batch_size = '60'", ["TrainConfig.batch_size = '60'", "integer"]),
    ("imp", "TrainConfig.weight_decay = -1.0", ["TrainConfig.weight_decay = -1.0", ">= 0"]),
    ("imp", "TrainConfig.momentum = -0.9", ["TrainConfig.momentum = -0.9", ">= 0"]),
    ("imp", "TrainConfig.eval_every = 0", ["TrainConfig.eval_every = 0", "at least 1"]),
    ("imp", "TrainConfig.iterations = 0", ["TrainConfig.iterations = 0", "at least 1"]),
    ("imp", "TrainConfig.schedule = 'cosin'", ["'cosin'", "constant, multistep, cosine"]),
    ("imp", "TrainConfig.compile = 'yes'", ["TrainConfig.compile", "True or False", "'yes'"]),
    ("pai", "pai/TrainConfig.lr = -1", ["TrainConfig.lr = -1", "> 0"]),
    ("pai", "PaiConfig.methods = ('snip', 'snip')", ["PaiConfig.methods", "distinct"]),
    ("pai", "PaiConfig.densities = 0.1", ["PaiConfig.densities = 0.1", "tuple"]),
    ("edgepopup", "EdgePopupConfig.trials = 0", ["EdgePopupConfig.trials = 0", ">= 1"]),
    ("edgepopup", "EdgePopupConfig.dense_baseline = 'yes'", ["EdgePopupConfig.dense_baseline", "True or False"]),
    ("gem_miner", "GemMinerConfig.l2 = -1.0", ["GemMinerConfig.l2 = -1.0", ">= 0"]),
    ("gem_miner", "GemMinerConfig.freeze_period = 'often'", ["GemMinerConfig.freeze_period = 'often'", "duration"]),
    ("pensia", "PensiaConfig.redundancy = 0", ["PensiaConfig.redundancy = 0", ">= 1"]),
    ("pensia", "PensiaConfig.network_lr = {'lenet5': 'fast'}", ["PensiaConfig.network_lr", "'fast'"]),
    ("gem_miner", "GemMinerConfig.bn_examples = -5", ["GemMinerConfig.bn_examples = -5", ">= 0"]),
    ("train_ticket", "TrainTicketConfig.networks = ('mlpx',)", ["'mlpx'", "mlp, cnn"]),
    ("train_ticket", "TrainTicketConfig.gate_init = 0.0", ["TrainTicketConfig.gate_init = 0.0", "> 0"]),
    ("subsetsum", "SubsetSumConfig.epsilon = 1.5", ["SubsetSumConfig.epsilon = 1.5", "< 1"]),
    ("subsetsum", "SubsetSumConfig.widths = (500, 0)", ["SubsetSumConfig.widths", "integers >= 1"]),
    ("lmc", "LmcConfig.controls = ('shuffle',)", ["unknown LmcConfig control 'shuffle'", "random_mask, reinit"]),
    ("lmc", "LmcConfig.control_levels = (3,)", ["LmcConfig.control_levels = (3,)", "[1, 1]"]),
    ("transfer", "TransferConfig.target = 'cifar10'", ["cannot transfer tickets between synthetic and cifar10",
                                                       "input shapes differ (synthetic: 1x28x28, cifar10: 3x32x32)",
                                                       "resizing or padding"]),
    ("transfer", "TransferConfig.target = 'cifar100'", ["class counts differ (synthetic: 10, cifar100: 100)",
                                                        "new output layer"]),
    ("transfer", "TransferConfig.target = 'synthetic'", ["TransferConfig.target = 'synthetic'", "other than"]),
]


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding one finished smoke run, and its files' checksums."""
    root = tmp_path_factory.mktemp("store")
    assert cli.main(["run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "--root", str(root)]) == 0
    return root, _files(root)


def refused(capsys, *args) -> str:
    """Run the command line; assert exit 2 and a one-message refusal without a traceback; the message."""
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize("kind,binding,named", BAD_BINDINGS, ids=[b for _, b, _ in BAD_BINDINGS])
def test_a_bad_config_value_is_refused_naming_it_before_any_folder(kind, binding, named, store, capsys):
    root, before = store
    err = refused(capsys, "run", RECIPE[kind], *SMOKE, "-b", SYNTHETIC[kind], "-b", binding, "--root", str(root))
    for part in named:
        assert part in err, err
    assert "rewind_iteration" not in err  # issue 14: iterations = 0 once blamed rewind_iteration
    assert _files(root) == before  # no new run folder, nothing computed changed


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e-3, 0.0, "1e-3", True])
def test_the_python_api_refuses_a_learning_rate_that_is_no_rate(value):
    from lth.train.config import TrainConfig
    with pytest.raises(ValueError, match=r"TrainConfig\.lr = .*finite number > 0"):
        TrainConfig(lr=value)


@pytest.mark.parametrize("configs,kinds", [
    (["lth_lenet300", "pai_lenet300"], ["imp", "pai"]),
    (["pai_lenet300", "strong_edgepopup"], ["pai", "edgepopup"]),
    (["strong_train_ticket", "lth_lenet300"], ["train_ticket", "imp"]),
])
def test_recipes_of_two_kinds_at_once_are_refused_naming_the_kinds(configs, kinds, store, capsys):
    root, before = store
    err = refused(capsys, "run", *configs, *SMOKE, "--root", str(root))
    assert "different experiment kinds" in err and all(k in err for k in kinds) and all(c in err for c in configs)
    assert _files(root) == before


@pytest.mark.parametrize("recipe,binding,kinds", [
    ("lth_lenet300", "PaiConfig.trials = 2", ["pai", "imp"]),
    ("pai_lenet300", "ImpConfig.levels = 3", ["imp", "pai"]),
    ("strong_edgepopup", "GemMinerConfig.l2 = 0.1", ["gem_miner", "edgepopup"]),
])
def test_a_binding_of_another_kinds_config_is_refused(recipe, binding, kinds, store, capsys):
    root, before = store
    err = refused(capsys, "run", recipe, *SMOKE, "--root", str(root), "-b", binding)
    assert binding in err and all(k in err for k in kinds)
    assert _files(root) == before


@pytest.mark.parametrize("recipe,expected,found", [
    ("pai_lenet300", "imp", "pai"), ("lth_lenet300", "pai", "imp"), ("strong_gem_miner", "edgepopup", "gem_miner")])
def test_a_notebook_given_a_recipe_of_another_kind_refuses_naming_both(recipe, expected, found, tmp_path):
    from lth.notebook import run
    with pytest.raises(ConfigError, match=f"{recipe} is of kind {found}, but this runs {expected} experiments"):
        run(recipe, "smoke", root=tmp_path, device="cpu", kind=expected)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("device,named", [("foo", "'foo' is not a device name"), ("cuda:7", "'cuda:7'"),
                                          ("mps", "'mps'")])
def test_a_device_this_machine_lacks_is_refused_listing_what_it_has(device, named, store, capsys):
    root, before = store
    err = refused(capsys, "run", "lth_lenet300", "-p", "smoke", "-b", SYNTHETIC["imp"], "--device", device,
                  "--root", str(root))
    assert named in err and "this machine has: cpu" in err
    assert _files(root) == before


def test_a_root_that_cannot_be_written_is_refused_naming_it(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    err = refused(capsys, "run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "--root", str(blocker / "runs"))
    assert str(blocker) in err and "is a file, not a folder" in err
    assert blocker.read_text() == "not a folder"


def test_a_missing_data_set_is_refused_saying_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LTH_DATA", str(tmp_path / "nowhere"))
    err = refused(capsys, "run", "lth_lenet300", *SMOKE, "-b", "ImpConfig.dataset = 'fashion_mnist'",
                  "--root", str(tmp_path / "runs"))
    assert "fashion_mnist" in err and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("recipe,count,named", [("lth_lenet300", "-2", "add_trials -2: need an integer >= 0"),
                                                 ("strong_edgepopup", "2", "cannot add trials")])
def test_adding_trials_that_cannot_be_added_is_refused_before_any_folder(recipe, count, named, store, capsys):
    root, before = store
    kind = "imp" if recipe == "lth_lenet300" else "edgepopup"
    err = refused(capsys, "run", recipe, *SMOKE, "-b", SYNTHETIC[kind], "--add-trials", count, "--root", str(root))
    assert named in err
    assert _files(root) == before


def test_a_job_out_of_device_memory_says_what_to_lower_and_keeps_the_finished_ones(tmp_path, capsys, monkeypatch):
    from lth.experiments import runner
    real, calls = runner.train, []

    def train(*args, **kwargs):  # level 0 trains; level 1 finds the device full (as beside another run)
        calls.append(1)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB.")
        return real(*args, **kwargs)
    monkeypatch.setattr(runner, "train", train)
    root = tmp_path / "runs"
    code = cli.main(["run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "level_01: out of memory on cpu with 3 networks" in err and "TrainConfig.eval_batch_size" in err
    assert [p.name for p in root.glob("lth_lenet300/*/done/*")] == ["level_00"]  # the finished job stays


def test_dry_run_says_what_would_run_and_creates_nothing(tmp_path, capsys):
    assert cli.main(["run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "--root", str(tmp_path / "runs"),
                     "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "kind imp" in out and "level_02: 3 networks x 40 iterations" in out and "not made: dry run" in out
    assert not (tmp_path / "runs").exists()
    # a time measured on this device: the whole, and every level (later ones at level 0's rate per network-step)
    assert re.search(r"network-iterations\): about \d+ (s|min \d\d s) on cpu", out), out
    assert re.search(r"level_02: 3 networks x 40 iterations, ~\d+ s", out), out


def test_show_prints_the_operative_config_and_its_folder(tmp_path, capsys):
    assert cli.main(["show", "pai_lenet300", "-p", "smoke", "-b", "PaiConfig.trials = 2", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PaiConfig.trials = 2" in out and f"# run folder: {tmp_path / 'pai_lenet300'}/" in out
    assert not any(tmp_path.iterdir())


def test_list_names_every_recipe_with_a_description_and_the_profiles(capsys):
    from lth.config import recipes
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in recipes()) and "[pai] Lee et al. 2019 (SNIP)" in out
    assert "smoke" in out and "paper" in out


def test_a_run_that_does_not_learn_is_flagged_and_never_judged(tmp_path, capsys):
    """Adam at lr 1e6: the loss stays finite (no divergence error), accuracies sit at chance."""
    import json

    import pandas as pd

    from lth.notebook import flag_failures
    from lth.results.analysis import per_network
    from lth.results.claims import LENET_ITERATIVE
    from lth.results.verdicts import NOT_RUN, evaluate
    from lth.store import find_runs
    args = ["run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "-b", "TrainConfig.lr = 1e6", "--root", str(tmp_path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "warning: 7 networks did not learn" in out
    (run,) = find_runs(tmp_path, "lth_lenet300")
    metrics = pd.concat(map(pd.read_csv, (run.path / "metrics").glob("*.csv")))
    flags = metrics[(metrics.split == "meta") & (metrics.metric == "failed_to_learn")]
    assert len(flags) == 7 and (flags.value == 1).all()
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert len(manifest["failed_to_learn"]) == 7
    networks = flag_failures(per_network(metrics), metrics)
    table = evaluate(LENET_ITERATIVE, networks, profile="quick", dataset="mnist")
    assert (table.verdict == NOT_RUN).all() and table.detail.str.contains("not judged").all()
    # a run that learns is not flagged
    assert cli.main(["run", "lth_lenet300", *SMOKE, "-b", SYNTHETIC["imp"], "--root", str(tmp_path / "ok")]) == 0
    assert "did not learn" not in capsys.readouterr().out


def test_a_notebook_output_dir_that_cannot_be_written_is_refused_before_any_experiment(tmp_path):
    from lth.notebook import output_folder
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    with pytest.raises(ValueError, match="a_file"):
        output_folder(blocker / "figures", "lth_lenet_iterative", "smoke")
    assert output_folder(tmp_path / "figures", "lth_lenet_iterative", "smoke").is_dir()


@pytest.mark.parametrize("case, losses, accuracies, flagged", [
    ("a loss that became NaN", [[2.3, 2.3], [0.5, float("nan")]], [[0.1, 0.1], [0.9, 0.9]], [1]),
    ("a loss that grew past a uniform guess's", [[2.3, 2.3], [0.5, 9.0]], [[0.1, 0.1], [0.9, 0.5]], [1]),
    ("an accuracy that stayed at chance", [[2.3, 2.3], [0.5, 2.2]], [[0.1, 0.1], [0.9, 0.11]], [1]),
    ("two networks that did not learn", [[2.3, 2.3], [9.0, 2.2]], [[0.1, 0.1], [0.1, 0.12]], [0, 1]),
    ("networks that learn", [[2.3, 2.3], [0.5, 0.6]], [[0.1, 0.1], [0.9, 0.85]], []),
])
def test_every_way_of_not_learning_is_flagged(case, losses, accuracies, flagged):
    """The failure rule behind the flag (lth.experiments.runner.learning_failures): a non-finite loss, a final
    loss above both its start and ln(classes), or a final accuracy at chance, each on its own."""
    import torch
    from lth.experiments.runner import MIN_JUDGED_ITERATIONS, learning_failures
    from lth.train.loop import History
    history = History([0, MIN_JUDGED_ITERATIONS], {"val/loss": [torch.tensor(v) for v in losses],
                                                   "val/accuracy": [torch.tensor(v) for v in accuracies]})
    assert [i for i, _ in learning_failures(history, 10)] == flagged, case
