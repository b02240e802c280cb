"""Whether a store file is whole: a metrics CSV as write_metrics writes it, a checkpoint's zip
archive (for done markers of older versions, which hold no checksums), a checkpoint that loads."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import torch

from lth.schema import METRIC_COLUMNS
from lth.store.files import numpy_safe_globals


def zip_problem(path: Path) -> str | None:
    """Why a checkpoint's zip archive is damaged (None if every entry passes its CRC)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return str(err)
    return f"entry {bad} fails its CRC" if bad else None


def metrics_problem(path: Path) -> str | None:
    """Why a metrics CSV is not one that write_metrics wrote (None if it looks whole)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return str(err)
    if not text:
        return "empty"
    if not text.endswith("\n"):
        return "truncated: no final newline"
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != list(METRIC_COLUMNS):
        return f"header {rows[0]} is not {list(METRIC_COLUMNS)}"
    short = next((i for i, row in enumerate(rows[1:], 2) if len(row) != len(METRIC_COLUMNS)), None)
    return None if short is None else f"line {short} has {len(rows[short - 1])} fields, not {len(METRIC_COLUMNS)}"


def load(path: Path) -> tuple[dict | None, str | None]:
    """(state, None), or (None, why it cannot be loaded)."""
    try:
        # weights_only=True: a checkpoint must never be able to run code on load.
        with torch.serialization.safe_globals(numpy_safe_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        return None, _describe_load_error(err)
    if not isinstance(state, dict):
        return None, f"expected a dict, found {type(state).__name__}"
    return state, None


def _describe_load_error(err: Exception) -> str:
    # torch's weights_only errors wrap the real cause in advice to pass weights_only=False,
    # which is exactly what we must not do, so keep only the cause.
    text = str(err)
    cause = re.search(r"WeightsUnpickler error:(.*?)(?:Check the documentation|$)", text, re.S)
    if cause:
        text = cause.group(1)
    text = " ".join(text.split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
