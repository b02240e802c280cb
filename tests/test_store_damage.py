"""A damaged result store heals: each kind of file a run writes, damaged after a finished run, is
named in a warning and recomputed by the next run, whose metrics then equal an undamaged run's."""

import json
import os
import subprocess
import sys
import warnings

import pandas as pd
import pytest
import torch

from lth.store import RunDir, StoreWarning
from lth.store import files as store_files

CONFIG = "toy.levels = 3\n"
LEVELS = 3
PROGRESS_KEYS = ("iteration", "stack")


def toy_run(root, stop_after=None):
    """A miniature runner: level k trains from level k-1's checkpoint (as IMP does), in 4 steps with a
    progress checkpoint after step 2; each level writes metrics, a checkpoint and its done marker.
    ``stop_after``: raise after this many steps of one level (a kill), leaving its progress checkpoint."""
    run = RunDir(root, "toy", CONFIG)
    run.write_manifest(seed=0)
    for level in range(LEVELS):
        key = f"level_{level}"
        if run.is_done(key):
            continue
        run.begin_process(device="cpu") if run._process is None else None
        previous = run.load_checkpoint(f"level_{level - 1}") if level else {"w": torch.arange(4.0)}
        w, start = previous["w"].clone(), 0
        progress = run.load_progress(f"{key}_progress", required=PROGRESS_KEYS)
        if progress is not None:
            w, start = progress["stack"]["w"], progress["iteration"]
        for step in range(start, 4):
            w = w * 0.5 + step
            if step == 1:
                run.save_checkpoint_in_background(f"{key}_progress", {"iteration": 2, "stack": {"w": w}})
            if stop_after is not None and step + 1 == stop_after:
                run.wait_for_writes()
                raise KeyboardInterrupt
        rows = [dict(experiment="toy", trial=0, level=level, density=0.8 ** level, control="none", replicate=0,
                     iteration=4, split=split, metric="loss", value=float(w.sum()) + i)
                for i, split in enumerate(("train", "val", "test"))]
        run.write_metrics(key, rows)
        run.save_checkpoint(key, {"w": w})
        run.mark_done(key)
        run.delete_checkpoint(f"{key}_progress")
    run.wait_for_writes()
    if run._process is not None:
        run.end_process()
    return run, run.read_metrics()


@pytest.fixture()
def reference(tmp_path):
    return toy_run(tmp_path / "reference")[1]


def finished(tmp_path):
    run, _ = toy_run(tmp_path / "damaged")
    return run


def rerun_heals(tmp_path, reference, named):
    with pytest.warns(StoreWarning, match=named):
        _, metrics = toy_run(tmp_path / "damaged")
    pd.testing.assert_frame_equal(metrics, reference)
    # healed for good: a further run warns no more and gives the same numbers
    with _no_store_warning():
        _, again = toy_run(tmp_path / "damaged")
    pd.testing.assert_frame_equal(again, reference)


class _no_store_warning:
    def __enter__(self):
        import warnings
        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        warnings.simplefilter("error", StoreWarning)

    def __exit__(self, *exc):
        return self.catcher.__exit__(*exc)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_metrics_csv_of_a_finished_level_is_recomputed(tmp_path, reference, damage):
    path = finished(tmp_path).path / "metrics" / "level_1.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3] if damage == "truncated" else b"")
    rerun_heals(tmp_path, reference, "level_1.csv")


def test_a_deleted_checkpoint_of_a_finished_run_loses_nothing(tmp_path, reference):
    """Checkpoints deleted to save space (or a store copied without them): the metrics stand, nothing
    is recomputed, nothing warned."""
    run = finished(tmp_path)
    for path in (run.path / "checkpoints").glob("*.pt"):
        path.unlink()
    with _no_store_warning():
        _, metrics = toy_run(tmp_path / "damaged")
    pd.testing.assert_frame_equal(metrics, reference)


@pytest.mark.parametrize("damage", ["truncated", "bit flipped"])
def test_damaged_level_checkpoint_is_recomputed(tmp_path, reference, damage):
    path = finished(tmp_path).path / "checkpoints" / "level_1.pt"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(data[:100])
    else:  # loads fine, wrong numbers: only the checksum can tell
        data[-200] ^= 0x01
        path.write_bytes(bytes(data))
    rerun_heals(tmp_path, reference, "level_1.pt")


