"""A supermask stack's masks as fixed masks, and the sanity-check controls fine-tuned beside them.

`fixed_mask_state` turns a `SupermaskStack` into the state of ordinary networks (the same
architecture before conversion): each scored layer's frozen weights become trainable weights under
its hard mask, held as a fixed mask (`NetworkStack.set_masks`); Gem-Miner fine-tunes that. The
controls of Frankle et al. 2021's sanity checks replace the masks or the weights first:

- `shuffled_masks`: each layer's mask permuted within the layer (layerwise shuffle);
- `inverted_masks`: the lowest scores kept instead of the highest (score inversion);
- `reseeded_weights`: fresh frozen weights of the same distribution (weight reinitialisation).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lth.data import derive_seed
from lth.nets.counts import row_ranks
from lth.nets.supermask import SupermaskLayer, SupermaskStack, key_prefix, regenerate_weights, scored_layers


def fixed_mask_state(stack: SupermaskStack, masks: Mapping[str, torch.Tensor] | None = None,
                     weights: Mapping[str, torch.Tensor] | None = None) -> dict:
    """The stack as ordinary networks (the same architecture before conversion): each scored
    layer's frozen weights become trainable weights under its mask as a fixed mask
    (`NetworkStack.set_masks`), BatchNorm statistics carried over. ``masks`` / ``weights`` (by
    module name, each (M, *weight shape)) replace the stack's own (the sanity-check controls).

    Returns ``{"params", "buffers", "masks"}`` for `NetworkStack.from_states` / `load_state`."""
    masks = dict(masks or stack.layer_masks())
    params, buffers, fixed = {}, {}, {}
    layers = {name: m for name, m in stack.template.named_modules() if isinstance(m, SupermaskLayer)}
    for name in layers:
        p = key_prefix(name)
        params[p + "weight"] = (weights or {}).get(name, stack.buffers[p + "weight"]).detach().clone()
        if name in masks:
            fixed[p + "weight"] = masks[name].detach().clone()
        bias = stack.params.get(p + "bias", stack.buffers.get(p + "bias"))
        if bias is not None:
            params[p + "bias"] = bias.detach().clone()
    skip = ("weight", "weight_seed", "keep", "kept", "bias")
    for key, value in stack.buffers.items():
        module, _, leaf = key.rpartition(".")
        if module in layers and leaf in skip:
            continue
        buffers[key] = value.detach().clone()
    for key, value in stack.params.items():
        module, _, leaf = key.rpartition(".")
        if module not in layers:  # layers that were never converted train on as before
            params[key] = value.detach().clone()
    return {"params": params, "buffers": buffers, "masks": fixed}


def shuffled_masks(masks: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Each layer's mask (M, *weight shape) permuted at random within the layer, per network: the
    same per-layer density, a different mask (Frankle et al. 2021's layerwise shuffle)."""
    out = {}
    for name, mask in masks.items():
        generator = torch.Generator().manual_seed(derive_seed("shuffle", seed, name))
        flat = mask.flatten(1)
        perms = torch.stack([torch.randperm(flat.shape[1], generator=generator) for _ in range(flat.shape[0])])
        out[name] = torch.gather(flat, 1, perms.to(flat.device)).view_as(mask)
    return out


def inverted_masks(stack: SupermaskStack, masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per layer, keep the weights of the *lowest* scores (|score| for top-k), as many as the mask
    keeps (score inversion: disjoint from the mask wherever it keeps under half the layer)."""
    masks = masks or stack.layer_masks()
    layers, out = scored_layers(stack.template), {}
    for name, mask in masks.items():
        scores = stack.params[key_prefix(name) + "scores"].detach().flatten(1)
        if layers[name].rule == "top_k":  # edge-popup ranks |score|
            scores = scores.abs()
        kept = mask.flatten(1).sum(1).long()
        out[name] = (row_ranks(scores) < kept[:, None]).to(mask.dtype).view_as(mask)
    return out


def reseeded_weights(stack: SupermaskStack, seed: int, weight_init: str) -> dict[str, torch.Tensor]:
    """Fresh frozen weights of the same distribution for every supermask layer (the weight
    reinitialisation control), by module name, drawn from new per-layer seeds."""
    template_state = {"buffers": {k: (torch.tensor([derive_seed("reinit", seed, k, i) for i in range(stack.size)])
                                      if k.endswith("weight_seed") else v)
                                  for k, v in stack.buffers.items()}}
    state = regenerate_weights(stack.template, template_state, weight_init)
    return {name: state["buffers"][key_prefix(name) + "weight"].to(stack.device)
            for name, m in stack.template.named_modules() if isinstance(m, SupermaskLayer)}
