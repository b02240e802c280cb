"""The first layer's weight gradient fused into its masked Adam update (lth.train.fused_adam): it equals autograd's
gradient followed by torch.optim.Adam on the masked gradient, keeps pruned weights at zero, and is taken exactly
where it applies. On a CPU the kernel runs under TRITON_INTERPRET=1 (in a subprocess: Triton reads the variable
when a kernel is made)."""

import textwrap
from pathlib import Path

import pytest
import torch

from lth.data import load_splits
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train import fused_adam, fused_mlp, triton_support
from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer

needs_triton = pytest.mark.skipif(not triton_support.available(), reason="needs Triton (torch's CUDA wheels ship it)")


def fc_stack(widths=(48, 150, 20), size=2):
    return NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, widths=widths), list(range(size)))


def test_first_layer_is_taken_for_plain_adam_with_a_layer_before_the_tail():
    stack = fc_stack()
    layers = fused_mlp.tail_layers(stack, 20)
    params = list(stack.params.values())
    assert fused_adam.first_layer(stack, torch.optim.Adam(params), layers) == ("fc.0.weight", "fc.0.bias")
    assert fused_adam.first_layer(stack, torch.optim.Adam(params, weight_decay=1e-4), layers) is not None
    for other in (torch.optim.Adam(params, amsgrad=True), torch.optim.AdamW(params), torch.optim.SGD(params, lr=0.1)):
        assert fused_adam.first_layer(stack, other, layers) is None, other
    two = fc_stack(widths=(20,))  # the tail's two layers are the whole network: nothing before them
    assert fused_adam.first_layer(two, torch.optim.Adam(list(two.params.values())), fused_mlp.tail_layers(two, 20)) \
        is None


def test_train_step_takes_it_only_with_the_fused_tail():
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(100, 20, 20))
    stack = fc_stack()
    step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), [0, 1], 20, False,
                     compile=True)
    assert step.fused is None and step.first_layer is None  # on a CPU: no fused tail, so autograd's gradient


def test_update_refuses_bad_input():
    weight = torch.zeros(2, 6, 5, requires_grad=True)
    optimizer = torch.optim.Adam([weight])
    x, dz, lr = torch.zeros(2, 3, 5), torch.zeros(2, 3, 6), torch.tensor(1e-3)
    with pytest.raises(ValueError, match="precision must be 'tf32' or 'ieee', got 'bf16'"):
        fused_adam.update(optimizer, weight, None, x, dz, lr, "bf16")
    with pytest.raises(ValueError, match=r"x \(2, 3, 4\) and dz \(2, 3, 6\) do not fit a weight of \(2, 6, 5\)"):
        fused_adam.update(optimizer, weight, None, torch.zeros(2, 3, 4), dz, lr, "ieee")
    with pytest.raises(ValueError, match="mask must be in the weight's layout"):
        fused_adam.update(optimizer, weight, torch.ones(2, 5, 6, dtype=torch.bool).transpose(1, 2), x, dz, lr, "ieee")


