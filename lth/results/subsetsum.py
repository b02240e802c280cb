"""Tables and the figure of the SubsetSum experiment (Pensia et al. Exp. 1, `lth.experiments.subsetsum`):
the paper's numbers beside ours, per layer, the worst weights, the claims' frame. Each takes the
`lth.notebook.Outcome` of a SubsetSum run (its ``approximation``, ``paper_range``, ``checks``, accuracies)."""

from __future__ import annotations

import math

import pandas as pd
import torch

from lth.experiments.subsetsum import PAPER


def summary_table(outcome) -> pd.DataFrame:
    """The paper's numbers beside ours, one row per quantity."""
    p = PAPER
    rows = [
        ("target weights", f"{p['weights']:,}", ""),
        ("weights approximated", f"{p['weights']:,}", ""),
        ("coefficients per weight n", f"{p['n']}", ""),
        ("coefficient interval [min w, max w]", f"[{p['low']:.3f}, {p['high']:.3f}]", ""),
        ("coefficients drawn", f"{p['coefficients']:,} ({p['coefficients'] / p['weights']:.2f}x)", ""),
        ("coefficients kept", f"{p['kept']:,} ({p['kept'] / p['weights']:.2f}x)", ""),
        ("kept with the paper's interval", f"{p['kept'] / p['weights']:.2f}x", ""),
        ("largest error", "all within eps = 0.01", ""),
        ("target test accuracy", f"{p['target_accuracy']:.2f} %", ""),
        ("approximated test accuracy", f"{p['approximated_accuracy']:.2f} % (their code evaluates the target)", ""),
        ("solver", p["solver"], ""),
        ("solve time", f"{p['solver_seconds']:,.0f} s", ""),
        ("check: brute force over 2^n subsets", "", ""),
        ("check: MILP (scipy HiGHS, no gap)", "", ""),
    ]
    table = pd.DataFrame(rows, columns=["quantity", "paper", "ours"])
    if not outcome.ran:
        table["ours"] = "not run"
        return table
    a, r, c = outcome.approximation, outcome.paper_range, outcome.checks
    ours = [
        f"{outcome.total_weights:,}",
        f"{a.count:,}" + ("" if a.count == outcome.total_weights else " (a seeded sample)"),
        f"{a.n}",
        f"[{a.low:.3f}, {a.high:.3f}]",
        f"{a.count * a.n:,} ({a.n:.2f}x)",
        f"{a.kept_total:,} ({a.kept_ratio:.2f}x)",
        f"{r.kept_ratio:.2f}x ({r.count:,} weights)" if r else "not run",
        f"{a.max_error:.2e}; {a.within:,} of {a.count:,} within eps = {a.epsilon:g}",
        f"{outcome.target_accuracy:.2f} %",
        f"{outcome.approximated_accuracy:.2f} %",
        f"exact meet-in-the-middle, float64, on {a.device}",
        f"{a.solve_seconds:.2f} s (+ {a.generation_seconds:.2f} s drawing the coefficients)",
        f"{c.brute_force_agree} of {len(c.brute_force)} weights: the same subset" if len(c.brute_force) else "none",
        (f"{len(c.milp)} weights: largest |error difference| {c.milp_max_difference:.1e}, "
         f"{int((c.milp.milp_status == 'optimal').sum())} proven optimal, "
         f"{c.milp.milp_seconds.sum():.1f} s in all") if len(c.milp) else "none",
    ]
    table["ours"] = ours
    return table


def layer_table(outcome) -> pd.DataFrame:
    """Per layer: weights approximated, coefficients kept per weight, largest error, within eps."""
    columns = ["layer", "weights", "approximated", "kept_per_weight", "max_error", "within_eps"]
    if not outcome.ran:
        return pd.DataFrame(columns=columns)
    a = outcome.approximation
    starts, rows, offset = {}, [], 0
    for name, size in outcome.layer_sizes.items():
        in_layer = (a.indices >= offset) & (a.indices < offset + size)
        kept, error = a.solution.kept.cpu()[in_layer], a.solution.error.cpu()[in_layer]
        rows.append({"layer": name, "weights": size, "approximated": int(in_layer.sum()),
                     "kept_per_weight": float(kept.double().mean()) if kept.numel() else math.nan,
                     "max_error": float(error.max()) if error.numel() else math.nan,
                     "within_eps": int((error <= a.epsilon).sum())})
        offset += size
    return pd.DataFrame(rows, columns=columns)


