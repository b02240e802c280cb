"""gin recipes, profiles, bad bindings, and the command-line entry point on real MNIST."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lth import config
from lth.experiments.imp import ImpConfig
from lth.store import find_runs
from lth.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
KEYS = ["experiment", "trial", "level", "control", "replicate", "iteration", "split", "metric"]


def test_lenet_recipe_is_the_papers_protocol():
    recipe = config.load_recipe("lth_lenet300")
    imp, train = recipe.config, recipe.trains[""]
    assert recipe.kind == "imp" and type(imp) is ImpConfig and type(train) is TrainConfig
    assert (imp.model, imp.dataset, imp.trials, imp.reinits) == ("lenet300", "mnist", 5, 3)
    assert imp.rates == {"fc": 0.2, "output": 0.1} and imp.scope == "layerwise" and imp.rewind == "init"
    assert (train.optimizer, train.lr, train.batch_size, train.iterations, train.eval_every) == \
        ("adam", 0.0012, 60, "50000it", 100)


@pytest.mark.parametrize("recipe", ["lth_conv2", "lth_conv4", "lth_conv6"])
def test_conv_recipes_load(recipe):
    loaded = config.load_recipe(recipe, profile="smoke")
    assert loaded.config.model == recipe.split("_")[1]
    assert loaded.trains[""].iterations == "40it"  # the profile wins over the recipe


def test_bindings_override_profiles():
    loaded = config.load_recipe("lth_lenet300", profile="quick", bindings=["ImpConfig.trials = 7"])
    assert loaded.config.trials == 7  # the binding wins over the profile
    assert loaded.config.densities == (0.211, 0.07, 0.036)  # the profile wins over the recipe


@pytest.mark.parametrize("binding,named", [
    ("TrainConfig.lrr = 0.1", "lrr"),
    ("TrainConfg.lr = 0.1", "TrainConfg"),
    ("TrainConfig.lr = ", "TrainConfig.lr"),
])
def test_bad_binding_names_itself_and_lists_parameters(binding, named):
    with pytest.raises(config.ConfigError) as err:
        config.load(["lth_lenet300"], bindings=[binding])
    assert named in str(err.value) and "TrainConfig: iterations, batch_size" in str(err.value)


def test_unknown_recipe_and_profile_list_valid_ones():
    with pytest.raises(config.ConfigError, match="'lenet'.*lth_lenet300"):
        config.load(["lenet"])
    with pytest.raises(config.ConfigError, match="'huge'.*smoke, quick, paper"):
        config.load(["lth_lenet300"], profile="huge")


def lth_cli(*args, cwd, **env):
    return subprocess.run([sys.executable, "-m", "lth", *args], cwd=cwd, capture_output=True, text=True,
                          env={"LTH_QUIET": "1", "PATH": "/usr/bin:/bin",
                               **{k: v for k, v in os.environ.items() if k == "LTH_DATA"}, **env}, timeout=300)


def test_cli_runs_lenet_imp_on_real_mnist_then_skips_on_rerun(tmp_path):
    from lth.data import DatasetNotFound, load_splits
    try:
        load_splits("mnist")
    except DatasetNotFound:
        pytest.skip("real MNIST not available")
    args = ["run", str(REPO / "lth" / "recipes" / "lth_lenet300.gin"), "--profile", "smoke", "--root", str(tmp_path), "--device", "cpu"]
    first = lth_cli(*args, cwd=REPO)
    assert first.returncode == 0, first.stderr
    assert "remaining_%" in first.stdout and "64.06" in first.stdout  # level 2 of the fc 20% / output 10% ladder
    (run,) = find_runs(tmp_path, "lth_lenet300")
    metrics = pd.read_csv(run.path / "metrics" / "level_02.csv")
    final = metrics[(metrics.split == "test") & (metrics.metric == "accuracy") & (metrics.iteration == 40)]
    assert final.value.min() > 0.7  # 40 Adam steps on real MNIST already beat chance by far
    second = lth_cli(*args, cwd=REPO)
    assert second.returncode == 0 and second.stdout == first.stdout


def test_cli_bad_binding_exits_2_with_the_message(tmp_path):
    result = lth_cli("run", "lth_lenet300", "-b", "ImpConfig.trails = 2", "--root", str(tmp_path), cwd=REPO)
    assert result.returncode == 2
    assert "trails" in result.stderr and "Traceback" not in result.stderr


def test_cli_missing_data_set_says_where_it_looked(tmp_path):
    result = lth_cli("run", "lth_conv2", "--root", str(tmp_path), cwd=REPO, LTH_DATA=str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cifar10" in result.stderr and str(tmp_path / "nowhere") in result.stderr


def test_torchrun_spreads_trials_over_processes(tmp_path):
    """Two CPU processes under torchrun: each trains its trials, the lead prints every trial's levels."""
    env = {**os.environ, "LTH_QUIET": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lth",
            "run", "lth_lenet300", "--profile", "smoke", "-b", "ImpConfig.trials = 2", "-b", "ImpConfig.dataset = 'synthetic'",
            "--root", str(tmp_path), "--device", "cpu"]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = find_runs(tmp_path, "lth_lenet300")
    metrics = pd.concat(map(pd.read_csv, (run.path / "metrics").glob("*.csv")))
    assert sorted(metrics.trial.unique()) == [0, 1]
    assert result.stdout.count("run folder:") == 1 and "2 processes" in result.stdout
    assert sorted(metrics.groupby("trial")["level"].nunique()) == [3, 3]


