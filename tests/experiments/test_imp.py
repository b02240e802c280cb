"""The IMP driver: rewinding, controls, one-shot, the result store, resume and reruns."""

import pandas as pd
import pytest
import torch

from lth.experiments.imp import ImpConfig, ImpPlan
from lth.experiments import kind_of
from lth.experiments.runner import Runner
from lth.store import StoreWarning
from lth.train.config import TrainConfig

FAST = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, checkpoint_every=20)
# A decaying schedule: learning-rate rewinding is refused under a constant one (a no-op there).
DECAYING = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, checkpoint_every=20,
                       schedule="multistep", milestones=(20, 30))


def experiment(tmp_path, synthetic, train_cfg=FAST, shard=(0, 1), add_trials=0, **overrides):
    config = dict(experiment="t", dataset="synthetic", model="fc", model_kwargs={"widths": (32, 16)},
                  trials=2, levels=2, reinits=2)
    config.update(overrides)
    return Imp(Runner(kind_of("imp"), ImpConfig(**config), {"": train_cfg}, root=tmp_path, device="cpu", data=synthetic,
                      shard=shard, add_trials=add_trials))


class Imp:
    """The runner of an IMP experiment, with its plan: level stacks built as the runner would."""

    def __init__(self, runner: Runner):
        self.runner, self.plan = runner, ImpPlan(runner.context)
        self.run, self.targets, self.callbacks = runner.run_dir, self.plan.targets, runner.callbacks

    def run_all(self):
        return self.runner.run().metrics

    def state(self, level: int) -> dict:
        return self.runner.context.state(f"level_{level:02d}")

    def level_stack(self, level: int):
        """(members, untrained stack, start iteration) of a level, from the finished earlier levels."""
        job = self.plan.job(level)
        return job.members, job.build(), job.start


def weights(state, name, network):
    return state["params"][name][network]


def test_metrics_are_tidy_and_cover_every_network(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic)
    metrics = exp.run_all()
    assert list(metrics.columns) == ["experiment", "trial", "level", "density", "control", "replicate",
                                     "iteration", "split", "metric", "value"]
    networks = metrics.groupby(["level", "control", "trial", "replicate"]).size()
    assert len(networks) == 2 + 2 * (2 + 2 * 2 + 2)  # level 0: 2 tickets; levels 1-2: tickets, 2 reinits each, random masks
    assert set(metrics.split) == {"val", "test", "train"}
    densities = metrics.groupby("level").density.unique()
    assert all(len(d) == 1 for d in densities)  # controls share their ticket's density
    manifest = exp.run.read_manifest()
    assert manifest["wall_time_s"] > 0 and manifest["torch"] and "git_commit" in manifest
    assert (exp.run.path / "config.gin").read_text().count("ImpConfig.") > 5


def test_rewinding_restores_init_on_surviving_weights(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic)
    exp.run_all()
    level0 = exp.state(0)
    members, stack, start = exp.level_stack(1)
    assert start == 0
    for name in stack.kinds:
        for t in range(2):
            mask = stack.masks[name][t].bool()
            assert torch.equal(stack.params[name][t][mask], weights(level0["init"], name, t)[mask])
            assert torch.all(stack.params[name][t][~mask] == 0)


def test_masks_nest_across_levels_and_match_the_ladder(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, levels=3)
    exp.run_all()
    previous = None
    for level in range(4):
        masks = exp.run.load_checkpoint(f"level_{level:02d}")["final"]["masks"]
        kept = sum(m.flatten(1).sum(1) for m in masks.values())
        assert kept.tolist() == [sum(g.keep for g in exp.targets[level])] * 2
        if previous is not None:
            assert all(torch.all(masks[n] <= previous[n]) for n in masks)
        previous = masks


def test_controls_change_only_what_they_claim(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic)
    exp.run_all()
    members, stack, _ = exp.level_stack(1)
    index = {(m.trial, m.control, m.replicate): i for i, m in enumerate(members)}
    for t in range(2):
        ticket = index[(t, "none", 0)]
        for r in range(2):
            reinit = index[(t, "reinit", r)]
            for n in stack.kinds:
                assert torch.equal(stack.masks[n][reinit], stack.masks[n][ticket])
                kept = stack.masks[n][ticket].bool()
                assert not torch.equal(stack.params[n][reinit][kept], stack.params[n][ticket][kept])
        a, b = stack.params["fc.0.weight"][index[(t, "reinit", 0)]], stack.params["fc.0.weight"][index[(t, "reinit", 1)]]
        assert not torch.equal(a, b)  # each reinitialisation is fresh
        random = index[(t, "random_mask", 0)]
        for n in stack.kinds:
            assert torch.equal(stack.masks[n][random].sum(), stack.masks[n][ticket].sum())
            assert not torch.equal(stack.masks[n][random], stack.masks[n][ticket])
            both = (stack.masks[n][random] * stack.masks[n][ticket]).bool()
            assert torch.equal(stack.params[n][random][both], stack.params[n][ticket][both])  # same weights


