"""Pruning at initialisation (SNIP, GraSP, SynFlow, magnitude) and random pruning with per-layer
density rules, on the one mask mechanism of a NetworkStack; and a driver that trains the pruned
networks into the same result store as IMP.

A pruner is a score (as in Synaptic Flow): each method scores every prunable weight of every
network of a stack, and the masks keep the top scores of each group of layers to an exact count
(`lth.prune.targets.Group`): one group of all prunable layers (``scope="global"``) or one group per
layer (``"layerwise"``, uniform per-layer densities whose counts add up to the global count).
Random pruning (``random_<rule>``) instead draws masks with exact per-layer counts from a layer
density rule (`layer_densities`): uniform, ER, ERK, balanced or pyramidal.

`prune_at_init` only computes masks; the caller applies them with ``stack.set_masks(masks)``.

The driver (`PaiConfig`, `PaiExperiment`, `run_pai`) trains, per method, one stack of
trials x densities networks. Its metrics are IMP's tidy rows with level = the index of the
density, control = the method and replicate = 0, so `lth.results.analysis.per_network` reads them
unchanged; rows with split ``"mask"`` record each layer's density (metric = the layer's name) at
iteration 0.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import gin
import pandas as pd
import torch
import torch.nn.functional as F

from lth.prune import targets as pruning
from lth.data import DataSplits, batch_indices, derive_seed, load_splits
from lth.nets.stack import NetworkStack, stacked_forward
from lth.experiments import imp
from lth.experiments.imp import resolve_device
from lth.nets.models import build_model
from lth.prune.targets import Group
from lth.store import RunDir
from lth.train.loop import TrainConfig, train

SCORED = ("snip", "grasp", "synflow", "magnitude")
RULES = ("uniform", "er", "erk", "balanced", "pyramidal")
RANDOM = tuple(f"random_{rule}" for rule in RULES)
METHODS = SCORED + RANDOM

SYNFLOW_ROUNDS = 100        # Tanaka et al.: 100 rounds with an exponential density schedule
GRASP_TEMPERATURE = 200.0   # Wang et al.: logits divided by T before the loss
MASK_SPLIT = "mask"         # metrics rows holding per-layer densities
GIN_SCOPE = "pai"           # profiles may bind e.g. pai/TrainConfig.milestones for these runs only


class LayerCollapse(ValueError):
    """A pruning would keep no weight of some layer, disconnecting the network."""


# ---- per-layer densities for random pruning ------------------------------------------------

def layer_densities(sizes: Mapping[str, int], shapes: Mapping[str, Sequence[int]], kinds: Mapping[str, str],
                    density: float, rule: str = "erk") -> dict[str, float]:
    """The fraction kept per layer under ``rule``, such that sum(density_l * N_l) = density * N.

    ``sizes``, ``shapes`` (one network's weight shape) and ``kinds`` name the same layers, in model
    order (pyramidal counts depth in that order, from 1).

    - uniform: every layer at ``density``.
    - er / erk (Evci et al.): density_l = eps * (n_in + n_out) / (n_in * n_out) (ER) or
      eps * sum(shape) / prod(shape) (ERK, kernel dims included); a layer that would exceed 1 is
      made dense and eps re-solved over the others.
    - balanced (Gadhikar et al.): every layer keeps the same number X of weights, capped at its
      size; the capacity the capped layers cannot take is spread over the others.
    - pyramidal (Gadhikar et al.): density_l = p^l (l = 1 for the first layer), with p solving
      sum N_l p^l = density * N.
    """
    density = pruning.validate_density(density)
    if rule not in RULES:
        raise ValueError(f"unknown layer density rule {rule!r}; valid: {', '.join(RULES)}")
    if set(sizes) != set(shapes) or set(sizes) != set(kinds):
        raise ValueError(f"sizes, shapes and kinds must name the same layers; got {sorted(sizes)}, "
                         f"{sorted(shapes)}, {sorted(kinds)}")
    names = list(sizes)
    target = density * sum(sizes.values())
    if rule == "uniform":
        return {name: density for name in names}
    if rule in ("er", "erk"):
        raw = {name: _erdos_renyi(shapes[name], with_kernel=rule == "erk") for name in names}
        return _scaled_densities(sizes, raw, target)
    if rule == "balanced":
        return _balanced_densities(sizes, target)
    return _pyramidal_densities(sizes, target)


def _erdos_renyi(shape: Sequence[int], with_kernel: bool) -> float:
    if with_kernel:
        return sum(shape) / math.prod(shape)
    n_out, n_in = shape[0], shape[1]  # Linear (out, in); Conv2d (out, in, kh, kw): kernel ignored
    return (n_in + n_out) / (n_in * n_out)


def _scaled_densities(sizes: Mapping[str, int], raw: Mapping[str, float], target: float) -> dict[str, float]:
    dense: set[str] = set()
    while True:
        free = [name for name in sizes if name not in dense]
        if not free:  # only density 1 makes every layer dense
            return {name: 1.0 for name in sizes}
        budget = target - sum(sizes[name] for name in dense)
        eps = budget / sum(raw[name] * sizes[name] for name in free)
        # Making a layer dense only raises eps for the rest (it took less than eps * raw * N), so
        # every layer over 1 can be made dense at once.
        over = {name for name in free if eps * raw[name] > 1}
        if not over:
            return {name: 1.0 if name in dense else eps * raw[name] for name in sizes}
        dense |= over


def _balanced_densities(sizes: Mapping[str, int], target: float) -> dict[str, float]:
    capped: set[str] = set()
    while True:
        free = [name for name in sizes if name not in capped]
        if not free:
            return {name: 1.0 for name in sizes}
        per_layer = (target - sum(sizes[name] for name in capped)) / len(free)
        full = {name for name in free if sizes[name] <= per_layer}
        if not full:
            return {name: 1.0 if name in capped else per_layer / sizes[name] for name in sizes}
        capped |= full


def _pyramidal_densities(sizes: Mapping[str, int], target: float) -> dict[str, float]:
    counts = list(sizes.values())
    kept = lambda p: sum(n * p ** depth for depth, n in enumerate(counts, 1))
    lo, hi = 0.0, 1.0  # kept(p) rises with p, and kept(1) = N >= target
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) < target else (lo, mid)
    return {name: hi ** depth for depth, name in enumerate(sizes, 1)}


def keep_counts(sizes: Mapping[str, int], densities: Mapping[str, float], total: int) -> dict[str, int]:
    """Whole numbers of weights per layer, near density_l * N_l, that add up to exactly ``total``
    (largest remainders get the spare weights; ties go to the earlier layer)."""
    if not 0 <= total <= sum(sizes.values()):
        raise ValueError(f"cannot keep {total} of {sum(sizes.values())} weights")
    names = list(sizes)
    ideal = {name: round(min(1.0, max(0.0, densities[name])) * sizes[name], 9) for name in names}
    counts = {name: int(math.floor(ideal[name])) for name in names}
    remainder = {name: ideal[name] - counts[name] for name in names}
    spare = total - sum(counts.values())
    by_remainder = sorted(names, key=lambda name: -remainder[name])  # sort is stable: model order on ties
    while spare > 0:
        for name in (n for n in by_remainder if counts[n] < sizes[n]):
            if spare == 0:
                break
            counts[name] += 1
            spare -= 1
    while spare < 0:
        for name in (n for n in reversed(by_remainder) if counts[n] > 0):
            if spare == 0:
                break
            counts[name] -= 1
            spare += 1
    return counts


# ---- targets -----------------------------------------------------------------------------

def layer_shapes(stack: NetworkStack) -> dict[str, tuple[int, ...]]:
    return {name: tuple(stack.params[name].shape[1:]) for name in stack.kinds}


def pai_targets(sizes: Mapping[str, int], density: float, scope: str = "global") -> list[Group]:
    """The groups pruned to exact counts: every prunable layer together (global), or each layer to
    uniform density with counts that add up to the global count (layerwise), so that the overall
    density is the same in both scopes."""
    if scope not in pruning.SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {', '.join(pruning.SCOPES)}")
    total = sum(sizes.values())
    keep = pruning.keep_count(total, density)
    if scope == "global":
        return [Group(tuple(sizes), keep, total)]
    counts = keep_counts(sizes, {name: density for name in sizes}, keep)
    return [Group((name,), counts[name], sizes[name]) for name in sizes]


def random_targets(sizes: Mapping[str, int], shapes: Mapping[str, Sequence[int]], kinds: Mapping[str, str],
                   density: float, rule: str) -> list[Group]:
    """One group per layer, with the rule's per-layer densities and the exact global count."""
    densities = layer_densities(sizes, shapes, kinds, density, rule)
    counts = keep_counts(sizes, densities, pruning.keep_count(sum(sizes.values()), density))
    return [Group((name,), counts[name], sizes[name]) for name in sizes]


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
    if not layer_collapse_ok:
        check_layer_collapse(masks, f"{method} at density {density:g}")
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
    return pruning._top_masks(ranked, groups)


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
        per_network.append(pruning.random_masks(reference, generator))
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


# ---- the experiment ----------------------------------------------------------------------

@gin.configurable
@dataclass(frozen=True)
class PaiConfig:
    experiment: str = "pai"
    dataset: str = "mnist"
    model: str = "lenet300"
    model_kwargs: dict = field(default_factory=dict)
    init: str = "glorot_normal"
    methods: tuple = ("snip", "grasp", "synflow", "magnitude", "random_erk", "random_uniform")
    densities: tuple = (0.1, 0.05, 0.02)
    trials: int = 1
    scope: str = "global"
    layer_collapse_ok: bool = False  # train networks that lost a whole layer (they stay at chance)
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        for method in self.methods:
            if method not in METHODS:
                raise ValueError(f"unknown pruning-at-init method {method!r}; valid: {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods) or not self.methods:
            raise ValueError(f"methods must be distinct and not empty, got {self.methods}")
        if not self.densities:
            raise ValueError("densities must name at least one density")
        for density in self.densities:
            pruning.validate_density(density)
        if self.scope not in pruning.SCOPES:
            raise ValueError(f"unknown pruning scope {self.scope!r}; valid: {', '.join(pruning.SCOPES)}")
        if self.trials < 1:
            raise ValueError(f"need trials >= 1, got {self.trials}")


def configs() -> tuple[PaiConfig, TrainConfig]:
    """PaiConfig and TrainConfig as gin binds them, TrainConfig in the ``pai`` scope: a profile can
    scale these runs' schedule (``pai/TrainConfig.milestones``) without touching IMP's hash."""
    with gin.config_scope(GIN_SCOPE):
        return PaiConfig(), TrainConfig()


# Which methods to run does not change any method's results: left out of the hash, so adding a
# method to a finished experiment trains only that method.
_NOT_HASHED_PAI = frozenset({"methods"})


def operative_config(config: PaiConfig, train_cfg: TrainConfig) -> str:
    """The bindings that determine the results, as loadable gin text."""
    return imp.operative_config(config, train_cfg, skip=_NOT_HASHED_PAI)


@dataclass(frozen=True)
class PaiMember:
    """One network of a method's stack."""
    trial: int
    level: int       # index into PaiConfig.densities

    def label(self, method: str, density: float) -> str:
        return f"trial {self.trial} {method} at density {density:g}"


class PaiExperiment:
    """Pruning at initialisation: per method, one stack of trials x densities networks."""

    def __init__(self, config: PaiConfig, train_cfg: TrainConfig, *, root: str | Path = "runs",
                 device: str | torch.device = "auto", data: DataSplits | None = None, callbacks: Sequence = ()):
        self.config, self.train_cfg = config, train_cfg
        self.callbacks = list(callbacks)
        self.device = resolve_device(device)
        self.data = (data or load_splits(config.dataset, seed=config.split_seed)).to(self.device)
        self.run = RunDir(root, config.experiment, operative_config(config, train_cfg))
        self.steps = train_cfg.steps(len(self.data.train))

    def _model(self, seed: int) -> torch.nn.Module:
        return build_model(self.config.model, self.data.input_shape, self.data.num_classes,
                           init=self.config.init, seed=seed, **self.config.model_kwargs)

    # Seeds as IMP's: trial t starts from the same initialisation and data order as IMP's trial t.
    def init_seed(self, trial: int) -> int:
        return derive_seed("init", self.config.seed, trial)

    def data_seed(self, trial: int) -> int:
        return derive_seed("data", self.config.seed, trial)

    def members(self) -> list[PaiMember]:
        return [PaiMember(t, level) for level in range(len(self.config.densities)) for t in range(self.config.trials)]

    def run_all(self) -> pd.DataFrame:
        """Train every method not yet done; returns the experiment's tidy metrics (all methods
        found in the store, also those of earlier runs with other method lists)."""
        todo = [method for method in self.config.methods if not self.run.is_done(method)]
        if todo:
            started = time.time()
            self.run.write_manifest(seed=self.config.seed, device=str(self.device),
                                    started_at=datetime.now(timezone.utc).isoformat(),
                                    methods=list(self.config.methods), densities=list(self.config.densities))
            for method in todo:
                self.run_method(method)
            self.run.write_manifest(finished_at=datetime.now(timezone.utc).isoformat(),
                                    wall_time_s=round(time.time() - started, 2))
        return self.run.read_metrics()

    def pruned_stack(self, method: str) -> NetworkStack:
        """The untrained networks of a method: each trial's initialisation, pruned to each density."""
        trials = NetworkStack.build(self._model, [self.init_seed(t) for t in range(self.config.trials)], self.device)
        state = trials.state()
        seeds = [self.data_seed(t) for t in range(self.config.trials)]
        parts = []
        for density in self.config.densities:
            masks = prune_at_init(trials, method, density, self.config.scope, data=self.data, seeds=seeds,
                                  layer_collapse_ok=self.config.layer_collapse_ok,
                                  batch_size=self.train_cfg.batch_size)
            parts.append({"params": state["params"], "buffers": state["buffers"], "masks": masks})
        return NetworkStack.from_states(self._template(), parts)  # members' order: density-major

    def run_method(self, method: str) -> None:
        if method not in self.config.methods:
            raise ValueError(f"method {method!r} is not one of this experiment's {self.config.methods}")
        members = self.members()
        progress_key = f"{method}_progress"
        resume = self.run.load_checkpoint(progress_key)
        if resume is None:
            stack = self.pruned_stack(method)
        else:  # training restores weights and masks from the checkpoint: no need to score again
            stack = NetworkStack.from_states(self._template(), [resume["stack"]]).to(self.device)
        densities = [self.config.densities[m.level] for m in members]
        history, _ = train(
            stack, self.data, self.train_cfg, data_seeds=[self.data_seed(m.trial) for m in members],
            labels=[m.label(method, d) for m, d in zip(members, densities)], resume=resume,
            checkpoint=lambda state: self.run.save_checkpoint(progress_key, state), callbacks=self.callbacks,
            desc=f"{self.config.experiment} {method}")
        self.run.write_metrics(method, self._rows(method, members, stack, history))
        self.run.mark_done(method)
        self.run.delete_checkpoint(progress_key)

    def _template(self) -> torch.nn.Module:
        return self._model(0).to("meta")

    def _rows(self, method: str, members: list[PaiMember], stack: NetworkStack, history) -> list[dict]:
        experiment, rows = self.config.experiment, []
        densities = stack.density().tolist()
        common = [{"experiment": experiment, "trial": m.trial, "level": m.level, "density": densities[i],
                   "control": method, "replicate": 0} for i, m in enumerate(members)]
        for name, layer in stack.layer_densities().items():
            for i, value in enumerate(layer.tolist()):
                rows.append({**common[i], "iteration": 0, "split": MASK_SPLIT, "metric": name, "value": value})
        for key, values in history.values.items():
            split, metric = key.split("/")
            series = torch.stack(values, dim=1)  # (M, evaluations)
            iterations = history.iterations[-series.shape[1]:]  # train/* metrics start after iteration 0
            for i in range(len(members)):
                for iteration, value in zip(iterations, series[i].tolist()):
                    rows.append({**common[i], "iteration": iteration, "split": split, "metric": metric, "value": value})
        return rows


def run_pai(config: PaiConfig, train_cfg: TrainConfig, *, root: str | Path = "runs", device: str = "auto",
            data: DataSplits | None = None) -> pd.DataFrame:
    """Run (or resume) a pruning-at-init experiment; its tidy metrics."""
    return PaiExperiment(config, train_cfg, root=root, device=device, data=data).run_all()


def layer_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per method, density level and layer: the mean fraction of the layer's weights kept."""
    rows = metrics[metrics.split == MASK_SPLIT]
    if rows.empty:
        return pd.DataFrame(columns=["control", "level", "density", "layer", "layer_density"])
    table = rows.groupby(["control", "level", "metric"], sort=False).agg(
        density=("density", "mean"), layer_density=("value", "mean")).reset_index()
    return table.rename(columns={"metric": "layer"})[["control", "level", "density", "layer", "layer_density"]]
