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


def parse_steps(steps: str | int, steps_per_epoch: int | None = None) -> int:
    """The one step-string parser: iterations (int >= 0) of a duration.

    ``steps``: an int >= 0 (iterations), '<n>it' (n iterations) or '<n>ep' (n epochs, i.e.
    n * ``steps_per_epoch`` iterations). ``steps_per_epoch`` may be left out for durations in
    iterations. Raises ValueError for a malformed string, a negative count, or epochs without
    ``steps_per_epoch``."""
    count, unit = _split(steps)
    if unit == "it":
        return count
    if steps_per_epoch is None:
        raise ValueError(f"{steps!r} is in epochs: its length in iterations needs steps_per_epoch")
    return count * steps_per_epoch


def step_unit(steps: str | int) -> str:
    """'it' or 'ep': the unit of a duration ``steps`` (an int is 'it'); ValueError if malformed."""
    return _split(steps)[1]


def _split(steps: str | int) -> tuple[int, str]:
    if isinstance(steps, int) and not isinstance(steps, bool):
        if steps < 0:
            raise ValueError(f"step count must be >= 0, got {steps}")
        return steps, "it"
    match = _STEP.match(str(steps))
    if not match:
        raise ValueError(f"bad step string {steps!r}: expected e.g. '50000it' or '160ep' (or an int)")
    return int(match.group(1)), match.group(2)


def lr_at(iteration: int, *, lr: float, total: int, schedule: str = "constant",
          milestones: Sequence[int] = (), gamma: float = 0.1, warmup: int = 0) -> float:
    """Learning rate used for the step taken at ``iteration`` (0-based): ``lr`` under 'constant',
    times ``gamma`` per ``milestones`` iteration passed under 'multistep', half-cosine from ``lr`` to
    0 over ``total`` iterations under 'cosine'; during the first ``warmup`` iterations also times
    (iteration + 1) / warmup. Raises ValueError for an unknown schedule (valid: SCHEDULES)."""
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


def constant_from(start: int, *, total: int, schedule: str = "constant", milestones: Sequence[int] = (),
                  warmup: int = 0) -> bool:
    """Whether `lr_at` gives one rate for every iteration in [start, total): 'constant' with its
    warmup over by ``start``, or 'multistep' with no milestone in (start, total) and the warmup over.
    'cosine' decays at every step, so never (for total - start > 1). Used to refuse learning-rate
    rewinding where replaying the schedule from ``start`` changes nothing."""
    if warmup > start:
        return False
    if schedule == "constant":
        return True
    if schedule == "multistep":
        return not any(start < m < total for m in milestones)
    return total - start <= 1