INTERPRETED = textwrap.dedent("""
    import torch
    from lth.data import load_splits
    from lth.nets.models import build_model
    from lth.nets.stack import NetworkStack
    from lth.train import fused_adam
    from lth.train.config import TrainConfig
    from lth.train.step import TrainStep, make_optimizer, matmul_precision

    torch.manual_seed(0)
    # the kernel against autograd's gradient and torch.optim.Adam on the masked gradient: shapes that are not
    # multiples of the tiles, a batch not a power of two, the weight in lth's layout and in torch's, weight decay
    for decay in (0.0, 1e-2):
        for layout, gradient in (("lth", "dot"), ("torch", "dot"), ("lth", "outer")):
            fused_adam.GRADIENT = gradient
            w0 = torch.randn(3, 70, 90) * 0.1
            keep = torch.rand(3, 70, 90) < 0.4
            w0 = w0 * keep
            if layout == "lth":  # (M, out, in) stored (M, in, out), as NetworkStack stores it
                w0 = w0.transpose(1, 2).contiguous().transpose(1, 2)
                keep = keep.transpose(1, 2).contiguous().transpose(1, 2)
            ours, theirs = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
            mine = torch.optim.Adam([ours], lr=1e-2, weight_decay=decay)
            reference = torch.optim.Adam([theirs], lr=1e-2, weight_decay=decay)
            lr = torch.tensor(1e-2)
            for step in range(5):
                x, dz = torch.randn(3, 19, 90), torch.randn(3, 19, 70)
                theirs.grad = torch.bmm(dz.transpose(1, 2), x) * keep
                reference.step()
                fused_adam.update(mine, ours, keep, x, dz, lr, "ieee")
            torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)
            for key in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(mine.state[ours][key], reference.state[theirs][key], rtol=1e-5, atol=1e-6)
            assert mine.state[ours]["step"].item() == 5
            assert torch.all(ours.detach()[~keep] == 0)  # pruned weights exactly zero
    # TrainStep with the first layer's update fused and without it (the fused tail in both): compiled Adam steps of
    # masked networks give the same weights and running loss
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(200, 20, 20))
    make = lambda: NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, widths=(48, 150, 20)),
                                      [0, 1, 2])
    masks = {n: (torch.rand(m.shape, generator=torch.Generator().manual_seed(1)) < 0.5).float()
             for n, m in make().masks.items()}
    finals = []
    for first_layer in (False, True):
        stack = make()
        stack.set_masks(masks)
        step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), [0, 1, 2], 19,
                         False, precision="fp32", compile=True, fused=True)
        assert step.first_layer == ("fc.0.weight", "fc.0.bias")
        if not first_layer:
            step.first_layer = None
        with matmul_precision("fp32"):
            step.run(0, [1e-2] * 4)
        stack.check_masks()
        finals.append(({n: p.detach().clone() for n, p in stack.params.items()}, step.take_running_loss()))
    torch.testing.assert_close(finals[1][1], finals[0][1], rtol=1e-5, atol=1e-6)
    for n in finals[0][0]:
        torch.testing.assert_close(finals[1][0][n], finals[0][0][n], rtol=1e-4, atol=1e-5)
    print("fused update equals autograd and Adam")
""")


@needs_triton
def test_fused_update_equals_autograd_and_adam_interpreted(triton_interpreted):
    """The kernel's update (five steps, masked, with and without weight decay, in lth's layout and torch's) equals
    autograd's gradient followed by torch.optim.Adam on the masked gradient; four compiled TrainStep steps with it
    equal those without it; pruned weights stay exactly zero. The kernel runs under Triton's interpreter."""
    assert "fused update equals" in triton_interpreted(INTERPRETED, str(Path(__file__).parent))


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_fused_update_equals_autograd_and_adam_on_a_gpu(precision):
    """On a GPU, LeNet-300-100's first layer (20 networks, 300 x 784 in lth's layout, density about 0.2, batch 60):
    ten updates equal torch.optim.Adam on autograd's masked gradient (the gradient's matmul in fp32; at tf32 the
    gradient differs by TF32's rounding, which Adam's normalisation makes visible only in weights whose gradient is
    near zero, so there within a learning rate's step)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    keep = (torch.rand(20, 784, 300, generator=g, device="cuda") < 0.2).transpose(1, 2)
    w0 = torch.randn(20, 784, 300, generator=g, device="cuda").transpose(1, 2) * 0.05 * keep
    ours, theirs = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    mine, reference = torch.optim.Adam([ours], lr=1.2e-3), torch.optim.Adam([theirs], lr=1.2e-3, capturable=True)
    lr = torch.tensor(1.2e-3, device="cuda")
    for _ in range(10):
        x, dz = torch.rand(20, 60, 784, generator=g, device="cuda"), torch.randn(20, 60, 300, generator=g, device="cuda")
        theirs.grad = torch.bmm(dz.transpose(1, 2), x) * keep
        reference.step()
        fused_adam.update(mine, ours, keep, x, dz, lr, precision)
    assert torch.all(ours.detach()[~keep] == 0)
    if precision == "ieee":
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)
    else:
        assert (ours - theirs).abs().max().item() <= 10 * 1.2e-3 * 1.01
        torch.testing.assert_close(mine.state[ours]["exp_avg"], reference.state[theirs]["exp_avg"], rtol=2e-2,
                                   atol=1e-3)
