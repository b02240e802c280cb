"""The report: one self-contained HTML page of every notebook's claims, then the executed notebooks, code hidden.

`lth.report.batch` executes the notebooks, records each execution as a `NotebookRun` beside its executed
copy and calls `build_report`; ``python -m lth.report.batch --report-only`` rebuilds the page from those
records. A notebook's claims come from ``<output_dir>/<profile>/<notebook>/claims.csv``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import importlib.metadata
import json
import os
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lth.results.claims import COLUMNS as CLAIM_COLUMNS, VERDICTS
from lth.paths import RECIPES, workspace
from lth.store import git_state

REPORT_DIR = workspace() / "report"
PROFILE_DIR = RECIPES / "profiles"

STATUSES = ("succeeded", "failed", "not run")
PACKAGES = ("lth", "torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "gin-config",
            "papermill", "nbconvert")


class ClaimsError(ValueError):
    """A notebook's claims.csv is missing or breaks the contract (columns, verdicts)."""


@dataclass
class NotebookRun:
    """What happened when one notebook was executed (or that it was not)."""

    name: str
    status: str  # one of STATUSES
    reason: str = ""  # why it failed or did not run; empty when it succeeded
    profile: str = ""
    output_dir: str = ""  # its files are in <output_dir>/<profile>/<name>/
    bindings: list[str] = dataclasses.field(default_factory=list)
    device: str = ""
    executed: str = ""  # the executed .ipynb; empty when execution never started
    wall_s: float | None = None
    finished: str = ""  # ISO timestamp
    source_sha: str = ""  # sha256 of the notebook's .py when it ran, to tell a stale record

    @property
    def claims_path(self) -> Path:
        return Path(self.output_dir) / self.profile / self.name / "claims.csv"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> NotebookRun:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def read_claims(path: Path) -> pd.DataFrame:
    """The claims table, checked against the contract; ClaimsError says what is wrong."""
    if not path.exists():
        raise ClaimsError(f"the notebook wrote no {path}")
    # Strings throughout: '98.1%' and '' must come back exactly as the notebook wrote them.
    claims = pd.read_csv(path, dtype=str, keep_default_na=False)
    if set(claims.columns) != set(CLAIM_COLUMNS):
        raise ClaimsError(f"{path} has columns {list(claims.columns)}; expected exactly {list(CLAIM_COLUMNS)}")
    unknown = sorted(set(claims["verdict"]) - set(VERDICTS))
    if unknown:
        raise ClaimsError(f"{path} has verdicts {unknown}; valid: {list(VERDICTS)}")
    return claims[list(CLAIM_COLUMNS)]


# -- the page ------------------------------------------------------------------------------------


