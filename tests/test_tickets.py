"""Tickets taken away: one network of an IMP run exported as safetensors and loaded as a plain
PyTorch model (torch.nn.utils.prune's layout), strong tickets as seeds + bit-packed masks."""

import argparse

import pytest
import torch
from torch.nn.utils import prune

from lth.experiments import kind_of
from lth.experiments.imp import ImpConfig, ImpPlan
from lth.experiments.runner import Runner
from lth.nets import supermask
from lth.nets.models import build_model
from lth.tickets import (TicketError, add_export_arguments, export_command, export_supermask_ticket, export_ticket,
                         load_ticket, read_ticket)
from lth.tickets.fileformat import pack_mask, unpack_mask
from lth.train.config import TrainConfig

SHAPE = (1, 8, 8)  # the synthetic fixture's shape (the config names synthetic data, not its shape)
FAST = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, checkpoint_every=20)


@pytest.fixture(scope="module")
def imp(tmp_path_factory, synthetic):
    config = ImpConfig(experiment="t", dataset="synthetic", model="fc", model_kwargs={"widths": (32, 16)},
                       trials=2, levels=2, reinits=2)
    runner = Runner(kind_of("imp"), config, {"": FAST}, root=tmp_path_factory.mktemp("runs"), device="cpu", data=synthetic)
    result = runner.run()
    return runner, result.metrics


def export(runner, tmp_path, level, trial, control="none", replicate=0, trained=False):
    return export_ticket(runner.run_dir.path, level, trial, control, replicate, trained, input_shape=SHAPE,
                         path=tmp_path / f"{level}_{trial}_{control}_{replicate}.safetensors")


def recorded_test_accuracy(metrics, level, trial, control="none", replicate=0):
    rows = metrics[(metrics.level == level) & (metrics.trial == trial) & (metrics.control == control)
                   & (metrics.replicate == replicate) & (metrics.split == "test") & (metrics.metric == "accuracy")]
    return rows[rows.iteration == rows.iteration.max()].value.item()


@pytest.mark.parametrize("level,trial", [(0, 0), (1, 1), (2, 0)])
def test_a_loaded_trained_ticket_scores_the_test_accuracy_the_run_recorded(imp, tmp_path, synthetic, level, trial):
    runner, metrics = imp
    model = load_ticket(export(runner, tmp_path, level, trial, trained=True), weights="trained").eval()
    with torch.no_grad():
        accuracy = (model(synthetic.test.x).argmax(1) == synthetic.test.y).float().mean().item()
    assert accuracy == pytest.approx(recorded_test_accuracy(metrics, level, trial), abs=1e-6)


def test_initial_weights_and_masks_are_what_each_network_of_the_level_trained_from(imp, tmp_path):
    runner, _ = imp
    job = ImpPlan(runner.context).job(2)
    stack = job.build()
    assert {m.control for m in job.members} == {"none", "reinit", "random_mask"}
    for index, member in enumerate(job.members):
        model = load_ticket(export(runner, tmp_path, 2, member.trial, member.control, member.replicate))
        for name in stack.kinds:
            module = model.get_submodule(name.rpartition(".")[0])
            assert torch.equal(module.weight_mask, stack.masks[name][index]), (member, name)
            assert torch.equal(module.weight_orig.detach(), stack.params[name][index].detach()), (member, name)
        for name, value in model.named_parameters():
            if not name.endswith("weight_orig"):
                assert torch.equal(value.detach(), stack.params[name][index].detach()), (member, name)


def test_a_loaded_ticket_is_plain_pytorch_that_trains_with_pruned_weights_at_zero(imp, tmp_path, synthetic):
    runner, _ = imp
    path = export(runner, tmp_path, 2, 0)
    model = load_ticket(path)
    layer = model.fc[0]
    assert {"weight_orig"} <= dict(layer.named_parameters()).keys() and "weight_mask" in dict(layer.named_buffers())
    assert 0.5 < read_ticket(path).meta["densities"]["fc.0.weight"] < 0.9
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(synthetic.train.x[:50]), synthetic.train.y[:50]).backward()
    optimizer.step()
    assert torch.all(model(synthetic.test.x[:1]) == model(synthetic.test.x[:1]))
    assert torch.all(layer.weight[layer.weight_mask == 0] == 0)
    prune.remove(layer, "weight")  # back to an ordinary Linear
    assert "weight" in dict(layer.named_parameters())


