"""Tables and figures of Zhou et al.'s deconstruction of lottery tickets (`lth.experiments.deconstruct`).

The rows' ``control`` says what a network is (its *family*):

- ``dense`` (level 0): the dense networks every variant starts from;
- a mask criterion (`lth.prune.masks.CRITERIA`, e.g. ``large_final``: IMP's ticket), trained;
- a treatment on the large-final mask (``reinit``, ``reshuffle``, ``signed_constant``: the kept
  weights; ``frozen_init``: the pruned weights), trained;
- ``untrained:<criterion>:<weights>``: a criterion's one-shot mask on w_0 (or its signed constant),
  never trained (one evaluation, iteration 0);
- ``supermask:<weight init>``: Zhou et al.'s learned Bernoulli supermask over frozen weights (level 0;
  its density is that of the mask sampled for evaluation).

Units: accuracies and densities in percent in tables and figures (fractions in the per-network frame).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lth.experiments.deconstruct import DENSE, TREATED_CRITERION, TREATMENTS
from lth.prune.masks import CRITERIA
from lth.results.analysis import MissingData, aggregate
from lth.results.figures import AXIS_LABELS, plot_band, plot_vs_density, subplots
from lth.results.style import ZHOU_LABELS
from lth.schema import META_SPLIT

CRITERION, TREATMENT, UNTRAINED, SUPERMASK = "criterion", "treatment", "untrained", "supermask"
FAMILIES = (DENSE, CRITERION, TREATMENT, UNTRAINED, SUPERMASK)
KEPT_TREATMENTS = ("reinit", "reshuffle", "signed_constant")   # what the kept weights start from
PRUNED_TREATMENTS = ("frozen_init",)                           # what the pruned weights hold
CHANCE = 10.0  # % accuracy of a uniform guess over MNIST's 10 classes
ACCURACY = "early_stop_test_accuracy"  # Zhou et al. (as Frankle & Carbin) read accuracy at early stop


def family(control: str) -> str:
    """The family of a control value (`FAMILIES`); ValueError naming it if it is none of them."""
    if control == DENSE:
        return DENSE
    if control in CRITERIA:
        return CRITERION
    if control in TREATMENTS:
        return TREATMENT
    head = control.split(":")[0]
    if head in (UNTRAINED, SUPERMASK):
        return head
    raise ValueError(f"control {control!r} is not a deconstruct variant (dense, a criterion, a treatment, "
                     f"untrained:<criterion>:<weights> or supermask:<weight init>)")


def with_family(networks: pd.DataFrame) -> pd.DataFrame:
    """The per-network frame plus ``family``, ``criterion`` (the mask's: large_final for the
    treatments, empty for dense and supermask networks) and ``weights`` (untrained: init or
    signed_constant; supermask: its weight init; else empty)."""
    out = networks.copy()
    out["family"] = out.control.map(family) if not out.empty else pd.Series(dtype=str)
    parts = out.control.str.split(":")
    out["criterion"] = [p[1] if f == UNTRAINED else c if f == CRITERION else TREATED_CRITERION if f == TREATMENT else ""
                        for f, c, p in zip(out.family, out.control, parts)]
    out["weights"] = [p[-1] if f in (UNTRAINED, SUPERMASK) else "" for f, p in zip(out.family, parts)]
    return out


def _rows(networks: pd.DataFrame, families: tuple[str, ...]) -> pd.DataFrame:
    rows = with_family(networks)
    return rows[rows.family.isin(families)]


# ---- tables ----------------------------------------------------------------------------------

def level_table(networks: pd.DataFrame) -> pd.DataFrame:
    """Per family, control and level (mean, min, max over trials): remaining_% (density), test
    accuracy at early stop and at the end (%), early-stop iteration, runs. Untrained networks have
    one evaluation (iteration 0): both accuracies are that one."""
    if networks.empty:
        return pd.DataFrame()
    rows = with_family(networks)
    stats = aggregate(rows)
    stats = stats.merge(rows[["control", "family", "criterion", "weights"]].drop_duplicates(), on="control")
    out = pd.DataFrame({"family": stats.family, "control": stats.control, "criterion": stats.criterion,
                        "weights": stats.weights, "level": stats.level, "runs": stats.runs,
                        "remaining_%": 100 * stats.density_mean})
    for column, name in ((ACCURACY, "test_acc_early_stop"), ("final_test_accuracy", "test_acc_final")):
        for stat in ("mean", "min", "max"):
            out[f"{name}_{stat}_%"] = 100 * stats[f"{column}_{stat}"]
    out["early_stop_it_mean"] = stats.early_stop_iteration_mean
    order = {f: i for i, f in enumerate(FAMILIES)}
    return out.sort_values(["family", "control", "level"], key=lambda c: c.map(order) if c.name == "family" else c
                           ).reset_index(drop=True)


def supermask_table(networks: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per supermask weight init (mean, min, max over trials): the sampled mask's density (%),
    the test accuracy at the end and the best evaluated test accuracy (%), epochs trained, runs."""
    rows = _rows(networks, (SUPERMASK,))
    if rows.empty:
        return pd.DataFrame()
    curves = metrics[(metrics.split == "test") & (metrics.metric == "accuracy") & metrics.control.isin(rows.control)]
    best = curves.groupby(["control", "trial"]).value.max().rename("best_test_accuracy").reset_index()
    rows = rows.merge(best, on=["control", "trial"], how="left")
    rows["epochs"] = rows.final_iteration / _steps_per_epoch(metrics, rows.control.iloc[0])
    table = rows.groupby("weights").agg(
        runs=("trial", "size"), density_mean=("density", "mean"), density_min=("density", "min"),
        density_max=("density", "max"), final_mean=("final_test_accuracy", "mean"),
        final_min=("final_test_accuracy", "min"), final_max=("final_test_accuracy", "max"),
        best_mean=("best_test_accuracy", "mean"), epochs=("epochs", "max")).reset_index()
    percent = {"density_mean": "density_mean_%", "density_min": "density_min_%", "density_max": "density_max_%",
               "final_mean": "test_acc_final_mean_%", "final_min": "test_acc_final_min_%",
               "final_max": "test_acc_final_max_%", "best_mean": "test_acc_best_mean_%"}
    table[list(percent)] *= 100
    return table.rename(columns={"weights": "weight_init", **percent})


