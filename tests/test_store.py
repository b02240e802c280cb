import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from lth import store
from lth.store import METRIC_COLUMNS, CorruptCheckpoint, RunDir, config_hash, find_runs

CONFIG = """\
# LeNet on MNIST
train.lr = 0.1
train.steps = 100  # short run
model.name = 'lenet'
"""


def make_row(**overrides):
    row = dict(experiment="imp", trial=0, level=1, density=0.8, control="none", replicate=0,
               iteration=100, split="test", metric="accuracy", value=0.97)
    return row | overrides


def test_hash_ignores_comments_blank_lines_and_trailing_spaces():
    reformatted = "train.lr = 0.1   \n\n# another comment\ntrain.steps = 100\nmodel.name = 'lenet'  # why\n"
    assert config_hash(CONFIG) == config_hash(reformatted)
    assert len(config_hash(CONFIG)) == 12 and int(config_hash(CONFIG), 16) >= 0


def test_hash_changes_with_a_binding_and_keeps_hashes_in_strings():
    assert config_hash(CONFIG) != config_hash(CONFIG.replace("0.1", "0.2"))
    assert config_hash("x.tag = 'a#b'") != config_hash("x.tag = 'a#c'")


def test_same_config_same_dir_different_config_different_dir(tmp_path):
    first = RunDir(tmp_path, "imp", CONFIG)
    assert first.path == tmp_path / "imp" / config_hash(CONFIG)
    assert (first.path / "config.gin").read_text() == CONFIG
    assert RunDir(tmp_path, "imp", CONFIG + "\n# note\n").path == first.path
    assert RunDir(tmp_path, "imp", CONFIG.replace("0.1", "0.2")).path != first.path


