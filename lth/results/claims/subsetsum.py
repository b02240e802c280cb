"""SubsetSum (Pensia et al. Experiment 1): one row of measured quantities per run (coefficient
draw), from `lth.results.subsetsum.claims_frame`: max_error, epsilon, within, weights,
kept_ratio, accuracies. One run gives n = 1: "inconclusive" by the standard, the number shown."""

from __future__ import annotations

import math

import pandas as pd

from lth.results.analysis import MissingData
from lth.results.verdicts import AT_MOST, LEVEL, Claim, Rule, Sample


def _runs(networks: pd.DataFrame) -> pd.DataFrame:
    if networks.empty or "kept_ratio" not in networks:
        raise MissingData("no SubsetSum results")
    return networks


def subsetsum_max_error(networks: pd.DataFrame) -> Sample:
    runs = _runs(networks)
    row = runs.iloc[0]
    return Sample(runs.max_error / runs.epsilon, f"largest error {runs.max_error.max():.2e}; {int(row.within):,} of "
                                                 f"{int(row.weights):,} weights within eps = {row.epsilon:g} (first run)")


def subsetsum_accuracy_change(networks: pd.DataFrame) -> Sample:
    runs = _runs(networks)
    row = runs.iloc[0]
    return Sample(runs.approximated_accuracy - runs.target_accuracy, (
        f"{runs.approximated_accuracy.mean():.2f} % vs target {runs.target_accuracy.mean():.2f} % (means)"
        + ("" if row.weights == row.total_weights else
           f" ({int(row.weights):,} of {int(row.total_weights):,} weights approximated)")))


def subsetsum_target_accuracy(networks: pd.DataFrame) -> Sample:
    runs = _runs(networks)
    # one target is trained and shared by every coefficient draw: n = 1, however many draws
    target = runs.target_accuracy.iloc[:1]
    deviation = float(target.iloc[0]) - 97.19
    return Sample(target, f"{deviation:+.2f} pp from the paper's 97.19 %: a deviation (one trained target; "
                          "several seeds of the target would be needed to judge it)")


def subsetsum_kept_ratio(networks: pd.DataFrame) -> Sample:
    runs = _runs(networks)
    row = runs.iloc[0]
    control = "" if not math.isfinite(row.paper_range_kept_ratio) else \
        f"; with the paper's interval [-0.464, 0.541] instead: {row.paper_range_kept_ratio:.2f}x"
    return Sample(runs.kept_ratio, f"coefficients from U[{row.low:.3f}, {row.high:.3f}] (our target's range){control}")


_SUBSETSUM = "Pensia et al., Exp. 1"
_RUN = "subset-sum/results/paper/fc2_approx.out (c = 3, eps = 0.01, n = 21): "
PENSIA_SUBSETSUM = [
    Claim("pensia_subsetsum_eps", _SUBSETSUM, _RUN + "\"All weights fall within eps=0.01 error: True\".",
          1.0, "x", "largest error ≤ {v} eps",
          "largest |w − subset sum| over the approximated weights, in units of eps (exact minimum-error subsets), per run",
          subsetsum_max_error, Rule(AT_MOST), "mnist", experiment="pensia_subsetsum"),
    Claim("pensia_subsetsum_accuracy", _SUBSETSUM, _RUN + "approximated network 97.19 %, target 97.19 %.",
          0.0, "pp", "{v} (97.19 % both)",
          "test accuracy, approximated network minus target, per run (the paper's code evaluates the target network "
          "twice, so its 97.19 % for the approximation is the target's)",
          subsetsum_accuracy_change, Rule(LEVEL), "mnist", experiment="pensia_subsetsum"),
    Claim("pensia_subsetsum_target", _SUBSETSUM, _RUN + "target 784-500-10 (no biases), trained 10 epochs: "
          "97.19 % test accuracy.", 97.19, "%", "{v}",
          "test accuracy of our target after training (one target, shared by the coefficient draws)",
          subsetsum_target_accuracy, Rule(LEVEL), "mnist",
          experiment="pensia_subsetsum"),
    Claim("pensia_subsetsum_kept", _SUBSETSUM, _RUN + "3,725,871 of 8,337,000 coefficients kept: 9.39x "
          "the target's 397,000 weights.", 9.39, "x", "{v}",
          "coefficients kept per approximated weight, per run. Ours are minimum-error subsets; the paper's are Gurobi's "
          "answers (error ≤ eps, 1% MIP gap), not necessarily minimum-error ones. The count depends on the "
          "interval the coefficients come from, so the detail also gives it with the paper's interval",
          subsetsum_kept_ratio, Rule(LEVEL), "mnist", experiment="pensia_subsetsum"),
]
