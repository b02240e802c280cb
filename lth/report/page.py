"""The report: one self-contained HTML page of every notebook's claims, figures and executed outputs, code hidden.

`lth.report.batch` executes the notebooks, records each execution as a `NotebookRun` beside its executed
copy and calls `build_report`; ``python -m lth.report.batch --report-only`` rebuilds the page from those
records. A notebook's claims come from ``<output_dir>/<profile>/<notebook>/claims.csv``, its figures from
the PNG (and SVG) files beside it. The page is rendered from ``templates/report.html.j2``; `reference`
runs (the committed paper-profile results, for a quick or smoke report) are shown beside the local ones.

Paths on the page are relative: links to the report folder, paths in text to its parent (the project
folder), ``$LTH_DATA`` or ``~``; other absolute paths keep only their last component (``…/name``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lth.paths import RECIPES, workspace
from lth.store import git_state

REPORT_DIR = workspace() / "report"
PROFILE_DIR = RECIPES / "profiles"
TEMPLATES = Path(__file__).parent / "templates"

STATUSES = ("succeeded", "failed", "not run")
PACKAGES = ("lth", "torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "gin-config",
            "papermill", "nbconvert")
# claims.csv: these columns always; the statistics columns when the notebook wrote them (newer files).
REQUIRED_COLUMNS = ("figure", "claim", "paper", "ours", "verdict", "detail")
STATISTICS_COLUMNS = ("n", "mean", "ci_low", "ci_high", "interval", "paper_value", "paper_spread", "rule")
# Older files say partly / not run, newer ones inconclusive / not comparable / not judged: both are read.
# (Spelled out here rather than imported: the report reads files of every vintage.)
KNOWN_VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive", "not comparable", "not judged", "not run")


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
    """The claims table, checked against the contract; ClaimsError says what is wrong.

    Columns: REQUIRED_COLUMNS, then those of STATISTICS_COLUMNS the file has (other columns are dropped);
    every value a string, exactly as written. Verdicts: one of KNOWN_VERDICTS."""
    if not path.exists():
        raise ClaimsError(f"the notebook wrote no {path}")
    # Strings throughout: '98.1%' and '' must come back exactly as the notebook wrote them.
    claims = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in claims.columns]
    if missing:
        raise ClaimsError(f"{path} has columns {list(claims.columns)}, lacking {missing}; expected exactly "
                          f"{list(REQUIRED_COLUMNS)}, optionally with {list(STATISTICS_COLUMNS)}")
    unknown = sorted(set(claims["verdict"]) - set(KNOWN_VERDICTS))
    if unknown:
        raise ClaimsError(f"{path} has verdicts {unknown}; valid: {list(KNOWN_VERDICTS)}")
    return claims[[*REQUIRED_COLUMNS, *(c for c in STATISTICS_COLUMNS if c in claims.columns)]]


# -- the page ------------------------------------------------------------------------------------


def build_report(runs: Sequence[NotebookRun], profile: str, report_dir: Path | str = REPORT_DIR,
                 reference: Sequence[NotebookRun] = ()) -> Path:
    """Write <report_dir>/index.html for these notebook runs (in this order) and return its path.

    `reference`: runs of another profile (the committed paper results) shown beside `runs`, one block
    each, labelled with its profile; notebooks that only they have get a section too."""
    import jinja2
    import markupsafe

    report_dir = Path(report_dir)
    paths = _Paths(report_dir)
    local = {run.name: run for run in runs}
    other = {run.name: run for run in reference}
    other_profile = next((run.profile for run in reference if run.profile), "")
    sections = []
    for name in dict.fromkeys([*local, *other]):
        run = local.get(name) or NotebookRun(name, "not run", f"not executed on profile {profile}", profile=profile)
        blocks = [_block(run, "local", "This run" if run.finished or run.status != "succeeded" else "Committed results", paths)]
        if reference:
            ref = other.get(name) or NotebookRun(name, "not run", f"no results of profile {other_profile}",
                                                 profile=other_profile)
            blocks.append(_block(ref, "paper", "Recorded run" if ref.finished else "Committed results", paths))
        sections.append(dict(name=name, blocks=blocks))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["rel"] = lambda text: paths.text(str(text))
    env.filters["slug"] = lambda text: str(text).replace(" ", "-")
    page = env.get_template("report.html.j2").render(
        title="Lottery tickets, reproduced", style=markupsafe.Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        profile=profile, reference_profile=other_profile, profile_note=_profile_note(profile),
        facts=_facts(), sections=sections,
        overview_labels=[f"profile {profile}"] + ([f"profile {other_profile}"] if reference else []),
        show_wall=any(section["blocks"][0]["wall"] for section in sections))
    path = report_dir / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _block(run: NotebookRun, kind: str, label: str, paths: _Paths) -> dict:
    """What the template shows of one run: claims, figures, file links, the executed notebook's outputs."""
    claims: list[dict] = []
    if run.status == "succeeded":
        try:
            claims = read_claims(run.claims_path).to_dict("records")
        except ClaimsError as err:  # e.g. the file was removed or edited after the run
            run = dataclasses.replace(run, status="failed", reason=str(err))
    folder = run.claims_path.parent
    # A notebook whose every claim is 'not run' drew a placeholder that only repeats the reason.
    blank = bool(claims) and all(row["verdict"] == "not run" for row in claims)
    pngs = sorted(folder.glob("*.png")) if run.status == "succeeded" and folder.is_dir() else []
    figures = [] if blank else _figures(run, pngs, paths)
    files = []
    if run.status == "succeeded":
        for group, pattern in (("tables", "*.csv"), ("operative config", "*.config.gin"),
                               ("provenance", "*.manifest.json")):
            if links := [dict(href=paths.href(p), text=p.name) for p in sorted(folder.glob(pattern))]:
                files.append((group, links))
    executed = Path(run.executed) if run.executed else None
    if executed and executed.exists():
        files.append(("executed notebook", [dict(href=paths.href(executed), text=executed.name)]))
    cells = ""
    if executed and executed.exists():
        import markupsafe
        cells = markupsafe.Markup(_notebook_html(executed, paths, images=not (figures or blank)))
    facts = []
    if run.wall_s is not None:
        facts.append(f"{format_duration(run.wall_s)}, {_when(run.finished)}")
    if run.device:
        facts.append(f"device {run.device}")
    if run.bindings:
        facts.append("bindings " + ", ".join(run.bindings))
    if run.status == "succeeded":
        facts.append(f"files in {paths.text(str(folder))}")
    counts = Counter(row["verdict"] for row in claims)
    intervals = sorted({row["interval"] for row in claims if row.get("interval")})
    return dict(run=run, kind=kind, label=label, facts=facts, claims=[_claim_row(row) for row in claims],
                columns=_columns(claims), counts=[(v, counts[v]) for v in KNOWN_VERDICTS if counts[v]],
                figures=figures, hidden_figures=", ".join(p.name for p in pngs) if blank else "",
                files=files, cells=cells, wall=format_duration(run.wall_s), intervals="; ".join(intervals))


