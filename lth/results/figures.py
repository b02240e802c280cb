"""The LTH paper's figures from our results: quantities against the percent of weights remaining
(log scale, density falling left to right as in the paper) and test accuracy over training.

Every line is the mean over runs with a min/max band, and says how many runs it averages."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import matplotlib

# Scripts, tests and papermill's headless workers have no screen: draw off-screen. Notebook kernels
# and interactive sessions keep their own backend (inline plots in Jupyter).
if "ipykernel" not in sys.modules and not hasattr(sys, "ps1"):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

from lth.results.analysis import MissingData, nearest_level, per_network  # noqa: E402
from lth.results.style import (AXIS_LABELS, CONTROL_ORDER, CONTROL_STYLE, LABELS, MARKERS, PERCENT,  # noqa: E402,F401
                               label)
from lth.schema import TICKET  # noqa: E402

# The paper labels its LeNet density axes at these values; other ladders get evenly spread ticks.
PAPER_TICKS = (100, 51.3, 21.1, 7.0, 3.6, 1.9)
MIN_TICK_RATIO = 1.8  # neighbouring labelled ticks at least this factor apart, so labels never overlap


def subplots(ncols: int = 1, *, width: float = 5.2, height: float = 4.0, **kwargs):
    """A row of axes in a plain seaborn style."""
    with sns.axes_style("whitegrid"):
        return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False,
                            layout="constrained", **kwargs)


def _tick_text(percent: float) -> str:
    return f"{percent:.0f}" if percent >= 99.5 else f"{percent:.1f}" if percent >= 1 else f"{percent:.2f}"


def density_ticks(percents: Sequence[float]) -> list[float]:
    """Which of the ladder's densities to label: all of a short ladder; else the paper's tick values
    where the ladder has them, filled in where neighbours are far apart."""
    present = sorted({round(p, 6) for p in percents}, reverse=True)
    if len(present) <= 6:
        return present
    # 3%: the paper rounds its labels to one decimal (18 rounds of LeNet leave 1.85%, labelled 1.9).
    ticks = [p for p in present if any(abs(p - t) <= 0.03 * t for t in PAPER_TICKS)]
    for p in present:
        if all(max(p, t) / min(p, t) >= MIN_TICK_RATIO for t in ticks):
            ticks.append(p)
    return sorted(ticks, reverse=True)


def density_axis(ax) -> None:
    """Percent of weights remaining on a log x axis, decreasing left to right, labelled at the
    ladder's values of every line drawn on `ax` so far."""
    xs = np.concatenate([np.asarray(line.get_xdata(), float) for line in ax.get_lines()] or [np.array([100.0])])
    xs = xs[np.isfinite(xs) & (xs > 0)]
    ticks = density_ticks(xs)
    ax.set_xscale("log")
    ax.set_xlim(max(xs) * 1.12, min(xs) / 1.12)  # reversed limits: density falls left to right
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([_tick_text(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(AXIS_LABELS["density"])


def plot_band(ax, x, mean, low, high, name: str, **style):
    """The one way a line is drawn: the mean (in the axis' unit) with a shaded min/max band in the
    line's colour. Returns the line."""
    line, = ax.plot(x, mean, label=name, **style)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    return line


def _style(keys: Sequence[str], values: tuple, index: int) -> dict:
    control = dict(zip(keys, values)).get("control", TICKET)
    if control in CONTROL_STYLE:
        style = dict(CONTROL_STYLE[control])
    else:  # another control column (e.g. pruning-at-init methods): a colour and marker each
        style = {"color": f"C{index % 10}", "linestyle": "-", "marker": MARKERS[index % len(MARKERS)]}
    if keys[0] != "control":  # lines coloured by experiment; the control sets only the line style
        style["color"] = f"C{index % 10}"
    return style


def _ordered_groups(frame: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """Controls in the paper's order (ticket, reinit, random mask), anything else as it appears."""
    appearance = {k: list(dict.fromkeys(frame[k])) for k in keys}
    order = {k: CONTROL_ORDER + [v for v in appearance[k] if v not in CONTROL_ORDER] if k == "control"
             else appearance[k] for k in keys}
    groups = set(map(tuple, frame[keys].itertuples(index=False)))
    return sorted(groups, key=lambda g: tuple(order[k].index(v) if v in order[k] else len(order[k])
                                              for k, v in zip(keys, g)))


def _with_dense_start(rows: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    # At 100% a control is the dense network itself (controls exist from the first pruned level
    # on), so its line starts at the dense tickets, as in the paper.
    if rows.empty or (rows.control == TICKET).all() or (rows.level == 0).any():
        return rows
    dense = frame[(frame.level == 0) & (frame.control == TICKET) & frame.experiment.isin(rows.experiment)]
    return pd.concat([dense, rows], ignore_index=True)


def plot_vs_density(ax, networks: pd.DataFrame, y: str, label_by: str | Sequence[str] = "control",
                    controls: Sequence[str] | None = None) -> None:
    """`y` against percent of weights remaining: one line per value of `label_by` (a column, or
    columns joined in the legend), the mean over its runs with a min/max band."""
    keys = [label_by] if isinstance(label_by, str) else list(label_by)
    frame = networks if controls is None else networks[networks.control.isin(controls)]
    if frame.empty:
        raise ValueError(f"nothing to plot for {y}: no networks" + (f" of controls {list(controls)}" if controls else ""))
    scale = 100 if y in PERCENT else 1
    firsts = list(dict.fromkeys(frame[keys[0]]))
    for values in _ordered_groups(frame, keys):
        rows = frame[(frame[keys] == pd.Series(values, index=keys)).all(axis=1)]
        pruned_runs = rows[rows.level > 0].groupby("level").size()
        rows = _with_dense_start(rows, networks)
        stats = rows.groupby("level").agg(x=("density", "mean"), mean=(y, "mean"), low=(y, "min"),
                                          high=(y, "max"), runs=(y, "size")).sort_values("x", ascending=False)
        style = _style(keys, values, firsts.index(values[0]))
        counts = pruned_runs if not pruned_runs.empty else stats.runs
        runs = counts.iloc[0] if counts.nunique() == 1 else f"{counts.min()}–{counts.max()}"
        name = ", ".join(label(v) for v in values)
        plot_band(ax, 100 * stats.x, scale * stats["mean"], scale * stats.low, scale * stats.high,
                  f"{name} (n={runs})", markersize=4, **style)
    density_axis(ax)
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    trials = frame.trial.nunique()
    ax.legend(title=f"mean over {trials} trial{'s' * (trials != 1)} (n = runs per point), band = min/max",
              fontsize=8, title_fontsize=8)


def with_errors(networks: pd.DataFrame) -> pd.DataFrame:
    """Per-network frame plus test errors (1 - accuracy) at early stop and at the end of training."""
    return networks.assign(early_stop_test_error=1 - networks["early_stop_test_accuracy"],
                           final_test_error=1 - networks["final_test_accuracy"])


def plot_paper_points(ax, points: dict[float, float], label: str) -> None:
    """A paper's numbers as black stars: {percent of weights remaining: value in the axis' unit}."""
    xs = sorted(points, reverse=True)
    ax.plot(xs, [points[x] for x in xs], linestyle="none", marker="*", markersize=11, color="black",
            label=label, zorder=5)


def method_figure(networks: pd.DataFrame, columns: Sequence[str], title: str,
                  paper_points: dict[float, float] | None = None, paper_label: str = "paper",
                  order: Sequence[str] = ()):
    """Pruning at initialisation: one line per method (the control column) against percent of
    weights remaining, with the paper's numbers for the first column as stars. Methods named in
    `order` come first, in that order (their colours follow it)."""
    rank = {method: i for i, method in enumerate(order)}
    frame = with_errors(networks).sort_values("control", key=lambda c: c.map(lambda m: rank.get(m, len(rank))),
                                              kind="stable")
    fig, axes = subplots(len(columns))
    for i, (ax, column) in enumerate(zip(axes[0], columns)):
        if paper_points and i == 0:
            plot_paper_points(ax, paper_points, paper_label)
        plot_vs_density(ax, frame, column)
    fig.suptitle(title)
    return fig


def density_figure(networks: pd.DataFrame, columns: Sequence[str], title: str, *,
                   label_by: str | Sequence[str] = "control", controls: Sequence[str] | None = None):
    """One panel per column against percent of weights remaining (Figures 1, 4 and 5)."""
    fig, axes = subplots(len(columns))
    for ax, column in zip(axes[0], columns):
        plot_vs_density(ax, networks, column, label_by=label_by, controls=controls)
    fig.suptitle(title)
    return fig


# ---- test accuracy over training (Figure 3) ---------------------------------------------------

def curve_table(metrics: pd.DataFrame, levels: Sequence[int], control: str = TICKET,
                split: str = "test", metric: str = "accuracy") -> pd.DataFrame:
    """Mean, min and max over runs of one metric per level and iteration, with the level's density."""
    rows = metrics[(metrics.split == split) & (metrics.metric == metric) & (metrics.control == control)
                   & metrics.level.isin(levels)]
    out = rows.groupby(["level", "iteration"]).agg(density=("density", "mean"), mean=("value", "mean"),
                                                   low=("value", "min"), high=("value", "max"),
                                                   runs=("value", "size")).reset_index()
    return out.assign(control=control)


def level_colours(levels: Sequence[int]) -> dict:
    """One colour per level, dense (dark) to sparse (light), spread evenly so neighbours differ."""
    levels = sorted(set(levels))
    positions = np.linspace(0, 0.85, len(levels)) if len(levels) > 1 else [0.0]
    return {level: plt.get_cmap("viridis")(p) for level, p in zip(levels, positions)}


def present_levels(networks: pd.DataFrame, densities: Sequence[float]) -> list[int]:
    """The levels nearest the given percents of weights remaining, for those the run has."""
    levels = []
    for percent in densities:
        try:
            levels.append(nearest_level(networks, percent))
        except MissingData:
            continue
    return list(dict.fromkeys(levels))


def plot_curves(ax, metrics: pd.DataFrame, levels: Sequence[int], control: str = TICKET,
                colours: dict | None = None) -> pd.DataFrame:
    """Test accuracy over training iterations at `levels`; returns the plotted curves. Reinit
    lines are dashed; `colours` (level -> colour) keeps a level's colour across panels."""
    colours = colours or level_colours(levels)
    table = curve_table(metrics, levels, control)
    # Iteration 0 is the untrained network (~10% accuracy): it would squash the curves we compare.
    shown = table[table.iteration > 0]
    for level, curve in shown.groupby("level", sort=False):
        percent = 100 * curve.density.iloc[0]
        colour = colours[level]
        name = f"{_tick_text(percent)}%" + ("" if control == TICKET else f" ({label(control)})")
        plot_band(ax, curve.iteration, 100 * curve["mean"], 100 * curve.low, 100 * curve.high,
                  f"{name} (n={curve.runs.max()})", color=colour, linestyle="-" if control == TICKET else "--")
    ax.set_xlabel("Training iteration (iterations)")
    ax.set_ylabel("Test accuracy (%)")
    return table


def curves_figure(metrics: pd.DataFrame, densities: Sequence[float], title: str,
                  reinit_densities: Sequence[float] = (51.3, 7.0)):
    """Figure 3: tickets at `densities` (left); the dense net and tickets at `reinit_densities` with
    their random reinitialisations dashed (right). Percents the run does not reach are left out;
    a run that reaches fewer than two of them (a short ladder) shows all its levels instead.
    Returns (figure, the plotted curves)."""
    networks = per_network(metrics)
    levels = present_levels(networks, densities)
    if len(levels) < 2:
        levels = sorted(networks.level.unique())
    reinit_levels = [level for level in present_levels(networks, reinit_densities) if level > 0]
    if not reinit_levels:
        pruned = [level for level in levels if level > 0]
        reinit_levels = list(dict.fromkeys(pruned[:1] + pruned[-1:]))
    fig, axes = subplots(2)
    left, right = axes[0]
    colours = level_colours([0, *levels, *reinit_levels])
    tables = [plot_curves(left, metrics, levels, colours=colours),
              plot_curves(right, metrics, [0, *reinit_levels], colours=colours),
              plot_curves(right, metrics, reinit_levels, control="reinit", colours=colours)]
    trials = metrics.trial.nunique()
    for ax, what in ((left, "winning tickets"), (right, "tickets (solid) vs random reinit (dashed)")):
        ax.set_title(what, fontsize=10)
        ax.legend(title=f"weights remaining; mean over {trials} trial{'s' * (trials != 1)} (n = runs), "
                        f"band = min/max", loc="lower right", fontsize=8, title_fontsize=8)
    fig.suptitle(title)
    curves = pd.concat([tables[0], tables[2]], ignore_index=True)
    percent = {"density": "remaining_%", "mean": "test_acc_mean_%", "low": "test_acc_min_%", "high": "test_acc_max_%"}
    curves[list(percent)] = 100 * curves[list(percent)]
    return fig, curves.rename(columns=percent)[["level", "control", *percent.values(), "iteration", "runs"]]


def not_run_figure(title: str, reasons: Sequence[str]):
    """A figure that says why there is no data to draw, so the notebook's figure slot (and the
    report) shows the reason instead of silently lacking the figure."""
    fig, axes = subplots(1, width=8.0, height=2.4)
    ax = axes[0][0]
    ax.axis("off")
    text = "\n".join(" ".join(reason.split()) for reason in reasons)
    ax.text(0.5, 0.5, f"Not run: {text}\n(the notebook says where it looked)", ha="center", va="center",
            wrap=True, fontsize=10)
    fig.suptitle(title)
    return fig


def save(fig, folder: str | Path, name: str) -> list[Path]:
    """Write the figure as PNG (150 dpi) and SVG; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths
