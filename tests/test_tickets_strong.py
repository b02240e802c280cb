"""Strong tickets exported from run folders: every strong kind keeps its final supermasks, and
`export_ticket` writes one network as seeds + a bit-packed mask whose loaded plain model regenerates
the frozen weights exactly and scores the test accuracy the run recorded."""

import argparse

import pytest
import torch

from lth.data import load_splits
from lth.experiments import kind_of
from lth.experiments.edgepopup import EdgePopupConfig
from lth.experiments.gem_miner import GemMinerConfig
from lth.experiments.pensia import PensiaConfig
from lth.experiments.runner import Runner
from lth.experiments.train_ticket import TrainTicketConfig
from lth.nets.supermask import SupermaskLayer
from lth.tickets import TicketError, add_export_arguments, export_command, export_ticket, load_ticket, read_ticket
from lth.train.config import TrainConfig

SGD = TrainConfig(iterations="6it", batch_size=20, optimizer="sgd", lr=0.1, momentum=0.9, eval_every="2it")


def run(kind, config, data, root, roles):
    runner = Runner(kind_of(kind), config, {role: SGD for role in roles}, root=root, device="cpu", data=data)
    return runner, runner.run().metrics


def recorded(metrics, network, control, level, trial):
    rows = metrics[(metrics.experiment == network) & (metrics.control == control) & (metrics.level == level)
                   & (metrics.trial == trial) & (metrics.split == "test") & (metrics.metric == "accuracy")]
    return rows[rows.iteration == rows.iteration.max()].value.item()


def accuracy(model, split):
    with torch.no_grad():
        return (model.eval()(split.x).argmax(1) == split.y).float().mean().item()


def frozen_weights(runner, job_key):
    """The frozen random weights of a job's networks, as a fresh build of its stack draws them."""
    job = next(j for j in runner._jobs if j.key == job_key)
    stack = job.build()
    layers = [n for n, m in stack.template.named_modules() if isinstance(m, SupermaskLayer)]
    return job.members, {f"{n}.weight": stack.buffers[f"{n}.weight"] for n in layers}


@pytest.fixture(scope="module")
def edgepopup(tmp_path_factory, synthetic):
    config = EdgePopupConfig(dataset="synthetic", synthetic_shape=(1, 8, 8), networks=("lenet300", "conv2"),
                             weight_inits=("signed_constant", "kaiming_normal"), densities=(0.5, 0.2), trials=2,
                             dense_baseline=False)
    return run("edgepopup", config, synthetic, tmp_path_factory.mktemp("runs"), ("edgepopup", "edgepopup_weights"))


@pytest.mark.parametrize("network,control", [("lenet300", "signed_constant"), ("conv2", "kaiming_normal")])
def test_edgepopup_tickets_regenerate_exactly_and_score_the_recorded_accuracy(edgepopup, synthetic, tmp_path,
                                                                              network, control):
    runner, metrics = edgepopup
    members, weights = frozen_weights(runner, f"{network}-{control}")
    for row, member in enumerate(members):
        path = export_ticket(runner.run_dir.path, member.level, member.trial, control, network=network,
                             path=tmp_path / f"{row}.safetensors")
        model = load_ticket(path)
        for key, frozen in weights.items():
            layer = model.get_submodule(key.rpartition(".")[0])
            assert torch.equal(layer.weight_orig.detach(), frozen[row]), (member, key)
            assert 0 < float(layer.weight_mask.mean()) < 1
        assert accuracy(model, synthetic.test) == pytest.approx(
            recorded(metrics, network, control, member.level, member.trial), abs=1e-6), member
        meta = read_ticket(path).meta
        assert (meta["network"], meta["control"], meta["level"], meta["trial"]) == (network, control, member.level,
                                                                                     member.trial)
        assert meta["density"] == pytest.approx((0.5, 0.2)[member.level], abs=0.01)


def test_a_strong_ticket_is_seeds_and_a_packed_mask(edgepopup, tmp_path):
    runner, _ = edgepopup
    path = export_ticket(runner.run_dir.path, 1, 0, "signed_constant", network="lenet300", path=tmp_path / "t.safetensors")
    weights = 64 * 300 + 300 * 100 + 100 * 10
    size = path.stat().st_size
    print(f"\nLeNet-300-100 (8x8 inputs) strong ticket from a run folder: {size:,} bytes; float32 weights: {4 * weights:,}")
    assert weights / 8 < size < weights / 8 + 3000
    assert set(read_ticket(path).seeds) == {"fc.0.weight", "fc.1.weight", "fc.2.weight"}


