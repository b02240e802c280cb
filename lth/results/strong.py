"""Tables and figures of the strong-ticket experiments (edge-popup, Pensia et al.'s redundant
networks, Gem-Miner, train_ticket): rows have experiment = the network, control = the method or
variant, level = the index of the target density, split ``meta`` the scored weights."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import pandas as pd

from lth.experiments.strong import DENSE, GEM, GEM_BEFORE_FINETUNE, SANITY_CHECKS  # noqa: F401  (the notebooks read them here)
from lth.results.style import label
from lth.schema import MASK_SPLIT, META_SPLIT  # noqa: F401


def meta_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per network (experiment, level, control, trial): scored weights and iterations per epoch."""
    rows = metrics[metrics.split == META_SPLIT]
    keys = ["experiment", "level", "control", "trial", "replicate"]
    return rows.pivot_table(index=keys, columns="metric", values="value").reset_index()


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per network, control and density (mean over trials): percent kept, weights remaining, test
    accuracy at the end, in percent (what `python -m lth run` prints)."""
    from lth.results.analysis import per_network
    networks = with_remaining(per_network(metrics), metrics)
    table = networks.groupby(["experiment", "control", "level"], sort=False).agg(
        runs=("trial", "size"), kept_pct=("density", "mean"), remaining_weights=("remaining_weights", "mean"),
        test_acc_final_pct=("final_test_accuracy", "mean")).reset_index()
    table[["kept_pct", "test_acc_final_pct"]] *= 100
    return table.rename(columns={"experiment": "network"})


def with_remaining(networks: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-network frame plus ``remaining_weights`` = density x scored weights (Pensia's x axis)."""
    keys = ["experiment", "level", "control", "trial", "replicate"]
    out = networks.merge(meta_table(metrics)[keys + ["scored_weights"]], on=keys, how="left")
    return out.assign(remaining_weights=out.density * out.scored_weights)


def epochs_to(metrics: pd.DataFrame, accuracy: float = 0.95, split: str = "val", patience: int = 10) -> pd.DataFrame:
    """Per network: the first epoch whose evaluation reaches ``accuracy`` (NaN if never), the epoch
    of the best accuracy and that accuracy, on ``split``; and the same under train_ticket's early
    stopping (`patience_stop`: ``patience`` evaluations without a new best end training; its
    "converges in N epochs" is the epoch of the best before that stop): ``epochs_to_best_patience``,
    ``best_<split>_accuracy_patience`` and ``stop_epoch_patience`` (the last evaluation read, the end
    of training if patience never ran out). train_ticket evaluates once an epoch, on the test set;
    ours reads validation."""
    keys = ["experiment", "level", "control", "trial", "replicate"]
    acc = metrics[(metrics.split == split) & (metrics.metric == "accuracy")]
    per_epoch = meta_table(metrics).set_index(keys)["steps_per_epoch"]
    rows = []
    for key, curve in acc.groupby(keys):
        curve = curve.sort_values("iteration").reset_index(drop=True)
        reached = curve[curve.value >= accuracy]
        best = curve.loc[curve.value.idxmax()]
        stop = patience_stop(curve.value.tolist(), patience)
        early = curve.loc[: stop]
        best_early = early.loc[early.value.idxmax()]
        steps = per_epoch.loc[key]
        rows.append({**dict(zip(keys, key)),
                     f"epochs_to_{round(100 * accuracy)}": reached.iteration.iloc[0] / steps if len(reached) else math.nan,
                     "epochs_to_best": best.iteration / steps, f"best_{split}_accuracy": best.value,
                     "epochs_to_best_patience": best_early.iteration / steps,
                     f"best_{split}_accuracy_patience": best_early.value,
                     "stop_epoch_patience": curve.iteration[stop] / steps})
    return pd.DataFrame(rows)


def patience_stop(values: Sequence[float], patience: int) -> int:
    """The index of the evaluation at which early stopping with ``patience`` ends training
    (train_ticket's train.py: a new best is strictly higher; after ``patience`` evaluations in a
    row without one, training stops), or the last index if it never does. ValueError for
    patience < 1 or no values."""
    if patience < 1 or not len(values):
        raise ValueError(f"need patience >= 1 and at least one value, got {patience} and {len(values)} values")
    best, since = -math.inf, 0
    for i, value in enumerate(values):
        if value > best:
            best, since = value, 0
        else:
            since += 1
            if since >= patience:
                return i
    return len(values) - 1


def gates_off(metrics: pd.DataFrame, control: str = "gated") -> pd.DataFrame:
    """Per gated network and gated layer: the fraction of gates off at the end (1 - the layer's
    density, from the ``mask`` rows), columns experiment, trial, layer, gates_off."""
    rows = metrics[(metrics.split == MASK_SPLIT) & (metrics.control == control)]
    out = rows.groupby(["experiment", "trial", "metric"], sort=False)["value"].mean().reset_index()
    return out.assign(gates_off=1 - out.value).rename(columns={"metric": "layer"}).drop(columns="value")


def with_gates_off(networks: pd.DataFrame, metrics: pd.DataFrame, control: str = "gated") -> pd.DataFrame:
    """The per-network frame plus one ``gates_off:<layer>`` column per gated layer (fraction of
    gates off at the end; NaN for the networks without gates)."""
    off = gates_off(metrics, control)
    if off.empty:
        return networks
    wide = off.pivot_table(index=["experiment", "trial"], columns="layer", values="gates_off", sort=False)
    wide.columns = [f"{GATES_OFF}{layer}" for layer in wide.columns]
    wide = wide.reset_index().assign(control=control)
    return networks.merge(wide, on=["experiment", "trial", "control"], how="left")


