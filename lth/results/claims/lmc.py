"""Linear mode connectivity (Frankle, Dziugaite, Roy, Carbin 2020): instability of dense LeNet-300-100
and of its IMP subnetworks on MNIST (papers.md §9). The frame the claims read is
`lth.results.lmc.pair_table`: one row per pair of copies (trial, level, k), instabilities in pp of
error, accuracy_drop in pp (dense minus subnetwork).

Sources: the abstract [P] says IMP subnetworks reach full accuracy only when stable, which for MNIST
happens at initialisation; the 2% threshold of "stable", the 30 points and "LeNet is stable at init
(its error rises < 1 pp)" are from a third-party note [2nd]; the paper's LeNet density and Table 1 are
NOT FOUND, so the matching claim is read at Stabilizing-LTH's anchor of 10.7% remaining [P, SLTH Fig. 3:
IMP 98.3 ± 0.1% vs dense 98.0 ± 0.2%], with "matching" = a drop of at most 0.2 pp (the stricter of the
two readings in papers.md §9b).

The CIFAR-10 ResNet-20 claims (§9c, §9e: unstable at init, IMP stable once rewound to iteration 500)
are judged on whatever ResNet-20 run is given; on Fashion-MNIST they are "not comparable".
"""

from __future__ import annotations

import pandas as pd

from lth.results.analysis import MissingData
from lth.results.verdicts import AT_LEAST, AT_MOST, Claim, Rule, Sample

STABLE = 2.0        # pp of error: "stable" below it [2nd]
MATCHING_DROP = 0.2  # pp: at most this much below the dense network's accuracy
ANCHOR_PERCENT = 10.7  # Stabilizing-LTH Fig. 3: IMP LeNet at 10.7% remaining
TOLERANCE = 0.05     # relative distance of a level's density from a named one


def _rows(pairs: pd.DataFrame, *, level=None, k=None, sparse: bool = False, variant: str = "") -> pd.DataFrame:
    if not {"k", "level", "test_instability"} <= set(pairs.columns):
        raise MissingData("no instability results (expected lth.results.lmc.pair_table's frame)")
    rows = pairs[pairs.variant == variant] if "variant" in pairs else pairs if not variant else pairs.iloc[:0]
    if rows.empty and variant:
        raise MissingData(f"no {variant} controls in this run (LmcConfig.controls)")
    if level is not None:
        rows = rows[rows.level == level]
    if sparse:
        rows = rows[rows.level > 0]
    if k is not None:
        rows = rows[rows.k == k]
    if rows.empty:
        where = ", ".join(part for part in (level is not None and f"level {level}", k is not None and f"k = {k}",
                                            sparse and "sparse levels") if part)
        raise MissingData(f"no pairs at {where}")
    return rows


def _sample(rows: pd.DataFrame, column: str, what: str) -> Sample:
    values = rows.groupby("trial")[column].mean()
    density = 100 * rows.density.mean()
    return Sample(values, f"{what} at {density:.1f}% remaining, k = {int(rows.k.iloc[0])}: {len(values)} pair"
                          f"{'s' * (len(values) != 1)}, {values.min():.2f}–{values.max():.2f} pp")


def instability(column: str, k: int, level: int = 0):
    """Per trial: the ``column`` instability (pp) of the pair forked at ``k`` at ``level``."""
    return lambda pairs: _sample(_rows(pairs, level=level, k=k), column, column.replace("_", " "))


def instability_every_k(column: str, level: int = 0):
    """Range: per k of the ladder, the instability per trial (the claim must hold at each)."""
    def measure(pairs: pd.DataFrame) -> list[Sample]:
        rows = _rows(pairs, level=level)
        return [_sample(rows[rows.k == k], column, column.replace("_", " ")) for k in sorted(rows.k.unique())]
    return measure


def instability_every_level(column: str, k: int, variant: str = ""):
    """Range: per sparse level forked at ``k``, the instability per trial of the IMP subnetworks
    (``variant`` '') or of a random control ('random_mask', 'reinit')."""
    def measure(pairs: pd.DataFrame) -> list[Sample]:
        rows = _rows(pairs, k=k, sparse=True, variant=variant)
        return [_sample(rows[rows.level == level], column, column.replace("_", " "))
                for level in sorted(rows.level.unique())]
    return measure


def drop_near(percent: float, k: int, variant: str = ""):
    """Per trial: accuracy drop (pp, dense minus subnetwork) at the sparse level nearest ``percent``
    remaining, forked at ``k``, of the IMP subnetworks (``variant`` '') or of a random control.
    MissingData when no level is within 5% (relative) of it."""
    def measure(pairs: pd.DataFrame) -> Sample:
        rows = _rows(pairs, k=k, sparse=True, variant=variant)
        densities = 100 * rows.groupby("level").density.mean()
        distance = (densities - percent).abs()
        if distance.min() > TOLERANCE * percent:
            raise MissingData(f"no level near {percent:g}% remaining (the run has "
                              f"{', '.join(f'{d:.1f}' for d in densities)} %)")
        return _sample(rows[rows.level == int(distance.idxmin())], "accuracy_drop", "accuracy drop")
    return measure


_NOTE = ("instability = max over the α grid (the paper: 30 points) of the error on the line between the two "
         "copies minus the mean of their two errors")

