"""Each process's share of a run, in its manifest: a run resumed after kills records every process.

``manifest["processes"]``: one entry per process that worked on the run, in order::

    {"started_at": ISO time, "finished_at": ISO time or None, "wall_time_s": seconds,
     "host": hostname, "pid": int, "id": random hex naming the entry, "status": "running" | "finished" | "interrupted", **info}

A process that is killed never writes ``finished_at``; its ``wall_time_s`` is the time up to its
last write (a checkpoint or a done marker) and the next process marks it ``interrupted``. The
top level holds the totals: ``started_at`` (the first process's), ``finished_at`` (the last
finished one's), ``wall_time_s`` (the sum) and ``processes_count``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from typing import Any

from lth.store.files import now


def new_process(info: dict) -> dict:
    """This process's entry (not yet in a manifest); ``_clock`` is dropped when stored."""
    entry = {"started_at": info.pop("started_at", None) or now(), "finished_at": None, "wall_time_s": 0.0,
             "host": socket.gethostname(), "pid": os.getpid(), "id": secrets.token_hex(4), "status": "running", **info}
    return {"entry": entry, "clock": time.monotonic()}


def begin(manifest: dict, process: dict) -> None:
    processes = manifest.setdefault("processes", _legacy(manifest))
    for entry in processes:
        if entry.get("status") == "running":
            entry["status"] = "interrupted"
    processes.append(dict(process["entry"]))
    _totals(manifest)


def touch(manifest: dict, process: dict) -> None:
    entry = _find(manifest, process)
    entry["wall_time_s"] = round(time.monotonic() - process["clock"], 2)
    entry["last_write_at"] = now()
    _totals(manifest)


def end(manifest: dict, process: dict, info: dict[str, Any]) -> None:
    entry = _find(manifest, process)
    measured = round(time.monotonic() - process["clock"], 2)
    finished, wall = info.pop("finished_at", None), info.pop("wall_time_s", None)
    entry.update(info, finished_at=finished or now(), wall_time_s=measured if wall is None else wall,
                 status="finished")
    entry.pop("last_write_at", None)
    _totals(manifest)


def _find(manifest: dict, process: dict) -> dict:
    """The entry of ``process`` in the manifest (added again if the manifest was set aside meanwhile)."""
    processes = manifest.setdefault("processes", _legacy(manifest))
    for entry in processes:
        if entry.get("id") == process["entry"]["id"]:
            return entry
    processes.append(dict(process["entry"]))
    return processes[-1]


def _legacy(manifest: dict) -> list[dict]:
    """A manifest of an older version records one process at its top level: keep it as the first."""
    if "started_at" not in manifest:
        return []
    return [{"started_at": manifest.get("started_at"), "finished_at": manifest.get("finished_at"),
             "wall_time_s": manifest.get("wall_time_s", 0.0), "host": manifest.get("hostname"), "pid": None,
             "status": "finished" if manifest.get("finished_at") else "interrupted"}]


def _totals(manifest: dict) -> None:
    processes = manifest["processes"]
    finished = [p["finished_at"] for p in processes if p.get("finished_at")]
    manifest.update(started_at=processes[0]["started_at"], finished_at=finished[-1] if finished else None,
                    wall_time_s=round(sum(p.get("wall_time_s") or 0.0 for p in processes), 2),
                    processes_count=len(processes))
