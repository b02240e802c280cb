"""Every committed claim with its verdict, as a Markdown section of REPRODUCIBILITY.md.

    python -m lth.report.claims_index [--check] [--figures DIR] [--causes CSV] [--doc MD]

Reads ``figures/paper/<notebook>/claims.csv`` (every notebook folder that has one) and renders one table
per notebook (claim, paper, ours, n, verdict, cause) after the verdict counts, then rewrites the part of
REPRODUCIBILITY.md between the marker lines CLAIMS_BEGIN and CLAIMS_END. ``--check`` rewrites nothing
and exits 1 when the section differs from what the files give (tests/report/test_claims_index.py does
the same), so the section cannot drift from the results.

The cause column comes from data, never from this module:

- "not reproduced": the cause written for that claim in ``figures/paper/causes.csv`` (columns notebook,
  claim = the start of the claim's text, paper = the claim's paper column exactly or empty for every
  row of that claim, cause); "cause not established" when no row of that file matches.
- every other verdict but "reproduced": the row's own ``detail``, shortened (see `short_cause`).
- "reproduced": nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from lth.paths import workspace
from lth.report.page import KNOWN_VERDICTS, ClaimsError, read_claims
from lth.results.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

CLAIMS_BEGIN, CLAIMS_END = "<!-- claims:begin -->", "<!-- claims:end -->"
PROFILE = "paper"                     # the committed results: figures/<PROFILE>/<notebook>/claims.csv
CAUSES_COLUMNS = ("notebook", "claim", "paper", "cause")
NO_CAUSE = "cause not established"
MAX_CAUSE = 260                       # characters of a cause shortened from a detail, at most


def figures_dir() -> Path:
    return workspace() / "figures"


def causes_path() -> Path:
    return figures_dir() / PROFILE / "causes.csv"


def doc_path() -> Path:
    return workspace() / "REPRODUCIBILITY.md"


def load_claims(figures: Path | str) -> pd.DataFrame:
    """Every ``<figures>/paper/<notebook>/claims.csv`` in one frame, notebooks in name order, rows as written.

    Columns: notebook, then those of `lth.report.page.read_claims` (strings exactly as in the file;
    n is e.g. "5.0", or "" where the file has none). Raises ClaimsError when there is no claims.csv
    under ``<figures>/paper`` or a file breaks the claims contract."""
    files = sorted(Path(figures, PROFILE).glob("*/claims.csv"))
    if not files:
        raise ClaimsError(f"no claims.csv in any folder of {Path(figures, PROFILE)}")
    frames = [read_claims(f).assign(notebook=f.parent.name) for f in files]
    claims = pd.concat(frames, ignore_index=True)
    if "n" not in claims.columns:
        claims["n"] = ""
    return claims.fillna("")[["notebook", *(c for c in claims.columns if c != "notebook")]]


def read_causes(path: Path | str) -> pd.DataFrame:
    """The causes of misses (columns CAUSES_COLUMNS, strings; paper may be empty); ValueError names a file
    that lacks a column or has a row without notebook, claim or cause."""
    causes = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in CAUSES_COLUMNS if c not in causes.columns]
    if missing:
        raise ValueError(f"{path} has columns {list(causes.columns)}, lacking {missing}; "
                         f"expected {list(CAUSES_COLUMNS)}")
    for i, row in causes.iterrows():
        empty = [c for c in ("notebook", "claim", "cause") if not row[c].strip()]
        if empty:
            raise ValueError(f"{path}, row {i + 2}: empty {empty}; every row names its notebook, the start of "
                             "its claim's text and the cause")
    return causes[list(CAUSES_COLUMNS)]


def _matches(cause: pd.Series, row: pd.Series) -> bool:
    return (row["notebook"] == cause["notebook"] and row["claim"].startswith(cause["claim"])
            and (not cause["paper"] or row["paper"] == cause["paper"]))


def miss_cause(row: pd.Series, causes: pd.DataFrame) -> str:
    """The cause of a missed claim: the cause of the first row of `causes` that matches `row` (its notebook,
    the start of its claim text, its paper column where given), else NO_CAUSE."""
    for _, cause in causes.iterrows():
        if _matches(cause, row):
            return cause["cause"].strip()
    return NO_CAUSE


def unused_causes(claims: pd.DataFrame, causes: pd.DataFrame) -> pd.DataFrame:
    """The rows of `causes` that match no "not reproduced" row of `claims` (stale: the claim was re-judged,
    reworded or removed)."""
    misses = claims[claims["verdict"] == NOT_REPRODUCED]
    used = [any(_matches(cause, row) for _, row in misses.iterrows()) for _, cause in causes.iterrows()]
    return causes[[not u for u in used]]


def _segments(detail: str) -> list[str]:
    """`detail` split at "; " outside parentheses and brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(detail):
        depth += char in "(["
        depth -= char in ")]"
        if depth == 0 and detail.startswith("; ", i):
            parts.append(detail[start:i])
            start = i + 2
    parts.append(detail[start:])
    return [p.strip() for p in parts if p.strip()]


