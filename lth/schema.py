"""The tidy-metrics vocabulary every experiment kind writes, and the one "network of a stack" type.

A run's metrics are long-format rows with exactly `METRIC_COLUMNS`:

- experiment: the run's name (IMP, PaI, SubsetSum) or the network (strong-ticket kinds).
- trial: independent repetition, from 0.   level: index of the density ladder (IMP: pruning level).
- density: fraction of prunable weights kept (0, 1].   control: `TICKET` or the control's name
  (PaI: the method; strong kinds: the method or variant).   replicate: numbers random reinits, else 0.
- iteration: optimizer steps done.   split: ``train``/``val``/``test``, `MASK_SPLIT` (metric = a
  layer's name, value = its density) or `META_SPLIT` (scored weights, iterations per epoch).
- metric / value: e.g. ``accuracy`` 0.97, ``loss`` 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

METRIC_COLUMNS = ("experiment", "trial", "level", "density", "control", "replicate", "iteration", "split",
                  "metric", "value")
TICKET = "none"       # the control column's value for the ticket itself
MASK_SPLIT = "mask"   # rows holding per-layer densities (metric = the layer's name)
META_SPLIT = "meta"   # rows holding a network's facts (scored_weights, steps_per_epoch)


@dataclass(frozen=True)
class Member:
    """One network of a stack: its trial, its level (index of the density ladder), its control
    (`TICKET` for the ticket itself) and its replicate (numbers random reinitialisations)."""
    trial: int
    level: int = 0
    control: str = TICKET
    replicate: int = 0

    def label(self) -> str:
        """For progress bars and errors, e.g. 'trial 0 level 3 (reinit #1)'."""
        extra = f" #{self.replicate}" if self.control == "reinit" else ""
        return f"trial {self.trial} level {self.level} ({self.control}{extra})"


def metric_rows(experiment: str | Sequence[str], members: Sequence[Member], densities: Sequence[float],
                history, extra: Sequence[dict] = ()) -> list[dict]:
    """The tidy rows of one trained stack: per member, every evaluation in ``history`` (a
    `lth.train.loop.History`: ``values['split/metric']`` = list of (M,) tensors, ``iterations``).

    ``experiment``: one name, or one per member. ``densities``: (M,) fractions kept. ``extra``:
    rows of their own (mask/meta rows), each holding ``member`` (its index), ``iteration``,
    ``split``, ``metric``, ``value``; they come before the member's history rows."""
    names = [experiment] * len(members) if isinstance(experiment, str) else list(experiment)
    if len(names) != len(members) or len(densities) != len(members):
        raise ValueError(f"{len(members)} members, {len(names)} experiment names, {len(densities)} densities")
    common = [{"experiment": names[i], "trial": m.trial, "level": m.level, "density": float(densities[i]),
               "control": m.control, "replicate": m.replicate} for i, m in enumerate(members)]
    by_member: dict[int, list[dict]] = {}
    for row in extra:
        row = dict(row)
        i = row.pop("member")
        by_member.setdefault(i, []).append({**common[i], **row})
    series = {}
    for key, values in history.values.items():
        stacked = torch.stack([v.reshape(-1) for v in values], dim=1)  # (M, evaluations)
        series[key] = (history.iterations[-stacked.shape[1]:], stacked.tolist())  # train/* start after iteration 0
    rows = []
    for i in range(len(members)):
        rows += by_member.get(i, [])
        for key, (iterations, values) in series.items():
            split, metric = key.split("/")
            rows += [{**common[i], "iteration": it, "split": split, "metric": metric, "value": v}
                     for it, v in zip(iterations, values[i])]
    return rows
