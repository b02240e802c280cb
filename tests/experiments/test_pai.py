"""The pruning-at-init kind on the runner: tidy rows per method, reruns skip, a new method trains
alone in the same folder, the recipe's scopes, the CLI, and a killed method resumed."""

import pandas as pd
import pytest

from lth.experiments import kind_of, pai
from lth.experiments.runner import Runner
from lth.prune import targets as pruning
from lth.results.analysis import per_network
from lth.results.pai import layer_table
from lth.train.config import TrainConfig

FAST = TrainConfig(iterations=20, batch_size=20, optimizer="sgd", lr=0.05, momentum=0.9, eval_every=10)


def run_pai(config, train_cfg, **kwargs):
    return Runner(kind_of("pai"), config, {"pai": train_cfg}, **kwargs).run().metrics


def small_config(**overrides):
    config = dict(experiment="p", dataset="synthetic", model="fc", model_kwargs={"widths": (32, 16)},
                  methods=("snip", "random_erk"), densities=(0.5, 0.1), trials=2)
    config.update(overrides)
    return pai.PaiConfig(**config)


def test_run_pai_writes_metrics_that_per_network_reads_and_reruns_skip(tmp_path, synthetic, monkeypatch):
    metrics = run_pai(small_config(), FAST, root=tmp_path, device="cpu", data=synthetic)
    assert list(metrics.columns) == ["experiment", "trial", "level", "density", "control", "replicate",
                                     "iteration", "split", "metric", "value"]
    networks = per_network(metrics)
    assert len(networks) == 2 * 2 * 2  # methods x trials x densities
    assert set(networks.control) == {"snip", "random_erk"} and set(networks.level) == {0, 1}
    assert set(networks.replicate) == {0}
    for level, density in enumerate((0.5, 0.1)):
        realised = networks[networks.level == level].density
        assert realised.to_numpy() == pytest.approx(pruning.keep_count(2720, density) / 2720)
    layers = layer_table(metrics)
    assert set(layers.layer) == {"fc.0.weight", "fc.1.weight", "fc.2.weight"}
    run_dir = next(tmp_path.glob("p/*"))
    assert (run_dir / "done" / "snip").exists() and (run_dir / "done" / "random_erk").exists()

    from lth.experiments import runner
    monkeypatch.setattr(runner, "train", lambda *a, **k: pytest.fail("a finished method was trained again"))
    again = run_pai(small_config(), FAST, root=tmp_path, device="cpu", data=synthetic)
    pd.testing.assert_frame_equal(again, metrics)


def test_adding_a_method_trains_only_that_method_in_the_same_folder(tmp_path, synthetic, monkeypatch):
    from lth.experiments import runner
    first = Runner(kind_of("pai"), small_config(methods=("magnitude",)), {"pai": FAST}, root=tmp_path, device="cpu", data=synthetic)
    first.run()
    trained = []
    real_train = runner.train
    monkeypatch.setattr(runner, "train", lambda *a, **k: trained.append(k["desc"]) or real_train(*a, **k))
    second = Runner(kind_of("pai"), small_config(methods=("magnitude", "synflow")), {"pai": FAST}, root=tmp_path, device="cpu",
                    data=synthetic)
    assert second.run_dir.path == first.run_dir.path
    metrics = second.run().metrics
    assert trained == ["p synflow"]
    assert set(metrics.control) == {"magnitude", "synflow"}


def test_pai_config_validates_and_registers_with_gin():
    with pytest.raises(ValueError, match="unknown pruning-at-init method"):
        pai.PaiConfig(methods=("snip", "obd"))
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
        pai.PaiConfig(densities=(0.1, 2.0))
    from lth.config import load_recipe
    recipe = load_recipe("pai_lenet300", profile="smoke", bindings=["PaiConfig.trials = 3"])
    config, train_cfg = recipe.config, recipe.trains["pai"]
    assert recipe.kind == "pai" and type(config) is pai.PaiConfig
    assert config.experiment == "pai_lenet300" and config.trials == 3 and config.dataset == "synthetic"
    assert train_cfg.optimizer == "sgd" and train_cfg.milestones == ("20it",)  # the profile's pai/ scope
    recipe = load_recipe("pai_lenet5_caffe", profile="paper")
    assert recipe.config.densities == (0.02, 0.01) and recipe.trains["pai"].iterations == "75000it"


def test_the_cli_runs_a_pai_recipe(tmp_path, capsys):
    from lth.cli import main
    recipe = tmp_path / "pai_tiny.gin"
    recipe.write_text("PaiConfig.experiment = 'pai_tiny'\nPaiConfig.dataset = 'synthetic'\n"
                      "PaiConfig.model = 'fc'\nPaiConfig.model_kwargs = {'widths': (16,)}\n"
                      "PaiConfig.methods = ('magnitude',)\nPaiConfig.densities = (0.1,)\n"
                      "TrainConfig.iterations = '10it'\nTrainConfig.batch_size = 50\nTrainConfig.eval_every = 10\n")
    assert main(["run", str(recipe), "--root", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pai_tiny" in out and "magnitude" in out and "10.00" in out  # remaining_% of the one level


def test_a_killed_method_resumes_to_the_same_numbers(tmp_path, synthetic):
    cfg = TrainConfig(iterations=30, batch_size=20, optimizer="sgd", lr=0.05, momentum=0.9, eval_every=10,
                      checkpoint_every=10)
    config = small_config(methods=("snip",))
    whole = run_pai(config, cfg, root=tmp_path / "whole", device="cpu", data=synthetic)

    def kill(iteration, stack):
        if iteration == 30:
            raise KeyboardInterrupt
    killed = Runner(kind_of("pai"), config, {"pai": cfg}, root=tmp_path / "killed", device="cpu", data=synthetic, callbacks=[kill])
    with pytest.raises(KeyboardInterrupt):
        killed.run()
    assert killed.run_dir.load_checkpoint("snip_progress")["iteration"] == 20
    resumed = run_pai(config, cfg, root=tmp_path / "killed", device="cpu", data=synthetic)
    pd.testing.assert_frame_equal(resumed, whole)


def test_snip_ablation_variants_train_beside_plain_snip_in_one_folder(tmp_path, synthetic):
    config = small_config(methods=("snip", "random_erk"), variants=("reinit", "variance_scaling+biases"))
    kind = kind_of("pai")
    assert kind.operative(config, {"pai": FAST}) == kind.operative(small_config(), {"pai": FAST})  # not hashed
    metrics = run_pai(config, FAST, root=tmp_path, device="cpu", data=synthetic)
    networks = per_network(metrics)
    assert set(networks.control) == {"snip", "snip+reinit", "snip+variance_scaling+biases", "random_erk"}
    ctx = Runner(kind, config, {"pai": FAST}, root=tmp_path, device="cpu", data=synthetic).context
    plain, reinit, biased = (pai.pruned_stack(ctx, "snip", v) for v in ("", "reinit", "variance_scaling+biases"))
    name = "fc.0.weight"
    assert pd.Series(plain.masks[name].flatten().tolist()).equals(pd.Series(reinit.masks[name].flatten().tolist()))
    kept = plain.masks[name].bool()
    assert not (plain.params[name][kept] == reinit.params[name][kept]).all()  # fresh weights under the same mask
    assert "fc.0.bias" in biased.kinds and "fc.0.bias" not in plain.kinds
    assert float(biased.params["fc.0.bias"].detach().abs().sum()) == 0.0  # biases train from zero
    total = sum(p[0].numel() for n, p in biased.params.items() if n in biased.kinds)  # weights + biases
    assert biased.masks["fc.0.bias"].sum() > 0  # variance-scaled biases win places in the top-k
    kept_all = sum(biased.masks[n][0].sum() for n in biased.kinds)
    assert int(kept_all) == pruning.keep_count(total, 0.5)


def test_variants_and_bias_pruning_are_checked():
    with pytest.raises(ValueError, match="joined set of distinct"):
        small_config(variants=("reinit+reinit",))
    with pytest.raises(ValueError, match="joined set of distinct"):
        small_config(variants=("warmup",))
    with pytest.raises(ValueError, match="prune_biases needs scored methods"):
        small_config(prune_biases=True)
    kind = kind_of("pai")
    assert "prune_biases" in kind.operative(small_config(methods=("snip",), prune_biases=True), {"pai": FAST})
    assert "prune_biases" not in kind.operative(small_config(), {"pai": FAST})


def test_variance_scaling_matches_tensorflow_std():
    import torch
    from lth.nets.models import variance_scaling_
    t = variance_scaling_(torch.empty(400, 2500), torch.Generator().manual_seed(0))
    assert float(t.std()) == pytest.approx((1 / 2500) ** 0.5, rel=0.01)
    assert float(t.abs().max()) <= 2 * (1 / 2500) ** 0.5 / 0.8796256610342398 + 1e-7
