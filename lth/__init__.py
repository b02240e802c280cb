"""lth: lottery-ticket research, reproduced.

``lth.load_ticket(path)`` (`lth.tickets.load_ticket`) is imported on first use, so ``import lth``
stays light."""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_ticket":  # by name, so the lowest layer does not import a higher one at import time
        return importlib.import_module("lth.tickets").load_ticket
    raise AttributeError(f"module 'lth' has no attribute {name!r}")
