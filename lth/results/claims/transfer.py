"""Tickets across data sets (Morcos, Yu, Paganini, Tian 2019; Mehta 2019), papers.md §11, read on
MNIST <-> Fashion-MNIST as papers.md §11d lays out. The frame the claims read is the per-network
frame of a transfer run (`lth.results.transfer`: experiment = the data set trained on, control =
``none`` / ``transfer`` / ``reinit`` / ``random_mask``); accuracies are test accuracy at early stop.

Neither paper ran this setup: Morcos et al. transferred VGG19 / ResNet50 tickets between natural-image
data sets (Fashion-MNIST among their targets), Mehta pruned on CIFAR-10 and transferred to
SmallNORB and Fashion-MNIST; no number of either was readable. Every claim is therefore "not
comparable" (the number is shown). Two of Morcos's claims are listed although this run cannot test
them: "larger sources transfer better" (MNIST and Fashion-MNIST are the same size) and transfer
across optimisers (one optimiser here).
"""

from __future__ import annotations

import pandas as pd

from lth.results.analysis import MissingData
from lth.results.verdicts import AT_MOST, SIGN, Claim, Rule, Sample
from lth.schema import TICKET

ACCURACY = "early_stop_test_accuracy"
CLOSE = 1.0        # pp: "close to the target's own ticket" (our threshold: Morcos gives none)
MATCHING_DROP = 0.2  # pp: "matches dense" = at most this much below it (as lth.results.claims.lmc)
MEHTA_PERCENT = 7.0  # % remaining, inside Mehta's "about 90-95% of weights removed"
TOLERANCE = 0.05

_MORCOS = ("Morcos et al. trained VGG19 / ResNet50 on natural images (their claim covers those); this is "
           "LeNet-300-100 or Conv-2 on MNIST <-> Fashion-MNIST: not comparable")
_MEHTA = "Mehta pruned on CIFAR-10 and transferred to SmallNORB and Fashion-MNIST: not comparable"


def _rows(networks: pd.DataFrame, target: str) -> pd.DataFrame:
    rows = networks[networks.experiment == target]
    if rows.empty:
        raise MissingData(f"no networks trained on {target}")
    return rows


def _per_trial(rows: pd.DataFrame, level: int, control: str) -> pd.Series:
    mine = rows[(rows.level == level) & (rows.control == control)]
    if mine.empty:
        raise MissingData(f"no {control if control != TICKET else 'own-ticket'} networks at level {level}")
    return 100 * mine.groupby("trial")[ACCURACY].mean()


def _density(rows: pd.DataFrame, level: int) -> float:
    return 100 * rows[rows.level == level].density.mean()


def gap(target: str, a: str, b: str, where: str = "sparsest"):
    """Per trial: accuracy of control ``a`` minus control ``b`` (pp) on ``target``, at the sparsest
    level of the run (``where = 'sparsest'``) or at the level nearest ``MEHTA_PERCENT`` ('mehta');
    'dense' (for ``a`` or ``b``) is the target's dense network (level 0)."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, target)
        level = _level(rows, where)
        first, second = (_per_trial(rows, 0, TICKET) if c == "dense" else _per_trial(rows, level, c) for c in (a, b))
        values = (first - second).dropna()
        return Sample(values, f"on {target} at {_density(rows, level):.1f}% remaining: {len(values)} trial"
                              f"{'s' * (len(values) != 1)}")
    return measure


def widening(target: str):
    """Per trial: the transfer − random-mask gap (pp) at the sparsest level minus at the densest
    sparse level (> 0: the gap widens as sparsity rises)."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, target)
        levels = sorted(rows[rows.level > 0].level.unique())
        if len(levels) < 2:
            raise MissingData("fewer than two sparse levels: no widening to measure")
        at = {lv: _per_trial(rows, lv, "transfer") - _per_trial(rows, lv, "random_mask") for lv in (levels[0], levels[-1])}
        values = (at[levels[-1]] - at[levels[0]]).dropna()
        return Sample(values, f"on {target}, gap at {_density(rows, levels[-1]):.1f}% minus at "
                              f"{_density(rows, levels[0]):.1f}% remaining")
    return measure


