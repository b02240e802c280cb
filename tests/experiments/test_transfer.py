"""Tickets across data sets: a transfer between data sets of different shapes or class counts is refused
before any folder, the transferred mask is exactly the source's ticket, the random mask keeps its per-layer
densities, a killed run resumes to the same numbers, and the claims read the gaps."""

import pandas as pd
import pytest
import torch

from lth.experiments import kind_of
from lth.experiments.runner import Runner
from lth.experiments.transfer import TRANSFER, TransferConfig, TransferPlan, check_compatible
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig

FAST = TrainConfig(iterations="6it", batch_size=20, optimizer="sgd", lr=0.1, momentum=0.9, eval_every="2it",
                   checkpoint_every="2it")


def config(**overrides):
    # synthetic data of MNIST's shape as the source, real MNIST as the target (a transfer needs two data sets)
    fields = dict(dataset="synthetic", target="mnist", synthetic_shape=(1, 28, 28), trials=2, densities=(0.5, 0.2))
    return TransferConfig(**{**fields, **overrides})


@pytest.fixture(scope="module", autouse=True)
def small_target():
    """The target, real MNIST, cut to 600 / 100 / 200 examples (evaluating 10,000 test images per network and
    evaluation would dominate these tests)."""
    from lth.data import DataSplits, Split, load_splits
    from lth.experiments import transfer

    def load(name, **kwargs):
        full = load_splits(name, **kwargs)
        cut = lambda split, n: Split(split.x[:n], split.y[:n])
        return DataSplits(full.name, cut(full.train, 600), cut(full.val, 100), cut(full.test, 200), full.num_classes,
                          full.input_shape, full.augment)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transfer, "load_splits", load)
        yield


def runner(root, callbacks=(), **overrides):
    return Runner(kind_of("transfer"), config(**overrides), {"transfer": FAST}, root=root, device="cpu",
                  callbacks=callbacks)


@pytest.mark.parametrize("source, target, shape, message", [
    ("mnist", "cifar10", (1, 28, 28), r"input shapes differ \(mnist: 1x28x28, cifar10: 3x32x32\)"),
    ("cifar10", "cifar100", (1, 28, 28), r"class counts differ \(cifar10: 10, cifar100: 100\).*new output layer"),
    ("synthetic", "mnist", (1, 8, 8), r"input shapes differ \(synthetic: 1x8x8, mnist: 1x28x28\).*resizing or padding"),
])
def test_incompatible_data_sets_are_refused_before_any_folder(tmp_path, source, target, shape, message):
    with pytest.raises(ValueError, match=message):
        TransferConfig(dataset=source, target=target, synthetic_shape=shape)
    with pytest.raises(ValueError, match=message):
        check_compatible(source, target, shape)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("overrides, message", [
    ({"target": "mnist", "dataset": "mnist"}, "a data set other than"),
    ({"target": "imagenet"}, "unknown TransferConfig.target 'imagenet'; valid: mnist, fashion_mnist"),
    ({"rewind": "lr"}, "learning-rate rewinding"),
    ({"controls": ("reinit", "shuffle")}, "unknown control 'shuffle'; valid: reinit, random_mask"),
    ({"densities": (0.2, 0.5)}, "strictly decrease"),
])
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config(**overrides)


