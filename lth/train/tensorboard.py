"""An optional metrics sink: every network's evaluations as TensorBoard scalars, as training records them.

Off unless asked for (``python -m lth run --tensorboard DIR``, ``Runner(..., tensorboard=DIR)`` or
``LTH_TENSORBOARD=DIR``); when off, nothing here is imported and training does no extra work. When
on, each network of a stack is one TensorBoard run, ``<DIR>/<experiment>/<hash>/<network>``, so the
networks of a level (tickets and controls) overlay in each chart; tags are ``<split>/<metric>``
(``val/accuracy``, ``test/loss``, ``train/batch_loss``, ...) and the step is the iteration.
Values are written once they are on the host (on a GPU a few evaluations behind the device, as the
divergence check reads them): the sink never makes training wait. View with ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import torch

ENV = "LTH_TENSORBOARD"  # a folder: the sink is on for every run of this process


def check_available() -> None:
    """ImportError with the install command unless the ``tensorboard`` package is installed (looked
    up without importing it)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ImportError("TensorBoard output needs the tensorboard package: pip install 'lth[tensorboard]' "
                          "(or pip install tensorboard)")


def network_folder(experiment: str, trial: int, level: int, control: str, replicate: int) -> str:
    """``<experiment>/trial_T/level_LL/<control>[_R]``: one TensorBoard run per network."""
    name = f"{experiment}/trial_{trial}/level_{level:02d}/{control}" + (f"_{replicate}" if replicate else "")
    return re.sub(r"[^\w./-]", "_", name)


class TensorBoardSink:
    """Writes `add` calls as scalars, one SummaryWriter per network (made on first use).

    ``log_dir``: the run's folder under the TensorBoard root. ``networks``: one sub-folder per
    network of the stack, in stack order (see `network_folder`)."""

    def __init__(self, log_dir: str | Path, networks: Sequence[str]):
        check_available()
        from torch.utils.tensorboard import SummaryWriter
        self._make = SummaryWriter
        self.log_dir, self.networks = Path(log_dir), list(networks)
        self._writers: dict[int, object] = {}

    def add(self, iteration: int, metrics: dict[str, torch.Tensor]) -> None:
        """``metrics``: ``split/metric`` -> (M,) values on the host, one per network."""
        for key, values in metrics.items():
            for i, value in enumerate(values.reshape(-1).tolist()):
                self._writer(i).add_scalar(key, value, global_step=iteration)

    def _writer(self, index: int):
        if index not in self._writers:
            self._writers[index] = self._make(log_dir=str(self.log_dir / self.networks[index]))
        return self._writers[index]

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
