import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lth.nets.models import INITS, MODELS, build_model, count_weights, initialize, prunable_weights

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)
# Smallest sensible (model, input shape, kwargs) per registry entry; keeps the whole file fast.
CASES = {
    "lenet300": (MNIST, {}),
    "fc": (MNIST, {"widths": (500,), "bias": False}),
    "lenet5": (MNIST, {}),
    "lenet5_caffe": (MNIST, {}),
    "ticket_cnn": (MNIST, {}),
    "conv2": (CIFAR, {}),
    "conv4": (CIFAR, {}),
    "conv6": (CIFAR, {}),
    "resnet20": (CIFAR, {}),
    "resnet32": (CIFAR, {}),
    "resnet56": (CIFAR, {}),
    "vgg16": (CIFAR, {}),
    "vgg19": (CIFAR, {}),
}


def make(name, seed=0, shape=None, **overrides):
    default_shape, kwargs = CASES[name]
    return build_model(name, shape or default_shape, 10, seed=seed, **{**kwargs, **overrides})


def small_shape(name):
    # 16x16 is the least VGG's four pools allow; it keeps the vmap tests quick on a busy CPU.
    shape, _ = CASES[name]
    return (3, 16, 16) if shape == CIFAR else shape


def test_cases_cover_registry():
    assert set(CASES) == set(MODELS)


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    "name, shape, kwargs, expected",
    [
        ("lenet300", MNIST, {}, 266_200),
        ("fc", MNIST, {"widths": (500,), "bias": False}, 397_000),  # Pensia's 784-500-10
        ("fc", MNIST, {"widths": (500, 500, 500), "bias": False}, 897_000),  # Pensia's FC4
        ("lenet5", MNIST, {}, 2_550 + 58_920),  # convs + Pensia's 400-120-84-10 head
        ("lenet5_caffe", MNIST, {}, 430_500),  # SNIP's "431K"
        ("conv2", CIFAR, {}, 4_300_992),
        ("conv4", CIFAR, {}, 2_425_024),
        ("conv6", CIFAR, {}, 2_261_184),
        ("resnet20", CIFAR, {}, 270_896),
        ("vgg19", CIFAR, {}, 20_024_000),  # 20,018,880 conv + 5,120 fc: LTH's "20.0M"
    ],
)
def test_weight_counts(name, shape, kwargs, expected):
    assert count_weights(build_model(name, shape, 10, init="default", **kwargs)) == expected


def test_lenet300_biases():
    model = make("lenet300")
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    assert biases == 410


def test_fc_without_bias_has_only_weights():
    model = make("fc")
    assert all(n.endswith("weight") for n, _ in model.named_parameters())


def test_lenet5_fc_head_is_400_120_84_10():
    assert count_weights(make("lenet5"), kinds=("fc", "output")) == 58_920


def test_conv_shares():
    # LTH App. conv-only counts for Conv-2/4/6.
    assert count_weights(make("conv2"), "conv") == 38_592
    assert count_weights(make("conv4"), "conv") == 259_776
    assert count_weights(make("conv6"), "conv") == 1_144_512


def test_resnet20_kind_split():
    model = make("resnet20")
    assert count_weights(model, "conv") == 267_696
    assert count_weights(model, "shortcut") == 2_560
    assert count_weights(model, "output") == 640
    assert count_weights(model, "fc") == 0


def test_vgg19_output_layer():
    assert count_weights(make("vgg19"), "output") == 5_120


def test_count_weights_rejects_unknown_kind():
    with pytest.raises(ValueError, match="output"):
        count_weights(make("lenet300"), kinds=("dense",))


# ----------------------------------------------------------------------------- kinds


@pytest.mark.parametrize("name", MODELS)
def test_prunable_weights_lists_exactly_linear_and_conv_weights(name):
    model = make(name)
    kinds = prunable_weights(model)
    params = dict(model.named_parameters())
    expected = {f"{m}.weight" for m, mod in model.named_modules() if isinstance(mod, (nn.Linear, nn.Conv2d))}
    assert set(kinds) == expected
    assert set(kinds) <= set(params)
    assert not any(n.endswith("bias") for n in kinds)
    assert list(kinds.values()).count("output") == 1
    # The output layer is the one producing the logits.
    (out_name,) = [n for n, k in kinds.items() if k == "output"]
    assert params[out_name].shape[0] == 10


def test_lenet300_names_and_kinds():
    assert prunable_weights(make("lenet300")) == {"fc.0.weight": "fc", "fc.1.weight": "fc", "fc.2.weight": "output"}


def test_resnet_shortcuts_are_1x1_and_bn_not_listed():
    model = make("resnet20")
    kinds = prunable_weights(model)
    params = dict(model.named_parameters())
    shortcuts = [n for n, k in kinds.items() if k == "shortcut"]
    assert len(shortcuts) == 2
    assert all(params[n].shape[-2:] == (1, 1) for n in shortcuts)
    bn_params = {f"{m}.{p}" for m, mod in model.named_modules() if isinstance(mod, nn.BatchNorm2d) for p in ("weight", "bias")}
    assert bn_params and not bn_params & set(kinds)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape(name):
    shape, _ = CASES[name]
    assert make(name)(torch.randn(3, *shape)).shape == (3, 10)


