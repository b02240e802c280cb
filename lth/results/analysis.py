"""From tidy metrics to the quantities the papers plot: early-stop iteration, accuracy at early
stop and at the end of training, per network and aggregated over trials."""

from __future__ import annotations

import pandas as pd

NETWORK = ["experiment", "level", "control", "trial", "replicate"]
SUMMARY = ["density", "early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy",
           "final_train_accuracy", "final_iteration"]


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
