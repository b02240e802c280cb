"""Judge committed results again under the current standard, from the per-network tables a
notebook saved beside its figures (`<folder>/networks.csv`), without re-running anything.

    python -m lth.results.rejudge figures/paper

rewrites `claims.csv` in each notebook folder that has the per-trial data its claims need, and
says which it left alone (Figure 3 needs per-trial accuracy curves, Figure 4c the one-shot run's
networks, SubsetSum its solver outputs: those folders keep only means)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from lth.results import claims, verdicts

# notebook folder -> its claims, judged from networks.csv alone
FROM_NETWORKS = {"lth_lenet_iterative": claims.LENET_ITERATIVE, "pai_lenet": claims.SNIP_LENET300,
                 "pai_lenet5_caffe": claims.SNIP_LENET5_CAFFE, "strong_edgepopup": claims.STRONG_EDGEPOPUP,
                 "strong_gem_miner": claims.STRONG_GEM_MINER, "strong_pensia_redundant": claims.STRONG_PENSIA,
                 "strong_train_ticket": claims.STRONG_TRAIN_TICKET, "deconstruct_tickets": claims.DECONSTRUCT}
# notebook folder -> {networks file of a further network (lth.notebook.file_suffix): its claims}; claims.csv holds
# its rows after those of networks.csv, in this order (the notebook writes them so)
MORE_NETWORKS = {"deconstruct_tickets": {"networks_conv2.csv": claims.DECONSTRUCT_CONV}}
DATASETS = {"MNIST": "mnist", "Fashion-MNIST": "fashion_mnist", "CIFAR-10": "cifar10", "synthetic data": "synthetic"}
CONTEXT = re.compile(r"^(?P<dataset>[^,]+?)(?: \([^)]*\))?, (?P<profile>\w+) profile: \d+ trials? × [\d,]+ iterations")


def context_of(claims_csv: Path, row: int = 0) -> tuple[str, str, str]:
    """(context, data set key, profile) read from the detail of row ``row`` (from 0) of an existing
    claims.csv. ValueError when the detail does not start with a context line, or there is no such row."""
    table = pd.read_csv(claims_csv)
    if row >= len(table):
        raise ValueError(f"{claims_csv}: {len(table)} rows, no row {row} to read a context from")
    detail = str(table.detail.iloc[row])
    match = CONTEXT.match(detail)
    if match is None or match["dataset"] not in DATASETS:
        raise ValueError(f"{claims_csv}: no context (data set, profile, trials) at the start of {detail[:80]!r}")
    return match.group(0), DATASETS[match["dataset"]], match["profile"]


def rejudge(folder: str | Path) -> dict[str, str]:
    """Rewrite `claims.csv` of every notebook folder under `folder` whose claims can be judged from
    its `networks.csv`; returns {notebook: what was done}."""
    done = {}
    for path in sorted(Path(folder).iterdir()):
        if not (path / "claims.csv").exists():
            continue
        family, networks = FROM_NETWORKS.get(path.name), path / "networks.csv"
        if family is None or not networks.exists():
            done[path.name] = retire_old_verdicts(path / "claims.csv")
            continue
        parts = [(networks, family), *((path / name, more) for name, more in MORE_NETWORKS.get(path.name, {}).items()
                                       if (path / name).exists())]
        tables, row = [], 0
        for frame, family in parts:
            context, dataset, profile = context_of(path / "claims.csv", row)
            tables.append(claims.evaluate(family, pd.read_csv(frame), context=context, profile=profile, dataset=dataset))
            row += len(family)
        table = pd.concat(tables, ignore_index=True)
        table.to_csv(path / "claims.csv", index=False, float_format="%.6g")
        done[path.name] = ", ".join(f"{v}: {n}" for v, n in table.verdict.value_counts().items())
    return done


def retire_old_verdicts(claims_csv: Path) -> str:
    """A claims.csv of the retired standard ("reproduced if at least half the effect", six columns) whose
    per-trial data are not committed: each verdict becomes "not judged", the old one kept in its detail,
    with the new columns empty, so no verdict of the old rule passes for one of the current standard."""
    table = pd.read_csv(claims_csv)
    if "rule" in table.columns:
        return "left alone: no per-trial data for its claims (judged under the current standard)"
    judged = table.verdict != verdicts.NOT_RUN  # a claim with no data stays "not run"
    table.loc[judged, "detail"] = [f"Not judged under the current standard: its per-trial data are not committed "
                                   f"(re-run the notebook on the paper profile). The retired rule said {old!r}. {detail}"
                                   for old, detail in zip(table.verdict[judged], table.detail[judged])]
    table.loc[judged, "verdict"] = verdicts.NOT_JUDGED
    for column in verdicts.COLUMNS:
        if column not in table.columns:
            table[column] = "" if column in ("interval", "paper_spread", "rule") else float("nan")
    table.loc[judged, "rule"] = "not judged: the per-trial data this rule needs are not committed"
    table[verdicts.COLUMNS].to_csv(claims_csv, index=False)
    return f"{int(judged.sum())} verdicts of the retired standard marked not judged (no per-trial data)"


if __name__ == "__main__":
    for name, what in rejudge(sys.argv[1] if len(sys.argv) > 1 else "figures/paper").items():
        print(f"{name}: {what}")