def test_metadata_names_model_data_densities_and_origin(imp, tmp_path):
    runner, _ = imp
    meta = read_ticket(export(runner, tmp_path, 1, 1, "reinit", 1)).meta
    assert meta["model"] == "fc" and meta["model_kwargs"] == {"widths": [32, 16]}
    assert meta["dataset"] == "synthetic" and meta["input_shape"] == [1, 8, 8] and meta["num_classes"] == 10
    assert (meta["level"], meta["trial"], meta["control"], meta["replicate"]) == (1, 1, "reinit", 1)
    assert meta["run_hash"] == runner.run_dir.hash and meta["lth_version"]
    assert set(meta["densities"]) == {"fc.0.weight", "fc.1.weight", "fc.2.weight"}
    assert meta["density"] == pytest.approx(0.8, abs=0.01)


def test_exporting_a_network_the_run_lacks_lists_what_it_has(imp, tmp_path):
    runner, _ = imp
    for level, trial, control, replicate in [(3, 0, "none", 0), (1, 2, "none", 0), (1, 0, "shuffle", 0),
                                             (1, 0, "reinit", 2), (0, 0, "reinit", 0)]:
        with pytest.raises(TicketError, match=r"levels \[0, 1, 2\].*trials \[0, 1\].*random_mask, reinit"):
            export(runner, tmp_path, level, trial, control, replicate)
    with pytest.raises(TicketError, match="trained weights for the tickets only"):
        export(runner, tmp_path, 1, 0, "reinit", 0, trained=True)
    with pytest.raises(TicketError, match="no config.gin"):
        export_ticket(tmp_path, 0, 0, path=tmp_path / "x.safetensors")
    assert not list(tmp_path.glob("*.safetensors"))


def test_truncated_or_foreign_files_are_clear_errors_naming_the_file(imp, tmp_path):
    runner, _ = imp
    good = export(runner, tmp_path, 1, 0)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"not a ticket at all" * 10)
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    for path, why in [(truncated, "not a readable ticket"), (foreign, "not a readable ticket"),
                      (other, "not an lth ticket"), (tmp_path / "missing.safetensors", "does not exist")]:
        with pytest.raises(TicketError, match=why) as err:
            load_ticket(path)
        assert str(path) in str(err.value)
    with pytest.raises(TicketError, match="holds no 'trained' weights"):
        load_ticket(good, weights="trained")


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (300, 784), (4, 3, 5, 5)])
def test_bit_packed_masks_round_trip(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.3
    packed = pack_mask(mask)
    assert packed.numel() == -(-mask.numel() // 8)
    assert torch.equal(unpack_mask(packed, shape), mask)


def test_a_strong_ticket_of_seeds_and_a_packed_mask_regenerates_exactly_and_is_small(tmp_path):
    shape = (1, 28, 28)
    models = [supermask.to_supermask(build_model("lenet300", shape, 10, bias=False, init="kaiming_normal", seed=s),
                                     rule="top_k", seed=s, density=0.1, weight_init="signed_constant") for s in (3, 4)]
    stack = supermask.SupermaskStack.from_models(models)
    path = export_supermask_ticket(stack, 1, tmp_path / "strong.safetensors", model="lenet300", input_shape=shape,
                                   num_classes=10, weight_init="signed_constant", model_kwargs={"bias": False})
    model = load_ticket(path)
    masks = stack.layer_masks()
    for name in ("fc.0", "fc.1", "fc.2"):
        layer = model.get_submodule(name)
        assert torch.equal(layer.weight_orig.detach(), stack.buffers[f"{name}.weight"][1])
        assert torch.equal(layer.weight_mask, masks[name][1])
    x = torch.randn(5, *shape)
    with torch.no_grad():
        assert torch.allclose(model(x), stack(x, shared_input=True)[1], atol=1e-5)
    weights = sum(m[0].numel() for m in masks.values())  # 266,200
    size = path.stat().st_size
    print(f"\nLeNet-300-100 strong ticket: {size:,} bytes as seeds + bit-packed mask, "
          f"{4 * weights:,} bytes of float32 weights")
    assert weights / 8 < size < weights / 8 + 3000  # ~33 KB: the packed mask and a small header
    with pytest.raises(TicketError, match="does not regenerate"):
        export_supermask_ticket(stack, 1, tmp_path / "wrong.safetensors", model="lenet300", input_shape=shape,
                                num_classes=10, weight_init="kaiming_normal", model_kwargs={"bias": False})


def test_the_export_command_writes_a_file_or_names_what_the_run_has(imp, tmp_path, capsys):
    runner, _ = imp
    parser = add_export_arguments(argparse.ArgumentParser())
    run = str(runner.run_dir.path)
    # the run's config names synthetic data of MNIST's shape; this run had 8x8: a clear error, not a bad file
    assert export_command(parser.parse_args([run, "--level", "1", "--trial", "0", "-o", str(tmp_path / "a")])) == 2
    assert "input_shape" in capsys.readouterr().err
    assert export_command(parser.parse_args([run, "--level", "9", "--trial", "0", "-o", str(tmp_path / "b")])) == 2
    assert "levels [0, 1, 2]" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
