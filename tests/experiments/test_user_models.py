"""Models of the user's own (`lth.register_model`, gin's ``@factory``) under IMP with its controls and
under SNIP: torchvision's ResNet-18 adapted to 32x32 inputs and an MLP written in examples/, each
through a smoke IMP run killed midway and resumed to the numbers of an uninterrupted run."""

import importlib.util
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import lth
from lth.data import load_splits
from lth.experiments import kind_of
from lth.experiments.imp import ImpConfig, ImpPlan
from lth.experiments.pai import PaiConfig
from lth.experiments.runner import Runner
from lth.nets.models import build_model, prunable_weights
from lth.nets.user_models import model_names
from lth.prune import targets as pruning
from lth.schema import MASK_SPLIT
from lth.train.config import TrainConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "user_models.py"


@pytest.fixture(scope="module")
def example():
    """examples/user_models.py, imported: it registers cifar_resnet18 and my_mlp."""
    spec = importlib.util.spec_from_file_location("lth_example_user_models", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cifar_shaped():
    # few examples: ResNet-18's evaluations at 32x32 cost as much as its training steps on a CPU
    return load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(8, 4, 4))


class Killed(Exception):
    pass


def run_killed_and_resumed(tmp_path, kind, config, trains, data, kill):
    """(metrics of an uninterrupted run, metrics of a run killed by ``kill(run_dir, iteration, stack)``
    and then run again)."""
    runner = lambda root, callbacks=(): Runner(kind_of(kind), config, trains, root=root, device="cpu", data=data,
                                               callbacks=callbacks)
    whole = runner(tmp_path / "whole").run().metrics
    killed = runner(tmp_path / "killed")
    killed.callbacks.append(lambda iteration, stack: kill(killed.run_dir, iteration, stack))
    with pytest.raises(Killed):
        killed.run()
    return whole, runner(tmp_path / "killed").run().metrics


def test_torchvision_resnet18_on_cifar_shaped_data_resumes_a_killed_imp_run_exactly(tmp_path, example, cifar_shaped):
    kinds = prunable_weights(build_model("cifar_resnet18", (3, 32, 32), 10, seed=0))
    assert kinds["conv1.weight"] == "conv" and kinds["fc.weight"] == "output"
    assert kinds["layer2.0.downsample.0.weight"] == "shortcut" and len(kinds) == 21  # 17 convs, 3 shortcuts, fc
    config = ImpConfig(experiment="resnet18", dataset="synthetic", model="cifar_resnet18", init="kaiming_normal",
                       levels=1, rates={"conv": 0.2, "output": 0.1}, controls=())
    # plain SGD: no optimiser state to checkpoint beside 11M weights per network
    train = TrainConfig(iterations="2it", batch_size=4, optimizer="sgd", lr=0.01, eval_every="1it",
                        checkpoint_every="1it")

    def kill(run, iteration, stack):
        if run.is_done("level_00") and iteration == 1:  # midway through level 1, after its checkpoint
            raise Killed

    whole, resumed = run_killed_and_resumed(tmp_path, "imp", config, {"": train}, cifar_shaped, kill)
    pd.testing.assert_frame_equal(whole, resumed)
    final = whole[(whole.level == 1) & (whole.split == "test") & (whole.metric == "accuracy")]
    assert len(final) == 3 and set(final.iteration) == {0, 1, 2}
    # convs keep 80%, the output layer 90%, the shortcuts all: the realised density of the whole network
    sizes = {n: p.numel() for n, p in build_model("cifar_resnet18", (3, 32, 32), 10).named_parameters() if n in kinds}
    expected = pruning.overall_density(pruning.targets(sizes, kinds, config.rates, 1))
    assert whole[whole.level == 1].density.unique() == pytest.approx([expected])
    assert 0.8 < expected < 0.81


def test_a_user_mlp_runs_imp_with_its_controls_and_resumes_a_killed_run_exactly(tmp_path, example, synthetic):
    config = ImpConfig(experiment="mlp", dataset="synthetic", model="my_mlp", model_kwargs={"hidden": (32, 16)},
                       trials=2, levels=2)
    train = TrainConfig(iterations=40, batch_size=20, lr=5e-3, eval_every=10, checkpoint_every=20)

    def kill(run, iteration, stack):
        if stack.size > 2 and iteration == 30:  # level 1 (tickets and controls), after the checkpoint at 20
            raise Killed

    whole, resumed = run_killed_and_resumed(tmp_path, "imp", config, {"": train}, synthetic, kill)
    pd.testing.assert_frame_equal(whole, resumed)
    assert set(whole.control) == {"none", "reinit", "random_mask"} and set(whole.level) == {0, 1, 2}
    stack = ImpPlan(Runner(kind_of("imp"), config, {"": train}, root=tmp_path / "whole", device="cpu",
                           data=synthetic).context).job(2).build()
    assert set(stack.kinds) == {"layers.0.weight", "layers.1.weight", "layers.2.weight"}
    assert stack.kinds["layers.2.weight"] == "output"
    assert stack.density()[:2].tolist() == pytest.approx([whole[whole.level == 2].density.iloc[0]] * 2)
    tickets = stack.masks["layers.0.weight"][:2]
    assert torch.equal(stack.masks["layers.0.weight"][2:4], tickets)  # reinit: the ticket's mask
    assert not torch.equal(stack.masks["layers.0.weight"][4:], tickets)  # random mask