def test_weight_rewinding_uses_iteration_k(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, rewind="weights", rewind_iteration=10)
    exp.run_all()
    level0 = exp.state(0)
    _, stack, start = exp.level_stack(1)
    assert start == 10
    rewind = level0["rewind"]
    assert not torch.equal(rewind["params"]["fc.0.weight"], level0["init"]["params"]["fc.0.weight"])
    mask = stack.masks["fc.0.weight"][0].bool()
    assert torch.equal(stack.params["fc.0.weight"][0][mask], rewind["params"]["fc.0.weight"][0][mask])


def test_learning_rate_rewinding_keeps_final_weights(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, DECAYING, rewind="lr")
    exp.run_all()
    level0 = exp.state(0)
    _, stack, start = exp.level_stack(1)
    assert start == 0
    mask = stack.masks["fc.0.weight"][1].bool()
    assert torch.equal(stack.params["fc.0.weight"][1][mask], level0["final"]["params"]["fc.0.weight"][1][mask])


def test_learning_rate_rewinding_under_a_constant_schedule_is_refused(tmp_path, synthetic):
    with pytest.raises(ValueError, match="no-op, the same as fine-tuning"):
        experiment(tmp_path, synthetic, rewind="lr", rewind_iteration=10)
    assert not any(tmp_path.rglob("config.gin"))  # refused before any run folder
    warm = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, warmup=20)
    experiment(tmp_path, synthetic, warm, rewind="lr", rewind_iteration=10)  # the warmup from 10 to 20 replays


def test_fine_tuning_keeps_final_weights_at_the_last_rate_for_as_long_as_weight_rewinding(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, DECAYING, rewind="finetune", rewind_iteration=10, controls=())
    exp.run_all()
    job = exp.plan.job(1)
    assert job.start == 10 and job.train_cfg.schedule == "constant"
    assert job.train_cfg.lr == pytest.approx(5e-3 * 0.01)  # after both drops (x0.1 at 20 and 30)
    assert exp.plan.job(0).train_cfg.schedule == "multistep"  # the dense network trains on the schedule
    _, stack, _ = exp.level_stack(1)
    mask = stack.masks["fc.0.weight"][0].bool()
    final = exp.state(0)["final"]["params"]["fc.0.weight"][0]
    assert torch.equal(stack.params["fc.0.weight"][0][mask], final[mask])
    rows = exp.run.read_metrics()
    assert rows[rows.level == 1].iteration.max() == 40 and rows[rows.level == 1].iteration.min() == 10


def test_one_shot_prunes_the_dense_network_to_each_density(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, strategy="one_shot", densities=(0.5, 0.2), controls=())
    metrics = exp.run_all()
    realised = metrics.groupby("level").density.first().round(3).tolist()
    assert realised == [1.0, 0.5, 0.2]
    dense = exp.run.load_checkpoint("level_00")
    _, stack, _ = exp.level_stack(2)
    # one-shot: level 2's mask is the top 20% of the *dense* net's trained weights
    w = dense["final"]["params"]["fc.0.weight"][0].abs()
    kept = stack.masks["fc.0.weight"][0].bool()
    assert w[kept].min() >= w[~kept].max()


class Kill(Exception):
    pass


def test_killed_run_resumes_to_the_same_numbers(tmp_path, synthetic):
    reference = experiment(tmp_path / "a", synthetic).run_all()

    def kill(iteration, stack):
        if stack.size > 2 and iteration == 30:  # midway through level 1, after the checkpoint at 20
            raise Kill

    killed = experiment(tmp_path / "b", synthetic)
    killed.callbacks.append(kill)
    with pytest.raises(Kill):
        killed.run_all()
    assert killed.run.is_done("level_00") and not killed.run.is_done("level_01")
    assert killed.run.load_checkpoint("level_01_progress")["iteration"] == 20
    resumed = experiment(tmp_path / "b", synthetic).run_all()
    pd.testing.assert_frame_equal(reference, resumed)