def test_progress_checkpoint_with_wrong_content_is_discarded(tmp_path, reference):
    with pytest.raises(KeyboardInterrupt):
        toy_run(tmp_path / "damaged", stop_after=3)
    run = RunDir(tmp_path / "damaged", "toy", CONFIG)
    progress = run.path / "checkpoints" / "level_0_progress.pt"
    assert progress.exists()
    torch.save({"iteration": 2, "weights": torch.zeros(4)}, progress)  # no 'stack'
    rerun_heals(tmp_path, reference, "level_0_progress.pt.*'stack'")
    assert not progress.exists()


def test_unreadable_progress_checkpoint_is_discarded(tmp_path, reference):
    with pytest.raises(KeyboardInterrupt):
        toy_run(tmp_path / "damaged", stop_after=3)
    progress = RunDir(tmp_path / "damaged", "toy", CONFIG).path / "checkpoints" / "level_0_progress.pt"
    progress.write_bytes(progress.read_bytes()[:50])
    rerun_heals(tmp_path, reference, "level_0_progress.pt")


def test_corrupt_manifest_is_set_aside_and_rewritten(tmp_path, reference):
    run = finished(tmp_path)
    (run.path / "done" / "level_2").unlink()  # a level still to train, so the manifest is written again
    (run.path / "manifest.json").write_text('{"seed": 0, "started_at": "2024-')
    rerun_heals(tmp_path, reference, "manifest.json")
    assert (run.path / "manifest.json.corrupt").read_text().startswith('{"seed"')
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["processes"][-1]["status"] == "finished"


def test_stale_temporary_files_of_killed_writes_are_removed(tmp_path, reference):
    run = finished(tmp_path)
    # a write killed with its process: spawn a process that leaves a temp file, as a kill -9 would
    script = ("import os, sys, tempfile; from pathlib import Path; from lth.store import files\n"
              "p = Path(sys.argv[1])\n"
              "fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f'.{p.name}.{os.getpid()}@{files._host()}.', suffix='.tmp')\n"
              "os.write(fd, b'half'); os._exit(9)\n")
    target = run.path / "metrics" / "level_1.csv"
    subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    old_style = run.path / "checkpoints" / ".level_1.pt.abc123xy.tmp"  # an older version's name, no owner
    old_style.write_bytes(b"half")
    os.utime(old_style, (0, 0))
    recent = run.path / "checkpoints" / ".level_2.pt.zz99zz99.tmp"  # maybe another host writing now: kept
    recent.write_bytes(b"half")
    live = run.path / "done" / f".level_0.{os.getpid()}@{store_files._host()}.live1234.tmp"  # this process: kept
    live.write_bytes(b"")
    assert len(list(run.path.rglob(".*.tmp"))) == 4
    _, metrics = toy_run(tmp_path / "damaged")
    assert sorted(p.name for p in run.path.rglob(".*.tmp")) == sorted([recent.name, live.name])
    pd.testing.assert_frame_equal(metrics, reference)


def test_an_older_version_s_markers_without_checksums_are_trusted_but_checked(tmp_path, reference):
    run = finished(tmp_path)
    for level in range(LEVELS):  # markers as older versions wrote them: a timestamp
        (run.path / "done" / f"level_{level}").write_text("2024-01-01T00:00:00+00:00\n")
    with _no_store_warning():
        assert toy_run(tmp_path / "damaged")[1].equals(reference)
    path = run.path / "metrics" / "level_2.csv"
    path.write_bytes(path.read_bytes()[:-7])
    rerun_heals(tmp_path, reference, "level_2.csv")


def test_store_files_are_readable_by_others_when_the_umask_says_so(tmp_path):
    old = os.umask(0o022)
    try:
        run, _ = toy_run(tmp_path)
    finally:
        os.umask(old)
    written = [p for p in run.path.rglob("*") if p.is_file()]
    assert {"config.gin", "manifest.json", "level_0.csv", "level_0.pt", "level_0"} <= {p.name for p in written}
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}
    os.umask(0o077)
    try:
        private = run.write_metrics("level_9", [])
    finally:
        os.umask(old)
    assert private.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("error", [
    OSError(28, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/3: "
                 "file write failed"),
])
def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, error):
    from lth.store import DiskFull

    run = RunDir(tmp_path, "toy", CONFIG)

    def full(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFull) as err:
        run.save_checkpoint("level_0", {"w": torch.zeros(2)})
    message = str(err.value)
    assert message.startswith("disk full") and str(run.path / "checkpoints" / "level_0.pt") in message
    assert "\n" not in message and "MiB free" in message
    assert not list(run.path.rglob("*.tmp"))  # no temp file left behind
    monkeypatch.undo()
    monkeypatch.setattr(store_files.os, "fsync", lambda fd: full())
    with pytest.raises(DiskFull, match="level_0.csv"):
        run.write_metrics("level_0", [])


