"""Pruning at initialisation as scores (as in Synaptic Flow): SNIP, GraSP, SynFlow and magnitude
score every prunable weight of every network of a stack, and the masks keep the top scores of each
group of layers to an exact count (`lth.prune.targets.Group`): one group of all prunable layers
(``scope="global"``) or one group per layer (``"layerwise"``). Random pruning (``random_<rule>``)
draws masks with exact per-layer counts from a layer density rule (`lth.prune.densities`).

`prune_at_init` only computes masks; the caller applies them with ``stack.set_masks(masks)``.
`check_layer_collapse` is the one check, for every experiment kind, that no layer lost all its weights.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from lth.data import DataSplits, batch_indices, derive_seed
from lth.nets.models import BIAS
from lth.nets.stack import NetworkStack, stacked_forward
from lth.prune import targets as pruning
from lth.prune.densities import RULES, layer_shapes, pai_targets, random_targets
from lth.prune.masks import random_masks, top_masks
from lth.prune.targets import Group

SCORED = ("snip", "grasp", "synflow", "magnitude")
RANDOM = tuple(f"random_{rule}" for rule in RULES)
METHODS = SCORED + RANDOM

SYNFLOW_ROUNDS = 100        # Tanaka et al.: 100 rounds with an exponential density schedule
GRASP_TEMPERATURE = 200.0   # Wang et al.: logits divided by T before the loss


class LayerCollapse(ValueError):
    """A pruning would keep no weight of some layer, disconnecting the network."""



# ---- scores ------------------------------------------------------------------------------

class _EvalMode:
    """Score in eval mode: BatchNorm then uses its running statistics and updates nothing (in train
    mode SynFlow's single all-ones input would normalise to zero)."""

    def __init__(self, stack: NetworkStack):
        self.stack = stack

    def __enter__(self):
        self.was_training = self.stack.template.training
        self.stack.train(False)

    def __exit__(self, *exc):
        self.stack.train(self.was_training)


def _leaves(stack: NetworkStack, dtype: torch.dtype | None = None) -> tuple[dict, dict]:
    """Detached copies of params (prunable weights requiring grad) and buffers."""
    cast = (lambda t: t.to(dtype) if t.is_floating_point() else t) if dtype is not None else (lambda t: t)
    params = {name: cast(p.detach().clone()).requires_grad_(name in stack.kinds) for name, p in stack.params.items()}
    buffers = {name: cast(b.detach().clone()) for name, b in stack.buffers.items()}
    return params, buffers


def _minibatch(stack: NetworkStack, data: DataSplits, seeds: Sequence[int], batch_size: int):
    """Each network's own minibatch: the first batch of its data order (lth.data.batch_indices)."""
    idx = batch_indices(len(data.train), batch_size, seeds, 0).to(data.train.x.device)
    return data.train.x[idx].to(stack.device), data.train.y[idx].to(stack.device)


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed over networks of each network's mean loss: every network gets its own gradient."""
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1).sum()


