"""On-disk result store: one folder per (experiment, operative gin config).

A run's folder is named by a hash of its normalised config, so rerunning the same config finds its
finished work (done markers, metrics) and a killed run resumes from its last checkpoint. Every file
is written atomically (`lth.store.files.atomic_write`), so a kill mid-write never leaves half a file.

A store heals: a done marker records the size and sha256 of the files it vouches for (the job's
metrics and checkpoint); `RunDir.is_done` checks them and, when one is damaged or missing, names
it in a warning, removes the marker and answers False, so the job is computed again. Markers of
older versions (no checksums) are trusted, after a structural check of the job's files. A corrupt
manifest is set aside as ``manifest.json.corrupt`` and written anew; a progress checkpoint that
cannot be read or lacks an entry is discarded (`RunDir.load_progress`); temporary files of killed
writes are removed when a RunDir opens. Warnings are `StoreWarning`s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lth.schema import METRIC_COLUMNS  # noqa: F401  (re-exported: the tidy vocabulary lives in lth.schema)
from lth.store import provenance
from lth.store.integrity import load as _load, metrics_problem as _metrics_problem, zip_problem
from lth.store.files import (
    DiskFull, StoreError, atomic_write, atomic_write_text, clean_stale_tmp, environment_record, file_digest,
    git_state, json_default, now, to_host,
)

__all__ = ["METRIC_COLUMNS", "CorruptCheckpoint", "DiskFull", "RunDir", "RunInfo", "StoreError", "StoreWarning",
           "config_hash", "find_runs", "git_state"]

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


class CorruptCheckpoint(StoreError):
    """A checkpoint file exists but cannot be loaded (it has been set aside; the message says what to do)."""


class StoreWarning(UserWarning):
    """A damaged file of the result store was found and set aside; the work it held is done again."""


@dataclass(frozen=True)
class RunInfo:
    """An existing run folder as found on disk by `find_runs`."""

    experiment: str
    hash: str
    path: Path
    done: tuple[str, ...]


class RunDir:
    """The folder ``root/experiment/<config_hash>`` holding one run's results.

    Raises DiskFull (a StoreError) from any write when the disk is full, naming the file."""

    def __init__(self, root: Path | str, experiment: str, config_text: str):
        _check_key(experiment, "experiment")
        self.experiment = experiment
        self._writer = None  # (thread, errors, keys it writes or None) of writes under way in the background
        self._digests: dict[str, dict] = {}  # relative path -> digest of files this object wrote
        self._verified: dict[tuple, dict] = {}  # (path, size, mtime_ns) -> digest already computed
        self._manifest_lock = threading.Lock()
        self._process: dict | None = None  # this process's share of the run, once begun
        self.hash = config_hash(config_text)
        self.path = Path(root) / experiment / self.hash
        self.path.mkdir(parents=True, exist_ok=True)
        clean_stale_tmp([self.path, *(self.path / sub for sub in ("done", "metrics", "checkpoints"))])
        config_path = self.path / _CONFIG_FILE
        if not config_path.exists():
            atomic_write_text(config_path, config_text)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- progress markers ------------------------------------------------

    def is_done(self, key: str) -> bool:
        """Whether job ``key`` finished and every file its marker vouches for is intact.

        A damaged file, or missing metrics: StoreWarning naming it, the marker is removed, False. A
        missing checkpoint alone leaves the job done (its metrics are the result; a later job that
        needs the checkpoint removes the marker and says so)."""
        self._wait_for_writes_to(key)
        marker = self._marker(key)
        if not marker.exists():
            return False
        problems = self._marker_problems(key, marker)
        if problems:
            marker.unlink(missing_ok=True)
            _warn(f"{'; '.join(problems)}: job {key!r} of {self.path} will be computed again")
            return False
        return True

    def mark_done(self, key: str, vouch: Iterable[str] | None = None) -> None:
        """Mark job ``key`` finished. The marker records size and sha256 of ``metrics/<k>.csv`` and
        ``checkpoints/<k>.pt`` (those that exist) for each k in ``vouch`` (default: ``[key]``)."""
        self.wait_for_writes()
        marker = self._marker(key)
        files = {}
        for k in (key,) if vouch is None else vouch:
            for rel in (f"metrics/{_check_key(k)}.csv", f"checkpoints/{k}.pt"):
                if (self.path / rel).exists():
                    files[rel] = self._digests.get(rel) or self._digest(self.path / rel)
        marker.parent.mkdir(exist_ok=True)
        atomic_write_text(marker, json.dumps({"done_at": now(), "files": files}, indent=1) + "\n")
        self._touch_process()

    def _marker(self, key: str) -> Path:
        return self.path / "done" / _check_key(key)

    def _marker_problems(self, key: str, marker: Path) -> list[str]:
        text = marker.read_text(encoding="utf-8", errors="replace")
        if not text.lstrip().startswith("{"):  # a marker of an older version: a timestamp, or nothing
            return self._structure_problems(key)
        try:
            files = json.loads(text)["files"]
        except (ValueError, KeyError, TypeError):
            return [f"done marker {marker} is damaged"]
        problems = []
        for rel, expected in files.items():
            path = self.path / rel
            if not path.exists() and rel.startswith("checkpoints/"):
                continue  # deleted to save space, or a metrics-only copy: a job that needs it says so
            if not path.exists():
                problems.append(f"{path} is missing")
            elif path.stat().st_size != expected["bytes"] or self._digest(path)["sha256"] != expected["sha256"]:
                problems.append(f"{path} is damaged (its checksum differs from the one recorded when it was written)")
        return problems

    def _structure_problems(self, key: str) -> list[str]:
        """For markers without checksums: the job's metrics must parse, its checkpoint's zip must check."""
        problems = []
        metrics, checkpoint = self._metrics_path(key), self._checkpoint(key)
        if metrics.exists() and (problem := _metrics_problem(metrics)):
            problems.append(f"{metrics} is damaged ({problem})")
        if checkpoint.exists() and (problem := zip_problem(checkpoint)):
            problems.append(f"{checkpoint} is damaged ({problem})")
        return problems

    def _digest(self, path: Path) -> dict:
        stat = path.stat()
        id_ = (str(path), stat.st_size, stat.st_mtime_ns)
        if id_ not in self._verified:
            self._verified[id_] = file_digest(path)
        return self._verified[id_]

    # -- metrics -----------------------------------------------------------

    def write_metrics(self, key: str, rows: list[dict]) -> Path:
        """Write long-format rows (exactly METRIC_COLUMNS each) to ``metrics/<key>.csv``, replacing it."""
        self.wait_for_writes()
        path = self._metrics_path(key)
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
        self._digests[f"metrics/{key}.csv"] = atomic_write_text(path, text.getvalue())
        return path

    def read_metrics(self) -> pd.DataFrame:
        """All metric files concatenated in natural key order (level_2 before level_10).

        A file that is damaged (or whose job's marker no longer vouches for it) is left out with a
        StoreWarning naming it; its job's marker is removed, so the next run computes it again."""
        self.wait_for_writes()
        files = sorted((self.path / "metrics").glob("*.csv"), key=lambda p: _natural_key(p.stem))
        frames = []
        for path in files:
            if self._marker(path.stem).exists() and not self.is_done(path.stem):
                continue  # is_done warned
            problem = _metrics_problem(path)
            if problem:
                _warn(f"{path} is damaged ({problem}); left out: rerun the experiment to compute it again")
                self._marker(path.stem).unlink(missing_ok=True)
                continue
            frame = pd.read_csv(path)
            if not frame.empty:
                frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=list(METRIC_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(METRIC_COLUMNS)]

    def _metrics_path(self, key: str) -> Path:
        return self.path / "metrics" / f"{_check_key(key)}.csv"

    # -- checkpoints -------------------------------------------------------

    def save_checkpoint(self, key: str, state: dict) -> Path:
        if not isinstance(state, dict):
            raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
        self.wait_for_writes()
        path = self._checkpoint(key)
        path.parent.mkdir(exist_ok=True)
        self._digests[f"checkpoints/{key}.pt"] = atomic_write(path, lambda f: torch.save(state, f))
        self._touch_process()
        return path

    def save_checkpoint_in_background(self, key: str, state: dict) -> None:
        """``save_checkpoint`` on the writer thread (see ``in_background``). The state is copied to
        host memory first, GPU tensors on their streams without waiting for the device (the writer
        thread waits): the caller may change its tensors at once, in place on the same streams."""
        self.wait_for_writes()
        copied: list[torch.cuda.Event] = []
        host = to_host(state, copied)

        def save():
            for event in copied:  # the writer, not training, waits for the device's copies
                event.synchronize()
            self.save_checkpoint(key, host)
        self.in_background(save, f"checkpoint {key}")

    def in_background(self, task: Callable[[], Any], name: str, keys: Iterable[str] | None = None) -> None:
        """Run ``task`` (writes to this folder) on a writer thread, so training goes on while files are
        written and synced. Every other read or write of results or checkpoints waits for it first
        (and raises its error, if any), except, when ``keys`` names every job and checkpoint key whose
        files the task writes or deletes, ``is_done`` and checkpoint reads of other keys (the next
        job starts while the last one's results are written)."""
        self.wait_for_writes()
        errors: list[BaseException] = []

        def run():
            try:
                task()
            except BaseException as err:  # re-raised by wait_for_writes in the training thread
                errors.append(err)

        self._writer = (threading.Thread(target=run, name=name), errors,
                        None if keys is None else {_check_key(k) for k in keys})
        self._writer[0].start()

    def _wait_for_writes_to(self, key: str) -> None:
        """``wait_for_writes`` unless the writer thread declared the keys it writes and ``key`` is not one."""
        writer = self._writer
        if writer is None or writer[2] is None or _check_key(key) in writer[2]:
            self.wait_for_writes()

    def wait_for_writes(self) -> None:
        writer = self._writer
        if writer is None or writer[0] is threading.current_thread():
            return
        thread, errors, _ = writer
        thread.join()
        self._writer = None
        if errors:
            raise errors[0]

    def _read_checkpoint(self, key: str) -> tuple[Path, dict | None, str | None]:
        """(path, state, problem) of checkpoint ``key`` once pending writes are done: the state and
        None when it reads back, None and what is wrong when it does not, None and None when absent."""
        self._wait_for_writes_to(key)
        path = self._checkpoint(key)
        return (path, *_load(path)) if path.exists() else (path, None, None)

    def load_checkpoint(self, key: str) -> dict | None:
        """The saved dict, None if there is none.

        CorruptCheckpoint if the file cannot be read back: the file is then set aside as
        ``<file>.corrupt`` and the done markers vouching for it removed, so a rerun computes it again."""
        path, state, problem = self._read_checkpoint(key)
        if problem is None:
            return state
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        self._digests.pop(f"checkpoints/{key}.pt", None)
        markers = self._markers_vouching_for(f"checkpoints/{key}.pt", key)
        for marker in markers:
            marker.unlink(missing_ok=True)
        if markers:
            advice = (f"removed the done marker {', '.join(m.name for m in markers)}: rerun and that job is "
                      f"computed again")
        else:
            advice = "rerun: a job that needs it computes it again (or says which done marker to delete)"
        raise CorruptCheckpoint(f"checkpoint {path} is unreadable ({problem}); set it aside as {aside.name} and {advice}")

    def load_progress(self, key: str, required: Iterable[str] = ()) -> dict | None:
        """A progress checkpoint (``load_checkpoint``), or None -- with a StoreWarning naming the file,
        which is deleted -- when it cannot be read or lacks one of the ``required`` entries: it only
        saves time, so the job starts again from its beginning."""
        path, state, problem = self._read_checkpoint(key)
        if problem is None:
            if state is None:
                return None
            missing = [name for name in required if name not in state]
            if not missing:
                return state
            problem = f"no entry {', '.join(map(repr, missing))}"
        _warn(f"progress checkpoint {path} is unusable ({problem}); discarded: the job starts from its beginning")
        self.delete_checkpoint(key)
        return None

    def delete_checkpoint(self, key: str) -> None:
        self.wait_for_writes()
        self._checkpoint(key).unlink(missing_ok=True)
        self._digests.pop(f"checkpoints/{key}.pt", None)

    def _checkpoint(self, key: str) -> Path:
        return self.path / "checkpoints" / f"{_check_key(key)}.pt"

    def _markers_vouching_for(self, rel: str, key: str) -> list[Path]:
        found = []
        for marker in sorted((self.path / "done").glob("*")) if (self.path / "done").is_dir() else ():
            if marker.name.startswith("."):
                continue
            try:
                vouched = json.loads(marker.read_text(encoding="utf-8"))["files"]
            except (ValueError, KeyError, TypeError, OSError):
                vouched = {} if marker.name != key else {rel: None}  # an older marker: its own key's files
            if rel in vouched:
                found.append(marker)
        return found

    # -- manifest ----------------------------------------------------------

    def write_manifest(self, **fields: Any) -> Path:
        """Merge the environment record and `fields` into manifest.json (later writes win per field).

        ``started_at`` / ``finished_at`` / ``wall_time_s`` are not stored as given: they begin and end
        this process's share of the run (see `begin_process`), and the top-level ones are the totals."""
        started, finished, wall = (fields.pop(k, None) for k in ("started_at", "finished_at", "wall_time_s"))
        self._update_manifest(lambda manifest: manifest.update(
            environment_record(), experiment=self.experiment, config_hash=self.hash, **fields))
        if started is not None and self._process is None:
            self.begin_process(started_at=started, **({"device": fields["device"]} if "device" in fields else {}))
        if finished is not None or wall is not None:
            self.end_process(finished_at=finished, wall_time_s=wall)
        return self.path / _MANIFEST_FILE

    def begin_process(self, **info: Any) -> None:
        """Record that this process starts (or resumes) work on the run: appends ``{started_at, finished_at:
        None, wall_time_s, host, pid, **info}`` (``info``: e.g. device) to the manifest's ``processes``,
        whose ``wall_time_s`` grows at every checkpoint and done marker, so a killed process keeps its share."""
        self._process = provenance.new_process(info)
        self._update_manifest(lambda manifest: provenance.begin(manifest, self._process))

    def end_process(self, **info: Any) -> None:
        """Record this process's end (``info``: extra facts, e.g. ``finished_at`` / ``wall_time_s`` to
        override the measured ones) and the totals over all processes."""
        if self._process is None:
            self._process = provenance.new_process({})
        process, self._process = self._process, None
        self._update_manifest(lambda manifest: provenance.end(manifest, process, info))

    def _touch_process(self) -> None:
        if self._process is not None:
            self._update_manifest(lambda manifest: provenance.touch(manifest, self._process))

    def _update_manifest(self, change: Callable[[dict], Any]) -> None:
        with self._manifest_lock:
            manifest = self.read_manifest()
            change(manifest)
            atomic_write_text(self.path / _MANIFEST_FILE, json.dumps(manifest, indent=2, default=json_default) + "\n")

    def read_manifest(self) -> dict:
        """The manifest, or {} if none has been written yet. A corrupt one is set aside as
        ``manifest.json.corrupt`` with a StoreWarning, and {} returned."""
        path = self.path / _MANIFEST_FILE
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(manifest, dict):
                return manifest
            problem = f"holds a {type(manifest).__name__}, not an object"
        except (ValueError, UnicodeDecodeError) as err:
            problem = str(err)
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        _warn(f"manifest {path} is corrupt ({problem}); set aside as {aside.name} and written anew")
        return {}


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


def _warn(message: str) -> None:
    warnings.warn(message, StoreWarning, stacklevel=3)


def _check_key(key: str, what: str = "key") -> str:
    # Keys become file names: refuse separators, '..' and hidden names that would escape or clash with temp files.
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"{what} {key!r} must match {_KEY_RE.pattern} (it is used as a file name)")
    return key


def _natural_key(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]
