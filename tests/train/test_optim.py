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


def test_other_optimisers_are_refused():
    ours, masks = tensors(3)
    with pytest.raises(TypeError, match="RMSprop"):
        masked_update(torch.optim.RMSprop(ours), ours, masks, torch.tensor(0.1))


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