def test_a_rewind_point_beyond_training_is_refused_before_any_folder(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        runner(tmp_path, rewind="weights", rewind_iteration="6it")
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished run (kept for the tests that read it)."""
    root = tmp_path_factory.mktemp("transfer")
    run = runner(root)
    return run, run.run()


def test_the_transferred_mask_is_the_source_ticket_and_the_random_mask_keeps_its_layer_densities(finished):
    run, _ = finished
    plan = TransferPlan(run.context)
    trials = len(run.context.trials)
    for level in (1, 2):
        for target, source in (("mnist", "synthetic"), ("synthetic", "mnist")):
            members = plan.members(level)
            stack = plan.stack(level, target, members)
            source_masks, _ = plan.plan(source).tickets(level)
            own_masks, _ = plan.plan(target).tickets(level)
            rows = {c: [i for i, m in enumerate(members) if m.control == c] for c in ("none", TRANSFER, "reinit",
                                                                                      "random_mask")}
            for name, mask in stack.masks.items():
                transferred = mask[rows[TRANSFER]].bool()
                assert torch.equal(transferred, source_masks[name].bool()), (level, target, name)
                assert torch.equal(mask[rows["none"]].bool(), own_masks[name].bool())
                assert torch.equal(mask[rows["reinit"]].bool(), source_masks[name].bool())
                random = mask[rows["random_mask"]].bool()
                assert torch.equal(random.flatten(1).sum(1), transferred.flatten(1).sum(1)), name  # per layer
                assert not torch.equal(random, transferred)
            first = next(iter(source_masks))
            assert not torch.equal(source_masks[first], own_masks[first])  # two data sets, two tickets
            # the transferred ticket starts from the source's init (shared W0: init rewinding); the reinit does not
            init = NetworkStack.from_states(plan.plan(source).template(),
                                            [run.context.state(f"level_00_{source}")["init"]])
            weights = stack.params[first]
            assert torch.equal(weights[rows[TRANSFER]], init.params[first] * source_masks[first])
            assert not torch.equal(weights[rows["reinit"]], weights[rows[TRANSFER]])
            assert len(rows[TRANSFER]) == trials


def test_rows_name_the_data_set_trained_on(finished):
    _, result = finished
    from lth.results.analysis import per_network
    networks = per_network(result.metrics)
    counts = networks.groupby(["experiment", "level", "control"]).size()
    assert counts[("mnist", 0, "none")] == 2 and ("mnist", 0, TRANSFER) not in counts
    for target in ("mnist", "synthetic"):
        for control in ("none", TRANSFER, "reinit", "random_mask"):
            assert counts[(target, 2, control)] == 2
    dense_mnist = networks[(networks.experiment == "mnist") & (networks.level == 0)]
    dense_synthetic = networks[(networks.experiment == "synthetic") & (networks.level == 0)]
    assert not dense_mnist.final_test_accuracy.equals(dense_synthetic.final_test_accuracy)


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, finished):
    _, whole = finished
    seen = []

    def kill(iteration, stack):
        seen.append(iteration)
        if stack.size == 8 and iteration == 4:  # a level-1 stack, after its checkpoint at 2
            raise Killed

    killed = runner(tmp_path, [kill])
    with pytest.raises(Killed):
        killed.run()
    done = sorted(p.name for p in (killed.run_dir.path / "done").iterdir())
    assert done == ["level_00_mnist", "level_00_synthetic"]
    assert killed.run_dir.load_checkpoint("level_01_synthetic_progress")["iteration"] == 2
    resumed = runner(tmp_path).run()
    assert resumed.trained[0] == "level_01_synthetic"
    key = ["experiment", "control", "level", "trial", "replicate", "split", "metric", "iteration"]
    pd.testing.assert_frame_equal(resumed.metrics.sort_values(key).reset_index(drop=True),
                                  whole.metrics.sort_values(key).reset_index(drop=True))


def networks_frame(gap=1.0, own=0.95, trials=3):
    rows = []
    for target in ("mnist", "fashion_mnist"):
        for t in range(trials):
            rows.append({"experiment": target, "level": 0, "control": "none", "trial": t, "replicate": 0,
                         "density": 1.0, "early_stop_test_accuracy": own})
            for level, density, scale in ((1, 0.2, 0.5), (2, 0.07, 1.0)):
                for control, acc in (("none", own), (TRANSFER, own - 0.001), ("reinit", own - scale * gap / 100),
                                     ("random_mask", own - scale * gap / 100 - 0.002 * t)):
                    rows.append({"experiment": target, "level": level, "control": control, "trial": t,
                                 "replicate": 0, "density": density, "early_stop_test_accuracy": acc})
    return pd.DataFrame(rows)


def test_transfer_claims_are_measured_and_marked_not_comparable():
    from lth.results import claims
    from lth.results.transfer import gaps
    table = claims.evaluate(claims.TRANSFER_MNIST, networks_frame(), profile="paper")
    by_id = dict(zip([c.id for c in claims.TRANSFER_MNIST], table.itertuples()))
    row = by_id["transfer_beats_random_mnist_to_fashion_mnist"]
    assert row.verdict == "not comparable" and row.n == 3 and row.mean == pytest.approx(1.1, abs=1e-6)
    assert by_id["transfer_close_to_own_fashion_mnist_to_mnist"].mean == pytest.approx(0.1, abs=1e-6)
    assert by_id["transfer_gap_widens_mnist_to_fashion_mnist"].mean == pytest.approx(0.5, abs=1e-6)
    assert by_id["transfer_matches_dense_mnist_to_fashion_mnist"].mean == pytest.approx(0.1, abs=1e-6)
    assert by_id["transfer_larger_source"].verdict == "not run"
    assert "same number of examples" in by_id["transfer_larger_source"].detail
    assert set(table.verdict) == {"not comparable", "not run"}
    smoke = claims.evaluate(claims.TRANSFER_MNIST, networks_frame(), profile="smoke")
    assert set(smoke.verdict) <= {"not judged", "not run"}
    per_trial = gaps(networks_frame(), ("mnist", "fashion_mnist"))
    assert len(per_trial) == 2 * 2 * 3 and per_trial.direction.iloc[0] == "MNIST → Fashion-MNIST"
    assert per_trial.transfer_minus_reinit.iloc[-1] == pytest.approx(0.9, abs=1e-6)