def test_torchrun_data_parallel_equals_one_process(tmp_path):
    """Two CPU processes share each batch (gradients averaged): the lead's results are the single run's."""
    env = {**os.environ, "LTH_QUIET": "1", "OMP_NUM_THREADS": "1"}
    common = ["run", "lth_lenet300", "--profile", "smoke", "-b", "ImpConfig.dataset = 'synthetic'",
              "-b", "ImpConfig.controls = ()", "--device", "cpu"]
    single = subprocess.run([sys.executable, "-m", "lth", *common, "--root", str(tmp_path / "one")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    parallel = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               "-m", "lth", *common, "--data-parallel", "--root", str(tmp_path / "two")],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    assert "each with its share of every batch" in parallel.stdout
    read = lambda root: pd.concat(map(pd.read_csv, sorted((find_runs(root, "lth_lenet300")[0].path / "metrics").glob("*.csv"))))
    one, two = read(tmp_path / "one"), read(tmp_path / "two")
    assert len(one) == len(two) > 0
    assert (one[KEYS].to_numpy() == two[KEYS].to_numpy()).all()
    # Two half-batch means averaged equal the batch mean up to float rounding, but 40 Adam steps carry
    # that rounding forward (Adam divides by sqrt(v), so tiny gradient differences do not stay tiny):
    # measured on 2 CPU cores, losses differ by up to 1.4e-3 relative and val accuracy by 1.5
    # percentage points. Bounds: every loss within 5e-3 relative; an accuracy, which moves in steps of
    # 1/N when a prediction near a tie flips, within 2.5 percentage points.
    accuracy = one.metric.to_numpy() == "accuracy"
    difference = (one.value.to_numpy() - two.value.to_numpy()).__abs__()
    scale = one.value.abs().clip(lower=1).to_numpy()
    assert (difference[~accuracy] <= 5e-3 * scale[~accuracy]).all(), one[~accuracy][difference[~accuracy] > 5e-3]
    assert (difference[accuracy] <= 0.025).all(), one[accuracy][difference[accuracy] > 0.025]


def test_data_parallel_batch_must_split_evenly(tmp_path):
    env = {**os.environ, "LTH_QUIET": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "lth", "run", "lth_lenet300", "--profile", "smoke", "-b", "ImpConfig.dataset = 'synthetic'",
                             "-b", "TrainConfig.batch_size = 61", "--data-parallel", "--device", "cpu", "--root", str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "batch_size 61 does not split evenly over 2 processes" in result.stderr


def test_cli_errors_keep_their_notes(capsys):
    """A run stopped by an error names a failed background write in a note (`Runner.run`): the CLI prints it."""
    from lth.cli import _error
    from lth.train.loop import DivergedError
    err = DivergedError("network 0 diverged")
    err.add_note("Writing an earlier job's results failed too: OSError('disk on fire')")
    _error(err)
    assert capsys.readouterr().err == ("error: network 0 diverged\n"
                                       "Writing an earlier job's results failed too: OSError('disk on fire')\n")
