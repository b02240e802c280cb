"""M networks of one architecture trained as one: weights stacked along a leading network dim.

Every network in a stack keeps its own initialisation, mask, buffers (BatchNorm statistics)
and data order; they share the architecture and the optimiser hyperparameters. The forward
pass is ``vmap(functional_call)`` over the stacked state, so a single network is simply a
stack of one (M=1), never a second code path.

The one mask mechanism for fixed masks (IMP, random, pruning at init): a network computes
with ``weight * mask``. The product is kept in storage: weights are zeroed wherever a mask is
set, and the optimiser update multiplies gradients by the mask (exactly the gradient of
``weight * mask``; `lth.train.optim`). Storing the product saves a multiply per weight in every forward and
backward pass. Pruned weights stay exactly zero under Adam, momentum and weight decay because
the optimiser's per-weight state (momentum buffers, Adam moments) is zero there too: a mask set
while an optimiser has state (a callback pruning mid-training) zeroes that state at the pruned
positions in every optimiser the stack `track`s (``lth.train`` tracks the one it makes).
Masks are updated in place, never replaced, so a training step captured as a CUDA graph reads
the new masks; `density` refuses to report a mask that its weights do not follow.

The optimiser update reads a bool copy of every mask (``gradient_masks``, kept in step by
`set_masks`): one byte per weight instead of four in the update, which streams every weight, gradient,
mask and moment once per step and so is bound by memory bandwidth on a GPU.

Stacked linear weights (M, out, in) are stored in (M, in, out) memory order: the batched matmul's
backward computes their gradient in that order, and autograd copies a gradient whose strides
differ from its parameter's (on an H100 that copy was ~15% of a stacked LeNet step).
"""

from __future__ import annotations

import copy
import weakref
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lth.nets.models import prunable_weights


class MaskViolation(AssertionError):
    """A weight is non-zero where its mask is 0 (the mask no longer describes the network)."""