def worst_weights(outcome, count: int = 5) -> pd.DataFrame:
    """The weights approximated worst: value, layer, error, coefficients kept, and how many of their
    coefficients are negative (a weight whose coefficients nearly all share a sign has few subset
    sums near it)."""
    columns = ["weight_index", "layer", "weight", "error", "kept", "negative_coefficients", "coefficients"]
    if not outcome.ran:
        return pd.DataFrame(columns=columns)
    a = outcome.approximation
    errors = a.solution.error.cpu()
    worst = errors.argsort(descending=True)[:count]
    bounds = torch.tensor(list(outcome.layer_sizes.values())).cumsum(0)
    names = list(outcome.layer_sizes)
    coefficients = a.coefficients.cpu()
    rows = [{"weight_index": int(a.indices[i]), "layer": names[int((bounds <= a.indices[i]).sum())],
             "weight": float(a.weights[i]), "error": float(errors[i]), "kept": int(a.solution.kept[i]),
             "negative_coefficients": int((coefficients[i] < 0).sum()), "coefficients": a.n} for i in worst.tolist()]
    return pd.DataFrame(rows, columns=columns)


def claims_frame(outcome) -> pd.DataFrame:
    """One row of our measured quantities, for `lth.results.claims.PENSIA_SUBSETSUM`."""
    if not outcome.ran:
        return pd.DataFrame()
    a, r = outcome.approximation, outcome.paper_range
    return pd.DataFrame([{
        "experiment": outcome.experiment, "weights": a.count, "total_weights": outcome.total_weights,
        "n": a.n, "epsilon": a.epsilon, "max_error": a.max_error, "within": a.within,
        "kept_ratio": a.kept_ratio, "paper_range_kept_ratio": r.kept_ratio if r else math.nan,
        "low": a.low, "high": a.high,
        "target_accuracy": outcome.target_accuracy, "approximated_accuracy": outcome.approximated_accuracy,
    }])


# ---- the figure ---------------------------------------------------------------------------------

def subsetsum_figure(outcome):
    """Left: the error of every approximated weight against eps (both axes log). Right: coefficients kept
    per weight, ours and with the paper's coefficient interval, against the paper's mean."""
    import numpy as np
    from lth.results import figures
    fig, axes = figures.subplots(2, width=5.4, height=3.8)
    left, right = axes[0]
    a, r = outcome.approximation, outcome.paper_range
    errors = a.solution.error.cpu().numpy()
    positive = errors[errors > 0]
    lowest = np.floor(np.log10(positive.min())) if positive.size else -12
    bins = np.logspace(lowest, np.log10(a.epsilon) + 0.5, 60)
    left.hist(np.clip(errors, bins[0], None), bins=bins, color="C0")
    left.axvline(a.epsilon, color="C3", linestyle="--", label=f"eps = {a.epsilon:g}")
    left.set_xscale("log")
    left.set_yscale("log")  # the tail, down to single weights beyond eps, stays visible
    left.set_xlabel("|w − subset sum| (minimum over all 2^n subsets)")
    left.set_ylabel("weights")
    left.set_title(f"Error per weight: largest {a.max_error:.1e}, {a.within:,} of {a.count:,} within eps", fontsize=9)
    left.legend(fontsize=8)

    counts, tallest = np.arange(a.n + 1), 0.0
    for k, (result, label, colour) in enumerate(((a, f"ours, U[{a.low:.3f}, {a.high:.3f}]", "C0"),
                                                  (r, "ours, the paper's U[-0.464, 0.541]", "C1"))):
        if result is None:
            continue
        kept = result.solution.kept.cpu().numpy()
        share = np.bincount(kept, minlength=a.n + 1)[:a.n + 1] / kept.size
        right.bar(counts + (k - 0.5) * 0.4, 100 * share, width=0.4, color=colour,
                  label=f"{label}: mean {result.kept_ratio:.2f}")
        tallest = max(tallest, 100 * float(share.max()))
    right.axvline(PAPER["kept"] / PAPER["weights"], color="k", linestyle="--",
                  label=f"paper's mean {PAPER['kept'] / PAPER['weights']:.2f} (Gurobi)")
    right.set_xlabel(f"coefficients kept (of n = {a.n})")
    right.set_ylabel("% of weights")
    right.set_title("Coefficients kept per weight", fontsize=9)
    right.set_ylim(0, 1.5 * tallest)  # room for the legend above the bars
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"SubsetSum (Pensia et al. Exp. 1): {outcome.context}", fontsize=10)
    return fig
