"""The optional TensorBoard sink: every network's evaluations as scalars when asked for (argument,
``--tensorboard`` or ``$LTH_TENSORBOARD``), and nothing imported, nothing written when not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lth.experiments import kind_of
from lth.experiments.imp import ImpConfig
from lth.experiments.runner import Runner
from lth.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]
FAST = TrainConfig(iterations=20, batch_size=20, lr=5e-3, eval_every=10)
CONFIG = ImpConfig(experiment="tb", dataset="synthetic", model="fc", model_kwargs={"widths": (16,)}, levels=1)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_every_network_and_level_is_written_as_the_metrics_record_it(tmp_path, synthetic):
    pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'lth[tensorboard]') is not installed")
    runner = Runner(kind_of("imp"), CONFIG, {"": FAST}, root=tmp_path / "runs", device="cpu", data=synthetic,
                    tensorboard=tmp_path / "tb")
    metrics = runner.run().metrics
    root = tmp_path / "tb" / "tb" / runner.run_dir.hash
    networks = sorted(str(p.parent.relative_to(root)) for p in root.rglob("events.out.tfevents.*"))
    assert networks == ["tb/trial_0/level_00/none", "tb/trial_0/level_01/none", "tb/trial_0/level_01/random_mask",
                        "tb/trial_0/level_01/reinit"]
    for network in networks:
        _, _, level, control = network.split("/")
        written = scalars(root / network)
        assert {"val/loss", "val/accuracy", "test/loss", "test/accuracy", "train/batch_loss", "train/loss",
                "train/accuracy"} <= set(written)
        for tag, points in written.items():
            split, metric = tag.split("/")
            rows = metrics[(metrics.level == int(level[-2:])) & (metrics.control == control)
                           & (metrics.split == split) & (metrics.metric == metric)]
            assert [step for step, _ in points] == rows.iteration.tolist(), (network, tag)
            assert [value for _, value in points] == pytest.approx(rows.value.tolist(), rel=1e-6), (network, tag)


def test_the_environment_variable_and_the_command_line_turn_it_on(tmp_path, synthetic, monkeypatch):
    pytest.importorskip("tensorboard", reason="the tensorboard extra (pip install 'lth[tensorboard]') is not installed")
    monkeypatch.setenv("LTH_TENSORBOARD", str(tmp_path / "from_env"))
    Runner(kind_of("imp"), CONFIG, {"": FAST}, root=tmp_path / "runs", device="cpu", data=synthetic).run()
    assert len(list((tmp_path / "from_env").rglob("events.out.tfevents.*"))) == 4
    monkeypatch.delenv("LTH_TENSORBOARD")
    cli = subprocess.run([sys.executable, "-m", "lth", "run", "lth_lenet300", "-p", "smoke", "--device", "cpu",
                          "-b", "ImpConfig.dataset = 'synthetic'", "-b", "ImpConfig.levels = 1",
                          "--root", str(tmp_path / "cli_runs"), "--tensorboard", str(tmp_path / "from_cli")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "LTH_QUIET": "1"})
    assert cli.returncode == 0, cli.stderr
    assert len(list((tmp_path / "from_cli" / "lth_lenet300").rglob("events.out.tfevents.*"))) == 4


def test_off_by_default_nothing_is_imported_or_written(tmp_path):
    script = f"""
import sys
from lth.data import load_splits
from lth.experiments import kind_of
from lth.experiments.imp import ImpConfig
from lth.experiments.runner import Runner
from lth.train.config import TrainConfig
data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(200, 40, 40))
config = ImpConfig(experiment="tb", dataset="synthetic", model="fc", model_kwargs={{"widths": (16,)}}, levels=1)
runner = Runner(kind_of("imp"), config, {{"": TrainConfig(iterations=20, batch_size=20, eval_every=10)}},
                root={str(tmp_path)!r}, device="cpu", data=data)
runner.run()
print(runner.tensorboard, sorted(m for m in sys.modules if "tensorboard" in m))
"""
    env = {k: v for k, v in os.environ.items() if k != "LTH_TENSORBOARD"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**env, "LTH_QUIET": "1"}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "None []"
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_without_the_package_the_request_is_refused_before_any_folder(tmp_path, synthetic, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'lth\[tensorboard\]'"):
        Runner(kind_of("imp"), CONFIG, {"": FAST}, root=tmp_path / "runs", device="cpu", data=synthetic,
               tensorboard=tmp_path / "tb")
    assert not (tmp_path / "runs").exists()