LMC_LENET = [
    Claim("lmc_lenet_dense_stable_init", "LMC §3 (LeNet)",
          "Dense LeNet-300-100 on MNIST is stable at initialisation: two copies trained from W0 with "
          "different data orders are linearly connected (test instability below the paper's 2% threshold).",
          STABLE, "pp", "< {v} (stable)", f"test instability of dense copies forked at k = 0, per trial; {_NOTE}",
          instability("test_instability", 0), Rule(AT_MOST), "mnist"),
    Claim("lmc_lenet_dense_stable_every_k", "LMC §3 (LeNet)",
          "Dense LeNet-300-100 stays stable when forked later in training (instability flat near 0 at every k).",
          STABLE, "pp", "< {v} at every k", "test instability of dense copies at every k of the ladder, per trial",
          instability_every_k("test_instability"), Rule(AT_MOST), "mnist"),
    Claim("lmc_lenet_imp_stable_init", "LMC abstract, §4 (LeNet)",
          "IMP subnetworks of LeNet-300-100 rewound to initialisation (k = 0) are stable to SGD noise "
          "(for MNIST, stability occurs at initialisation).",
          STABLE, "pp", "< {v} at k = 0", "test instability of IMP subnetworks rewound to k = 0, at every sparse "
          "level of the run, per trial", instability_every_level("test_instability", 0), Rule(AT_MOST), "mnist"),
    Claim("lmc_lenet_imp_matching_init", "LMC abstract; SLTH Fig. 3 (LeNet at 10.7%)",
          "IMP subnetworks of LeNet-300-100 rewound to initialisation reach the dense network's accuracy "
          "(matching) at 10.7% of weights remaining (SLTH: IMP 98.3 ± 0.1% vs dense 98.0 ± 0.2%).",
          MATCHING_DROP, "pp", "drop ≤ {v}", "dense test accuracy (parent, trained from W0) minus the IMP "
          "subnetwork's (rewound to k = 0, mean of its two copies) at the end of training, per trial",
          drop_near(ANCHOR_PERCENT, 0), Rule(AT_MOST), "mnist"),
    Claim("lmc_lenet_reinit_not_matching", "LMC §4 (random reinit); SLTH Fig. 3 (LeNet at 10.7%)",
          "Randomly reinitialised IMP subnetworks of LeNet-300-100 are not matching at 10.7% of weights remaining "
          "(SLTH: random reinit 97.5 ± 0.3% vs dense 98.0 ± 0.2%).",
          MATCHING_DROP, "pp", "drop > {v}", "dense test accuracy minus the randomly reinitialised IMP "
          "subnetwork's (IMP mask, fresh weights, k = 0, mean of its two copies), per trial",
          drop_near(ANCHOR_PERCENT, 0, "reinit"), Rule(AT_LEAST), "mnist"),
    Claim("lmc_lenet_random_mask_not_matching", "LMC §4 (random pruning; [2nd], LeNet named as an exception)",
          "Randomly pruned subnetworks (random mask at the IMP subnetwork's per-layer densities, rewound to k = 0) "
          "are not matching (the note names LeNet an exception without saying in what: unverified).",
          MATCHING_DROP, "pp", "drop > {v}", "dense test accuracy minus the randomly pruned subnetwork's (k = 0, mean "
          "of its two copies), at the level nearest 10.7% remaining, per trial",
          drop_near(ANCHOR_PERCENT, 0, "random_mask"), Rule(AT_LEAST), "mnist"),
]

LMC_RESNET20 = [
    Claim("lmc_resnet20_dense_unstable_init", "LMC §3 (ResNet-20, CIFAR-10)",
          "Dense ResNet-20 is unstable at initialisation (its error barrier rises towards chance); it becomes "
          "stable around iteration 2000.", STABLE, "pp", "> {v} at k = 0",
          f"test instability of dense copies forked at k = 0, per trial; {_NOTE}",
          instability("test_instability", 0), Rule(AT_LEAST), "cifar10"),
    Claim("lmc_resnet20_imp_unstable_init", "LMC §4 (ResNet-20, standard hyperparameters)",
          "IMP subnetworks of ResNet-20 rewound to initialisation are unstable (and not matching).",
          STABLE, "pp", "> {v} at k = 0", "test instability of IMP subnetworks rewound to k = 0, every sparse level",
          instability_every_level("test_instability", 0), Rule(AT_LEAST), "cifar10"),
    Claim("lmc_resnet20_imp_stable_rewound", "LMC §4 (ResNet-20, standard hyperparameters)",
          "IMP subnetworks of ResNet-20 rewound to iteration 500 are stable (and matching).",
          STABLE, "pp", "< {v} at k = 500",
          "test instability of IMP subnetworks rewound to k = 500, every sparse level",
          instability_every_level("test_instability", 500), Rule(AT_MOST), "cifar10"),
    Claim("lmc_resnet20_random_mask_unstable", "LMC §4 (random pruning, ResNet-20)",
          "Randomly pruned subnetworks are unstable (and not matching) at every rewind point, where IMP "
          "subnetworks rewound to iteration 500 are stable.", STABLE, "pp", "> {v} at k = 500",
          "test instability of randomly pruned subnetworks (random mask, W_500), every level with controls",
          instability_every_level("test_instability", 500, "random_mask"), Rule(AT_LEAST), "cifar10"),
    Claim("lmc_resnet20_reinit_unstable", "LMC §4 (random reinit, ResNet-20)",
          "Randomly reinitialised IMP subnetworks are unstable (and not matching) at every rewind point.",
          STABLE, "pp", "> {v} at k = 500",
          "test instability of randomly reinitialised IMP subnetworks forked at k = 500, every level with controls",
          instability_every_level("test_instability", 500, "reinit"), Rule(AT_LEAST), "cifar10"),
]