def test_snip_prunes_a_user_model_at_initialisation(tmp_path, example, synthetic):
    config = PaiConfig(experiment="snip", dataset="synthetic", model="my_mlp", model_kwargs={"hidden": (32, 16)},
                       methods=("snip",), densities=(0.2, 0.05), trials=2)
    train = TrainConfig(iterations=20, batch_size=20, lr=5e-3, eval_every=10)
    metrics = Runner(kind_of("pai"), config, {"pai": train}, root=tmp_path, device="cpu", data=synthetic).run().metrics
    total = 64 * 32 + 32 * 16 + 16 * 10
    for level, density in enumerate(config.densities):
        rows = metrics[metrics.level == level]
        assert rows.density.unique() == pytest.approx([pruning.keep_count(total, density) / total])
    layers = metrics[metrics.split == MASK_SPLIT]
    assert set(layers.metric) == {"layers.0.weight", "layers.1.weight", "layers.2.weight"}
    assert layers.value.nunique() > 2  # global SNIP: layers end at different densities


def test_gin_names_a_factory_as_an_external_configurable(tmp_path, synthetic, monkeypatch):
    from lth.config import load_recipe
    module = tmp_path / "my_gin_models.py"
    module.write_text(textwrap.dedent('''
        import gin
        from torch import nn

        @gin.configurable
        def tiny_mlp(input_shape, num_classes, width=16):
            c, h, w = input_shape
            return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(), nn.Linear(width, num_classes))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tmp_path / "mine.gin"
    recipe.write_text("import my_gin_models\nImpConfig.model = @tiny_mlp\nImpConfig.model_kwargs = {'width': 8}\n"
                      "ImpConfig.dataset = 'synthetic'\nImpConfig.levels = 1\n"
                      "TrainConfig.iterations = 20\nTrainConfig.batch_size = 20\nTrainConfig.eval_every = 10\n")
    loaded = load_recipe(str(recipe))
    assert loaded.config.model == "tiny_mlp" and "ImpConfig.model = 'tiny_mlp'" in loaded.text
    assert "tiny_mlp" in model_names()
    metrics = Runner(kind_of("imp"), loaded.config, loaded.trains, root=tmp_path / "runs", device="cpu",
                     data=synthetic).run().metrics
    assert set(metrics.level) == {0, 1}
    assert set(metrics[metrics.split == "test"].control) == {"none", "reinit", "random_mask"}


class NoWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(x)


def test_bad_factories_are_clear_errors(tmp_path, synthetic):
    with pytest.raises(TypeError, match="must be callable.*got int 3"):
        lth.register_model("three", 3)
    with pytest.raises(ValueError, match="'lenet300' is a built-in model"):
        lth.register_model("lenet300", NoWeights)
    lth.register_model("no_weights", NoWeights)
    with pytest.raises(ValueError, match=r"'no_weights' has no prunable layers: looked for torch\.nn\.Linear, "
                                         r"torch\.nn\.Conv2d.*LayerNorm"):
        build_model("no_weights", (1, 8, 8), 10, seed=0)
    with pytest.raises(ValueError, match=r"no prunable layers"):  # refused before any folder or training
        Runner(kind_of("imp"), ImpConfig(dataset="synthetic", model="no_weights"), {"": TrainConfig()},
               root=tmp_path / "runs", device="cpu", data=synthetic)
    assert not (tmp_path / "runs").exists()
    lth.register_model("not_a_module", lambda: "a string")
    with pytest.raises(ValueError, match="'not_a_module' returned a str, not a torch.nn.Module"):
        build_model("not_a_module", (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"ImpConfig.model = .*lambda.*no usable name"):
        ImpConfig(model=lambda: NoWeights())
    with pytest.raises(ValueError, match=r"ImpConfig.model = 7: must be a model name or a named factory"):
        ImpConfig(model=7)
    with pytest.raises(ValueError, match=r"'lenet9'.*lenet300.*lth.register_model"):
        ImpConfig(model="lenet9")
    with pytest.raises(ValueError, match=r"ImpConfig.model_kwargs = .*'depth'.*arguments that model 'no_weights' takes"):
        ImpConfig(model="no_weights", model_kwargs={"depth": 3})
