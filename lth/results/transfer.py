"""Tables and figures of ticket-transfer runs (`lth.experiments.transfer`): accuracy against density
per condition and direction, and the per-trial gaps the claims read.

The per-network frame is `lth.results.analysis.per_network` (with ``failed_to_learn``): its
``experiment`` is the data set a network trained on (the target), its ``control`` the condition:
``none`` (the target's own IMP ticket), ``transfer`` (the other data set's ticket), ``reinit`` (that
mask, fresh weights), ``random_mask`` (a random mask at its per-layer densities). Accuracies in
percent, gaps in percentage points (pp).
"""

from __future__ import annotations

import pandas as pd

from lth.experiments.transfer import TRANSFER
from lth.results.analysis import MissingData
from lth.results.figures import plot_vs_density, subplots
from lth.results.style import label
from lth.schema import TICKET

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "synthetic": "synthetic data"}
CONDITIONS = (TICKET, TRANSFER, "reinit", "random_mask")
CONDITION_NAMES = {TICKET: "target's own ticket", TRANSFER: "transferred ticket", "reinit": "transferred mask, reinit",
                   "random_mask": "random mask (same per-layer densities)"}
ACCURACY = "early_stop_test_accuracy"  # the LTH papers' read-out: test accuracy at minimum validation loss
GAP_COLUMNS = ["target", "source", "direction", "level", "density_%", "trial", *CONDITIONS, "dense",
               "transfer_minus_random_mask", "transfer_minus_reinit", "own_minus_transfer", "dense_minus_transfer"]


def direction(source: str, target: str) -> str:
    """'MNIST → Fashion-MNIST': tickets of ``source`` trained on ``target``."""
    return f"{DATASET_NAMES.get(source, source)} → {DATASET_NAMES.get(target, target)}"


def _learned(networks: pd.DataFrame) -> pd.DataFrame:
    if networks.empty or "experiment" not in networks:
        raise MissingData("no transfer results")
    if "failed_to_learn" in networks:
        networks = networks[~networks.failed_to_learn.astype(bool)]
    return networks


def summary(networks: pd.DataFrame, datasets: tuple[str, str], column: str = ACCURACY) -> pd.DataFrame:
    """Per direction, level and condition: percent of weights remaining, networks, and ``column``'s
    mean, min and max over trials (and reinits) in percent. ``datasets``: the run's (dataset, target)."""
    rows = _learned(networks)
    keys = ["experiment", "level", "control"]
    stats = rows.groupby(keys)[column].agg(["mean", "min", "max", "size"]).reset_index().rename_axis(columns=None)
    stats[["mean", "min", "max"]] *= 100
    stats["density_%"] = 100 * rows.groupby(keys)["density"].mean().to_numpy()
    other = {datasets[0]: datasets[1], datasets[1]: datasets[0]}
    stats.insert(0, "direction", [direction(other.get(t, t), t) for t in stats.experiment])
    stats["condition"] = stats.control.map(lambda c: CONDITION_NAMES.get(c, c))
    stats = stats.rename(columns={"experiment": "target", "size": "networks", "mean": f"{column}_mean_%",
                                  "min": f"{column}_min_%", "max": f"{column}_max_%"})
    order = {c: i for i, c in enumerate(CONDITIONS)}
    stats = stats.sort_values(["target", "level", "control"], key=lambda s: s.map(order) if s.name == "control" else s)
    return stats.reset_index(drop=True)