def test_a_run_stopped_by_an_error_leaves_only_after_its_results_are_written(tmp_path, synthetic, monkeypatch):
    """The next level trains while the last one's results are written: an error meanwhile (here a kill before
    level 1's first checkpoint) must not leave that writing going on once the run has stopped (the run's lock is
    released then: a rerun in the same process would find level 0 half finished)."""
    import threading
    import time
    from lth.store import RunDir
    mark_done, stopped = RunDir.mark_done, threading.Event()

    def slow_mark_done(self, key, vouch=None):
        if key == "level_00":  # still writing when level 1 stops
            stopped.wait(timeout=30)
            time.sleep(0.5)
        mark_done(self, key, vouch)
    monkeypatch.setattr(RunDir, "mark_done", slow_mark_done)

    def kill(iteration, stack):
        if stack.size > 2 and iteration == 10:  # level 1, before its checkpoint at 20
            stopped.set()
            raise Kill
    killed = experiment(tmp_path, synthetic)
    killed.callbacks.append(kill)
    with pytest.raises(Kill):
        killed.run_all()
    assert (killed.run.path / "done" / "level_00").exists()
    assert not (killed.run.path / "checkpoints" / "level_00_progress.pt").exists()


def test_a_failed_write_of_a_level_is_reported_when_the_next_level_stops_with_an_error(tmp_path, synthetic,
                                                                                       monkeypatch):
    from lth.store import RunDir
    write_metrics = RunDir.write_metrics

    def failing_write(self, key, rows):
        if key == "level_00":
            raise OSError("disk on fire")
        return write_metrics(self, key, rows)
    monkeypatch.setattr(RunDir, "write_metrics", failing_write)

    def kill(iteration, stack):
        if stack.size > 2 and iteration == 10:
            raise Kill
    killed = experiment(tmp_path, synthetic)
    killed.callbacks.append(kill)
    with pytest.raises(Kill) as stopped:
        killed.run_all()
    assert "disk on fire" in "\n".join(getattr(stopped.value, "__notes__", []))


def test_rerun_skips_finished_levels(tmp_path, synthetic):
    first = experiment(tmp_path, synthetic)
    first.run_all()
    calls = []
    again = experiment(tmp_path, synthetic)
    again.callbacks.append(lambda it, stack: calls.append(it))
    again.run_all()
    assert calls == []
    assert again.run.path == first.run.path
    other = experiment(tmp_path, synthetic, seed=1)
    assert other.run.path != first.run.path


def test_a_corrupted_checkpoint_is_named_and_its_level_computed_again(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic)
    metrics = exp.run_all()
    path = exp.run.path / "checkpoints" / "level_01.pt"
    path.write_bytes(path.read_bytes()[:100])
    (exp.run.path / "done" / "level_02").unlink()  # level 2 must be retrained from level 1's checkpoint
    with pytest.warns(StoreWarning, match="level_01"):
        again = experiment(tmp_path, synthetic).run_all()
    key = ["level", "control", "trial", "replicate", "split", "metric", "iteration"]
    pd.testing.assert_frame_equal(again.sort_values(key).reset_index(drop=True),
                                  metrics.sort_values(key).reset_index(drop=True))


@pytest.mark.parametrize("field,value,message", [
    ("strategy", "twice", "'twice'.*iterative, one_shot"),
    ("rewind", "start", "'start'.*init, weights, lr"),
    ("controls", ("shuffle",), "'shuffle'.*reinit, random_mask"),
    ("densities", (0.5, 0.0), r"density must be in \(0, 1\]"),
])
def test_bad_experiment_config_names_the_value(field, value, message):
    with pytest.raises(ValueError, match=message):
        ImpConfig(**{field: value})


def test_unknown_model_and_dataset_list_valid_names(tmp_path, synthetic):
    with pytest.raises(ValueError, match="'lenet9'.*lenet300"):
        experiment(tmp_path, synthetic, model="lenet9", model_kwargs={})
    with pytest.raises(ValueError, match="'imagenet'.*mnist"):
        Runner(kind_of("imp"), ImpConfig(dataset="imagenet"), {"": FAST}, root=tmp_path, device="cpu")


def test_rewind_iteration_outside_schedule(tmp_path, synthetic):
    with pytest.raises(ValueError, match="rewind_iteration '100it'"):
        experiment(tmp_path, synthetic, rewind="weights", rewind_iteration="100it")


def test_finished_store_needs_no_checkpoints(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic)
    metrics = exp.run_all()
    for path in (exp.run.path / "checkpoints").iterdir():
        path.unlink()  # e.g. results copied back from a GPU machine without their weights
    pd.testing.assert_frame_equal(experiment(tmp_path, synthetic).run_all(), metrics)