def test_every_process_of_a_resumed_run_is_recorded(tmp_path, reference):
    for stop in (1, 3):
        with pytest.raises(KeyboardInterrupt):
            toy_run(tmp_path, stop_after=stop)
    run, metrics = toy_run(tmp_path)
    pd.testing.assert_frame_equal(metrics, reference)
    manifest = run.read_manifest()
    processes = manifest["processes"]
    assert [p["status"] for p in processes] == ["interrupted", "interrupted", "finished"]
    assert all(p["host"] and p["device"] == "cpu" and p["started_at"] for p in processes)
    assert processes[-1]["finished_at"] and manifest["finished_at"] == processes[-1]["finished_at"]
    assert manifest["started_at"] == processes[0]["started_at"]
    assert manifest["wall_time_s"] == pytest.approx(sum(p["wall_time_s"] for p in processes), abs=0.011)
    assert manifest["processes_count"] == 3


# -- end to end: a tiny IMP experiment through the runner ------------------------------------------


def imp_runner(root, synthetic, callbacks=()):
    from lth.experiments import kind_of
    from lth.experiments.imp import ImpConfig
    from lth.experiments.runner import Runner
    from lth.train.config import TrainConfig

    train = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, checkpoint_every=20)
    config = ImpConfig(experiment="t", dataset="synthetic", model="fc", model_kwargs={"widths": (16,)},
                       trials=1, levels=2, reinits=1)
    return Runner(kind_of("imp"), config, {"": train}, root=root, device="cpu", data=synthetic, callbacks=callbacks)


@pytest.fixture(scope="module")
def imp_reference(tmp_path_factory, synthetic):
    return imp_runner(tmp_path_factory.mktemp("imp_reference"), synthetic).run().metrics


@pytest.mark.parametrize("damage", ["metrics truncated", "metrics empty", "checkpoint truncated",
                                    "manifest corrupt"])
def test_damaged_imp_run_heals_to_the_undamaged_numbers(tmp_path, synthetic, imp_reference, damage):
    run = imp_runner(tmp_path, synthetic).run().run
    metrics, checkpoint = run.path / "metrics" / "level_01.csv", run.path / "checkpoints" / "level_01.pt"
    named = {"metrics truncated": metrics, "metrics empty": metrics, "checkpoint truncated": checkpoint,
             "checkpoint deleted": checkpoint, "manifest corrupt": run.path / "manifest.json"}[damage]
    if damage == "metrics truncated":
        metrics.write_bytes(metrics.read_bytes()[:-40])
    elif damage == "metrics empty":
        metrics.write_bytes(b"")
    elif damage == "checkpoint truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    else:
        (run.path / "done" / "level_02").unlink()
        (run.path / "manifest.json").write_text("{")
    with pytest.warns(StoreWarning, match=named.name):
        healed = imp_runner(tmp_path, synthetic).run().metrics
    pd.testing.assert_frame_equal(healed, imp_reference)


def test_a_deleted_checkpoint_that_a_later_level_needs_is_recomputed_on_rerun(tmp_path, synthetic, imp_reference):
    """A finished level's checkpoint deleted while the next level is still to train (it starts from it):
    one clear error that removes the level's done marker, then a rerun computes it again."""
    run = imp_runner(tmp_path, synthetic).run().run
    (run.path / "checkpoints" / "level_01.pt").unlink()
    with _no_store_warning():  # all levels done: the metrics stand
        pd.testing.assert_frame_equal(imp_runner(tmp_path, synthetic).run().metrics, imp_reference)
    (run.path / "done" / "level_02").unlink()
    with pytest.raises(FileNotFoundError, match="level_01.pt is missing.*rerun and level_01 is computed again"):
        imp_runner(tmp_path, synthetic).run()
    pd.testing.assert_frame_equal(imp_runner(tmp_path, synthetic).run().metrics, imp_reference)


class Kill(Exception):
    pass


def test_imp_progress_checkpoint_with_wrong_content_is_discarded(tmp_path, synthetic, imp_reference):
    def kill(iteration, stack):
        if stack.size > 1 and iteration == 30:
            raise Kill

    with pytest.raises(Kill):
        imp_runner(tmp_path, synthetic, callbacks=[kill]).run()
    runner = imp_runner(tmp_path, synthetic)
    progress = runner.run_dir.path / "checkpoints" / "level_01_progress.pt"
    torch.save({"iteration": 20}, progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        healed = runner.run().metrics
    assert any("level_01_progress.pt" in str(w.message) for w in caught if issubclass(w.category, StoreWarning))
    pd.testing.assert_frame_equal(healed, imp_reference)