def gaps(networks: pd.DataFrame, datasets: tuple[str, str], column: str = ACCURACY) -> pd.DataFrame:
    """One row per target, sparse level and trial: ``column`` (%) of each condition (reinits
    averaged), of the target's dense network, and the gaps (pp) transfer − random mask, transfer −
    reinit, own − transfer and dense − transfer (`GAP_COLUMNS`; NaN where a condition is absent)."""
    rows = _learned(networks)
    wide = (100 * rows.groupby(["experiment", "level", "trial", "control"])[column].mean()).unstack("control")
    wide = wide.reindex(columns=list(CONDITIONS)).rename_axis(columns=None).reset_index()
    density = 100 * rows[rows.control == TICKET].groupby(["experiment", "level"])["density"].mean()
    dense = (100 * rows[(rows.level == 0) & (rows.control == TICKET)].groupby(["experiment", "trial"])[column].mean())
    wide["density_%"] = [density.get((t, lv), float("nan")) for t, lv in zip(wide.experiment, wide.level)]
    wide["dense"] = [dense.get((t, tr), float("nan")) for t, tr in zip(wide.experiment, wide.trial)]
    wide = wide[wide.level > 0].rename(columns={"experiment": "target"})
    other = {datasets[0]: datasets[1], datasets[1]: datasets[0]}
    wide["source"] = wide.target.map(lambda t: other.get(t, t))
    wide["direction"] = [direction(s, t) for s, t in zip(wide.source, wide.target)]
    wide["transfer_minus_random_mask"] = wide[TRANSFER] - wide["random_mask"]
    wide["transfer_minus_reinit"] = wide[TRANSFER] - wide["reinit"]
    wide["own_minus_transfer"] = wide[TICKET] - wide[TRANSFER]
    wide["dense_minus_transfer"] = wide["dense"] - wide[TRANSFER]
    return wide[GAP_COLUMNS].sort_values(["target", "level", "trial"]).reset_index(drop=True)


def gap_summary(table: pd.DataFrame) -> pd.DataFrame:
    """`gaps` per direction and level: the mean over trials of every accuracy and gap, and n."""
    if table.empty:
        return pd.DataFrame()
    keys = ["direction", "level", "density_%"]
    values = [c for c in GAP_COLUMNS if c not in ("target", "source", "direction", "level", "density_%", "trial")]
    out = table.groupby(keys)[values].mean()
    out["n"] = table.groupby(keys).size()
    return out.reset_index()


def figure(networks: pd.DataFrame, datasets: tuple[str, str], title: str, column: str = ACCURACY):
    """Test accuracy at early stop (%) against percent of weights remaining, one panel per direction
    (source → target), one line per condition (mean over trials, band min–max), every line starting
    at the target's dense network. MissingData when there are no results."""
    rows = _learned(networks)
    fig, axes = subplots(2, width=5.6, height=4.2)
    for ax, (source, target) in zip(axes[0], (datasets, datasets[::-1])):
        mine = rows[rows.experiment == target]
        if mine.empty:
            raise MissingData(f"no networks trained on {target}")
        plot_vs_density(ax, mine, column)
        for text in ax.get_legend().get_texts():  # the ticket of a transfer figure is the target's own
            text.set_text(text.get_text().replace(label(TICKET), "target's own ticket"))
        ax.set_title(f"{direction(source, target)} (trained on {DATASET_NAMES.get(target, target)})", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return fig


def describe(outcome) -> str:
    """Markdown: what a transfer run (a `lth.notebook.Outcome` of kind transfer) did, or why it did not run."""
    if not outcome.ran:
        return outcome.describe()
    cfg, networks = outcome.config, outcome.networks
    densities = sorted(set(networks[networks.level > 0].density.round(4)), reverse=True)
    controls = ", ".join(CONDITION_NAMES[c] for c in CONDITIONS if c in set(networks.control))
    return (f"**Ran `{outcome.experiment}`** ({cfg.model}), {outcome.profile} profile: IMP on "
            f"{DATASET_NAMES.get(cfg.dataset, cfg.dataset)} and on {DATASET_NAMES.get(cfg.target, cfg.target)}, "
            f"{outcome.trials} trial{'s' * (outcome.trials != 1)} × {outcome.iterations:,} iterations per network, "
            f"rewinding to {cfg.rewind}, at {', '.join(f'{100 * d:.1f}%' for d in densities)} of weights remaining; "
            f"each data set trained {controls}. Results in `{outcome.run_path}`.{outcome._note()}")