def _columns(claims: list[dict]) -> list[dict]:
    """The claims table's columns: the contract's, with n and the interval where the file has them."""
    have = set(claims[0]) if claims else set()
    columns = [("figure", "figure", "figure"), ("claim", "claim", "claim"), ("paper", "paper", "paper"),
               ("ours", "ours", "ours")]
    # The mean is not repeated: 'ours' is the same number in the claim's unit.
    columns += [(key, label, "num") for key, label in (("n", "n"), ("ci", "95% interval"))
                if key in have or (key == "ci" and {"ci_low", "ci_high"} <= have)]
    columns += [("verdict", "verdict", ""), ("detail", "detail", "detail")]
    return [dict(key=key, label=label, css=css) for key, label, css in columns]


def _claim_row(row: dict) -> dict:
    row = dict(row)
    row["ci"] = _interval(row.get("ci_low", ""), row.get("ci_high", ""))
    for key in ("n", "mean", "ci_low", "ci_high"):
        if key in row:
            row[key] = _number(row[key])
    if _number(row.get("paper_spread") or "0") not in ("0", "") and row["paper_spread"] not in row["paper"]:
        row["paper"] = f"{row['paper']} (± {_number(row['paper_spread'])})"
    row.setdefault("rule", "")
    for key in ("paper", "ours", "ci"):  # a short value stays on one line: '+0.59 pp', not '+0.59' over 'pp'
        if len(row[key]) <= 14:
            row[key] = row[key].replace(" ", "\u00a0")
    return row


