"""The masked optimiser update equals torch.optim's Adam and SGD on masked gradients, keeps pruned
weights at exactly zero, and resumes from torch.optim's state."""

import pytest
import torch

from lth.train.optim import masked_update

RULES = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adam, weight decay": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd, momentum, weight decay": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd, nesterov": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
}


def tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 30, 20, generator=g)
    mask = (torch.rand(4, 30, 20, generator=g) < 0.3).float()
    weight = weight * mask
    bias = torch.randn(4, 30, generator=g)
    return [weight.requires_grad_(True), bias.requires_grad_(True)], [mask, None]


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("compile", [False, True])
def test_equals_torch_optim_on_masked_gradients(rule, compile):
    ours, masks = tensors(0)
    theirs, _ = tensors(0)
    mine, reference = RULES[rule](ours), RULES[rule](theirs)
    lr = torch.tensor(mine.param_groups[0]["lr"])
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, q, grad, mask in zip(ours, theirs, grads, masks):
            p.grad = grad.clone()
            q.grad = grad * mask if mask is not None else grad.clone()
        masked_update(mine, ours, masks, lr, compile=compile)
        reference.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-5, rtol=1e-5)
    assert torch.all(ours[0].detach()[masks[0] == 0] == 0)  # pruned weights exactly zero, not just close


def test_resumes_from_torch_optim_state():
    """A checkpoint's state (as torch.optim.Adam leaves it: a CPU step count) continues exactly as
    torch.optim.Adam would."""
    ours, masks = tensors(2)
    theirs, _ = tensors(2)
    mine, reference = torch.optim.Adam(ours, lr=1e-2), torch.optim.Adam(theirs, lr=1e-2)
    for p, q in zip(ours, theirs):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    mine.step()
    reference.step()
    for p, q in zip(ours, theirs):
        p.grad = torch.full_like(p, -0.5)
        q.grad = torch.full_like(q, -0.5)
    masked_update(mine, ours, [None, None], torch.tensor(1e-2))
    reference.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach())


@pytest.mark.parametrize("make, match", [
    (lambda ps: torch.optim.RMSprop(ps), "RMSprop"),
    (lambda ps: torch.optim.AdamW(ps), "AdamW"),  # a subclass of Adam with another (decoupled) decay
    (lambda ps: torch.optim.Adam(ps, amsgrad=True), "amsgrad"),
    (lambda ps: torch.optim.Adam(ps, maximize=True), "maximize"),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1), "dampening"),
])
def test_other_optimisers_and_settings_are_refused(make, match):
    """Rules other than lth's (plain Adam with L2 decay, SGD without dampening) get a clear error, never a
    silently different update."""
    ours, masks = tensors(3)
    with pytest.raises(TypeError, match=match):
        masked_update(make(ours), ours, masks, torch.tensor(0.1))


def test_compiled_update_functions_keep_their_own_compiled_variants():
    """Dynamo's recompile limit counts per code object, and past it a function silently runs uncompiled:
    the update functions are compiled undecorated (a @torch.no_grad() wrapper makes every decorated
    function run through one wrapper frame, sharing one count), and compiling raises the limit."""
    from lth.train import optim
    functions = (optim._adam, optim._sgd, optim.adam_scalars)
    assert not any(hasattr(fn, "__wrapped__") for fn in functions)
    assert len({fn.__code__ for fn in functions}) == len(functions)
    optim.compile_per_shape(lambda x: x + 1)
    config = torch._dynamo.config
    limit = config.recompile_limit if hasattr(config, "recompile_limit") else config.cache_size_limit
    assert limit >= optim.RECOMPILE_LIMIT


@pytest.mark.parametrize("rule", list(RULES))
def test_gradient_and_state_in_another_layout_than_the_weight(rule):
    """A NetworkStack stores its linear weights (M, out, in) in (M, in, out) memory order. A gradient
    assigned in another layout (contiguous), or a state in another layout (a checkpoint's moments), is
    still combined element by element: torch's fused CPU kernels walk memory in order, so they must
    never see tensors whose layouts differ."""
    ours, masks = tensors(4)
    theirs, _ = tensors(4)
    ours[0] = ours[0].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True)
    assert ours[0].stride() != theirs[0].stride()
    mine, reference = RULES[rule](ours), RULES[rule](theirs)
    lr = torch.tensor(mine.param_groups[0]["lr"])
    g = torch.Generator().manual_seed(5)
    for step in range(10):
        grads = [torch.randn(p.shape, generator=g) for p in ours]  # contiguous, unlike the weight
        for p, q, grad, mask in zip(ours, theirs, grads, masks):
            p.grad = grad.clone()
            q.grad = grad * mask if mask is not None else grad.clone()
        masked_update(mine, ours, masks, lr)
        reference.step()
        if step == 2:  # the weight's state as a checkpoint written in another layout holds it
            state = mine.state[ours[0]]
            for key, value in list(state.items()):
                if torch.is_tensor(value) and value.shape == ours[0].shape:
                    state[key] = value.contiguous()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-5, rtol=1e-5)
    assert torch.all(ours[0].detach()[masks[0] == 0] == 0)


@pytest.mark.parametrize("rule", ["adam", "sgd, momentum, weight decay"])
def test_a_weight_that_does_not_fill_its_memory_is_updated_element_by_element(rule):
    """A leaf weight viewing every other column of a larger tensor: torch's fused CPU kernels would walk
    the memory in order, writing the columns between and leaving half the weight unchanged."""
    big = torch.zeros(4, 6)
    ours = [big[:, ::2].detach().requires_grad_(True)]
    theirs = [torch.zeros(4, 3, requires_grad=True)]
    mine, reference = RULES[rule](ours), RULES[rule](theirs)
    for _ in range(3):
        ours[0].grad, theirs[0].grad = torch.ones(4, 3), torch.ones(4, 3)
        masked_update(mine, ours, [None], torch.tensor(mine.param_groups[0]["lr"]))
        reference.step()
    torch.testing.assert_close(ours[0].detach(), theirs[0].detach())
    assert torch.all(big[:, 1::2] == 0)  # memory the weight does not own is untouched


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_stack_trained_uncompiled_on_a_cpu_takes_torch_fused_kernels(monkeypatch, optimizer):
    """The layout checks that guard torch's fused kernels pass for what training makes (a NetworkStack's
    weights, autograd's gradients, lth's state), so a CPU step never falls back to the op-by-op update."""
    from lth.data import load_splits
    from lth.nets.models import build_model
    from lth.nets.stack import NetworkStack
    from lth.train import optim
    from lth.train.config import TrainConfig
    from lth.train.step import TrainStep, make_optimizer
    calls = []
    for name in ("torch_adam", "torch_sgd", "_adam", "_sgd"):
        original = getattr(optim, name)
        monkeypatch.setattr(optim, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    data = load_splits("synthetic", synthetic_shape=(1, 8, 8), synthetic_sizes=(100, 20, 20))
    cfg = TrainConfig(batch_size=10, optimizer=optimizer, lr=0.01, momentum=0.9)
    stack = NetworkStack.build(lambda s: build_model("fc", (1, 8, 8), 10, seed=s, widths=(16,)), [0, 1])
    TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg), [0, 1], 10, False).run(0, [0.01] * 3)
    assert calls == [f"torch_{optimizer}"] * 3