def snip_scores(stack: NetworkStack, data: DataSplits, seeds: Sequence[int], batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Lee et al.'s connection sensitivity |w * dL/dw| on one minibatch per network, normalised to
    sum to 1 over each network's prunable weights."""
    x, y = _minibatch(stack, data, seeds, batch_size)
    with _EvalMode(stack):
        params, buffers = _leaves(stack)
        weights = [params[name] for name in stack.kinds]
        grads = torch.autograd.grad(_loss(stacked_forward(stack.template, params, buffers, x, False), y), weights)
    scores = {name: (w.detach() * g).abs() for name, w, g in zip(stack.kinds, weights, grads)}
    total = sum(s.flatten(1).sum(1) for s in scores.values())
    return {name: s / total.clamp_min(torch.finfo(s.dtype).tiny).view(-1, *[1] * (s.dim() - 1))
            for name, s in scores.items()}


def grasp_scores(stack: NetworkStack, data: DataSplits, seeds: Sequence[int], batch_size: int = 100,
                 temperature: float = GRASP_TEMPERATURE) -> dict[str, torch.Tensor]:
    """Wang et al.'s GraSP, as a score to keep: w * (H g).

    GraSP scores S = -w * (H g) and removes the weights of *largest* S (their removal reduces the
    gradient flow least), so the weights it keeps are those of largest -S = w * (H g). H g is a
    Hessian-gradient product over the prunable weights by double backward, with the gradient g
    held fixed; the loss is taken on logits / temperature."""
    x, y = _minibatch(stack, data, seeds, batch_size)
    with _EvalMode(stack):
        params, buffers = _leaves(stack)
        weights = [params[name] for name in stack.kinds]
        loss = _loss(stacked_forward(stack.template, params, buffers, x, False) / temperature, y)
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        gradient_flow = sum((g * g.detach()).sum() for g in grads)  # d/dw (g . g_fixed) = H g_fixed
        hessian_grad = torch.autograd.grad(gradient_flow, weights)
    return {name: w.detach() * hg for name, w, hg in zip(stack.kinds, weights, hessian_grad)}


def synflow_scores(stack: NetworkStack, input_shape: Sequence[int], masks: Mapping[str, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
    """One round of Tanaka et al.'s Synaptic Flow, data-free: every parameter and buffer made
    positive (|.|), prunable weights times ``masks``, an all-ones input; R = the sum of the
    outputs; score = |dR/dw * w|. In float64, since R is a product over layers of sums of weights
    and overflows float32 in deep networks."""
    with _EvalMode(stack):
        params, buffers = _leaves(stack, torch.float64)
        with torch.no_grad():
            for name, p in params.items():
                p.abs_()
                if masks is not None and name in masks:
                    p.mul_(masks[name].to(p))
            for b in buffers.values():
                if b.is_floating_point():
                    b.abs_()
        ones = torch.ones(1, *input_shape, dtype=torch.float64, device=stack.device)
        weights = [params[name] for name in stack.kinds]
        grads = torch.autograd.grad(stacked_forward(stack.template, params, buffers, ones, True).sum(), weights)
    return {name: (w.detach() * g).abs() for name, w, g in zip(stack.kinds, weights, grads)}


def magnitude_scores(stack: NetworkStack) -> dict[str, torch.Tensor]:
    """|w| at initialisation."""
    return {name: stack.params[name].detach().abs() for name in stack.kinds}


# ---- masks -------------------------------------------------------------------------------

def prune_at_init(stack: NetworkStack, method: str, density: float, scope: str = "global",
                  data: DataSplits | None = None, seeds: Sequence[int] | None = None,
                  layer_collapse_ok: bool = False, *, batch_size: int = 100,
                  input_shape: Sequence[int] | None = None, rounds: int = SYNFLOW_ROUNDS) -> dict[str, torch.Tensor]:
    """Masks (name -> (M, ...) bool) that keep exactly ``pruning.keep_count(N, density)`` weights of
    every network; apply them with ``stack.set_masks``. Weights already pruned in the stack stay
    pruned (score methods only).

    ``seeds`` (one per network, default 0..M-1) pick each network's minibatch (SNIP, GraSP: the
    first batch of size ``batch_size`` of that seed's data order) and its random masks. SynFlow
    needs no data; it takes the input shape from ``data`` or ``input_shape`` (fully connected
    models need neither). Random methods take their per-layer densities from the rule, so
    ``scope`` does not apply to them. A layer left with no weight raises LayerCollapse unless
    ``layer_collapse_ok``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pruning-at-init method {method!r}; valid: {', '.join(METHODS)}")
    density = pruning.validate_density(density)
    if scope not in pruning.SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {', '.join(pruning.SCOPES)}")
    seeds = list(range(stack.size)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != stack.size:
        raise ValueError(f"{len(seeds)} seeds for a stack of {stack.size} networks")
    sizes = pruning.layer_sizes(stack)

    if method in RANDOM:
        groups = random_targets(sizes, layer_shapes(stack), stack.kinds, density, method.removeprefix("random_"))
        masks = _random_masks(stack, groups, seeds)
    elif method == "synflow":
        groups = pai_targets(sizes, density, scope)
        masks = _synflow_masks(stack, groups, density, _input_shape(stack, data, input_shape), rounds)
    else:
        groups = pai_targets(sizes, density, scope)
        if method in ("snip", "grasp"):
            if data is None:
                raise ValueError(f"{method} scores weights on a minibatch: pass data (a DataSplits)")
            score = snip_scores if method == "snip" else grasp_scores
            scores = score(stack, data, seeds, batch_size)
        else:
            scores = magnitude_scores(stack)
        masks = _keep_top(stack, scores, groups)
    pruning.check_density(masks, groups)
    if not layer_collapse_ok:  # a layer with no bias left still computes; one with no weight does not
        check_layer_collapse({n: m for n, m in masks.items() if stack.kinds[n] != BIAS}, f"{method} at density {density:g}")
    return masks


def _keep_top(stack: NetworkStack, scores: dict[str, torch.Tensor], groups: Sequence[Group],
              masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Top scores of each group among surviving weights: pruned ones score -inf, so masks nest."""
    alive = masks if masks is not None else stack.masks
    for group in groups:
        have = sum(alive[name].flatten(1).sum(1) for name in group.layers)
        if bool((have < group.keep).any()):
            raise ValueError(f"cannot keep {group.keep} weights of {list(group.layers)}: only "
                             f"{have.int().tolist()} survive in the stack")
    ranked = {name: torch.where(alive[name].bool(), s.nan_to_num(nan=0.0), torch.tensor(float("-inf"), dtype=s.dtype, device=s.device))
              for name, s in scores.items()}
    return top_masks(ranked, groups)


def _synflow_masks(stack: NetworkStack, groups: Sequence[Group], density: float, input_shape, rounds: int):
    """Prune in ``rounds`` steps to density^(r/rounds), rescoring with the masks so far. Each
    group's count falls monotonically (from what survives in the stack, never below its final
    count) and ends exactly on it."""
    if rounds < 1:
        raise ValueError(f"SynFlow needs rounds >= 1, got {rounds}")
    masks = {name: m.bool() for name, m in stack.masks.items()}
    alive = [int(min(sum(masks[name].flatten(1).sum(1) for name in g.layers).tolist())) for g in groups]
    for r in range(1, rounds + 1):
        if r == rounds:
            step = list(groups)
        else:
            fraction = density ** (r / rounds)
            step = [Group(g.layers, max(g.keep, min(have, pruning.keep_count(g.total, fraction))), g.total)
                    for g, have in zip(groups, alive)]
        masks = _keep_top(stack, synflow_scores(stack, input_shape, masks), step, masks)
    return masks


def _input_shape(stack: NetworkStack, data: DataSplits | None, input_shape) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    if data is not None:
        return tuple(data.input_shape)
    first = next(iter(stack.kinds))
    if stack.params[first].dim() == 3:  # a Linear first: fully connected models flatten any input of its width
        return (stack.params[first].shape[2],)
    raise ValueError("synflow needs the input shape of a convolutional model: pass input_shape=(C, H, W) "
                     "(it uses no data, only an all-ones input of that shape)")


def _random_masks(stack: NetworkStack, groups: Sequence[Group], seeds: Sequence[int]) -> dict[str, torch.Tensor]:
    """Uniformly random masks with the groups' per-layer counts, each network from its own seed
    (so a network's mask does not depend on the other networks of the stack)."""
    per_network = []
    for seed in seeds:
        reference = {}
        for group in groups:
            (name,) = group.layers
            flat = torch.zeros(1, group.total, dtype=torch.bool, device=stack.device)
            flat[0, :group.keep] = True
            reference[name] = flat.view(1, *stack.params[name].shape[1:])
        generator = torch.Generator().manual_seed(derive_seed("random_pai", seed))
        per_network.append(random_masks(reference, generator))
    return {name: torch.cat([m[name] for m in per_network]) for name in stack.kinds}


def check_layer_collapse(masks: Mapping[str, torch.Tensor], what: str = "pruning") -> None:
    """Raise LayerCollapse naming every layer that keeps no weight in some network."""
    empty = []
    for name, mask in masks.items():
        kept = mask.flatten(1).sum(1)
        networks = (kept == 0).nonzero().flatten().tolist()
        if networks:
            empty.append(f"{name} (networks {networks})")
    if empty:
        raise LayerCollapse(f"{what} keeps no weight of layer {', '.join(empty)}: the network would be "
                            "disconnected (layer collapse). Raise the density, choose another method or scope, or "
                            "pass layer_collapse_ok=True to train it anyway.")