# The context a detail starts with: "MNIST, paper profile: 5 trials × 50,000 iterations".
_CONTEXT = re.compile(r"^[\w\- ]+, \w+ profile\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _clip(text: str, limit: int = MAX_CAUSE) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + " …"


def short_cause(detail: str, verdict: str) -> str:
    """What in a claim's `detail` explains its `verdict`, at most MAX_CAUSE characters (cut at a word, "…").

    The details the verdict functions write (lth.results.verdicts) end with the sample, "n = ...", then what
    the verdict depends on. For "inconclusive": from the last segment that starts "n = " on (the interval or
    n < 3, then the caveats); for other verdicts: the segments after it (e.g. "run on mnist, the paper on
    cifar10: not comparable"), or that segment when nothing follows. A detail without such a segment
    ("not run", "not judged"): its first sentence after the context ("CIFAR-10, paper profile: ...")."""
    segments = _segments(str(detail))
    sample = [i for i, s in enumerate(segments) if s.startswith("n = ")]
    if sample:
        last = sample[-1]
        tail = segments[last:] if verdict == INCONCLUSIVE else (segments[last + 1:] or segments[last:])
        return _clip("; ".join(tail))
    rest = [s for s in segments if not _CONTEXT.match(s)] or segments or [""]
    return _clip(_SENTENCE_END.split(rest[0])[0])


_METHOD = re.compile(r"iterations?: ([^,;]+)")


def labels(claims: pd.DataFrame) -> pd.Series:
    """What tells apart rows of one notebook that quote the same claim (e.g. train_ticket's MLP and CNN rows):
    their figure where those differ, else the first clause of what the detail says was measured ("mlp:
    baseline minus gated"); "" for a row whose claim text is unique in its notebook. Indexed as `claims`."""
    out = pd.Series("", index=claims.index, dtype=object)
    for _, group in claims.groupby(["notebook", "claim"], sort=False):
        if len(group) < 2:
            continue
        if group["figure"].nunique() == len(group):
            out[group.index] = group["figure"]
            continue
        for i, detail in group["detail"].items():
            found = _METHOD.search(str(detail))
            out[i] = found.group(1).strip() if found else ""
    return out


def cause_of(row: pd.Series, causes: pd.DataFrame) -> str:
    """The cause column of one claim row (see the module docstring)."""
    if row["verdict"] == REPRODUCED:
        return ""
    if row["verdict"] == NOT_REPRODUCED:
        return miss_cause(row, causes)
    return short_cause(row["detail"], row["verdict"])


def _cell(text: str) -> str:
    """`text` safe inside a Markdown table cell: one line, "|" escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _n(value: str) -> str:
    try:
        return str(int(float(value)))
    except ValueError:
        return "–"


def counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Claims per notebook (rows, in order of appearance, then "all") and verdict (columns, in the order
    of KNOWN_VERDICTS, only those that occur), with a last column "all"."""
    verdicts = [v for v in KNOWN_VERDICTS if v in set(claims["verdict"])]
    table = pd.crosstab(claims["notebook"], claims["verdict"]).reindex(
        index=list(dict.fromkeys(claims["notebook"])), columns=verdicts, fill_value=0)
    table.loc["all"] = table.sum()
    table["all"] = table.sum(axis=1)
    return table


def render(claims: pd.DataFrame, causes: pd.DataFrame) -> str:
    """The Markdown section (without the marker lines): the verdict counts, then per notebook a table
    claim | paper | ours | n | verdict | cause, the claim led by its `labels` where it repeats. `claims`:
    columns notebook, figure, claim, paper, ours, verdict, detail, n (as `load_claims` gives); `causes`: as
    `read_causes` gives."""
    table = counts(claims)
    total = table.loc["all"]
    summary = ", ".join(f"{int(total[v])} {v}" for v in table.columns if v != "all")
    lines = [
        "## Every claim and its verdict",
        "",
        f"Generated from the committed `figures/{PROFILE}/*/claims.csv` by `python -m lth.report.claims_index`; "
        "do not edit by hand (`tests/report/test_claims_index.py` fails when this section and those files "
        "differ). The cause of a miss is the one written for that claim in "
        f"`figures/{PROFILE}/causes.csv` (\"{NO_CAUSE}\" where none is known); for the other verdicts it is "
        "the claim's own detail, shortened. Each `claims.csv` holds the full detail, the interval and the rule.",
        "",
        f"{int(total['all'])} claims in {len(table) - 1} notebooks: {summary}.",
        "",
        "| notebook | " + " | ".join(table.columns) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    for name, row in table.iterrows():
        label = f"`{name}`" if name != "all" else "**all**"
        lines.append(f"| {label} | " + " | ".join(str(int(row[c])) for c in table.columns) + " |")
    label = labels(claims)
    for name, rows in claims.groupby("notebook", sort=False):
        lines += ["", f"### `{name}`", "", "| claim | paper | ours | n | verdict | cause |", "|---|---|---|---:|---|---|"]
        for i, row in rows.iterrows():
            claim = _cell(row["claim"])
            if label[i]:
                claim = f"**{_cell(label[i])}**: {claim}"
            cells = [_cell(c) for c in (row["paper"], row["ours"], _n(row["n"]), row["verdict"], cause_of(row, causes))]
            lines.append("| " + " | ".join([claim, *cells]) + " |")
    return "\n".join(lines) + "\n"


def committed_section(text: str) -> str:
    """The text between the marker lines of a document (ValueError when they are missing or out of order)."""
    begin, end = text.find(CLAIMS_BEGIN), text.find(CLAIMS_END)
    if begin < 0 or end < begin:
        raise ValueError(f"no '{CLAIMS_BEGIN}' ... '{CLAIMS_END}' (in that order) in the document; "
                         "put the two marker lines where the claims section belongs")
    return text[begin + len(CLAIMS_BEGIN):end].strip("\n") + "\n"


def replace_section(text: str, section: str) -> str:
    """`text` with everything between the marker lines replaced by `section` (the markers kept)."""
    committed_section(text)  # raises without the markers
    begin, end = text.find(CLAIMS_BEGIN) + len(CLAIMS_BEGIN), text.find(CLAIMS_END)
    return text[:begin] + "\n" + section.strip("\n") + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lth.report.claims_index", description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=Path, default=None, help="the folder holding paper/<notebook>/claims.csv "
                        "(default: figures)")
    parser.add_argument("--causes", type=Path, default=None, help="causes of misses (default: figures/paper/causes.csv)")
    parser.add_argument("--doc", type=Path, default=None, help="the document to rewrite (default: REPRODUCIBILITY.md)")
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 when the section is stale")
    args = parser.parse_args(argv)
    doc = args.doc or doc_path()
    try:
        claims = load_claims(args.figures or figures_dir())
        causes = read_causes(args.causes or causes_path())
        text = doc.read_text(encoding="utf-8")
        section = render(claims, causes)
        current = committed_section(text)
    except (OSError, ValueError) as err:  # ClaimsError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    for _, stale in unused_causes(claims, causes).iterrows():
        print(f"warning: causes row matches no missed claim: {stale['notebook']}: {stale['claim'][:60]!r}",
              file=sys.stderr)
    if args.check:
        if current != section:
            print(f"{doc}: the claims section is stale; run python -m lth.report.claims_index", file=sys.stderr)
            return 1
        print(f"{doc}: the claims section matches the committed claims")
        return 0
    if current != section:
        doc.write_text(replace_section(text, section), encoding="utf-8")
        print(f"{doc}: claims section rewritten ({len(claims)} claims)")
    else:
        print(f"{doc}: claims section already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