class NetworkStack:
    """M networks of one architecture (``template``) as stacked tensors.

    ``params``: name -> (M, *shape) trained tensors; ``buffers``: name -> (M, *shape) state that
    is not trained (BatchNorm statistics); ``masks``: prunable weight name (``kinds``) -> (M, *shape)
    0/1 mask in the weight's dtype and layout, all ones when not given; ``gradient_masks``: the same
    masks as bool tensors in the same layout (what the optimiser update multiplies gradients by)."""

    def __init__(self, template: nn.Module, params: dict[str, torch.Tensor],
                 buffers: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None):
        self.template = template
        self.params = {name: _in_gradient_layout(p) for name, p in params.items()}
        self.buffers = buffers
        self.kinds = prunable_weights(template)
        self._optimizers: weakref.WeakSet[torch.optim.Optimizer] = weakref.WeakSet()
        if masks is None:
            masks = {name: torch.ones_like(params[name]) for name in self.kinds}
        self.masks: dict[str, torch.Tensor] = {}
        self.gradient_masks: dict[str, torch.Tensor] = {}
        self.set_masks(masks)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> "NetworkStack":
        params, buffers = stack_module_state(list(models))
        params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        buffers = {k: v.detach().clone() for k, v in buffers.items()}
        # The template only carries the architecture: its own tensors are never read.
        template = copy.deepcopy(models[0]).to("meta")
        return cls(template, params, buffers)

    @classmethod
    def build(cls, make_model: Callable[[int], nn.Module], seeds: Sequence[int],
              device: torch.device | str = "cpu") -> "NetworkStack":
        """One network per seed; ``make_model(seed)`` builds and initialises it."""
        return cls.from_models([make_model(s) for s in seeds]).to(device)

    def to(self, device) -> "NetworkStack":
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in self.params.items()}
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        self.masks = {k: v.to(device) for k, v in self.masks.items()}
        self.gradient_masks = {k: v.to(device) for k, v in self.gradient_masks.items()}
        return self

    @property
    def size(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        """A detached copy of everything that defines the networks."""
        clone = lambda d: {k: v.detach().clone() for k, v in d.items()}
        return {"params": clone(self.params), "buffers": clone(self.buffers), "masks": clone(self.masks)}

    def load_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        with torch.no_grad():
            for group in ("params", "buffers"):
                mine = getattr(self, group)
                for name, value in state[group].items():
                    mine[name].copy_(value)
        self.set_masks(state["masks"])

    def select(self, index: Sequence[int]) -> dict[str, dict[str, torch.Tensor]]:
        """The state of some networks of the stack (for splitting a trained cohort)."""
        idx = torch.as_tensor(list(index), device=self.device)
        pick = lambda d: {k: v.detach()[idx].clone() for k, v in d.items()}
        return {"params": pick(self.params), "buffers": pick(self.buffers), "masks": pick(self.masks)}

    @classmethod
    def from_states(cls, template: nn.Module, states: Sequence[dict]) -> "NetworkStack":
        """Concatenate several stack states (each with its own leading dim) into one stack."""
        cat = lambda group: {k: torch.cat([s[group][k] for s in states]) for k in states[0][group]}
        params = {k: v.clone().requires_grad_(True) for k, v in cat("params").items()}
        return cls(template, params, cat("buffers"), cat("masks"))

    # ---- masks ------------------------------------------------------------------------
    def track(self, optimizer: torch.optim.Optimizer) -> None:
        """From now on `set_masks` also zeroes ``optimizer``'s per-weight state (every state tensor of a
        weight's shape: momentum buffers, Adam moments) where a mask is 0, in place. Held weakly."""
        self._optimizers.add(optimizer)

    def set_masks(self, masks: dict[str, torch.Tensor]) -> None:
        """Prune: for each prunable weight named in ``masks`` ((M, *weight shape), 0/1, any dtype),
        zero the weights where the mask is 0 and keep them at zero from then on.

        Safe at any time, also mid-training: the stack's mask tensors are updated in place (a
        captured training step sees the new masks), and the state of every tracked optimiser is
        zeroed at the masked positions, so no momentum or moment moves a pruned weight again.
        Raises KeyError for a name that is not a prunable weight, ValueError for a wrong shape."""
        unknown = set(masks) - set(self.kinds)
        if unknown:
            raise KeyError(f"masks for non-prunable parameters {sorted(unknown)}; "
                           f"prunable: {sorted(self.kinds)}")
        with torch.no_grad():
            for name, mask in masks.items():
                param = self.params[name]
                if mask.shape != param.shape:
                    raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, "
                                     f"weights have {tuple(param.shape)}")
                mine = self.masks.get(name)
                if (mine is None or mine.device != param.device or mine.dtype != param.dtype
                        or mine.stride() != param.stride()):
                    # the parameter's layout, so masking its gradient stays one multi-tensor kernel
                    mine = self.masks[name] = torch.empty_like(param, requires_grad=False)
                if mine is not mask:
                    mine.copy_(mask)
                keep = self.gradient_masks.get(name)
                if keep is None or keep.device != param.device or keep.stride() != param.stride():
                    keep = self.gradient_masks[name] = torch.empty_like(param, dtype=torch.bool, requires_grad=False)
                torch.ne(mine, 0, out=keep)
                param.mul_(mine)
                for optimizer in self._optimizers:
                    for value in optimizer.state.get(param, {}).values():
                        if torch.is_tensor(value) and value.shape == param.shape:
                            value.mul_(mine)

    def density(self) -> torch.Tensor:
        """(M,) fraction of prunable weights kept, per network: the masks' count, which is what is
        non-zero (raises MaskViolation, naming the layer, if any weight is non-zero where its mask is
        0). A kept weight that happens to be exactly zero still counts as kept."""
        self.check_masks()
        kept = sum(m.flatten(1).sum(1) for m in self.masks.values())
        total = sum(m[0].numel() for m in self.masks.values())
        return kept / total

    def check_masks(self) -> None:
        """Raise MaskViolation unless every weight is exactly zero where its mask is 0."""
        for name, mask in self.masks.items():
            stray = int(((self.params[name].detach() != 0) & (mask == 0)).sum())
            if stray:
                raise MaskViolation(f"{name}: {stray} weights are non-zero where the mask is 0; the mask "
                                    "no longer describes the networks (set masks with set_masks)")

    def layer_densities(self) -> dict[str, torch.Tensor]:
        """Prunable weight name -> (M,) fraction kept in that layer (checked as `density`)."""
        self.check_masks()
        return {name: m.flatten(1).mean(1) for name, m in self.masks.items()}

    # ---- compute ----------------------------------------------------------------------
    def before_update(self) -> None:
        """Called by training after backward, before the optimiser update (which masks the gradients).
        A plain stack has nothing to do; `lth.nets.supermask.SupermaskStack` projects its scores."""

    def train(self, mode: bool = True) -> "NetworkStack":
        self.template.train(mode)
        return self

    def __call__(self, x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
        """Logits (M, B, classes). ``x`` is (M, B, ...) per network, or (B, ...) if shared."""
        return stacked_forward(self.template, self.params, self.buffers, x, shared_input)


def _in_gradient_layout(param: torch.Tensor) -> torch.Tensor:
    """``param`` with stacked matrices (M, out, in) stored in (M, in, out) order (see the module
    docstring); other parameters unchanged."""
    if param.dim() != 3 or param.stride(1) == 1:
        return param
    _, rows, cols = param.shape
    moved = torch.empty_strided(param.shape, (rows * cols, 1, rows), dtype=param.dtype, device=param.device)
    with torch.no_grad():
        moved.copy_(param)
    return moved.requires_grad_(param.requires_grad)


def stacked_forward(template: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                    x: torch.Tensor, shared_input: bool = False) -> torch.Tensor:
    """The stack's forward pass as a plain function of its tensors (what torch.compile traces)."""
    def one(params, buffers, inputs):
        return functional_call(template, (params, buffers), (inputs,))
    in_dims = (0, 0, None if shared_input else 0)
    return vmap(one, in_dims=in_dims, randomness="different")(params, buffers, x)