def _interval(low: str, high: str) -> str:
    """'[0.003, 0.257]': both ends with one number of decimals, three significant digits at the larger end."""
    try:
        ends = float(low), float(high)
    except (TypeError, ValueError):
        ends = ()
    if not ends or not all(math.isfinite(end) for end in ends):
        return f"[{low}, {high}]" if low or high else ""
    largest = max(abs(end) for end in ends)
    decimals = max(0, 2 - math.floor(math.log10(largest))) if largest > 0 else 0
    return f"[{ends[0]:.{decimals}f}, {ends[1]:.{decimals}f}]"


def _number(text: str) -> str:
    """A number as people read it: integers as such, 2 decimals from 1 up, 3 significant digits below."""
    try:
        value = float(text)
    except ValueError:
        return text
    if value != value or value in (float("inf"), float("-inf")):
        return text
    if value.is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _figures(run: NotebookRun, pngs: list[Path], paths: _Paths) -> list[dict]:
    """Each PNG inline (so the page stands alone), linked to its file, with the figure's own title as alt text."""
    figures, seen = [], set()
    for png in pngs:
        svg = png.with_suffix(".svg")
        title = _svg_title(svg) or png.stem.replace("_", " ")
        alt = f"{title} ({run.name}, profile {run.profile})"
        while alt in seen:
            alt += " again"
        seen.add(alt)
        links = [dict(href=paths.href(png), text="PNG")]
        if svg.exists():
            links.append(dict(href=paths.href(svg), text="SVG"))
        data = png.read_bytes()
        src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        # The size from the PNG header: the browser reserves the figure's box before decoding it.
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        figures.append(dict(title=paths.text(title), alt=paths.text(alt), src=src, href=paths.href(png), links=links,
                            width=width, height=height, css_width=round(width * 96 / 150)))  # saved at 150 dpi
    return figures


