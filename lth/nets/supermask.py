"""Score-based masks for strong lottery tickets: frozen random weights, trained scores.

A supermask layer computes with ``weight * mask`` like every network here, but its weight is a
frozen buffer drawn from a per-layer seed (``weight_seed``: the seed regenerates the weights
bit for bit, so a ticket is stored as seeds + scores) and its mask comes from a trained score
per weight through a straight-through estimator (forward: the hard 0/1 mask; backward: the
mask's gradient passed unchanged to the scores). The mask rules:

- ``top_k`` (edge-popup, Ramanujan et al.): per layer, keep the ``kept`` weights of largest
  |score|; ``kept`` is a buffer, so networks of one stack can sit at different densities.
- ``threshold`` (Gem-Miner, Sreenivasan et al.): scores bounded in [0, 1], mask = 1[score >= 0.5].
- ``sign`` (train_ticket's gates): mask = 1[gate > 0], gates start at 1 (every weight on).
- ``bernoulli`` (Zhou et al.'s learned supermask, `lth.nets.bernoulli`): mask ~ Bernoulli(sigmoid(score)),
  sampled at every forward pass, straight-through into sigmoid(score); logits start at 0 (p = 0.5).

Every rule is multiplied by a ``keep`` buffer: Gem-Miner's iterative freezing
(`lth.nets.freezing`) sets it to 0 for the scores it zeroes for good. `to_supermask` turns the Linear/Conv2d layers of any model into
supermask layers (or frozen dense ones); `SupermaskStack` is a NetworkStack of such models: the
scores are its trained params, weights and masks' buffers are stacked per network, and
``lth.train.loop.train`` trains it unchanged. `lth.nets.controls` turns its masks into fixed
masks for fine-tuning, with the sanity-check controls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from lth.data import derive_seed
from lth.nets import bernoulli
from lth.nets.counts import keep_count, top_k_mask, validate_density
from lth.nets.stack import NetworkStack

MASK_RULES = ("top_k", "threshold", "sign", "bernoulli")
# Kaiming (edge-popup) and Glorot (Zhou et al.) scales: normal weights, or their signs times the std.
WEIGHT_INITS = ("signed_constant", "kaiming_normal", "glorot_normal", "glorot_signed_constant")
SIGNED_INITS = ("signed_constant", "glorot_signed_constant")
SCORE_INITS = ("kaiming_uniform", "uniform", "ones", "zeros")
DEFAULT_SCORE_INIT = {"top_k": "kaiming_uniform", "threshold": "uniform", "sign": "ones", "bernoulli": "zeros"}
THRESHOLD = 0.5  # Gem-Miner: a weight is kept while its score is at least this
# Rules whose layers train their biases beside the scores: train_ticket's gates do. Under edge-popup
# (top_k) and Gem-Miner (threshold) only scores train: their biases are frozen buffers (as zero as
# conversion makes them), just as affine BatchNorm parameters are removed.
RULES_TRAINING_BIASES = ("sign",)


def _check(value: str, valid: Sequence[str], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


# ---- mask rules --------------------------------------------------------------------------------

def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """The value of ``hard`` with the gradient of ``soft`` (identity to it)."""
    return hard.detach() + (soft - soft.detach())


def top_k_hard(magnitude: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """1 for the ``kept`` entries of largest ``magnitude`` (any shape; ``kept`` a 0-d int tensor or
    int), exactly that many, ties broken by position (`lth.nets.counts.top_k_mask`), in
    ``magnitude``'s dtype and shape. Ranks instead of a threshold value: ``kept`` may differ per
    network under vmap, and ties cannot change the count."""
    return top_k_mask(magnitude.reshape(1, -1), kept).to(magnitude.dtype).reshape(magnitude.shape)


def hard_mask(rule: str, scores: torch.Tensor, kept: torch.Tensor | None, keep: torch.Tensor) -> torch.Tensor:
    """The 0/1 mask of one layer of one network."""
    if rule == "top_k":
        hard = top_k_hard(scores.abs(), kept)
    elif rule == "threshold":
        hard = (scores >= THRESHOLD).to(scores.dtype)
    else:
        hard = (scores > 0).to(scores.dtype)
    return hard * keep


def mask_with_gradient(rule: str, scores: torch.Tensor, kept: torch.Tensor | None, keep: torch.Tensor) -> torch.Tensor:
    """`hard_mask` with the straight-through gradient: edge-popup passes it through |score|
    (as hidden-networks' GetSubnet on the absolute scores), the other rules to the score itself."""
    if rule == "top_k":
        soft = scores.abs()
        hard = top_k_hard(soft, kept) * keep
    else:
        soft, hard = scores, hard_mask(rule, scores, kept, keep)
    return straight_through(hard, soft) * keep


# ---- seeded weights ----------------------------------------------------------------------------

def seeded_weight(shape: Sequence[int], seed: int, init: str, std: float) -> torch.Tensor:
    """Frozen weights from a seed, on the CPU (bitwise the same on every call and machine):
    normal N(0, std^2), or its signs times std (the signed-constant inits, `SIGNED_INITS`)."""
    _check(init, WEIGHT_INITS, "weight init")
    generator = torch.Generator().manual_seed(int(seed))
    sample = torch.randn(tuple(shape), generator=generator)
    return sample.sign() * std if init in SIGNED_INITS else sample * std


def init_std(init: str, shape: Sequence[int]) -> float:
    """The std of a weight of ``shape`` (out, in, *kernel) under ``init``: Kaiming sqrt(2 / fan_in)
    (edge-popup's inits), or Glorot sqrt(2 / (fan_in + fan_out)) for the ``glorot_*`` inits (Zhou et
    al.'s frozen weights; their signed constant is the sample's std, this is its expectation)."""
    receptive = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    return math.sqrt(2.0 / (fan_in + fan_out)) if init.startswith("glorot") else kaiming_std(fan_in)


def kaiming_std(fan_in: int) -> float:
    """gain / sqrt(fan_in) with the ReLU gain sqrt(2), as edge-popup's inits."""
    return math.sqrt(2.0 / fan_in)


def seeded_scores(shape: Sequence[int], seed: int, init: str, fan_in: int) -> torch.Tensor:
    _check(init, SCORE_INITS, "score init")
    if init in ("ones", "zeros"):
        return torch.full(tuple(shape), 1.0 if init == "ones" else 0.0)
    generator = torch.Generator().manual_seed(int(seed))
    sample = torch.rand(tuple(shape), generator=generator)
    if init == "uniform":
        return sample
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): torch's default Linear/Conv init
    return (2 * sample - 1) * bound


