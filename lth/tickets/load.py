"""A ticket file back as a plain PyTorch model: ``load_ticket(path)``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from lth.nets.models import build_model
from lth.nets.supermask import seeded_weight
from lth.tickets.fileformat import Ticket, TicketError, read_ticket

WEIGHTS = ("init", "trained")


def load_ticket(path: str | Path, weights: str = "init", device: str | torch.device = "cpu") -> nn.Module:
    """The network stored at ``path`` (see `lth.tickets.export_ticket`) as a plain ``nn.Module``,
    built by `lth.nets.models.build_model`, in train mode, on ``device``.

    Every pruned layer is in ``torch.nn.utils.prune``'s layout: a parameter ``weight_orig`` (the
    weights, zero where pruned), a buffer ``weight_mask`` (0/1, the weight's dtype) and ``weight``
    recomputed as their product before each forward; ``prune.remove(module, "weight")`` makes it
    an ordinary weight again. ``weights``: ``init`` (the ticket's initial weights, to retrain it;
    default) or ``trained`` (the weights it reached, where the file holds them). A strong ticket's
    seeded weights are regenerated bit for bit from their seeds.

    Raises TicketError naming the file when it is missing, truncated, not an lth ticket, lacks the
    requested weights, or does not fit the model its metadata names."""
    if weights not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r}; valid: {', '.join(WEIGHTS)}")
    ticket = read_ticket(path)
    return build_plain_model(ticket, weights, str(path)).to(device)


def build_plain_model(ticket: Ticket, weights: str, where: str = "ticket") -> nn.Module:
    """The model of a `Ticket` in memory (see `load_ticket`)."""
    meta = ticket.meta
    if weights not in ticket.states and not (weights == "init" and ticket.seeds):
        raise TicketError(f"{where} holds no {weights!r} weights; it holds: "
                          f"{', '.join(sorted(ticket.states)) or 'none'} (export with include_trained=True "
                          "for the trained weights)")
    try:
        model = build_model(meta["model"], tuple(meta["input_shape"]), int(meta["num_classes"]), init="default",
                            seed=0, **meta.get("model_kwargs", {}))
    except (KeyError, TypeError, ValueError) as err:
        raise TicketError(f"{where}: cannot build its model {meta.get('model')!r} with "
                          f"{meta.get('model_kwargs')}: {err}") from err
    state = dict(ticket.states.get(weights, {}))
    for name, seed in ticket.seeds.items():  # strong tickets: frozen weights from their seeds
        shape = meta["shapes"].get(name) or meta["seeded_shapes"][name]
        state[name] = seeded_weight(shape, seed, meta["weight_init"], meta["weight_std"][name])
    expected = set(model.state_dict())
    if set(state) != expected:
        raise TicketError(f"{where} does not fit model {meta['model']!r}: missing {sorted(expected - set(state))}, "
                          f"unexpected {sorted(set(state) - expected)}")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    for name, mask in ticket.masks.items():
        module_name, _, leaf = name.rpartition(".")
        module = model.get_submodule(module_name)
        prune.custom_from_mask(module, leaf, mask.to(getattr(module, leaf).dtype))
    return model
