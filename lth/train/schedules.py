"""Step strings ('50000it', '160ep') and learning-rate schedules as pure functions of the iteration.

A schedule that is a pure function of the iteration needs no state to resume, and
learning-rate rewinding is simply replaying it from an earlier iteration.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

SCHEDULES = ("constant", "multistep", "cosine")

_STEP = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")


def parse_steps(steps: str | int, steps_per_epoch: int) -> int:
    """'50000it' -> 50000; '160ep' -> 160 * steps_per_epoch; a plain int is iterations."""
    if isinstance(steps, int) and not isinstance(steps, bool):
        if steps < 0:
            raise ValueError(f"step count must be >= 0, got {steps}")
        return steps
    match = _STEP.match(str(steps))
    if not match:
        raise ValueError(f"bad step string {steps!r}: expected e.g. '50000it' or '160ep' (or an int)")
    count, unit = int(match.group(1)), match.group(2)
    return count if unit == "it" else count * steps_per_epoch


def lr_at(iteration: int, *, lr: float, total: int, schedule: str = "constant",
          milestones: Sequence[int] = (), gamma: float = 0.1, warmup: int = 0) -> float:
    """Learning rate used for the step taken at ``iteration`` (0-based)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if schedule == "constant":
        rate = lr
    elif schedule == "multistep":
        rate = lr * gamma ** sum(iteration >= m for m in milestones)
    else:
        rate = 0.5 * lr * (1 + math.cos(math.pi * min(iteration, total) / max(total, 1)))
    if warmup and iteration < warmup:
        rate *= (iteration + 1) / warmup
    return rate
