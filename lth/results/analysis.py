"""From tidy metrics to the quantities the papers plot: early-stop iteration, accuracy at early
stop and at the end of training, per network and aggregated over trials; and the look-ups that
claims and figures share (the level nearest a density, per-trial values at a level)."""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from lth.schema import TICKET

REINIT = "reinit"  # the control column's value for random reinitialisations of a ticket
NETWORK = ["experiment", "level", "control", "trial", "replicate"]
SUMMARY = ["density", "early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy",
           "final_train_accuracy", "final_iteration"]

# A level answers for a density the paper names when its realised density is within 5% (relative)
# of it: neighbouring levels of the paper's ladders are >= 10% apart, so at most one level matches.
DENSITY_TOLERANCE = 0.05


class MissingData(LookupError):
    """The results cannot answer a question (e.g. the density it names was never reached)."""


def per_network(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per trained network. The early-stop iteration is that of minimum validation loss
    (the first, on ties): recorded for the figures, never used to stop training."""
    if metrics.empty:
        return pd.DataFrame(columns=NETWORK + SUMMARY)
    evals = metrics[metrics.split.isin(["val", "test"])]
    wide = evals.pivot_table(index=NETWORK + ["iteration"], columns=["split", "metric"], values="value")
    wide.columns = [f"{s}_{m}" for s, m in wide.columns]
    wide = wide.reset_index().sort_values(NETWORK + ["iteration"])
    groups = wide.groupby(NETWORK, sort=True)
    early = wide.loc[groups["val_loss"].idxmin()].set_index(NETWORK)
    last = wide.loc[groups["iteration"].idxmax()].set_index(NETWORK)
    out = pd.DataFrame({
        "early_stop_iteration": early["iteration"],
        "early_stop_test_accuracy": early["test_accuracy"],
        "final_test_accuracy": last["test_accuracy"],
        "final_iteration": last["iteration"],
    })
    out["density"] = metrics.groupby(NETWORK)["density"].first()
    train = metrics[(metrics.split == "train") & (metrics.metric == "accuracy")]
    out["final_train_accuracy"] = train.groupby(NETWORK)["value"].last() if not train.empty else float("nan")
    return out.reset_index()[NETWORK + SUMMARY]


def iterations_to_column(accuracy: float, split: str = "test") -> str:
    """The column `with_iterations_to` adds, e.g. ``test_iterations_to_98`` for 0.98."""
    return f"{split}_iterations_to_{100 * accuracy:g}"


def with_iterations_to(networks: pd.DataFrame, metrics: pd.DataFrame, accuracies: Sequence[float],
                       split: str = "test") -> pd.DataFrame:
    """`networks` plus, per accuracy (a fraction in (0, 1]), the first evaluated iteration at
    which the network's `split` accuracy reaches it (NaN if it never does): how the paper reads
    learning speed off its accuracy curves (Figure 3). Column names: `iterations_to_column`."""
    for accuracy in accuracies:
        if not 0 < accuracy <= 1:
            raise ValueError(f"accuracy {accuracy!r} is not a fraction in (0, 1]")
    out = networks.copy()
    curves = metrics[(metrics.split == split) & (metrics.metric == "accuracy")] if not metrics.empty else metrics
    for accuracy in accuracies:
        column = iterations_to_column(accuracy, split)
        if curves.empty:
            out[column] = float("nan")
            continue
        reached = curves[curves.value >= accuracy].groupby(NETWORK)["iteration"].min().rename(column)
        out = out.drop(columns=column, errors="ignore").merge(reached, how="left", left_on=NETWORK,
                                                              right_index=True)
    return out


def aggregate(networks: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max over trials (and reinitialisations) per experiment, level and control."""
    keys = ["experiment", "level", "control"]
    stats = networks.groupby(keys)[SUMMARY].agg(["mean", "min", "max"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats["runs"] = networks.groupby(keys).size()
    return stats.reset_index()


def level_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """A compact per-level table for terminals and notebooks: percent of weights remaining,
    early-stop iteration and test accuracies (mean over runs, in percent) per control."""
    stats = aggregate(per_network(metrics))
    table = pd.DataFrame({
        "level": stats["level"], "control": stats["control"], "runs": stats["runs"],
        "remaining_%": 100 * stats["density_mean"],
        "early_stop_it": stats["early_stop_iteration_mean"],
        "test_acc_early_stop_%": 100 * stats["early_stop_test_accuracy_mean"],
        "test_acc_final_%": 100 * stats["final_test_accuracy_mean"],
    })
    return table.sort_values(["level", "control"]).reset_index(drop=True)


# ---- look-ups shared by claims and figures ----------------------------------------------------

def combine(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One frame from several experiments' per-network frames, told apart by `experiment` = the key
    (e.g. {"iterative": ..., "one_shot": ...}: both runs share the recipe's experiment name)."""
    parts = [frame.assign(experiment=name) for name, frame in frames.items() if not frame.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def level_densities(networks: pd.DataFrame, control: str = TICKET) -> pd.Series:
    """Percent of weights remaining per level (the realised density of the tickets, or of another
    control's networks: a pruning-at-init method's)."""
    rows = networks[networks.control == control]
    return 100 * rows.groupby("level")["density"].mean()


def nearest_level(networks: pd.DataFrame, percent: float, tolerance: float = DENSITY_TOLERANCE,
                  control: str = TICKET) -> int:
    """The level whose realised density is nearest `percent` (of weights remaining);
    MissingData if none is within `tolerance` (relative) of it."""
    densities = level_densities(networks, control)
    if densities.empty:
        raise MissingData("no winning tickets in the results" if control == TICKET else f"no {control} networks in the results")
    distance = (densities - percent).abs()
    level = int(distance.idxmin())
    if distance[level] > tolerance * percent:
        have = ", ".join(f"{d:.1f}" for d in densities)
        raise MissingData(f"no level near {percent:g}% of weights remaining (the run has {have} %)")
    return level


def per_trial(networks: pd.DataFrame, level: int, column: str, control: str = TICKET) -> pd.Series:
    """`column` at `level` for `control`, one value per trial (the mean over its replicates, e.g.
    random reinitialisations), indexed by trial. MissingData if there are no such networks."""
    rows = networks[(networks.level == level) & (networks.control == control)]
    if rows.empty:
        raise MissingData(f"no {control if control != TICKET else 'ticket'} networks at level {level}")
    return rows.groupby("trial")[column].mean()


def mean_at(networks: pd.DataFrame, level: int, column: str, control: str = TICKET) -> float:
    """The mean of `column` over the networks of `control` at `level` (all trials and replicates)."""
    rows = networks[(networks.level == level) & (networks.control == control)]
    if rows.empty:
        raise MissingData(f"no {control if control != TICKET else 'ticket'} networks at level {level}")
    return float(rows[column].mean())