@pytest.mark.parametrize("name, shape", [("conv4", (1, 28, 28)), ("lenet5", (3, 32, 32)), ("resnet20", (1, 28, 28)),
                                         ("lenet300", (3, 32, 32)), ("vgg16", (1, 28, 28))])
def test_other_input_shapes(name, shape):
    model = build_model(name, shape, 7)
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_lenet5_unpadded_on_32x32():
    # Classic LeNet-5 on 32x32 needs no padding and still flattens to 400.
    model = build_model("lenet5", (1, 32, 32), 10)
    assert model.fc[0].in_features == 400


def test_resnet_width_kwarg():
    model = build_model("resnet20", CIFAR, 10, width=32)
    assert model.fc.in_features == 128


# ----------------------------------------------------------------------------- init


def test_glorot_normal_std():
    model = make("lenet300", init="glorot_normal")
    for layer in model.fc:
        fan_out, fan_in = layer.weight.shape
        assert layer.weight.mean().abs() < 0.01
        # Sample std has relative error ~1/sqrt(2n); allow 4 sigma (0.6% on fc.0, 9% on the 1,000-weight output).
        rel = 4 / math.sqrt(2 * layer.weight.numel())
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / (fan_in + fan_out)), rel=rel)
        assert torch.all(layer.bias == 0)


def test_glorot_normal_std_conv():
    weight = make("conv2", init="glorot_normal").conv[1].weight  # 64x64x3x3
    fan = 64 * 9
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (fan + fan)), rel=0.03)


def test_kaiming_normal_std():
    weight = make("conv2", init="kaiming_normal").conv[1].weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


def test_kaiming_uniform_bound():
    weight = make("lenet300", init="kaiming_uniform").fc[0].weight
    bound = math.sqrt(6 / 784)
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.99 * bound


def test_batchnorm_init():
    model = make("resnet20")
    model.bn.weight.data.uniform_()
    initialize(model, "glorot_normal", torch.Generator().manual_seed(1))
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)


def test_default_init_keeps_weights():
    model = make("lenet300", init="default")
    before = {n: p.clone() for n, p in model.named_parameters()}
    initialize(model, "default", torch.Generator().manual_seed(0))
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if n.endswith("bias"))


@pytest.mark.parametrize("init", INITS)
def test_init_deterministic(init):
    a, b, c = make("conv2", seed=3, init=init), make("conv2", seed=3, init=init), make("conv2", seed=4, init=init)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv.0.weight"], sc["conv.0.weight"])


def test_initialize_with_generator_is_deterministic():
    model = make("resnet20")
    initialize(model, "kaiming_normal", torch.Generator().manual_seed(7))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    initialize(model, "kaiming_normal", torch.Generator().manual_seed(7))
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())


def test_seed_leaves_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    make("lenet5", seed=5, init="default")
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- vmap


@pytest.mark.parametrize("name", MODELS)
def test_vmap_functional_call_matches_unbatched(name):
    shape = small_shape(name)
    models = [make(name, seed=s, shape=shape).eval() for s in (0, 1)]
    params, buffers = stack_module_state(models)
    base = make(name, shape=shape, init="default").to("meta").eval()
    x = torch.randn(2, 3, *shape)

    def forward(p, b, xi):
        return functional_call(base, (p, b), (xi,))

    batched = vmap(forward)(params, buffers, x)
    for i, model in enumerate(models):
        torch.testing.assert_close(batched[i], model(x[i]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_vmap_train_mode_updates_stacked_bn_stats(name):
    shape = small_shape(name)
    models = [make(name, seed=s, shape=shape).train() for s in (0, 1)]
    params, buffers = stack_module_state(models)
    base = make(name, shape=shape, init="default").to("meta").train()
    x = torch.randn(2, 3, *shape)
    out = vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(params, buffers, x)
    assert out.shape == (2, 3, 10)
    assert not torch.all(buffers["bn.running_mean" if name == "resnet20" else "bn.0.running_mean"] == 0)
    # Same results as each network run alone in train mode.
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- errors


def test_unknown_model_lists_models():
    with pytest.raises(ValueError) as err:
        build_model("resnet18", CIFAR, 10)
    assert "resnet18" in str(err.value)
    assert all(name in str(err.value) for name in MODELS)


def test_unknown_init_lists_inits():
    with pytest.raises(ValueError) as err:
        build_model("lenet300", MNIST, 10, init="orthogonal")
    assert all(init in str(err.value) for init in INITS)
    with pytest.raises(ValueError, match="glorot_normal"):
        initialize(make("lenet300"), "xavier")
