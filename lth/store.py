"""On-disk result store: one folder per (experiment, operative gin config).

A run's folder is named by a hash of its normalised config, so rerunning the
same config finds its finished work (done markers, metrics) and a killed run
resumes from its last checkpoint. Every file is written to a temporary name in
the same folder and then ``os.replace``-d into place, so a kill mid-write can
never leave a half-written file that later reads as valid.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import torch

# control: "none" for the ticket itself, else the control's name; replicate numbers the random
# reinitialisations of one ticket (0 otherwise).
METRIC_COLUMNS = ("experiment", "trial", "level", "density", "control", "replicate", "iteration", "split",
                  "metric", "value")

_CONFIG_FILE = "config.gin"
_MANIFEST_FILE = "manifest.json"
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]*")


def config_hash(config_text: str) -> str:
    """12 hex chars of sha256 over the config with comments, blank lines and trailing spaces removed."""
    lines = (_strip_comment(line).rstrip() for line in config_text.splitlines())
    normalised = "\n".join(line for line in lines if line)
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:12]


def _strip_comment(line: str) -> str:
    # A '#' inside a quoted gin string is data, not a comment, so track quotes.
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif quote and char == "\\":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:i]
    return line


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file exists but cannot be loaded."""


@dataclass(frozen=True)
class RunInfo:
    """An existing run folder as found on disk by `find_runs`."""

    experiment: str
    hash: str
    path: Path
    done: tuple[str, ...]


class RunDir:
    """The folder ``root/experiment/<config_hash>`` holding one run's results."""

    def __init__(self, root: Path | str, experiment: str, config_text: str):
        _check_key(experiment, "experiment")
        self.experiment = experiment
        self._writer = None  # (thread, errors) of writes under way in the background
        self.hash = config_hash(config_text)
        self.path = Path(root) / experiment / self.hash
        self.path.mkdir(parents=True, exist_ok=True)
        config_path = self.path / _CONFIG_FILE
        if not config_path.exists():
            _atomic_write_text(config_path, config_text)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- progress markers ------------------------------------------------

    def is_done(self, key: str) -> bool:
        self.wait_for_writes()
        return self._marker(key).exists()

    def mark_done(self, key: str) -> None:
        self.wait_for_writes()
        marker = self._marker(key)
        marker.parent.mkdir(exist_ok=True)
        _atomic_write_text(marker, _now() + "\n")

    def _marker(self, key: str) -> Path:
        return self.path / "done" / _check_key(key)

    # -- metrics -----------------------------------------------------------

    def write_metrics(self, key: str, rows: list[dict]) -> Path:
        """Write long-format rows (exactly METRIC_COLUMNS each) to ``metrics/<key>.csv``, replacing it."""
        self.wait_for_writes()
        path = self.path / "metrics" / f"{_check_key(key)}.csv"
        for index, row in enumerate(rows):
            missing = [c for c in METRIC_COLUMNS if c not in row]
            extra = [c for c in row if c not in METRIC_COLUMNS]
            if missing or extra:
                raise ValueError(
                    f"metrics row {index} for key {key!r}: missing columns {missing}, extra columns {extra}; "
                    f"expected exactly {list(METRIC_COLUMNS)}"
                )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path.parent.mkdir(exist_ok=True)
        _atomic_write_text(path, text.getvalue())
        return path

    def read_metrics(self) -> pd.DataFrame:
        """All metric files concatenated in natural key order (level_2 before level_10)."""
        self.wait_for_writes()
        files = sorted((self.path / "metrics").glob("*.csv"), key=lambda p: _natural_key(p.stem))
        frames = [frame for frame in map(pd.read_csv, files) if not frame.empty]
        if not frames:
            return pd.DataFrame(columns=list(METRIC_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(METRIC_COLUMNS)]

    # -- checkpoints -------------------------------------------------------

    def save_checkpoint(self, key: str, state: dict) -> Path:
        if not isinstance(state, dict):
            raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
        self.wait_for_writes()
        path = self._checkpoint(key)
        path.parent.mkdir(exist_ok=True)
        _atomic_write(path, lambda f: torch.save(state, f))
        return path

    def save_checkpoint_in_background(self, key: str, state: dict) -> None:
        """``save_checkpoint`` on the writer thread (see ``in_background``). The state is copied to
        host memory first: the caller may change its tensors at once."""
        self.wait_for_writes()
        host = _to_host(state)
        self.in_background(lambda: self.save_checkpoint(key, host), f"checkpoint {key}")

    def in_background(self, task: Callable[[], Any], name: str) -> None:
        """Run ``task`` (writes to this folder) on a writer thread, so training goes on while files are
        written and synced. Every other read or write of results or checkpoints waits for it first
        (and raises its error, if any)."""
        self.wait_for_writes()
        errors: list[BaseException] = []

        def run():
            try:
                task()
            except BaseException as err:  # re-raised by wait_for_writes in the training thread
                errors.append(err)

        self._writer = (threading.Thread(target=run, name=name), errors)
        self._writer[0].start()

    def wait_for_writes(self) -> None:
        writer = self._writer
        if writer is None or writer[0] is threading.current_thread():
            return
        thread, errors = writer
        thread.join()
        self._writer = None
        if errors:
            raise errors[0]

    def load_checkpoint(self, key: str) -> dict | None:
        """The saved dict, None if there is none; CorruptCheckpoint if the file cannot be read back."""
        self.wait_for_writes()
        path = self._checkpoint(key)
        if not path.exists():
            return None
        try:
            # weights_only=True: a checkpoint must never be able to run code on load.
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CorruptCheckpoint(_corrupt_message(path, _describe_load_error(err))) from err
        if not isinstance(state, dict):
            raise CorruptCheckpoint(_corrupt_message(path, f"expected a dict, found {type(state).__name__}"))
        return state

    def delete_checkpoint(self, key: str) -> None:
        self.wait_for_writes()
        self._checkpoint(key).unlink(missing_ok=True)

    def _checkpoint(self, key: str) -> Path:
        return self.path / "checkpoints" / f"{_check_key(key)}.pt"

    # -- manifest ----------------------------------------------------------

    def write_manifest(self, **fields: Any) -> Path:
        """Merge the environment record and `fields` into manifest.json (later writes win per field)."""
        manifest = self.read_manifest()
        manifest.update(_environment_record(), experiment=self.experiment, config_hash=self.hash)
        manifest.update(fields)
        path = self.path / _MANIFEST_FILE
        _atomic_write_text(path, json.dumps(manifest, indent=2, default=_json_default) + "\n")
        return path

    def read_manifest(self) -> dict:
        """The manifest, or {} if none has been written yet."""
        path = self.path / _MANIFEST_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def find_runs(root: Path | str, experiment: str | None = None) -> list[RunInfo]:
    """Existing run folders under `root` (optionally of one experiment), with their done markers."""
    experiments = _check_key(experiment, "experiment") if experiment else "*"
    runs = []
    for config in sorted(Path(root).glob(f"{experiments}/*/{_CONFIG_FILE}")):
        run = config.parent
        markers = run / "done"
        done = [m.name for m in markers.iterdir() if not m.name.startswith(".")] if markers.is_dir() else []
        runs.append(RunInfo(run.parent.name, run.name, run, tuple(sorted(done, key=_natural_key))))
    return runs


# -- helpers -------------------------------------------------------------------


def _check_key(key: str, what: str = "key") -> str:
    # Keys become file names: refuse separators, '..' and hidden names that would escape or clash with temp files.
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"{what} {key!r} must match {_KEY_RE.pattern} (it is used as a file name)")
    return key