def test_markers(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    assert not run.is_done("level_3")
    run.mark_done("level_3")
    assert run.is_done("level_3")
    assert RunDir(tmp_path, "imp", CONFIG).is_done("level_3")
    with pytest.raises(ValueError, match="file name"):
        run.mark_done("../escape")


def test_find_runs_lists_hashes_and_markers(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    for key in ("level_10", "level_2"):
        run.mark_done(key)
    RunDir(tmp_path, "snip", CONFIG)
    [info] = find_runs(tmp_path, "imp")
    assert (info.experiment, info.hash, info.path, info.done) == ("imp", run.hash, run.path, ("level_2", "level_10"))
    assert [r.experiment for r in find_runs(tmp_path)] == ["imp", "snip"]


def test_metrics_round_trip_in_key_order(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    assert list(run.read_metrics().columns) == list(METRIC_COLUMNS)
    run.write_metrics("level_10", [make_row(level=10, value=0.5)])
    path = run.write_metrics("level_2", [make_row(level=2), make_row(level=2, split="train", value=1.0)])
    assert path == run.path / "metrics" / "level_2.csv"
    frame = run.read_metrics()
    assert list(frame.columns) == list(METRIC_COLUMNS)
    assert frame["level"].tolist() == [2, 2, 10]
    assert frame["value"].tolist() == [0.97, 1.0, 0.5]
    assert frame.iloc[0].to_dict() == make_row(level=2)


@pytest.mark.parametrize(
    "row, pattern",
    [(make_row(value=None) | {"extra_col": 1}, r"extra columns \['extra_col'\]"),
     ({k: v for k, v in make_row().items() if k != "density"}, r"missing columns \['density'\]")],
)
def test_bad_metrics_row_names_the_column(tmp_path, row, pattern):
    run = RunDir(tmp_path, "imp", CONFIG)
    with pytest.raises(ValueError, match=pattern):
        run.write_metrics("level_0", [make_row(), row])
    assert not (run.path / "metrics" / "level_0.csv").exists()


def test_checkpoint_round_trip(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    gen = torch.Generator().manual_seed(7)
    state = {
        "weights": {"fc.weight": torch.randn(3, 4), "mask": torch.ones(3, 4, dtype=torch.bool)},
        "step": 5, "lr": 0.1, "name": "lenet", "levels": [1, 2, (3, "x")],
        "rng": gen.get_state(),
        "np_rng": np.random.RandomState(0).get_state(),
    }
    path = run.save_checkpoint("level_1", state)
    assert path == run.path / "checkpoints" / "level_1.pt"
    loaded = run.load_checkpoint("level_1")
    assert torch.equal(loaded["weights"]["fc.weight"], state["weights"]["fc.weight"])
    assert torch.equal(loaded["weights"]["mask"], state["weights"]["mask"])
    assert (loaded["step"], loaded["lr"], loaded["name"], loaded["levels"]) == (5, 0.1, "lenet", [1, 2, (3, "x")])
    np.testing.assert_array_equal(loaded["np_rng"][1], state["np_rng"][1])
    expected = torch.rand(5, generator=gen)
    assert torch.equal(torch.rand(5, generator=torch.Generator().set_state(loaded["rng"])), expected)
    assert run.load_checkpoint("level_2") is None
    run.delete_checkpoint("level_1")
    assert run.load_checkpoint("level_1") is None
    assert not list((run.path / "checkpoints").iterdir())  # no temp files left behind


def _corrupt(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else np.random.default_rng(0).bytes(len(data)))


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_corrupt_checkpoint_names_the_file(tmp_path, how):
    run = RunDir(tmp_path, "imp", CONFIG)
    path = run.save_checkpoint("level_1", {"w": torch.randn(64, 64)})
    run.mark_done("level_1")
    _corrupt(path, how)
    with pytest.raises(CorruptCheckpoint, match="set it aside as level_1.pt.corrupt.*removed the done marker level_1") as err:
        run.load_checkpoint("level_1")
    assert str(path) in str(err.value)
    # the advice works: the file is out of the way and the job is no longer done, so a rerun recomputes it
    assert not path.exists() and path.with_name("level_1.pt.corrupt").exists()
    assert not run.is_done("level_1") and run.load_checkpoint("level_1") is None


def test_checkpoint_refuses_unsafe_and_non_dict_contents(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    path = run.save_checkpoint("level_1", {"frame": pd.DataFrame({"a": [1]})})
    with pytest.raises(CorruptCheckpoint, match="Unsupported global") as err:
        run.load_checkpoint("level_1")
    assert "weights_only=False" not in str(err.value)
    torch.save([1, 2], path)
    with pytest.raises(CorruptCheckpoint, match="expected a dict, found list"):
        run.load_checkpoint("level_1")


def test_manifest_records_environment_and_merges(tmp_path):
    run = RunDir(tmp_path, "imp", CONFIG)
    assert run.read_manifest() == {}
    run.write_manifest(started_at="2024-01-01T00:00:00+00:00", seed=3)
    first = json.loads((run.path / "manifest.json").read_text())
    for key in ("python", "torch", "torchvision", "numpy", "lth", "platform", "hostname", "device"):
        assert first[key], key
    assert first["torch"] == torch.__version__
    assert {"git_commit", "git_dirty"} <= first.keys()
    assert (first["experiment"], first["config_hash"], first["seed"]) == ("imp", run.hash, 3)

    run.write_manifest(finished_at="2024-01-01T01:00:00+00:00", wall_time_s=3600.0, seed=4)
    second = run.read_manifest()
    assert second["started_at"] == "2024-01-01T00:00:00+00:00"
    assert (second["finished_at"], second["wall_time_s"], second["seed"]) == ("2024-01-01T01:00:00+00:00", 3600.0, 4)


def test_git_state_outside_a_repo_is_none(tmp_path):
    assert store.git_state(tmp_path) == {"git_commit": None, "git_dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_in_a_repo(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    state = store.git_state(tmp_path)
    assert len(state["git_commit"]) == 40 and state["git_dirty"] is False
    (tmp_path / "a.txt").write_text("b")
    assert store.git_state(tmp_path)["git_dirty"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_background_checkpoint_of_gpu_tensors_is_a_snapshot(tmp_path):
    """The copies to host memory are queued without waiting for the device: work queued after them (here
    a long matmul chain, then an in-place change) must not reach the checkpoint."""
    run = RunDir(tmp_path, "exp", "a = 1\n")
    weights = torch.randn(2048, 2048, device="cuda")
    expected = weights.cpu()
    for _ in range(3):
        run.save_checkpoint_in_background("progress", {"w": weights, "nested": [weights * 2]})
        for _ in range(20):
            weights.copy_(torch.tanh(weights @ weights))
        weights.zero_()
        saved = run.load_checkpoint("progress")
        assert torch.equal(saved["w"], expected) and torch.equal(saved["nested"][0], expected * 2)
        weights.copy_(expected.cuda())


def test_background_checkpoint_is_a_snapshot_and_reports_its_errors(tmp_path):
    run = RunDir(tmp_path, "exp", "a = 1\n")
    weights = torch.arange(6.0)
    run.save_checkpoint_in_background("progress", {"w": weights, "step": 3})
    weights.zero_()  # training goes on: the checkpoint keeps the values it was given
    assert torch.equal(run.load_checkpoint("progress")["w"], torch.arange(6.0))
    run.save_checkpoint_in_background("progress", {"w": weights})
    run.delete_checkpoint("progress")  # waits for the write: no file comes back after the delete
    assert run.load_checkpoint("progress") is None
    run.save_checkpoint_in_background("bad", {"f": lambda: 0})  # cannot be pickled
    with pytest.raises(Exception, match="lambda|pickle"):
        run.wait_for_writes()


def test_reads_of_keys_a_background_task_does_not_write_do_not_wait_for_it(tmp_path):
    """The runner's next job starts while the last one's results are written: is_done and checkpoint reads
    of other keys go on, those of a key the task declared (or of any key, when it declared none) wait."""
    import threading
    run = RunDir(tmp_path, "exp", "a = 1\n")
    run.save_checkpoint("next_progress", {"w": torch.ones(2)})
    release = threading.Event()

    def slow_finish():
        release.wait(timeout=30)
        run.write_metrics("level_00", [])
        run.mark_done("level_00")

    run.in_background(slow_finish, "finish level_00", keys=["level_00", "level_00_progress"])
    assert run.is_done("next") is False and torch.equal(run.load_progress("next_progress")["w"], torch.ones(2))
    assert run._writer is not None  # neither read waited for the task
    release.set()
    assert run.is_done("level_00") is True  # a declared key: waited for the marker
    release.clear()
    run.in_background(slow_finish, "finish, keys unknown")
    threading.Timer(0.2, release.set).start()
    assert run.is_done("next") is False and run._writer is None  # undeclared: every read waits
