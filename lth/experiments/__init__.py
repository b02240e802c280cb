"""Experiment kinds on the one runner (`lth.experiments.runner`): IMP, pruning at initialisation,
the strong-ticket kinds and SubsetSum, each a module that registers its `Kind`."""

from lth.experiments import (deconstruct, edgepopup, gem_miner, imp, instability, pai, pensia, subsetsum,  # noqa: F401
                             train_ticket, transfer)  # (register)
from lth.experiments.registry import KINDS, Kind


def kinds() -> dict[str, Kind]:
    """Every kind, by name: imp, pai, edgepopup, pensia, gem_miner, train_ticket, subsetsum, lmc, transfer."""
    return KINDS


def kind_of(kind: Kind | str | type) -> Kind:
    """A Kind from itself, its name or its config class; ValueError naming the valid kinds."""
    if isinstance(kind, Kind):
        return kind
    for candidate in KINDS.values():
        if kind in (candidate.name, candidate.config):
            return candidate
    raise ValueError(f"unknown experiment kind {kind!r}; valid: {', '.join(KINDS)}")