def _level(rows: pd.DataFrame, where: str) -> int:
    sparse = rows[(rows.level > 0) & (rows.control == TICKET)]
    if sparse.empty:
        raise MissingData("no sparse level")
    if where == "sparsest":
        return int(sparse.level.max())
    densities = 100 * sparse.groupby("level").density.mean()
    distance = (densities - MEHTA_PERCENT).abs()
    if distance.min() > TOLERANCE * MEHTA_PERCENT:
        raise MissingData(f"no level near {MEHTA_PERCENT:g}% remaining (the run has "
                          f"{', '.join(f'{d:.1f}' for d in densities)} %)")
    return int(distance.idxmin())


def untested(why: str):
    def measure(networks: pd.DataFrame) -> Sample:
        raise MissingData(why)
    return measure


def _direction(source: str, target: str) -> list[Claim]:
    s, t = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[source], \
        {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[target]
    tag = f"{source}_to_{target}"
    return [
        Claim(f"transfer_beats_random_{tag}", "Morcos §4 (random-ticket baseline)",
              f"{s} → {t}: a ticket transferred from another data set beats a random ticket (random mask at the "
              "same per-layer densities) of the same sparsity.", 0.0, "pp", "> {v} (no number readable)",
              "transferred ticket minus random mask, test accuracy at early stop, sparsest level, per trial",
              gap(target, "transfer", "random_mask"), Rule(SIGN), target, experiment=target, not_comparable=_MORCOS),
        Claim(f"transfer_gap_widens_{tag}", "Morcos §4 (papers.md §11d.1)",
              f"{s} → {t}: the transferred ticket's lead over random tickets widens as sparsity rises.",
              0.0, "pp", "> {v} (no number readable)",
              "(transfer − random mask) at the sparsest level minus at the densest sparse level, per trial",
              widening(target), Rule(SIGN), target, experiment=target, not_comparable=_MORCOS),
        Claim(f"transfer_beats_reinit_{tag}", "papers.md §11d.2 (not in Morcos)",
              f"{s} → {t}: the transferred ticket beats its own mask on fresh weights (a control Morcos did not "
              "use: a gap is extra evidence that the source's weights matter, no gap contradicts nothing).",
              0.0, "pp", "> {v} (no claim of the paper)",
              "transferred ticket minus its random reinit, test accuracy at early stop, sparsest level, per trial",
              gap(target, "transfer", "reinit"), Rule(SIGN), target, experiment=target, not_comparable=_MORCOS),
        Claim(f"transfer_close_to_own_{tag}", "Morcos abstract",
              f"{s} → {t}: transferred tickets come close to a ticket found on the target itself.",
              CLOSE, "pp", "≤ {v} behind (our threshold for \"close\"; no number readable)",
              "target's own ticket minus the transferred ticket, test accuracy at early stop, sparsest level, per trial",
              gap(target, TICKET, "transfer"), Rule(AT_MOST), target, experiment=target, not_comparable=_MORCOS),
        Claim(f"transfer_matches_dense_{tag}", "Mehta abstract",
              f"{s} → {t}: transferred subnetworks with about 90–95% of weights removed match, and often beat, "
              "the dense network's accuracy on the target.", MATCHING_DROP, "pp", "drop ≤ {v} at 5–10% remaining",
              f"target's dense network minus the transferred ticket, test accuracy at early stop, level nearest "
              f"{MEHTA_PERCENT:g}% remaining, per trial",
              gap(target, "dense", "transfer", where="mehta"),
              Rule(AT_MOST), target, experiment=target, not_comparable=_MEHTA),
    ]


TRANSFER_MNIST = [
    *_direction("mnist", "fashion_mnist"),
    *_direction("fashion_mnist", "mnist"),
    Claim("transfer_larger_source", "Morcos abstract; FAIR blog",
          "Tickets from larger data sets (more examples, more classes) transfer better.", 0.0, "pp",
          "> {v} (no number readable)", "not measured", untested(
              "MNIST and Fashion-MNIST have the same number of examples and classes: comparing the two "
              "directions does not test this (papers.md §11d.4; it needs a subsampled source)"),
          Rule(SIGN), "cifar10", not_comparable=_MORCOS),
    Claim("transfer_optimizers", "Morcos abstract",
          "Tickets transfer across optimisers (found with SGD, trained with Adam, and the reverse) with high accuracy.",
          0.0, "pp", "> {v} (no number readable)", "not measured", untested(
              "this run uses one optimiser for finding and training tickets (papers.md §11d.5)"),
          Rule(SIGN), "cifar10", not_comparable=_MORCOS),
]
