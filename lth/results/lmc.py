"""Tables and figures of instability runs (`lth.experiments.instability`): the error along each
path, the instability (error-barrier height) of every pair, and whether the networks match the dense one.

Units: errors, instabilities and accuracies in percent (instability: percentage points of error).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lth.experiments.instability import PARENT, PATH_SPLIT, k_of, variant_of
from lth.results.analysis import MissingData
from lth.results.figures import plt, subplots

PAIR = ["experiment", "trial", "level", "density", "control"]
PAIR_COLUMNS = PAIR + ["k", "variant", "test_instability", "train_instability", "test_error_ends", "train_error_ends",
                       "final_test_accuracy", "dense_test_accuracy", "accuracy_drop", "failed_to_learn"]
STABLE_BELOW = 2.0  # pp: the paper's threshold for "stable" (papers.md §9a, [2nd])


def path_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per pair and point: PAIR columns, k, variant ('' for dense / IMP networks, else the random
    control: 'random_mask', 'reinit'), alpha, point, test_error, train_error (%), test_loss, train_loss.
    Empty (those columns) when the run has no path rows."""
    columns = PAIR + ["k", "variant", "point", "alpha", "test_error", "train_error", "test_loss", "train_loss"]
    rows = metrics[metrics.split == PATH_SPLIT] if not metrics.empty else metrics
    if rows.empty:
        return pd.DataFrame(columns=columns)
    wide = rows.pivot_table(index=PAIR + ["iteration"], columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"iteration": "point"})
    points = wide.groupby(PAIR)["point"].transform("max")
    wide["alpha"] = wide.point / points
    wide["k"] = wide.control.map(k_of)
    wide["variant"] = wide.control.map(variant_of)
    for split in ("test", "train"):
        wide[f"{split}_error"] = 100 * wide[f"{split}_error"]
    return wide[columns].sort_values(PAIR + ["point"]).reset_index(drop=True)


def pair_table(metrics: pd.DataFrame, networks: pd.DataFrame) -> pd.DataFrame:
    """One row per pair (experiment, trial, level, k, variant): `PAIR_COLUMNS`. variant: '' for the dense
    network (level 0) and the IMP subnetworks, else the random control ('random_mask', 'reinit').

    test/train_instability: max over the path of the error minus the mean of the two ends' (pp).
    final_test_accuracy: the two copies' mean at the end of training (%); dense_test_accuracy: the
    trial's parent (dense, trained from W0 without a fork) at the end (%); accuracy_drop: dense minus
    copies (pp; > 0: the subnetwork is worse). failed_to_learn: either copy was flagged (not judged)."""
    path = path_table(metrics)
    if path.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    groups = path.groupby(PAIR + ["k"], sort=True)
    out = []
    for key, rows in groups:
        rows = rows.sort_values("point")
        row = dict(zip(PAIR + ["k"], key))
        row["variant"] = variant_of(row["control"])
        for split in ("test", "train"):
            errors = rows[f"{split}_error"].to_numpy()
            ends = (errors[0] + errors[-1]) / 2
            row[f"{split}_instability"] = float(errors.max() - ends)
            row[f"{split}_error_ends"] = float(ends)
        out.append(row)
    table = pd.DataFrame(out)
    copies = networks[networks.control != PARENT]
    accuracy = (100 * copies.groupby(["experiment", "trial", "level", "control"])["final_test_accuracy"].mean()
                ).rename("final_test_accuracy")
    failed = (copies.groupby(["experiment", "trial", "level", "control"])["failed_to_learn"].any()
              if "failed_to_learn" in copies else None)
    dense = (100 * networks[networks.control == PARENT].groupby(["experiment", "trial"])["final_test_accuracy"].mean()
             ).rename("dense_test_accuracy")
    table = table.merge(accuracy, how="left", left_on=["experiment", "trial", "level", "control"], right_index=True)
    table = table.merge(dense, how="left", left_on=["experiment", "trial"], right_index=True)
    table["accuracy_drop"] = table.dense_test_accuracy - table.final_test_accuracy
    table["failed_to_learn"] = False
    if failed is not None:
        flags = failed.reindex(pd.MultiIndex.from_frame(table[["experiment", "trial", "level", "control"]]))
        table["failed_to_learn"] = flags.fillna(False).astype(bool).to_numpy()
    return table[PAIR_COLUMNS].sort_values(["experiment", "level", "variant", "k", "trial"]).reset_index(drop=True)


def summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, level, variant ('' or a random control) and k: the mean, min and max over trials
    of the instabilities and the accuracy drop, the number of pairs, and whether the mean is stable
    (< `STABLE_BELOW` pp)."""
    if pairs.empty:
        return pd.DataFrame()
    keys = ["experiment", "level", "variant", "k"]
    values = ["test_instability", "train_instability", "final_test_accuracy", "accuracy_drop"]
    stats = pairs.groupby(keys)[values].agg(["mean", "min", "max"])
    stats.columns = [f"{column}_{stat}" for column, stat in stats.columns]
    stats["density_%"] = 100 * pairs.groupby(keys)["density"].mean()
    stats["pairs"] = pairs.groupby(keys).size()
    stats["stable"] = stats.test_instability_mean < STABLE_BELOW
    return stats.reset_index()


def instability_figure(pairs: pd.DataFrame, title: str):
    """Test and train instability (pp) against the fork iteration k, one line per density (mean over
    trials, the band min–max); the random controls (where run) as dashed (random mask) and dotted
    (random reinit) lines in their density's colour; the grey dashed line is the paper's 2 pp threshold
    of stability. MissingData when there are no pairs."""
    if pairs.empty:
        raise MissingData("no interpolation results")
    controls = pairs[pairs.variant != ""]
    pairs = pairs[pairs.variant == ""]
    fig, axes = subplots(2, width=5.0, height=3.8)
    axes = axes[0]
    levels = sorted(pairs.level.unique())
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    ks = sorted(pairs.k.unique())
    position = {k: i for i, k in enumerate(ks)}  # ks are a ladder (0, 100, 500, 2000): evenly placed
    for ax, split in zip(axes, ("test", "train")):
        for colour, level in zip(colours, levels):
            rows = pairs[pairs.level == level]
            stats = rows.groupby("k")[f"{split}_instability"].agg(["mean", "min", "max"]).reindex(ks).dropna()
            x = [position[k] for k in stats.index]
            density = 100 * rows.density.mean()
            ax.plot(x, stats["mean"], marker="o", color=colour, label=f"{density:.1f}% remaining")
            ax.fill_between(x, stats["min"], stats["max"], color=colour, alpha=0.15, linewidth=0)
            for variant, style in (("random_mask", "--"), ("reinit", ":")):
                mine = controls[(controls.level == level) & (controls.variant == variant)]
                if not mine.empty:
                    means = mine.groupby("k")[f"{split}_instability"].mean().reindex(ks).dropna()
                    ax.plot([position[k] for k in means.index], means, marker="x", linestyle=style, color=colour,
                            label=f"{density:.1f}%, {'random mask' if variant == 'random_mask' else 'random reinit'}")
        ax.axhline(STABLE_BELOW, color="grey", linestyle="--", linewidth=1, label="stable below (2 pp)")
        ax.set_xticks(range(len(ks)), [f"{k:,}" for k in ks])
        ax.set_ylim(bottom=0)  # the barrier is never below 0: the path's maximum includes both ends
        ax.set_xlabel("Fork iteration k")
        ax.set_ylabel(f"{split.capitalize()} instability (pp of error)")
        ax.set_title(f"{split} error barrier")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def path_figure(path: pd.DataFrame, k: int, title: str, split: str = "test"):
    """Error along the path (%) against α for forks at ``k``, one line per density (mean over
    trials). MissingData when the run has no fork at ``k``."""
    rows = path[path.k == k]
    if rows.empty:
        raise MissingData(f"no paths forked at k = {k}")
    fig, axes = subplots(1, width=5.2, height=3.8)
    ax = axes[0][0]
    levels = sorted(rows.level.unique())
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    rows = rows[rows.variant == ""]
    for colour, level in zip(colours, levels):
        mine = rows[rows.level == level]
        curve = mine.groupby("alpha")[f"{split}_error"].mean()
        ax.plot(curve.index, curve.values, color=colour, label=f"{100 * mine.density.mean():.1f}% remaining")
    ax.set_xlabel("α (0: copy 1, 1: copy 2)")
    ax.set_ylabel(f"{split.capitalize()} error (%)")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    return fig


def describe(outcome) -> str:
    """Markdown: what an instability run (a `lth.notebook.Outcome` of kind lmc) did, or why it did not run."""
    if not outcome.ran:
        return outcome.describe()
    cfg = outcome.config
    networks = outcome.networks
    densities = sorted(set(networks[networks.control != PARENT].density.round(4)), reverse=True)
    note = outcome._note()
    return (f"**Ran `{outcome.experiment}`** on {outcome.dataset_name}, {outcome.profile} profile: "
            f"{outcome.trials} trial{'s' * (outcome.trials != 1)} × {outcome.iterations:,} iterations; forks at "
            f"k = {', '.join(str(k) for k in cfg.rewind_iterations)}; 2 copies per fork with different data orders; "
            f"{cfg.points} points on each path; densities {', '.join(f'{100 * d:.1f}%' for d in densities)} "
            f"(IMP with rewinding to each k). Results in `{outcome.run_path}`.{note}")