# ---- layers ------------------------------------------------------------------------------------

class SupermaskLayer(nn.Module):
    """A frozen weight (buffer) times a mask from trained scores; ``rule=None`` is a frozen dense
    layer (no scores). Subclasses say how the masked weight meets the input (`apply_weight`)."""

    def __init__(self, weight: torch.Tensor, weight_seed: int, rule: str | None, *, scores: torch.Tensor | None = None,
                 kept: int | None = None, bias: torch.Tensor | None = None):
        super().__init__()
        self.rule = None if rule is None else _check(rule, MASK_RULES, "mask rule")
        self.register_buffer("weight", weight)
        self.register_buffer("weight_seed", torch.tensor(int(weight_seed), dtype=torch.int64))
        if rule is not None:
            self.scores = nn.Parameter(scores)
            self.register_buffer("keep", torch.ones_like(weight))
            if rule == "top_k":
                self.register_buffer("kept", torch.tensor(int(kept), dtype=torch.int64))
            if rule == "bernoulli":  # the noise's seed and draw counter (`lth.nets.bernoulli`)
                self.register_buffer("noise_seed", torch.tensor(derive_seed("noise", int(weight_seed)), dtype=torch.int64))
                self.register_buffer("draws", torch.zeros((), dtype=torch.int64))
        if bias is None:
            self.bias = None
        elif rule in RULES_TRAINING_BIASES:  # train_ticket trains the biases of its gated layers
            self.bias = nn.Parameter(bias)
        else:  # edge-popup and Gem-Miner train scores only; a frozen layer freezes its bias too
            self.register_buffer("bias", bias)

    def masked_weight(self) -> torch.Tensor:
        if self.rule is None:
            return self.weight
        if self.rule == "bernoulli":
            mask = bernoulli.mask_with_gradient(self.scores, self.noise_seed, self.draws, self.training)
            if self.training:  # the next training forward pass draws a fresh mask
                self.draws.add_(1)
            return self.weight * mask * self.keep
        kept = self.kept if self.rule == "top_k" else None
        return self.weight * mask_with_gradient(self.rule, self.scores, kept, self.keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_weight(x, self.masked_weight())

    def apply_weight(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SupermaskLinear(SupermaskLayer):
    def apply_weight(self, x, weight):
        return F.linear(x, weight, self.bias)


class SupermaskConv2d(SupermaskLayer):
    def __init__(self, conv: nn.Conv2d, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def apply_weight(self, x, weight):
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class RedFanOut(SupermaskLayer):
    """Stage 1 of Pensia et al.'s redundant layer: input unit j feeds r units through weights
    (in, r), so (B, in) becomes (B, in * r), unit (j, k) at position j * r + k."""

    def apply_weight(self, x, weight):
        return (x.unsqueeze(-1) * weight).flatten(-2)


class RedLinear(nn.Module):
    """Pensia et al.'s RedLayer: each target weight w_ij becomes r paths x_j -> (j, k) -> y_i; both
    stages are pruned (edge-popup, each stage its own top-k). ``relu`` adds their optional ReLU."""

    def __init__(self, fan_out: RedFanOut, combine: SupermaskLinear, relu: bool = False):
        super().__init__()
        self.fan_out, self.combine, self.relu = fan_out, combine, relu

    def forward(self, x):
        h = self.fan_out(x)
        return self.combine(F.relu(h) if self.relu else h)


# ---- model conversion --------------------------------------------------------------------------

def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> every Linear/Conv2d, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def to_supermask(model: nn.Module, *, rule: str, seed: int, density: float = 1.0,
                 weight_init: str = "signed_constant", score_init: str | None = None,
                 scored: Callable[[str], bool] | None = None, frozen: Callable[[str], bool] | None = None,
                 redundancy: int = 0, redundant_relu: bool = False) -> nn.Module:
    """Replace the Linear/Conv2d layers of ``model`` (in place; returned) by supermask layers.

    ``scored(name)`` picks the layers that get scores (default: all); ``frozen(name)`` those kept
    as frozen dense layers (weights seeded, never trained); the rest stay ordinary trainable layers.
    Weights and scores are drawn from ``derive_seed(seed, layer name)``. ``density`` in (0, 1] sets
    top-k's per-layer count. ``redundancy`` = r > 0 turns every scored Linear into a RedLinear (Pensia).
    A converted layer's bias starts at zero; it trains only under the 'sign' rule (train_ticket),
    under 'top_k' and 'threshold' it is a frozen buffer, so only scores train. Affine BatchNorm
    becomes non-affine (edge-popup and Gem-Miner train no BN parameters).
    Raises ValueError for an unknown rule, weight init or score init, or a density outside (0, 1]."""
    _check(rule, MASK_RULES, "mask rule")
    validate_density(density)
    score_init = score_init or DEFAULT_SCORE_INIT[rule]
    _check(score_init, SCORE_INITS, "score init")
    _check(weight_init, WEIGHT_INITS, "weight init")
    scored = scored or (lambda name: True)
    frozen = frozen or (lambda name: False)
    for name, layer in weight_layers(model).items():
        if frozen(name):
            new = _convert(layer, name, None, seed, density, weight_init, score_init)
        elif scored(name):
            if redundancy and isinstance(layer, nn.Linear):
                new = _redundant(layer, name, rule, seed, density, weight_init, score_init, redundancy, redundant_relu)
            else:
                new = _convert(layer, name, rule, seed, density, weight_init, score_init)
        else:
            continue
        _replace(model, name, new)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            _replace(model, name, type(module)(module.num_features, eps=module.eps, momentum=module.momentum,
                                               affine=False))
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _layer_tensors(shape, fan_in, name, rule, seed, density, weight_init, score_init, std=None):
    weight_seed = derive_seed("weights", seed, name)
    weight = seeded_weight(shape, weight_seed, weight_init, std if std is not None else init_std(weight_init, shape))
    if rule is None:
        return dict(weight=weight, weight_seed=weight_seed, rule=None)
    scores = seeded_scores(shape, derive_seed("scores", seed, name), score_init, fan_in)
    return dict(weight=weight, weight_seed=weight_seed, rule=rule, scores=scores,
                kept=keep_count(math.prod(shape), density))


def _convert(layer, name, rule, seed, density, weight_init, score_init) -> SupermaskLayer:
    shape = tuple(layer.weight.shape)
    tensors = _layer_tensors(shape, math.prod(shape[1:]), name, rule, seed, density, weight_init, score_init)
    bias = None if layer.bias is None else torch.zeros(shape[0])
    if isinstance(layer, nn.Conv2d):
        return SupermaskConv2d(layer, **tensors, bias=bias)
    return SupermaskLinear(**tensors, bias=bias)


def _redundant(layer: nn.Linear, name, rule, seed, density, weight_init, score_init, r, relu) -> RedLinear:
    if layer.bias is not None:
        raise ValueError(f"redundant layers have no bias (Pensia et al.); build {name} with bias=False")
    out_features, in_features = layer.weight.shape
    # Pensia et al.'s scales: stage 1 ~ N(0, 2/1) (one input per unit), stage 2 ~ N(0, 2/in).
    fan = _layer_tensors((in_features, r), 1, f"{name}.fan_out", rule, seed, density, weight_init, score_init,
                         std=kaiming_std(1))
    comb = _layer_tensors((out_features, in_features * r), in_features * r, f"{name}.combine", rule, seed, density,
                          weight_init, score_init, std=kaiming_std(in_features))
    return RedLinear(RedFanOut(**fan), SupermaskLinear(**comb), relu)


# ---- stacks of supermask networks ------------------------------------------------------------

def scored_layers(model: nn.Module) -> dict[str, SupermaskLayer]:
    """Module name -> every supermask layer with scores, in registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, SupermaskLayer) and m.rule is not None}


def key_prefix(name: str) -> str:
    """The state key prefix of the module ``name``: ``"fc1."``, or ``""`` for the root module."""
    return f"{name}." if name else ""


class SupermaskStack(NetworkStack):
    """A NetworkStack of supermask models. Its density is that of the score masks.

    Gem-Miner's projection of the scores onto [0, 1] (and frozen scores back to 0) runs where
    training calls `before_update`: after backward, before the optimiser step. Projecting the
    scores a step starts from is projected SGD exactly: the forward pass reads only the hard
    mask, which is the same for a score and its projection, so the gradient is unchanged."""

    def layer_masks(self) -> dict[str, torch.Tensor]:
        """Module name -> (M, *weight shape) hard 0/1 masks of every scored layer."""
        out = {}
        for name, layer in scored_layers(self.template).items():
            p = key_prefix(name)
            kept = self.buffers.get(p + "kept")
            scores = self.params[p + "scores"].detach()
            if layer.rule == "bernoulli":  # the sample every evaluation uses (stream 1 at the current draw)
                fn = lambda s, seed, draw, keep: bernoulli.sample(s, seed, draw, bernoulli.EVAL_STREAM) * keep
                out[name] = vmap(fn)(scores, self.buffers[p + "noise_seed"], self.buffers[p + "draws"],
                                     self.buffers[p + "keep"])
                continue
            fn = lambda s, k, keep: hard_mask(layer.rule, s, k, keep)
            out[name] = vmap(fn, in_dims=(0, None if kept is None else 0, 0))(scores, kept, self.buffers[p + "keep"])
        return out

    def density(self) -> torch.Tensor:
        if not scored_layers(self.template):  # only frozen and ordinary layers: the fixed masks say
            return super().density()
        masks = self.layer_masks()
        kept = sum(m.flatten(1).sum(1) for m in masks.values())
        return kept / sum(m[0].numel() for m in masks.values())

    def layer_densities(self) -> dict[str, torch.Tensor]:
        if not scored_layers(self.template):
            return super().layer_densities()
        return {name: m.flatten(1).mean(1) for name, m in self.layer_masks().items()}

    def set_densities(self, densities: Sequence[float]) -> None:
        """Top-k layers of network i keep ``keep_count(layer size, densities[i])`` weights."""
        if len(densities) != self.size:
            raise ValueError(f"{len(densities)} densities for a stack of {self.size} networks")
        for name, layer in scored_layers(self.template).items():
            if layer.rule != "top_k":
                raise ValueError(f"layer {name} uses the {layer.rule!r} rule: only top-k layers have a set density")
            n = self.params[key_prefix(name) + "scores"][0].numel()
            counts = [keep_count(n, d) for d in densities]
            self.buffers[key_prefix(name) + "kept"].copy_(torch.tensor(counts))

    @torch.no_grad()
    def project_scores(self) -> None:
        """Bounded (threshold-rule) scores onto [0, 1], frozen ones to 0."""
        for name, layer in scored_layers(self.template).items():
            if layer.rule == "threshold":
                p = key_prefix(name)
                self.params[p + "scores"].clamp_(0.0, 1.0).mul_(self.buffers[p + "keep"])

    def before_update(self) -> None:
        self.project_scores()

    def weight_seeds(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.buffers.items() if k.endswith("weight_seed")}


# ---- storing a ticket as seeds -----------------------------------------------------------------

def ticket_state(stack: SupermaskStack) -> dict:
    """Everything that defines the networks except the frozen weights: their seeds stand in."""
    state = stack.state()
    frozen = {key_prefix(name) + "weight" for name, m in stack.template.named_modules() if isinstance(m, SupermaskLayer)}
    state["buffers"] = {k: v for k, v in state["buffers"].items() if k not in frozen}
    return state


def seeded_layers(template: nn.Module, weight_init: str) -> dict[str, tuple[tuple[int, ...], float]]:
    """State key of every supermask layer's frozen weight -> (its shape, the std it is drawn with), as at
    conversion: `init_std` of ``weight_init`` (Kaiming from the fan-in, Glorot for the glorot inits), or
    Pensia's stage scales for redundant layers."""
    out = {}
    parents = dict(template.named_modules())
    for name, module in template.named_modules():
        if not isinstance(module, SupermaskLayer):
            continue
        shape = tuple(module.weight.shape)
        parent = parents.get(name.rpartition(".")[0])
        if isinstance(module, RedFanOut):
            std = kaiming_std(1)
        elif isinstance(parent, RedLinear):
            std = kaiming_std(parent.fan_out.weight.shape[0])
        else:
            std = init_std(weight_init, shape)
        out[key_prefix(name) + "weight"] = (shape, std)
    return out


def regenerate_weights(template: nn.Module, state: dict, weight_init: str) -> dict:
    """A `ticket_state` with the frozen weights drawn again from their seeds (bitwise equal)."""
    buffers = dict(state["buffers"])
    for key, (shape, std) in seeded_layers(template, weight_init).items():
        seeds = buffers[key + "_seed"].tolist()
        buffers[key] = torch.stack([seeded_weight(shape, s, weight_init, std) for s in seeds])
    return {**state, "buffers": buffers}


def portable_state(stack: SupermaskStack, weight_init: str) -> dict:
    """What a ticket file of each network of ``stack`` needs, without the frozen weights (their
    seeds regenerate them): ``masks`` (state key of a scored layer's weight -> (M, *shape) bool hard
    mask), ``seeds`` (every supermask layer's weight key -> (M,) int64), ``stds`` and ``shapes`` (key
    -> the std and shape it is drawn with), ``tensors`` (every other parameter and buffer of the
    networks, (M, ...): biases, BatchNorm statistics, ordinary layers; scores and mask bookkeeping
    left out) and ``redundant`` (True for Pensia's redundant layers, which no plain model has)."""
    layers = seeded_layers(stack.template, weight_init)
    scored = {key_prefix(name) + "weight": mask.bool().cpu() for name, mask in stack.layer_masks().items()}
    internal = {key[:-len("weight")] + part for key in layers for part in ("weight", "weight_seed", "scores", "keep", "kept")}
    tensors = {k: v.detach().cpu().clone() for k, v in {**stack.params, **stack.buffers}.items() if k not in internal}
    return {"masks": scored, "seeds": {k: stack.buffers[k + "_seed"].cpu().clone() for k in layers},
            "stds": {k: std for k, (_, std) in layers.items()},
            "shapes": {k: list(shape) for k, (shape, _) in layers.items()}, "tensors": tensors,
            "redundant": any(isinstance(m, (RedFanOut, RedLinear)) for m in stack.template.modules())}