def _svg_title(path: Path) -> str:
    """The figure's suptitle as matplotlib wrote it into its SVG (comments in the figure-level text); '' if none."""
    if not path.exists():
        return ""
    try:
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
        root = ET.fromstring(path.read_bytes(), parser=parser)
    except ET.ParseError:
        return ""
    figure = next((g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id") == "figure_1"), None)
    texts = [g for g in (figure if figure is not None else []) if (g.get("id") or "").startswith("text_")]
    if not texts:
        return ""
    lines = [c.text.strip() for c in texts[-1].iter() if c.tag is ET.Comment and c.text and c.text.strip()]
    return " — ".join(lines)


def _notebook_html(path: Path, paths: _Paths, images: bool = True) -> str:
    """The executed notebook's markdown and outputs (no code, no prompts) as an HTML fragment.

    Left out: execute_result outputs (a cell's last value: DataFrames the page shows as tables and links,
    reprs such as a list of paths), stderr, widget views, and images when `images` is False (the page
    shows the saved figure files instead). Paths in the text become relative (`_Paths.text`)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(path, as_version=4)
    kept = []
    for cell in notebook.cells:
        # papermill's own "An Exception was encountered" banners: the section says so already.
        if "papermill-error-cell-tag" in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs = [_relative_output(out, paths) for out in cell.outputs if _worth_showing(out, images)]
            if not cell.outputs:  # code is hidden, so an output-less code cell would be an empty box
                continue
        else:
            cell.source = paths.text(cell.source)
        kept.append(cell)
    # A heading whose figure or table the page shows elsewhere would head nothing: drop it.
    notebook.cells = [cell for cell, after in zip(kept, [*kept[1:], None])
                      if not (_heading_only(cell) and (after is None or _heading_only(after)))]
    # 'basic' gives the cells' markup without nbconvert's page and its large stylesheet; images are
    # already data: URIs in the outputs, so the fragment is self-contained.
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True, exclude_anchor_links=True)
    body, _ = exporter.from_notebook_node(notebook)
    return body.strip()


def _heading_only(cell) -> bool:
    lines = [line for line in cell.source.splitlines() if line.strip()]
    return cell.cell_type == "markdown" and all(line.lstrip().startswith("#") for line in lines)


def _worth_showing(output, images: bool) -> bool:
    kind = output.get("output_type")
    if kind == "execute_result":
        return False
    if kind == "stream":  # stderr is warnings and progress bars
        return output.get("name") != "stderr"
    data = output.get("data", {})
    if "application/vnd.jupyter.widget-view+json" in data:  # only a useless text fallback offline
        return False
    return images or not any(key.startswith("image/") for key in data)


def _relative_output(output, paths: _Paths):
    if output.get("output_type") == "stream":
        output["text"] = paths.text(output.get("text", ""))
    elif output.get("output_type") == "error":
        output["evalue"] = paths.text(output.get("evalue", ""))
        output["traceback"] = [paths.text(line) for line in output.get("traceback", [])]
    else:
        data = output.get("data", {})
        for key in [k for k in data if k.startswith("text/")]:
            data[key] = paths.text(data[key] if isinstance(data[key], str) else "".join(data[key]))
    return output


class _Paths:
    """Links relative to the report folder; paths in text relative to the project folder (its parent)."""

    _ABSOLUTE = re.compile(r"(?<![\w:/.~$+-])/[^\s/'\"<>`,;()\[\]{}|]+(?:/[^\s/'\"<>`,;()\[\]{}|]*)+")

    def __init__(self, report_dir: Path):
        self.report_dir = Path(report_dir).absolute()
        roots = [(self.report_dir.parent, ""), (workspace(), ""), (Path.home(), "~")]
        if os.environ.get("LTH_DATA"):
            roots.append((Path(os.environ["LTH_DATA"]).expanduser().absolute(), "$LTH_DATA"))
        # The longest root first: a data folder inside the project is named by its project path.
        self.roots = sorted(roots, key=lambda root: len(root[0].parts), reverse=True)

    def href(self, path: Path | str) -> str:
        relative = os.path.relpath(Path(path).absolute(), self.report_dir)
        return urllib.parse.quote(Path(relative).as_posix())

    def text(self, text: str) -> str:
        # Piece by piece between ANSI colour codes: a traceback's '\x1b[0;32m' + '/abs/x.py' is a path too.
        pieces = re.split(r"(\x1b\[[0-9;]*m)", text)
        return "".join(piece if piece.startswith("\x1b") else self._ABSOLUTE.sub(self._relative, piece)
                       for piece in pieces)

    def _relative(self, match: re.Match) -> str:
        found = match.group()
        tail = found[len(found.rstrip(".:")):]  # sentence punctuation after the path
        path = Path(found[:len(found) - len(tail)])
        for root, name in self.roots:
            if path == root or root in path.parents:
                inner = path.relative_to(root).as_posix()
                return ("/".join(part for part in (name, inner) if part and part != ".") or ".") + tail
        return f"…/{path.name}{tail}"


# -- the environment -----------------------------------------------------------------------------


def _facts() -> list[tuple[str, str]]:
    state = git_state(workspace())
    commit = state["git_commit"]
    commit_text = (commit[:12] + (" with uncommitted changes" if state["git_dirty"] else "")) if commit else "unknown"
    return [("Generated", dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")), ("Commit", commit_text),
            ("CPU", _cpu_name()), ("GPU", _gpu_name()),
            ("Packages", ", ".join(f"{name} {version}" for name, version in _versions().items()))]


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


def format_duration(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '2 h 05 min'; '' for None."""
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _when(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M") if iso else ""
