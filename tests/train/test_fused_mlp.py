"""The fused tail of FC stacks (lth.train.fused_mlp): it computes the stack's own loss and gradients, and is
taken exactly where it applies. On a CPU the Triton kernels run under TRITON_INTERPRET=1 (in a subprocess:
Triton reads the variable when a kernel is made)."""

import textwrap
from pathlib import Path

import pytest
import torch

from lth.data import load_splits
from lth.nets.models import FC, build_model
from lth.nets.stack import NetworkStack
from lth.train import fused_mlp, triton_support
from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer
from fused_steps import distances, masked_gpu_stack, stack_gradients  # tests/train/fused_steps.py

needs_triton = pytest.mark.skipif(not triton_support.available(), reason="needs Triton (torch's CUDA wheels ship it)")


def fc_stack(size=2, **kwargs):
    kwargs = kwargs or {"widths": (300, 100)}
    return NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, **kwargs), list(range(size)))


def test_tail_layers_accepts_plain_fc_stacks_only():
    assert fused_mlp.tail_layers(fc_stack(), 60) == (("fc.0.weight", "fc.0.bias"), ("fc.1.weight", "fc.1.bias"),
                                                     ("fc.2.weight", "fc.2.bias"))
    assert fused_mlp.tail_layers(fc_stack(), fused_mlp.MAX_BATCH + 1) is None
    assert fused_mlp.tail_layers(fc_stack(widths=(64, fused_mlp.MAX_HIDDEN + 1)), 60) is None
    assert fused_mlp.tail_layers(fc_stack(widths=(32,), bias=False), 60) is None
    assert fused_mlp.tail_layers(fc_stack(widths=()), 60) is None  # no hidden layer: no tail of two layers
    conv = NetworkStack.build(lambda s: build_model("conv2", (3, 8, 8), 10, seed=s), [0])
    assert fused_mlp.tail_layers(conv, 60) is None

    class Subclassed(NetworkStack):  # another stack's forward pass may differ: only NetworkStack itself
        pass
    stack = fc_stack()
    assert fused_mlp.tail_layers(Subclassed(stack.template, stack.params, stack.buffers), 60) is None

    class OwnForward(FC):  # a model of the user's own on FC's layers: its forward pass may differ
        def forward(self, x):
            return super().forward(x) * 2
    assert fused_mlp.tail_layers(NetworkStack.build(lambda s: OwnForward(64, (32, 16), 10), [0, 1]), 60) is None


def test_fused_true_refuses_what_it_cannot_take():
    data = load_splits("synthetic", synthetic_shape=(3, 8, 8), synthetic_sizes=(100, 20, 20))
    resnet = NetworkStack.build(lambda s: build_model("resnet20", (3, 8, 8), 10, seed=s), [0])
    with pytest.raises(ValueError, match="fused=True needs .*CifarResNet"):
        TrainStep(resnet, data, make_optimizer(list(resnet.params.values()), TrainConfig()), [0], 20, False,
                  fused=True)
    stack = fc_stack()
    with pytest.raises(ValueError, match="precision 'bf16'"):
        TrainStep(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), [0, 1], 20, False,
                  precision="bf16", fused=True)


def test_fused_tail_is_not_taken_where_it_is_not_the_fast_path():
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(100, 20, 20))
    stack = fc_stack()
    make = lambda **kw: TrainStep(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), [0, 1], 20,
                                  False, **kw)
    assert make(compile=True).fused is None  # on a CPU: the stack's own (compiled) forward pass
    assert make(compile=True, fused=False).fused is None


INTERPRETED = textwrap.dedent("""
    import sys
    import torch
    from lth.data import load_splits
    from lth.nets.models import build_model
    from lth.nets.stack import NetworkStack
    from lth.train import fused_mlp
    from lth.train.step import matmul_precision, stacked_logits
    sys.path.insert(0, sys.argv[1])
    from fused_steps import assert_fused_steps_match

    torch.manual_seed(0)
    # widths and batch not powers of two (the kernels pad them), three hidden layers (one before the tail), the
    # tail's input 150 wide: split over two programs per network on a CPU, each looping over several column blocks
    make = lambda: NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, widths=(48, 150, 20)),
                                      [0, 1, 2])
    stack = make()
    stack.set_masks({n: (torch.rand(m.shape) < 0.5).float() for n, m in stack.masks.items()})
    x, y = torch.randn(3, 19, 1, 8, 8), torch.randint(0, 10, (3, 19))
    seed = torch.tensor([1.0, -0.5, 2.0])  # a backward seed other than ones: each network's gradient is scaled
    worst = 0.0
    with matmul_precision("fp32"):
        logits = stacked_logits(stack.template, stack.params, stack.buffers, x, False)
        reference = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)
        (reference * seed).sum().backward(retain_graph=True)
        expected = {n: p.grad.clone() for n, p in stack.params.items()}
        reference.sum().backward()  # the gradients at seed 1, added to the seeded ones
        expected_unit = {n: p.grad - expected[n] for n, p in stack.params.items()}
        reference = reference.detach()
        for block_k, warps in ((32, 4), (64, 8)):  # both tile settings of fused_mlp.tiles
            fused_mlp.tiles = lambda networks: (block_k, warps)
            for unit_seed, wanted in ((False, expected), (True, expected_unit)):
                for p in stack.params.values():
                    p.grad = None
                losses = fused_mlp.fc_losses(stack.params, fused_mlp.tail_layers(stack, 19), x, y, "ieee", unit_seed)
                (losses.sum() if unit_seed else (losses * seed).sum()).backward()
                torch.testing.assert_close(losses, reference, rtol=1e-6, atol=1e-6)
                for n, p in stack.params.items():
                    assert p.grad.stride() == p.stride(), n
                    torch.testing.assert_close(p.grad, wanted[n], rtol=1e-5, atol=1e-6)
        # TrainStep with the fused tail against without it: a few compiled SGD steps on masked networks
        data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(200, 20, 20))
        assert_fused_steps_match(make, data, [0, 1, 2], 19, 3)
    print("fused tail equals the stack's own loss and gradients")
""")


@needs_triton
def test_fused_tail_equals_the_stacks_own_loss_and_gradients_interpreted(triton_interpreted):
    """Loss, gradients (a backward seed per network, or the unit seed the caller promised; each in its weight's
    layout; both tile settings) and three compiled TrainStep updates equal the stack's own vmapped forward pass,
    the kernels run by Triton's interpreter on a CPU."""
    assert "fused tail equals" in triton_interpreted(INTERPRETED, str(Path(__file__).parent))


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("precision", ["tf32", "fp32"])
def test_fused_tail_trains_like_the_unfused_step_on_a_gpu(precision):
    """On a GPU, LeNet-300-100 stacks: the fused tail's gradients equal the stack's own in fp32, and in tf32 are
    about as far from the fp32 gradients as torch's own TF32 matmuls are (TF32 rounding flips the ReLU of units
    whose pre-activation is near zero, in either path, and Triton may round TF32 operands otherwise than cuBLAS:
    at most three times torch's distance, where a wrong gradient is off by tens of percent); 200 compiled,
    captured steps with it give the training loss of the same steps without it. (Weights are not compared after
    200 steps: Adam moves a weight whose gradient is near zero by about the learning rate whichever sign rounding
    gives it.)"""
    from lth.train.step import GRAPH_STEPS, matmul_precision
    data, make, masks, stack, x, y = masked_gpu_stack("lenet300", (1, 28, 28))
    tail = ("mlp", fused_mlp.tail_layers(stack, 60), "tf32" if precision == "tf32" else "ieee")
    exact = stack_gradients(stack, x, y, "fp32")
    fused = distances(stack_gradients(stack, x, y, precision, fused=tail), exact)
    if precision == "fp32":
        assert all(d < 1e-5 for d in fused.values()), fused
    else:
        torch_tf32 = distances(stack_gradients(stack, x, y, "tf32"), exact)
        assert all(fused[n] < 3 * torch_tf32[n] + 2e-3 for n in exact), {n: (fused[n], torch_tf32[n]) for n in exact}
    losses = []
    for fused_tail in (False, True):
        stack = make()
        stack.set_masks(masks)
        step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), TrainConfig()), [0, 1, 2], 60, True,
                         chunk=GRAPH_STEPS, precision=precision, compile=True, fused=fused_tail)
        assert (step.fused is not None) == fused_tail
        with matmul_precision(precision):
            step.run(0, [1.2e-3] * 2 * GRAPH_STEPS)
        stack.check_masks()
        losses.append(step.take_running_loss())
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-2 if precision == "tf32" else 1e-3, atol=0)