def test_one_shot_learning_rate_rewinding_starts_from_the_dense_final_weights(tmp_path, synthetic):
    exp = experiment(tmp_path, synthetic, DECAYING, strategy="one_shot", rewind="lr", densities=(0.5, 0.2),
                     controls=())
    exp.run_all()
    dense = exp.run.load_checkpoint("level_00")
    _, stack, _ = exp.level_stack(2)
    kept = stack.masks["fc.0.weight"][0].bool()
    assert torch.equal(stack.params["fc.0.weight"][0][kept], dense["final"]["params"]["fc.0.weight"][0][kept])


def test_trials_sharded_over_processes_give_the_unsharded_results(tmp_path, synthetic):
    """What torchrun does: shard (rank, world) trains every world-th trial into the shared run folder."""
    whole = experiment(tmp_path / "whole", synthetic, trials=3).run_all()
    shards = [experiment(tmp_path / "sharded", synthetic, trials=3, shard=(rank, 2)) for rank in range(2)]
    for shard in shards:
        shard.run_all()
    run = shards[0].run
    sharded = run.read_metrics()
    key = ["level", "control", "trial", "replicate", "split", "metric", "iteration"]
    merged = whole.merge(sharded, on=key, suffixes=("_whole", "_sharded"), validate="one_to_one")
    assert len(merged) == len(whole) == len(sharded)
    # Smaller stacks may pick other matmul kernels: equal up to float rounding.
    assert (merged.value_whole - merged.value_sharded).abs().max() < 1e-4
    assert sorted(p.name for p in (run.path / "done").iterdir()) == [
        f"level_{level:02d}_shard{rank}of2" for level in range(3) for rank in range(2)]


def test_added_trials_join_the_run_folder_with_new_seeds(tmp_path, synthetic):
    """Issue 13: 2 trials done, 1 added later -> the folder holds 3, the added one as a 3-trial run's
    trial 2 (its seeds follow its index), the first two untouched."""
    done = experiment(tmp_path / "store", synthetic, trials=2)
    first = done.run_all()
    added = experiment(tmp_path / "store", synthetic, trials=2, add_trials=1)
    assert added.run.path == done.run.path  # the config, so the folder, is the recipe's
    both = added.run_all()
    assert sorted(both.trial.unique()) == [0, 1, 2]
    key = ["level", "control", "trial", "replicate", "split", "metric", "iteration"]
    kept = both[both.trial < 2].merge(first, on=key, suffixes=("_now", "_before"), validate="one_to_one")
    assert len(kept) == len(first) and (kept.value_now == kept.value_before).all()
    whole = experiment(tmp_path / "whole", synthetic, trials=3).run_all()
    merged = whole.merge(both, on=key, suffixes=("_whole", "_added"), validate="one_to_one")
    assert len(merged) == len(whole) and (merged.value_whole - merged.value_added).abs().max() < 1e-4
    assert sorted(p.name for p in (added.run.path / "done").iterdir()) == sorted(
        [f"level_{level:02d}" for level in range(3)] + [f"level_{level:02d}_trials2to2" for level in range(3)])


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_adding_a_bad_number_of_trials_is_refused(tmp_path, synthetic, bad):
    with pytest.raises(ValueError, match="add_trials"):
        experiment(tmp_path, synthetic, add_trials=bad)


def test_a_shard_without_trials_is_refused(tmp_path, synthetic):
    with pytest.raises(ValueError, match="no trials"):
        experiment(tmp_path, synthetic, trials=1, shard=(1, 2))


def test_compiled_levels_share_one_compilation_and_match_eager(tmp_path, synthetic):
    """TrainConfig.compile: every level (a new stack of the same shapes) reuses the code compiled for
    the first one, training and evaluation alike, and the numbers equal the uncompiled run's."""
    import dataclasses
    from torch._dynamo.utils import counters
    compile_cfg = dataclasses.replace(FAST, compile=True)
    eager = experiment(tmp_path / "eager", synthetic, controls=(), levels=2).run_all()
    torch._dynamo.reset()  # code compiled by earlier tests for the same shapes would hide the first level's
    graphs_before = counters["stats"]["unique_graphs"]
    experiment(tmp_path / "first", synthetic, train_cfg=compile_cfg, controls=(), levels=0).run_all()
    graphs_of_one_level = counters["stats"]["unique_graphs"] - graphs_before
    assert graphs_of_one_level >= 2  # the training step and (at least) one evaluation batch shape
    compiled = experiment(tmp_path / "compiled", synthetic, train_cfg=compile_cfg, controls=(), levels=2).run_all()
    assert counters["stats"]["unique_graphs"] - graphs_before == graphs_of_one_level  # three more levels, no new code
    assert len(compiled) == len(eager)
    # the uncompiled update on a CPU is torch's fused kernel, which rounds differently from the compiled one
    pd.testing.assert_series_equal(compiled.value, eager.value, atol=1e-3, rtol=1e-3)
