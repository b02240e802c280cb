"""File-level helpers of the result store: atomic, checksummed, umask-respecting writes; stale
temporary files; digests; the machine's own write errors (a full disk) as one line; the
environment record of a manifest; a checkpoint state copied to host memory (`to_host`).

Every file is written to ``.<name>.<pid>@<host>.<random>.tmp`` in its target's folder, synced and
``os.replace``-d into place, so a kill mid-write leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

# Temporary files that cannot be attributed to a live process of this host are removed once
# untouched for this long (seconds): a write in progress on another host touches its file constantly.
STALE_TMP_AGE_S = 3600.0
_TMP_RE = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)@(?P<host>[^.]*)\.)?[^.]+\.tmp$")
_UMASK_LOCK = threading.Lock()


class StoreError(RuntimeError):
    """A file of the result store cannot be written or read back; the message names the file."""


class DiskFull(StoreError):
    """A write into the result store failed because the disk holding it is full."""


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]


def current_umask() -> int:
    """This process's umask, read without changing it where /proc allows (other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


class _Hashing:
    """A write-only file wrapper that counts and hashes what passes through."""

    def __init__(self, file: BinaryIO):
        self.file, self.sha256, self.size = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> dict:
    """Write ``path`` through ``write(file)`` atomically, with mode ``0o666 & ~umask``.

    Returns ``{"sha256": hex digest, "bytes": size}`` of what was written. Raises DiskFull (one line
    naming the file and the free space) when the disk is full; any other error propagates; either
    way no temporary file is left behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}@{_host()}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: a shared store must stay readable
        with os.fdopen(fd, "wb") as f:
            hashing = _Hashing(f)
            write(hashing)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(err):
            raise DiskFull(_disk_full_message(path, err)) from err
        raise
    return {"sha256": hashing.sha256.hexdigest(), "bytes": hashing.size}


def atomic_write_text(path: Path, text: str) -> dict:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch.save's zip writer reports a failed write as "[enforce fail at inline_container.cc:NNN] ...
    # PytorchStreamWriter failed writing file ...: file write failed"; the cause is almost always space.
    return isinstance(err, RuntimeError) and ("inline_container" in str(err) or "file write failed" in str(err))


def _disk_full_message(path: Path, err: BaseException) -> str:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    quota = " (or the quota is used up)" if isinstance(err, OSError) and err.errno == errno.EDQUOT else ""
    return (f"disk full{quota}: could not write {path} ({free}); free some space or choose another "
            f"--root, then rerun: finished work is kept")


def file_digest(path: Path) -> dict:
    """``{"sha256", "bytes"}`` of a file (OSError if it cannot be read)."""
    sha256, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha256.update(block)
            size += len(block)
    return {"sha256": sha256.hexdigest(), "bytes": size}


def clean_stale_tmp(folders: list[Path]) -> list[Path]:
    """Remove the temporary files that killed writes left in ``folders``; the removed paths.

    A file is stale when the process that wrote it (named in it) no longer runs on this host, or,
    when that cannot be told (another host, an older name), when it is untouched for STALE_TMP_AGE_S."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            match = _TMP_RE.match(path.name)
            if match is None:
                continue
            try:
                if match["pid"] and match["host"] == _host():
                    stale = not _pid_alive(int(match["pid"]))
                else:
                    stale = time.time() - path.stat().st_mtime > STALE_TMP_AGE_S
                if stale:
                    path.unlink()
                    removed.append(path)
            except OSError:  # vanished meanwhile (its write finished) or not ours to remove
                continue
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@functools.cache
def numpy_safe_globals() -> list:
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


def environment_record() -> dict:
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
    (say a copy of the tree sent to a GPU machine)."""
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


def json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"manifest value of type {type(value).__name__} is not JSON serialisable")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def exclusive(path: Path, what: str):
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` (created if missing) for the
    ``with`` block, so two processes never work on one run folder at once (two notebooks of a batch, two
    jobs of a sweep): the second waits, saying so once on stderr with ``what``, then finds the first's
    work done. A killed holder's lock goes with its process. Where ``fcntl`` does not exist (Windows)
    nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not a platform lth is tested on
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process working on {what} ({path.parent})", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def to_host(value, copied: list):
    """A copy of nested dicts / lists / tuples with every tensor on the CPU. A GPU tensor's copy goes to
    pinned memory without waiting for the device, queued on the device's current stream; ``copied`` gets an
    event per GPU tensor that marks its copy's end (the copy is readable after ``event.synchronize()``)."""
    if torch.is_tensor(value):
        if value.device.type != "cuda":
            return value.detach().to("cpu", copy=True)
        host = value.detach().to("cpu", non_blocking=True)  # pinned, so the copy does not wait
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(value.device))
        copied.append(event)  # one per tensor: cheap, and right whatever stream or device each is on
        return host
    if isinstance(value, dict):
        return {k: to_host(v, copied) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v, copied) for v in value)
    return value