def _steps_per_epoch(metrics: pd.DataFrame, control: str) -> float:
    meta = metrics[(metrics.split == META_SPLIT) & (metrics.metric == "steps_per_epoch") & (metrics.control == control)]
    if meta.empty:
        raise MissingData(f"no steps_per_epoch row for {control}")
    return float(meta.value.iloc[0])


# ---- figures ---------------------------------------------------------------------------------

def _labelled(rows: pd.DataFrame, names: dict[str, str], dense: pd.DataFrame | None = None) -> pd.DataFrame:
    """``rows`` with ``control`` replaced by its label (order of ``names``: colours follow it), the
    dense networks prepended to every line when given (at 100% every variant is the dense network)."""
    parts = []
    for key, name in names.items():
        mine = rows[rows.key == key]
        if mine.empty:
            continue
        if dense is not None and not dense.empty:
            mine = pd.concat([dense, mine], ignore_index=True)
        parts.append(mine.assign(control=name))
    if not parts:
        raise MissingData(f"none of {', '.join(names)} in the results")
    return pd.concat(parts, ignore_index=True)


def _label(key: str, suffix: str = "") -> str:
    return ZHOU_LABELS.get(key, key) + suffix


def criteria_figure(networks: pd.DataFrame, title: str, columns=(ACCURACY, "final_test_accuracy")):
    """Test accuracy (at early stop; at the end) against percent of weights remaining, one line per
    mask criterion (rewound to w_0, pruned weights zero), each starting at the dense networks.
    MissingData when the run trained no criterion."""
    rows = _rows(networks, (CRITERION,)).assign(key=lambda f: f.control)
    dense = networks[networks.control == DENSE]
    order = [c for c in CRITERIA if c in set(rows.key)]
    frame = _labelled(rows, {c: _label(c) for c in order}, dense)
    fig, axes = subplots(len(columns), width=6.0, height=4.6)
    for ax, column in zip(axes[0], columns):
        plot_vs_density(ax, frame, column)
        ax.set_title(f"mask criteria: {AXIS_LABELS.get(column, column).split(' (')[0].lower()}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def treatments_figure(networks: pd.DataFrame, title: str, column: str = ACCURACY):
    """Test accuracy against percent of weights remaining on the large-final mask: left, what the
    kept weights start from (rewind to w_0 = IMP, reinit, reshuffle, signed constant); right, what
    the pruned weights hold (zero = IMP, frozen at w_0). MissingData when no treatment ran."""
    rows = with_family(networks)
    rows = rows[(rows.control == TREATED_CRITERION) | (rows.family == TREATMENT)]
    if not (rows.family == TREATMENT).any():
        raise MissingData("no treatment networks in the results")
    rows = rows.assign(key=rows.control.replace({TREATED_CRITERION: "rewind"}))
    dense = networks[networks.control == DENSE]
    panels = [("kept weights (mask: large final; pruned weights zero)", ["rewind", *KEPT_TREATMENTS]),
              ("pruned weights (mask: large final; kept weights rewound)", ["zero", *PRUNED_TREATMENTS])]
    fig, axes = subplots(2, width=6.0, height=4.6)
    for ax, (what, keys) in zip(axes[0], panels):
        panel = rows.assign(key=rows.key.replace({"rewind": keys[0]}))
        present = [k for k in keys if k in set(panel.key)]
        if len(present) < 2:
            ax.axis("off")
            ax.set_title(f"{what}: not run", fontsize=9)
            continue
        plot_vs_density(ax, _labelled(panel, {k: _label(k) for k in present}, dense), column)
        ax.set_title(what, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def untrained_figure(networks: pd.DataFrame, title: str):
    """Test accuracy of untrained networks (no training at all) against percent of weights
    remaining: each criterion's one-shot mask on w_0 (left) and on its signed constant (right), with
    chance (10%) dashed. MissingData when the run evaluated none."""
    rows = _rows(networks, (UNTRAINED,))
    if rows.empty:
        raise MissingData("no untrained networks in the results")
    weights = [w for w in ("init", "signed_constant") if w in set(rows.weights)]
    fig, axes = subplots(len(weights), width=6.0, height=4.6)
    for ax, kind in zip(axes[0], weights):
        mine = rows[rows.weights == kind].assign(key=lambda f: f.criterion)
        order = [c for c in CRITERIA if c in set(mine.key)]
        plot_vs_density(ax, _labelled(mine, {c: _label(c) for c in order}), "final_test_accuracy")
        ax.axhline(CHANCE, color="grey", linestyle="--", linewidth=1)
        ax.set_ylabel("Test accuracy, untrained (%)")
        ax.set_title(f"untrained, {_label(kind)} under one-shot masks (dashed: chance)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def supermask_figure(networks: pd.DataFrame, metrics: pd.DataFrame, title: str,
                     paper: float | None = None):
    """Zhou et al.'s learned supermask: test accuracy (%, the mask sampled for evaluation) over
    training epochs, one line per frozen weight init (mean over trials, band min-max; the legend
    gives the mask's density), the dense trained networks' accuracy dotted and ``paper`` (%) as a
    dashed line. MissingData when no supermask trained."""
    rows = _rows(networks, (SUPERMASK,))
    if rows.empty:
        raise MissingData("no supermask networks in the results")
    fig, axes = subplots(1, width=6.4, height=4.4)
    ax = axes[0][0]
    for i, (control, mine) in enumerate(rows.groupby("control", sort=False)):
        curve = metrics[(metrics.split == "test") & (metrics.metric == "accuracy") & (metrics.control == control)
                        & (metrics.iteration > 0)]
        stats = curve.groupby("iteration").value.agg(["mean", "min", "max"])
        epochs = stats.index / _steps_per_epoch(metrics, control)
        density = 100 * mine.density.mean()
        plot_band(ax, epochs, 100 * stats["mean"], 100 * stats["min"], 100 * stats["max"],
                  f"{_label(mine.weights.iloc[0])}, {density:.1f}% kept (n={mine.trial.nunique()})",
                  color=f"C{i}", marker="o", markersize=3)
    dense = networks[networks.control == DENSE]
    if not dense.empty:
        ax.axhline(100 * dense.final_test_accuracy.mean(), color="black", linestyle=":", linewidth=1,
                   label=f"dense, weights trained ({100 * dense.final_test_accuracy.mean():.1f}%)")
    if paper is not None:
        ax.axhline(paper, color="grey", linestyle="--", linewidth=1, label=f"Zhou et al. ({paper:g}%)")
    ax.set_xlabel("Training epoch (mask logits trained, weights frozen)")
    ax.set_ylabel("Test accuracy, sampled mask (%)")
    ax.legend(fontsize=8, title="mean over trials, band = min/max", title_fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig


def save_figure(outcome, folder, name: str, what: str, make) -> None:
    """Save ``make(title)`` (title = ``what`` and the outcome's context) as PNG and SVG in ``folder``,
    or, when the outcome did not run or lacks the variants (MissingData), a figure saying why."""
    from lth.results.figures import not_run_figure, save
    title = f"{what}\n{outcome.context}"
    try:
        fig = make(title) if outcome.ran else not_run_figure(title, [outcome.headline])
    except MissingData as missing:
        fig = not_run_figure(title, [str(missing)])
    save(fig, folder, name)


def describe(outcome) -> str:
    """Markdown: what a deconstruct run (a `lth.notebook.Outcome`) did, or why it did not run."""
    if not outcome.ran:
        return outcome.describe()
    cfg, networks = outcome.config, with_family(outcome.networks)
    sparse = networks[networks.family.isin((CRITERION, TREATMENT))]
    densities = sorted(set(np.round(100 * sparse.density, 1)), reverse=True)
    supermask = networks[networks.family == SUPERMASK]
    parts = [f"**Ran `{outcome.experiment}`** on {outcome.dataset_name}, {outcome.profile} profile: "
             f"{outcome.trials} trial{'s' * (outcome.trials != 1)}, {cfg.strategy.replace('_', '-')} pruning to "
             f"{', '.join(f'{d:g}%' for d in densities)} of weights remaining; criteria "
             f"{', '.join(cfg.criteria) or 'none'}; treatments on the large-final mask {', '.join(cfg.treatments) or 'none'}."]
    if cfg.untrained_weights:
        parts.append(f"Untrained networks under every criterion's one-shot mask, weights "
                     f"{' and '.join(cfg.untrained_weights)}.")
    if not supermask.empty:
        epochs = supermask_table(outcome.networks, outcome.metrics).epochs.max()
        parts.append(f"Learned Bernoulli supermask over frozen {' and '.join(cfg.supermask_weights)} weights, "
                     f"{epochs:.3g} epochs.")
    parts.append(f"Results in `{outcome.run_path}`.{outcome._note()}")
    return " ".join(parts)
