"""The input layer's weight gradient fused into the masked Adam update (lth.train.input_layer).

The kernel runs natively on a GPU; on a CPU the tests below rerun themselves in a subprocess with
TRITON_INTERPRET=1 (Triton's interpreter, which must be chosen before Triton is imported)."""

import os
import subprocess
import sys

import pytest
import torch

from lth.data import batch_indices, load_splits
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train import input_layer
from lth.train.config import TrainConfig
from lth.train.step import TrainStep, make_optimizer, matmul_precision, stacked_losses

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
runs_kernel = pytest.mark.skipif(input_layer.triton is None or not (DEVICE == "cuda" or input_layer.INTERPRETED),
                                 reason="needs Triton on a GPU, or interpreted (test_interpreted_on_a_cpu)")


@pytest.mark.skipif(input_layer.triton is None or DEVICE == "cuda" or input_layer.INTERPRETED,
                    reason="runs the kernel tests interpreted on a CPU without a GPU")
def test_interpreted_on_a_cpu():
    env = {**os.environ, "TRITON_INTERPRET": "1", "LTH_FUSE_INPUT_LAYER": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr


def stack_of(seeds, model="fc"):
    widths = {"widths": (48, 16)} if model == "fc" else {}
    stack = NetworkStack.build(lambda s: build_model(model, (1, 8, 8), 10, seed=s, **widths), seeds, DEVICE)
    g = torch.Generator().manual_seed(0)
    stack.set_masks({n: (torch.rand(p.shape, generator=g) < 0.5).float().to(DEVICE) for n, p in stack.params.items()
                     if n in stack.kinds})
    return stack


@runs_kernel
def test_the_kernel_is_adam_on_the_masked_outer_product():
    """One call of masked_adam_outer equals lth.train.optim's Adam given the gradient keep * (G^T x)."""
    from lth.train.optim import _adam
    networks, batch, n_in, n_out = 3, 37, 70, 90  # not multiples of the kernel's blocks
    g = torch.Generator().manual_seed(1)
    def stored_in_out(values):  # (M, out, in) tensors in (M, in, out) memory order, as NetworkStack keeps them
        return values.reshape(networks, n_in, n_out).to(DEVICE).transpose(1, 2)
    keep = stored_in_out(torch.rand(networks * n_in * n_out, generator=g) < 0.6)
    weight = stored_in_out(torch.randn(networks * n_in * n_out, generator=g)) * keep
    exp_avg = stored_in_out(torch.randn(networks * n_in * n_out, generator=g)) * keep * 1e-2
    exp_avg_sq = stored_in_out(torch.rand(networks * n_in * n_out, generator=g)) * keep * 1e-3
    x = torch.randn(networks, batch, n_in, generator=g).to(DEVICE)
    grad_out = torch.randn(networks, batch, n_out, generator=g).to(DEVICE)
    for decay in (0.0, 0.1):
        state = [t.clone() for t in (weight, exp_avg, exp_avg_sq)]
        step, lr = torch.tensor(4.0, device=DEVICE), torch.tensor(1e-2, device=DEVICE)
        expected = [t.clone() for t in state]
        with matmul_precision("fp32"):
            scalars = input_layer.adam_scalars(step.clone(), lr, 0.9, 0.999)
            input_layer.masked_adam_outer(*state, keep, x, grad_out, scalars, 0.9, 0.999, 1e-8, decay)
            grad = torch.bmm(grad_out.transpose(1, 2), x)
        _adam([expected[0]], [grad], [keep], [expected[1]], [expected[2]], [step], lr, 0.9, 0.999, 1e-8, decay)
        for got, want in zip(state, expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        assert torch.all(state[0][~keep] == 0) and torch.all(state[1][~keep] == 0)


@runs_kernel
@pytest.mark.parametrize("compile", [False, True] if DEVICE == "cuda" else [False])
def test_fused_step_equals_the_textbook_loop(compile):
    """TrainStep with the fused input layer gives the textbook loop's weights, losses and Adam state
    (gather, backward, mask the gradients, torch.optim.Adam.step), also across masks set mid-training
    (pruned weights and their moments stay exactly zero)."""
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(600, 120, 200)).to(DEVICE)
    cfg, seeds = TrainConfig(batch_size=20, lr=1e-2, weight_decay=0.1), [5, 6]
    stack, reference = stack_of([1, 2]), stack_of([1, 2])
    optimizer = make_optimizer(list(stack.params.values()), cfg)
    adam = torch.optim.Adam(list(reference.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stack.track(optimizer)
    reference.track(adam)
    step = TrainStep(stack, data, optimizer, seeds, cfg.batch_size, graphed=False, compile=compile)
    assert step.input_layer is not None
    running = torch.zeros(2, device=DEVICE)
    with matmul_precision("fp32"):
        for i in range(6):
            if i == 3:  # prune half of what is left, mid-training
                g = torch.Generator().manual_seed(2)
                masks = {n: m * (torch.rand(m.shape, generator=g) < 0.5).float().to(DEVICE) for n, m in stack.masks.items()}
                stack.set_masks(masks)
                reference.set_masks(masks)
            step.run(i, [cfg.lr])
            idx = batch_indices(len(data.train), cfg.batch_size, seeds, i).to(DEVICE)
            adam.zero_grad()
            total, losses = stacked_losses(reference.template, reference.params, reference.buffers,
                                           data.train.x[idx], data.train.y[idx], False)
            total.backward()
            for name, mask in reference.masks.items():
                reference.params[name].grad.mul_(mask)
            adam.step()
            running += losses
    for name in stack.params:
        torch.testing.assert_close(stack.params[name], reference.params[name], rtol=1e-5, atol=1e-6)
    weight = stack.params["fc.0.weight"]
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(optimizer.state[weight][key], adam.state[reference.params["fc.0.weight"]][key],
                                   rtol=1e-4, atol=1e-7)
    assert float(optimizer.state[weight]["step"]) == 6
    stack.check_masks()
    assert torch.all(optimizer.state[weight]["exp_avg"][stack.masks["fc.0.weight"] == 0] == 0)
    torch.testing.assert_close(step.take_running_loss(), running)


@runs_kernel
def test_fused_only_where_it_applies(monkeypatch):
    """FC stacks under Adam in fp32/tf32 with plain batches: fused; SGD, other models, bf16, augmented
    or data-parallel batches, LTH_FUSE_INPUT_LAYER=0: the general step."""
    fc, lenet5 = stack_of([0]), stack_of([0], model="lenet5")
    adam = lambda stack: make_optimizer(list(stack.params.values()), TrainConfig())
    sgd = make_optimizer(list(fc.params.values()), TrainConfig(optimizer="sgd", lr=0.1))
    assert input_layer.fusable(fc, adam(fc), plain_batches=True, autocast=False)
    assert not input_layer.fusable(fc, sgd, plain_batches=True, autocast=False)
    assert not input_layer.fusable(lenet5, adam(lenet5), plain_batches=True, autocast=False)
    assert not input_layer.fusable(fc, adam(fc), plain_batches=True, autocast=True)
    assert not input_layer.fusable(fc, adam(fc), plain_batches=False, autocast=False)
    monkeypatch.setenv("LTH_FUSE_INPUT_LAYER", "0")
    assert not input_layer.fusable(fc, adam(fc), plain_batches=True, autocast=False)
