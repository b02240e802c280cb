"""lth: lottery-ticket research, reproduced.

``lth.load_ticket(path)`` (`lth.tickets.load_ticket`) and ``lth.register_model(name, factory)``
(`lth.nets.user_models.register_model`) are imported on first use, so ``import lth`` stays light."""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    # by name, so the lowest layer does not import a higher one at import time
    if name == "load_ticket":
        return importlib.import_module("lth.tickets").load_ticket
    if name == "register_model":
        return importlib.import_module("lth.nets.user_models").register_model
    raise AttributeError(f"module 'lth' has no attribute {name!r}")