def build_report(runs: Sequence[NotebookRun], profile: str, report_dir: Path | str = REPORT_DIR) -> Path:
    """Write <report_dir>/index.html for these notebook runs (in this order) and return its path."""
    # Reading the claims first: a claims.csv broken since the run turns that run into 'failed'.
    runs, claims = zip(*map(_with_claims, runs)) if runs else ((), ())
    sections = [_notebook_section(run) for run in runs]
    page = _PAGE.format(
        title="Lottery tickets, reproduced",
        style=_STYLE,
        header=_header(profile),
        notebooks=_notebook_table(runs, claims),
        claims=_claims_table(runs, claims),
        sections="\n".join(sections),
    )
    path = Path(report_dir) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _header(profile: str) -> str:
    state = git_state(workspace())
    commit, dirty = state["git_commit"], bool(state["git_dirty"])
    commit_text = "unknown"
    if commit:
        commit_text = f"<code>{_e(commit[:12])}</code>" + (" with uncommitted changes" if dirty else "")
    facts = {
        "Profile": f"<b>{_e(profile)}</b>" + (f" — {_e(note)}" if (note := _profile_note(profile)) else ""),
        "Generated": _e(dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        "Commit": commit_text,
        "CPU": _e(_cpu_name()),
        "GPU": _e(_gpu_name()),
        "Packages": ", ".join(f"{_e(name)}&nbsp;{_e(version)}" for name, version in _versions().items()),
    }
    rows = "\n".join(f"<dt>{key}</dt><dd>{value}</dd>" for key, value in facts.items())
    return f'<dl class="facts">\n{rows}\n</dl>'


def _notebook_table(runs: Sequence[NotebookRun], claims: Sequence[list[dict]]) -> str:
    if not runs:
        return "<p>No notebooks.</p>"
    head = "<tr><th>notebook</th><th>status</th><th>verdicts</th><th>wall time</th><th>run at</th></tr>"
    body = []
    for run, rows in zip(runs, claims):
        counts = Counter(row["verdict"] for row in rows) if run.status == "succeeded" else Counter()
        verdicts = " ".join(f'<span class="verdict {_slug(v)}">{counts[v]}&nbsp;{_e(v)}</span>'
                            for v in VERDICTS if counts[v])
        body.append(f'<tr><td><a href="#nb-{_e(run.name)}">{_e(run.name)}</a></td>'
                    f'<td><span class="status {_slug(run.status)}">{_e(run.status)}</span></td>'
                    f"<td>{verdicts}</td><td>{_e(_duration(run.wall_s))}</td><td>{_e(_when(run.finished))}</td></tr>")
    return f'<table class="notebooks">\n<thead>{head}</thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table>"


def _claims_table(runs: Sequence[NotebookRun], claims: Sequence[list[dict]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in ("notebook", *CLAIM_COLUMNS))
    body = []
    for run, rows in zip(runs, claims):
        link = f'<a href="#nb-{_e(run.name)}">{_e(run.name)}</a>'
        for row in rows:
            claim = f"<q>{_e(row['claim'])}</q>" if row["claim"] else ""
            body.append(f"<tr><td>{link}</td><td>{_e(row['figure'])}</td><td>{claim}</td>"
                        f"<td>{_e(row['paper'])}</td><td>{_e(row['ours'])}</td>"
                        f'<td><span class="verdict {_slug(row["verdict"])}">{_e(row["verdict"])}</span></td>'
                        f"<td>{_e(row['detail'])}</td></tr>")
    if not body:
        return "<p>No claims.</p>"
    return f'<table class="claims">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table>"


def _with_claims(run: NotebookRun) -> tuple[NotebookRun, list[dict]]:
    """The run and its claims; a failed or missing notebook gets one row saying so, with the reason."""
    if run.status == "succeeded":
        try:
            return run, read_claims(run.claims_path).to_dict("records")
        except ClaimsError as err:  # e.g. the file was removed or edited after the run
            run = dataclasses.replace(run, status="failed", reason=str(err))
    return run, [dict(figure="", claim="", paper="", ours="", verdict=run.status, detail=run.reason)]


def _notebook_section(run: NotebookRun) -> str:
    facts = [f'<span class="status {_slug(run.status)}">{_e(run.status)}</span>']
    if run.wall_s is not None:
        facts.append(f"{_e(_duration(run.wall_s))}, {_e(_when(run.finished))}")
    if run.device:
        facts.append(f"device {_e(run.device)}")
    if run.bindings:
        facts.append("bindings " + ", ".join(f"<code>{_e(b)}</code>" for b in run.bindings))
    if run.status == "succeeded":
        facts.append(f"files in <code>{_e(str(run.claims_path.parent))}</code>")
    parts = [f'<section class="notebook" id="nb-{_e(run.name)}">', f"<h2>{_e(run.name)}</h2>",
             f'<p class="run">{" · ".join(facts)}</p>']
    if run.reason:  # why it failed, in red; otherwise a note such as 'edited since this run'
        parts.append(f'<pre class="{"reason" if run.status == "failed" else "note"}">{_e(run.reason)}</pre>')
    if run.executed and Path(run.executed).exists():
        parts.append(f'<div class="cells">\n{_notebook_html(Path(run.executed))}\n</div>')
    parts.append("</section>")
    return "\n".join(parts)


def _notebook_html(path: Path) -> str:
    """The executed notebook's markdown and outputs (no code, no prompts) as an HTML fragment."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(path, as_version=4)
    kept = []
    for cell in notebook.cells:
        # papermill's own "An Exception was encountered" banners: the section says so already.
        if "papermill-error-cell-tag" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if _worth_showing(out)]
            if not cell.outputs:  # code is hidden, so an output-less code cell would be an empty box
                continue
        kept.append(cell)
    notebook.cells = kept
    # 'basic' gives the cells' markup without nbconvert's page and its large stylesheet; images are
    # already data: URIs in the outputs, so the fragment is self-contained.
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, exclude_anchor_links=True)
    body, _ = exporter.from_notebook_node(notebook)
    return body.strip()


def _worth_showing(output) -> bool:
    # stderr is warnings and progress bars; widget views have only a useless text fallback offline.
    if output.get("output_type") == "stream":
        return output.get("name") != "stderr"
    return "application/vnd.jupyter.widget-view+json" not in output.get("data", {})


# -- the environment -----------------------------------------------------------------------------


def _profile_note(profile: str) -> str:
    """The profile file's leading comment: what it changes against the paper, in its own words."""
    path = PROFILE_DIR / f"{profile}.gin"
    if not path.exists():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def _cpu_name() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:  # not Linux
        pass
    return f"{name} ({os.cpu_count()} cores)"


def _gpu_name() -> str:
    import torch
    if torch.cuda.is_available():
        names = Counter(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return ", ".join(f"{count} × {name}" for name, count in names.items()) + f" (CUDA {torch.version.cuda})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple MPS"
    return "none"


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


# -- small helpers -------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return text.replace(" ", "-")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


def _when(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M") if iso else ""


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
{header}
</header>
<main>
<section id="summary">
<h2>Notebooks</h2>
{notebooks}
<h2>Claims</h2>
{claims}
</section>
{sections}
</main>
</body>
</html>
"""

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1150px; margin: 2em auto; padding: 0 1.5em; }
h1 { margin-bottom: .3em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
code, pre { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
a { color: #1a5fb4; text-decoration: none; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1.2em; margin: 0; }
dl.facts dt { font-weight: 600; color: #555; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .35em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
table.claims td:nth-child(-n+2) { white-space: nowrap; }  /* notebook, figure */
table.claims td:nth-child(3) { min-width: 16em; }  /* the claim */
table.claims td:nth-child(7) { min-width: 20em; font-size: 90%; color: #444; }  /* detail */
q { font-style: italic; }
.verdict, .status { display: inline-block; padding: 0 .5em; border-radius: 3px; white-space: nowrap;
                    font-size: 90%; font-weight: 600; }
.reproduced, .succeeded { background: #d8f3dc; color: #1b5e20; }
.partly { background: #fff3bf; color: #7a5b00; }
.not-reproduced { background: #ffd8d8; color: #a40000; }
.not-run { background: #e9ecef; color: #555; }
.failed { background: #a40000; color: #fff; }
pre.reason, pre.note { padding: .6em .8em; white-space: pre-wrap; border-left: 4px solid; }
pre.reason { background: #fff0f0; border-color: #a40000; }
pre.note { background: #f4f4f4; border-color: #999; }
p.run { color: #555; }
.cells img, .cells svg { max-width: 100%; height: auto; }
.cells pre { background: #f7f7f7; padding: .5em .8em; overflow-x: auto; }
.cells table { width: auto; font-size: 90%; }
.cells h1 { font-size: 1.4em; } .cells h2 { font-size: 1.2em; border: 0; } .cells h3 { font-size: 1.05em; }
.ansi-red-fg { color: #c01c28; } .ansi-green-fg { color: #26a269; } .ansi-cyan-fg { color: #2190a4; }
.ansi-blue-fg { color: #1a5fb4; } .ansi-yellow-fg { color: #9c6d00; } .ansi-bold { font-weight: bold; }
"""