GATES_OFF = "gates_off:"  # column prefix of `with_gates_off`


# ---- notebooks: run or explain, figures ------------------------------------------------------

def _mean_band(ax, frame: pd.DataFrame, x: str, y: str, name: str, **style) -> None:
    stats = frame.groupby("level").agg(x=(x, "mean"), mean=(y, "mean"), low=(y, "min"), high=(y, "max"),
                                       runs=(y, "size")).sort_values("x")
    from lth.results import figures
    figures.plot_band(ax, stats.x, 100 * stats["mean"], 100 * stats.low, 100 * stats.high,
                      f"{name} (n={stats.runs.max()})", markersize=4, **style)


def edgepopup_figure(networks: pd.DataFrame, title: str, column: str = "final_test_accuracy"):
    """Per network: test accuracy against percent of weights kept, one line per weight init,
    the dense trained network as a dashed line."""
    from lth.results import figures
    names = list(dict.fromkeys(networks.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        rows = networks[networks.experiment == name]
        figures.plot_vs_density(ax, rows[rows.control != DENSE], column)
        dense = rows[rows.control == DENSE]
        if not dense.empty:
            ax.axhline(100 * dense[column].mean(), color="black", linestyle="--",
                       label=f"{label(DENSE)} (n={len(dense)})")
        handles, texts = ax.get_legend_handles_labels()
        ax.legend(handles, [_relabel(t) for t in texts], fontsize=8)
        ax.set_title(label(name), fontsize=10)
    fig.suptitle(title)
    return fig


def _relabel(text: str) -> str:
    head, sep, tail = text.partition(" (n=")
    return f"{label(head)}{sep}{tail}"


def pensia_figure(networks: pd.DataFrame, title: str, paper_points: dict | None = None,
                  column: str = "final_test_accuracy"):
    """Per network: test accuracy against remaining weights (log), redundant vs wide, the dense
    trained target as a black dot; the paper's figure read-outs as stars."""
    from lth.results import figures
    names = list(dict.fromkeys(networks.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        rows = networks[networks.experiment == name]
        for i, (control, part) in enumerate((c, p) for c, p in rows.groupby("control", sort=False) if c != DENSE):
            _mean_band(ax, part, "remaining_weights", column, label(control), marker=figures.MARKERS[i], color=f"C{i}")
        dense = rows[rows.control == DENSE]
        if not dense.empty:
            ax.plot(dense.remaining_weights.mean(), 100 * dense[column].mean(), "o", color="black", markersize=7,
                    label=f"{label(DENSE)} (n={len(dense)})")
        if paper_points and name in paper_points:
            for (variant, weights), accuracy in paper_points[name].items():
                ax.plot(weights, accuracy, "*", markersize=11, color="C0" if variant == "red" else
                        ("C1" if variant == "wide" else "black"), markeredgecolor="black", linestyle="none")
            ax.plot([], [], "*", color="grey", markeredgecolor="black", markersize=11, linestyle="none",
                    label="paper's figure (read off, ±2 pp)")
        ax.set_xscale("log")
        ax.set_xlabel("Remaining weights (count)")
        ax.set_ylabel("Test accuracy (%)")
        ax.set_title(label(name), fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def bar_figure(networks: pd.DataFrame, title: str, order: Sequence[str], column: str = "final_test_accuracy"):
    """One bar per control (mean over trials, min/max whiskers), in ``order``."""
    from lth.results import figures
    fig, axes = figures.subplots(1, width=7.5)
    ax = axes[0][0]
    present = [c for c in order if c in set(networks.control)]
    stats = networks.groupby("control")[column].agg(["mean", "min", "max", "size"]).loc[present]
    ax.bar(range(len(present)), 100 * stats["mean"], color=[f"C{i}" for i in range(len(present))],
           yerr=[100 * (stats["mean"] - stats["min"]), 100 * (stats["max"] - stats["mean"])], capsize=4)
    ax.set_xticks(range(len(present)), [textwrap.fill(label(c), 18, break_on_hyphens=False) + f"\n(n={n})" for c, n in
                                        zip(present, stats["size"])], fontsize=8)
    ax.set_ylabel("Test accuracy at the end (%)")
    fig.suptitle(title)
    return fig


def epoch_curves_figure(metrics: pd.DataFrame, title: str, split: str = "test"):
    """Per network: accuracy over epochs, one line per control (mean over trials, min/max band).
    (Figure 3's accuracy over iterations, by level, is `lth.results.figures.curves_figure`.)"""
    from lth.results import figures
    acc = metrics[(metrics.split == split) & (metrics.metric == "accuracy")]
    per_epoch = meta_table(metrics).groupby(["experiment", "control"])["steps_per_epoch"].first()
    names = list(dict.fromkeys(acc.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        for i, (control, part) in enumerate(acc[acc.experiment == name].groupby("control", sort=False)):
            curve = part.groupby("iteration")["value"].agg(["mean", "min", "max"])
            epochs = curve.index / per_epoch[(name, control)]
            figures.plot_band(ax, epochs, 100 * curve["mean"], 100 * curve["min"], 100 * curve["max"],
                              f"{label(control)} (n={part.trial.nunique()})", color=f"C{i}")
        ax.axhline(95, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(f"{split.capitalize()} accuracy (%)")
        ax.set_ylim(bottom=max(0, ax.get_ylim()[0]))
        ax.set_title(label(name), fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig
