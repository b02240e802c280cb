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

from lth.results import claims

# notebook folder -> its claims, judged from networks.csv alone
FROM_NETWORKS = {"lth_lenet_iterative": claims.LENET_ITERATIVE, "pai_lenet": claims.SNIP_LENET300,
                 "pai_lenet5_caffe": claims.SNIP_LENET5_CAFFE, "strong_edgepopup": claims.STRONG_EDGEPOPUP,
                 "strong_gem_miner": claims.STRONG_GEM_MINER, "strong_pensia_redundant": claims.STRONG_PENSIA,
                 "strong_train_ticket": claims.STRONG_TRAIN_TICKET, "deconstruct_tickets": claims.DECONSTRUCT}
DATASETS = {"MNIST": "mnist", "Fashion-MNIST": "fashion_mnist", "CIFAR-10": "cifar10", "synthetic data": "synthetic"}
CONTEXT = re.compile(r"^(?P<dataset>[^,]+?)(?: \([^)]*\))?, (?P<profile>\w+) profile: \d+ trials? × [\d,]+ iterations")


def context_of(claims_csv: Path) -> tuple[str, str, str]:
    """(context, data set key, profile) read from the first detail of an existing claims.csv.
    ValueError when the detail does not start with a context line."""
    detail = str(pd.read_csv(claims_csv).detail.iloc[0])
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
            done[path.name] = "left alone: no per-trial data for its claims"
            continue
        context, dataset, profile = context_of(path / "claims.csv")
        table = claims.evaluate(family, pd.read_csv(networks), context=context, profile=profile, dataset=dataset)
        table.to_csv(path / "claims.csv", index=False, float_format="%.6g")
        done[path.name] = ", ".join(f"{v}: {n}" for v, n in table.verdict.value_counts().items())
    return done


if __name__ == "__main__":
    for name, what in rejudge(sys.argv[1] if len(sys.argv) > 1 else "figures/paper").items():
        print(f"{name}: {what}")