def test_the_export_command_on_a_strong_run_writes_the_ticket_or_lists_what_the_run_has(edgepopup, tmp_path, capsys):
    runner, _ = edgepopup
    parser = add_export_arguments(argparse.ArgumentParser())
    base = [str(runner.run_dir.path), "--trial", "1"]
    out = tmp_path / "cli.safetensors"
    assert export_command(parser.parse_args(base + ["--network", "conv2", "--control", "kaiming_normal", "--level",
                                                    "0", "-o", str(out)])) == 0
    assert "control kaiming_normal" in capsys.readouterr().out and out.is_file()
    assert export_command(parser.parse_args(base + ["-o", str(tmp_path / "x")])) == 2
    err = capsys.readouterr().err
    assert "several networks match" in err and "networks ['conv2', 'lenet300']" in err
    assert export_command(parser.parse_args(base + ["--network", "lenet5", "-o", str(tmp_path / "y")])) == 2
    assert "no such network" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.safetensors"]


def test_train_ticket_gates_export_with_their_trained_biases_and_ungated_layers(synthetic, tmp_path):
    config = TrainTicketConfig(dataset="synthetic", synthetic_shape=(1, 8, 8), networks=("mlp", "cnn"))
    runner, metrics = run("train_ticket", config, synthetic, tmp_path / "runs", ("train_ticket",))
    for network in ("mlp", "cnn"):
        model = load_ticket(export_ticket(runner.run_dir.path, None, 0, network=network,
                                          path=tmp_path / f"{network}.safetensors"))
        assert accuracy(model, synthetic.test) == pytest.approx(recorded(metrics, network, "gated", 0, 0), abs=1e-6)
    assert set(read_ticket(tmp_path / "mlp.safetensors").seeds) == {"fc.1.weight", "fc.2.weight"}  # the gated layers


def test_gem_miner_scores_export_through_non_affine_batch_norm(tmp_path):
    data = load_splits("synthetic", synthetic_shape=(3, 8, 8), synthetic_sizes=(200, 40, 40))
    config = GemMinerConfig(dataset="synthetic", synthetic_shape=(3, 8, 8), model="resnet20", density=0.5,
                            freeze_period="2it", controls=())
    runner, metrics = run("gem_miner", config, data, tmp_path / "runs", ("gem_miner", "gem_miner_weights"))
    path = export_ticket(runner.run_dir.path, 0, 0, path=tmp_path / "gem.safetensors")
    model = load_ticket(path)
    assert read_ticket(path).meta["control"] == "gem_miner_scores"
    assert model.bn.running_mean.abs().sum() > 0  # the statistics the scores trained with
    assert accuracy(model, data.test) == pytest.approx(recorded(metrics, "resnet20", "gem_miner_scores", 0, 0),
                                                       abs=1e-6)


def test_pensia_wide_networks_export_and_redundant_ones_are_refused(synthetic, tmp_path):
    config = PensiaConfig(dataset="synthetic", synthetic_shape=(1, 8, 8), networks=("fc2",), densities=(0.5,),
                          redundancy=2, dense_baseline=False)
    runner, metrics = run("pensia", config, synthetic, tmp_path / "runs", ("pensia", "pensia_weights"))
    model = load_ticket(export_ticket(runner.run_dir.path, 0, 0, "wide", path=tmp_path / "wide.safetensors"))
    assert accuracy(model, synthetic.test) == pytest.approx(recorded(metrics, "fc2", "wide", 0, 0), abs=1e-6)
    with pytest.raises(TicketError, match="redundant"):
        export_ticket(runner.run_dir.path, 0, 0, "red", path=tmp_path / "red.safetensors")


def test_a_run_stored_before_strong_runs_kept_their_masks_says_how_to_keep_them(edgepopup, tmp_path):
    import shutil
    runner, _ = edgepopup
    old = tmp_path / "old" / runner.run_dir.path.name
    shutil.copytree(runner.run_dir.path, old)
    for file in (old / "checkpoints").glob("*.pt"):
        file.unlink()
    with pytest.raises(TicketError, match=r"keeps no final supermasks: its jobs \[.*lenet300-signed_constant.*\] "
                                          r"finished before"):
        export_ticket(old, 0, 0, network="lenet300", control="signed_constant", path=tmp_path / "x.safetensors")
