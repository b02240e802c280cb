"""``python -m lth sweep``: a grid of experiments through submitit's local executor into one store:
refused before submission when any point is bad, finished runs skipped, a killed job resumed."""

import argparse
import time
from pathlib import Path

import pytest

from lth.sweep import SweepError, add_arguments, command, executor_for, grid_bindings, plan, submit

TINY = ["ImpConfig.dataset = 'synthetic'", "ImpConfig.model = 'fc'", "ImpConfig.model_kwargs = {'widths': (32, 16)}",
        "ImpConfig.levels = 1"]


def sweep(argv):
    return command(add_arguments(argparse.ArgumentParser()).parse_args(argv))


def bindings(extra=()):
    return [arg for b in [*TINY, *extra] for arg in ("-b", b)]


def test_an_unknown_recipe_profile_or_binding_refuses_the_sweep_before_anything_is_submitted(tmp_path, capsys):
    for argv, why in [(["lth_lenet300", "no_such_recipe"], "no gin config 'no_such_recipe'"),
                      (["lth_lenet300", "-p", "smoke", "huge"], "unknown profile 'huge'"),
                      (["lth_lenet300", "-b", "ImpConfig.trails = 3"], "doesn't have a parameter named 'trails'"),
                      (["lth_lenet300", "-b", "ImpConfig.strategy = 'greedy'"], "unknown strategy 'greedy'"),
                      (["lth_lenet300", "-g", "ImpConfig.trials = 3"], "expected 'Name.field = \\[value, ...\\]'")]:
        assert sweep([*argv, "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert why.replace("\\", "") in err, err
    assert not list(tmp_path.iterdir())  # no run folder, no log folder


def test_the_grid_is_recipes_times_profiles_times_grid_bindings_times_seeds(tmp_path):
    # Recipes of one kind: a binding of another kind's config is refused (tests/test_bad_inputs.py).
    points = plan(["lth_lenet300", "lth_conv2"], ["smoke", "quick"], TINY, seeds=[0, 1],
                  grid=["ImpConfig.rewind = ['init', 'lr']"], root=tmp_path)
    assert len(points) == 2 * 2 * 2 * 2
    assert {p.bindings[-1] for p in points} == {"ImpConfig.seed = 0", "ImpConfig.seed = 1"}
    assert len({p.run_folder for p in points}) == len(points)  # every point is its own run folder
    assert all(Path(p.run_folder).parent.parent == tmp_path for p in points)
    assert grid_bindings(["A.x = [1, 2]", "B.y = ['a']"]) == [("A.x = 1", "B.y = 'a'"), ("A.x = 2", "B.y = 'a'")]
    with pytest.raises(SweepError, match="non-empty list"):
        grid_bindings(["A.x = []"])


def test_a_sweep_runs_on_the_local_executor_and_skips_finished_experiments(tmp_path, capsys):
    argv = ["lth_lenet300", "-p", "smoke", *bindings(), "--seeds", "0", "1", "--root", str(tmp_path),
            "--device", "cpu", "--log-folder", str(tmp_path / "logs")]
    assert sweep(argv) == 0
    table = capsys.readouterr().out
    assert table.count(" done ") == 2, table
    for run in (tmp_path / "lth_lenet300").iterdir():
        assert sorted(p.name for p in (run / "done").iterdir()) == ["level_00", "level_01"]
    assert sweep([*argv, "--seeds", "1", "1"]) == 0  # finished: skipped by its hash; a repeated point runs once
    table = capsys.readouterr().out
    assert "skipped (finished)" in table and "duplicate of row 0" in table and " done " not in table
    assert len((tmp_path / "logs" / "summary.txt").read_text().splitlines()) == 1 + 2  # header + rows


def test_a_failed_experiment_is_listed_with_its_error_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LTH_DATA", str(tmp_path / "no_data"))  # MNIST cannot be found by the job
    argv = ["lth_lenet300", "-p", "smoke", *bindings(), "-g", "ImpConfig.dataset = ['synthetic', 'mnist']",
            "--root", str(tmp_path), "--device", "cpu", "--log-folder", str(tmp_path / "logs")]
    assert sweep(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if " failed " in line]
    assert len(failed) == 1 and "mnist" in failed[0].lower() and "error" in failed[0].lower()
    assert sum(" done " in line for line in lines) == 1


def test_a_killed_job_resumes_when_the_sweep_is_submitted_again(tmp_path):
    import signal
    # submitit cancels a local job with SIGINT; started from a background shell (as CI may start the suite),
    # this process and its children would ignore it. A Python handler here is reset to the default in the
    # children, so the cancel reaches the job.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _killed_job_resumes(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _killed_job_resumes(tmp_path):
    # Cancelled while level 1 is under way: its first progress checkpoint is there (level 0's done marker is
    # not the moment to wait for: a background thread writes it while level 1 already trains).
    slow = [*TINY, "TrainConfig.iterations = '1200it'", "TrainConfig.checkpoint_every = 200"]
    points = plan(["lth_lenet300"], ["smoke"], slow, root=tmp_path)
    run = Path(points[0].run_folder)
    executor = executor_for("local", tmp_path / "logs", timeout_min=10)
    [row] = submit(points, executor, root=tmp_path, device="cpu", wait=False)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "level_01_progress.pt").exists():
        assert time.time() < deadline and not row.job.done(), row.job.stderr()
        time.sleep(0.05)
    row.job.cancel()
    while not row.job.done():
        time.sleep(0.1)
    assert not (run / "done" / "level_01").exists(), "the job finished before it could be killed"
    first = (run / "done" / "level_00").read_text()
    [again] = submit(points, executor, root=tmp_path, device="cpu")
    assert again.state == "done", again.error
    assert (run / "done" / "level_00").read_text() == first  # the finished level was not trained again
    assert (run / "done" / "level_01").exists()
    assert submit(points, executor, root=tmp_path)[0].state == "skipped (finished)"
