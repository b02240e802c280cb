"""Field checks for the config dataclasses, at the lowest layer: each raises ValueError with one line
naming the field (``Class.field``), the value and what is valid, e.g.
``ImpConfig.levels = 'three': must be an integer >= 0``.

Use them in a dataclass's ``__post_init__``: ``integer(self, "trials", minimum=1)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_STEP = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")


def fail(config: Any, name: str, valid: str, value: Any = ...) -> None:
    """Raise ValueError: ``Class.name = value: must be <valid>``."""
    value = getattr(config, name) if value is ... else value
    raise ValueError(f"{type(config).__name__}.{name} = {value!r}: must be {valid}")


def integer(config: Any, name: str, minimum: int | None = None) -> int:
    """An int (not a bool, not a float, not a string) >= ``minimum``."""
    value = getattr(config, name)
    valid = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        fail(config, name, valid)
    return value


def number(config: Any, name: str, *, minimum: float | None = None, above: float | None = None,
           below: float | None = None) -> float:
    """A finite int or float (not a bool): >= ``minimum``, > ``above``, < ``below`` where given."""
    value = getattr(config, name)
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
              f"< {below:g}" if below is not None else ""]
    valid = "a finite number " + " and ".join(b for b in bounds if b)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (minimum is not None and value < minimum) or (above is not None and value <= above) \
            or (below is not None and value >= below):
        fail(config, name, valid.strip())
    return value


def flag(config: Any, name: str) -> bool:
    """True or False (not 0/1, not a string). Message: '<Class>.<name> must be True or False, got ...'."""
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ValueError(f"{type(config).__name__}.{name} must be True or False, got {value!r}")
    return value


def text(config: Any, name: str) -> str:
    """A non-empty string."""
    value = getattr(config, name)
    if not isinstance(value, str) or not value.strip():
        fail(config, name, "a non-empty string")
    return value


def choice(config: Any, name: str, valid: Iterable[str], value: Any = ..., what: str | None = None) -> Any:
    """One of ``valid`` ('unknown <what> <value>; valid: ...'); ``value`` defaults to the field's."""
    value = getattr(config, name) if value is ... else value
    valid = tuple(valid)
    if not isinstance(value, str) or value not in valid:
        label = what or f"{type(config).__name__}.{name}"
        raise ValueError(f"unknown {label} {value!r}; valid: {', '.join(valid)}")
    return value


def items(config: Any, name: str, *, empty: bool = True, distinct: bool = False,
          each: Callable[[Any], None] | None = None) -> tuple:
    """A tuple or list (not a string); ``empty``: may be empty; ``each(item)`` checks one item."""
    value = getattr(config, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        fail(config, name, "a tuple, e.g. ('a', 'b')" + ("" if empty else ", not empty"))
    if not empty and not value:
        fail(config, name, "a tuple that is not empty")
    if distinct and len(set(value)) != len(value):
        fail(config, name, "a tuple of distinct items")
    for item in value if each is not None else ():
        each(item)
    return tuple(value)


def mapping(config: Any, name: str) -> Mapping:
    """A dict (gin: ``{'key': value}``)."""
    value = getattr(config, name)
    if not isinstance(value, Mapping):
        fail(config, name, "a dict, e.g. {'key': value}")
    return value


def steps(config: Any, name: str, minimum: int = 0) -> str | int:
    """A duration: an int of iterations or a string '<n>it' / '<n>ep', with n >= ``minimum``."""
    value = getattr(config, name)
    if isinstance(value, bool):
        count = None
    elif isinstance(value, int):
        count = value
    else:
        match = _STEP.match(value) if isinstance(value, str) else None
        count = int(match.group(1)) if match else None
    if count is None or count < minimum:
        fail(config, name, f"a duration of at least {minimum}: an integer of iterations, or e.g. "
                           f"'{max(minimum, 1) * 100}it' (iterations) or '{max(minimum, 1)}ep' (epochs)")
    return value


def rates(config: Any, name: str = "rates") -> Mapping:
    """``config.<name>``: a mapping of layer kind to the fraction pruned per level, each in [0, 1)."""
    value = mapping(config, name)
    for kind, rate in value.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            fail(config, name, f"fractions pruned per level in [0, 1) by layer kind, e.g. "
                               f"{{'fc': 0.2, 'output': 0.1}} ({kind!r}: {rate!r})")
    return value


def seeds(config: Any, *names: str) -> None:
    """Integers >= 0 (random seeds)."""
    for name in names:
        integer(config, name, minimum=0)