def _natural_key(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _to_host(value):
    """A copy of nested dicts / lists / tuples with every tensor on the CPU."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    return value


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    # The temp file lives in the target's folder so os.replace is a same-filesystem atomic rename;
    # its leading dot keeps it out of the globs above if a kill leaves it behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _corrupt_message(path: Path, reason: str) -> str:
    return (
        f"checkpoint {path} is unreadable ({reason}); delete this file and the run will "
        f"recompute from the previous checkpoint"
    )


def _describe_load_error(err: Exception) -> str:
    # torch's weights_only errors wrap the real cause in advice to pass weights_only=False,
    # which is exactly what we must not do, so keep only the cause.
    text = str(err)
    cause = re.search(r"WeightsUnpickler error:(.*?)(?:Check the documentation|$)", text, re.S)
    if cause:
        text = cause.group(1)
    text = " ".join(text.split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@functools.cache
def _numpy_safe_globals() -> list:
    # numpy arrays/scalars (e.g. np.random.get_state()) pickle via these reconstructors and dtype classes;
    # they only build arrays, so allowlisting them keeps weights_only loading safe.
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUVOMm"] if dtypes else []
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *set(dtype_classes)]


def _environment_record() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _dist_version("torchvision"),
        "numpy": _dist_version("numpy"),
        "lth": _dist_version("lth") or "dev",
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        **git_state(Path(__file__).resolve().parent),
    }


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state(directory: Path) -> dict:
    """Commit and dirtiness of the repo holding `directory`; both None when that cannot be told.

    LTH_GIT_COMMIT names the commit where the code runs from a copy of the tree that is no repo
    (a lent GPU machine)."""
    if os.environ.get("LTH_GIT_COMMIT"):
        return {"git_commit": os.environ["LTH_GIT_COMMIT"], "git_dirty": None}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        # Untracked files count as dirty: an uncommitted new module changes what ran just as an edit does.
        dirty = bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):  # git missing, not a repo, or hung
        return {"git_commit": None, "git_dirty": None}
    try:
        commit = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):  # a repo with no commits yet
        commit = None
    return {"git_commit": commit, "git_dirty": dirty}


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"manifest value of type {type(value).__name__} is not JSON serialisable")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
