"""Zhou, Lan, Liu & Yosinski 2019, "Deconstructing lottery tickets" (papers.md §10): the claims checkable
on MNIST with the FC 300-100-10 network (§10f), judged on `lth.experiments.deconstruct` runs. The frame
the claims read is the per-network frame (`lth.notebook.Outcome.networks`), controls as in
`lth.results.deconstruct` (criteria, treatments, ``untrained:<criterion>:<weights>``,
``supermask:<weight init>``).

Sources (papers.md §10): the abstract [P] (signs suffice for a reinitialised ticket; the zeros
matter; supermasks far better than chance, 86% on MNIST); everything else is second-hand [2nd]:
the criteria ranking (no numbers), signed ≈ rewind and unsigned below it, untrained large-final
about 40%, the learned supermask's 95.3% (no DWR) and the best variant's 98.0%.

Our tolerances, stated with each claim: "≈" is within ±1 pp of the reference variant (LEVEL rule);
"worse" is a sign test, at 3.5–25% of weights remaining (where LTH's MNIST tickets still match and
pruned variants separate); "about 40%" ±5 pp; a number from the abstract or a note ±2 pp.

The paper profile shortens the protocol (lth/recipes/profiles/paper.gin): 10 of Zhou's 20 levels (rounds
1, 3, ..., 19: two rounds' pruning at once after the first; Zhou prunes 24) at the full 50,000 iterations,
and the supermask 100 of 2000 epochs. The supermask claims depend on that shortening most (their
method text says so); the criteria and treatment claims on the coarser pruning schedule (masks pruned
36% of the survivors at a time instead of 20%); the untrained claims read the best of 10 densities
instead of 20 (their masks are one-shot from the dense network either way).

`DECONSTRUCT_CONV`: the same measures on a Conv net run (lth/recipes/deconstruct_conv2.gin), against what
Zhou et al. say of their CIFAR-10 Conv-2/4/6 (papers.md §3a, §10): the criteria ranking and the mask-1
actions (2nd-hand, stated for every network), the zeros (the evidence is CIFAR-10 Conv: blog Fig. 2),
untrained networks far above chance and the best heuristic supermask's 41% [P abstract]. Every claim's data
set is CIFAR-10, so a Fashion-MNIST run reads "not comparable" (the numbers shown). The learned supermask's
CIFAR-10 numbers are left out: the conv recipe trains none.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from lth.results.analysis import MissingData, per_trial
from lth.results.verdicts import AT_LEAST, LEVEL, SIGN, Claim, Rule, Sample

ACCURACY = "early_stop_test_accuracy"   # trained variants: test accuracy at early stop (min val loss)
UNTRAINED_ACCURACY = "final_test_accuracy"  # untrained (one evaluation) and supermask networks
SAME = 1.0          # pp: "≈" (our tolerance)
READ_OUT = 2.0      # pp: a number from the abstract or a second-hand note
ABOUT = 5.0         # pp: "about 40%"
CHANCE = 10.0       # %: MNIST's 10 classes
SPARSE_BAND = (3.5, 25.0)   # % remaining: where "worse" is judged
MATCH_BAND = (3.5, 100.0)   # % remaining (100 excluded: level 0 is the dense network): where "≈" is judged
SHORTENED_SUPERMASK = ("Zhou et al. train 2000 epochs; the paper profile trains 100 "
                       "(lth/recipes/profiles/paper.gin): this verdict depends on that shortening")


def _levels(networks: pd.DataFrame, control: str, band: tuple[float, float]) -> list[int]:
    """The sparse levels (> 0) of ``control`` whose mean density lies in ``band`` (% remaining, low
    inclusive, high exclusive). MissingData when the control is absent or no level is in the band."""
    rows = networks[(networks.control == control) & (networks.level > 0)]
    if rows.empty:
        raise MissingData(f"no {control} networks in the results")
    percent = 100 * rows.groupby("level").density.mean()
    low, high = band
    levels = [int(level) for level, d in percent.items() if low <= d < high]
    if not levels:
        raise MissingData(f"no {control} level at {low:g}–{high:g}% remaining (the run has "
                          f"{', '.join(f'{d:.1f}' for d in percent)} %)")
    return levels


def gap_every_level(control: str, other: str, band: tuple[float, float], column: str = ACCURACY):
    """Range: per level of ``control`` in ``band``, per trial: ``control``'s accuracy minus ``other``'s
    (pp) at that level. MissingData when no level has both; a level where either has no network
    (e.g. every one flagged failed_to_learn) is left out, and each sample's text names it."""
    def measure(networks: pd.DataFrame) -> list[Sample]:
        found, missing = [], []
        for level in _levels(networks, control, band):
            density = 100 * networks[(networks.level == level) & (networks.control == control)].density.mean()
            try:
                a, b = per_trial(networks, level, column, control), per_trial(networks, level, column, other)
            except MissingData:
                missing.append(f"{density:.1f}%")
                continue
            found.append((density, 100 * (a - b), a, b))
        if not found:
            raise MissingData(f"no level at {band[0]:g}–{band[1]:g}% remaining with both {control} and {other}")
        left_out = f"; left out (a variant missing): {', '.join(missing)}" if missing else ""
        return [Sample(gap.dropna(), f"{density:.1f}% remaining: {control} {100 * a.mean():.2f} % vs {other} "
                                     f"{100 * b.mean():.2f} % (means){left_out}") for density, gap, a, b in found]
    return measure


def accuracy_every_level(control: str, column: str = UNTRAINED_ACCURACY):
    """Range: per sparse level of ``control``, its accuracy (%) per trial."""
    def measure(networks: pd.DataFrame) -> list[Sample]:
        levels = _levels(networks, control, (0.0, 100.0))
        return [Sample(100 * per_trial(networks, level, column, control),
                       f"{100 * networks[(networks.level == level) & (networks.control == control)].density.mean():.1f}"
                       f"% remaining") for level in levels]
    return measure


def best_level_accuracy(control: str, column: str = UNTRAINED_ACCURACY):
    """Per trial: accuracy (%) of ``control`` at the level of its best mean accuracy (the paper
    reports each supermask at its best sparsity)."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = networks[networks.control == control]
        if rows.empty:
            raise MissingData(f"no {control} networks in the results")
        means = rows.groupby("level").agg(d=("density", "mean"), acc=(column, "mean"))
        level = means.acc.idxmax()
        at = per_trial(networks, level, column, control)
        return Sample(100 * at, f"best mean at {100 * means.d[level]:.1f}% remaining of "
                                f"{len(means)} densities")
    return measure


def accuracy(control: str, column: str = UNTRAINED_ACCURACY):
    """Per trial: ``control``'s accuracy (%), with its mean density."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = networks[networks.control == control]
        if rows.empty:
            raise MissingData(f"no {control} networks in the results")
        values = rows.groupby("trial")[column].mean()
        return Sample(100 * values, f"mask density {100 * rows.density.mean():.1f}% "
                                    f"({100 * rows.density.min():.1f}–{100 * rows.density.max():.1f}%)")
    return measure


def _same(control: str, what: str) -> Claim:
    return Claim(f"zhou_criterion_{control}", "Zhou et al. §3 (mask criteria) [2nd]",
                 f"The {what} criterion (rewound to w_0, pruned weights zero) does about as well as large final "
                 "(IMP) [2nd-hand: large_final, magnitude_increase, large_init_large_final, movement ≈ LT; no numbers]",
                 0.0, "pp", "≈ {v} (as large final)",
                 f"{control} minus large_final, test accuracy at early stop, per trial, at every level at "
                 f"{MATCH_BAND[0]:g}–100% remaining; ≈ = within ±{SAME:g} pp (ours)",
                 gap_every_level(control, "large_final", MATCH_BAND), Rule(LEVEL, spread=SAME), "mnist")


def _worse(control: str, reference: str, figure: str, quote: str, what: str) -> Claim:
    return Claim(f"zhou_{control}_below_{reference}", figure, quote, 0.0, "pp", "> {v} (worse than " + what + ")",
                 f"{reference} minus {control}, test accuracy at early stop, per trial, at every level at "
                 f"{SPARSE_BAND[0]:g}–{SPARSE_BAND[1]:g}% remaining",
                 gap_every_level(reference, control, SPARSE_BAND), Rule(SIGN), "mnist")


_RANKING = ("Zhou et al. §3 [2nd-hand]: small-magnitude and random criteria do worse than large final "
            "(no numbers)")
_UNSIGNED = ("Zhou et al. §4 [2nd-hand]: reinitialised or reshuffled kept weights without their original "
             "signs fall below rewinding (at high sparsity)")

DECONSTRUCT = [
    _same("magnitude_increase", "magnitude increase |w_f| − |w_i|"),
    _same("movement", "movement |w_f − w_i|"),
    _same("large_init_large_final", "large init & large final"),
    _worse("small_final", "large_final", "Zhou et al. §3 (mask criteria) [2nd]", _RANKING, "large final"),
    _worse("random", "large_final", "Zhou et al. §3 (mask criteria) [2nd]", _RANKING, "large final"),
    Claim("zhou_signed_constant_as_rewind", "Zhou et al. abstract, §4 (mask-1 actions)",
          "Signs are all you need: kept weights set to sign(w_0) times the layer's std train about as well as "
          "rewinding them to w_0 [P abstract; ≈ rewind: 2nd-hand]",
          0.0, "pp", "≈ {v} (as rewind)",
          f"signed_constant minus large_final (rewound), same mask, test accuracy at early stop, per trial, at every "
          f"level at {MATCH_BAND[0]:g}–100% remaining; ≈ = within ±{SAME:g} pp (ours)",
          gap_every_level("signed_constant", "large_final", MATCH_BAND), Rule(LEVEL, spread=SAME), "mnist"),
    _worse("reinit", "large_final", "Zhou et al. §4 (mask-1 actions) [2nd]", _UNSIGNED, "rewind"),
    _worse("reshuffle", "large_final", "Zhou et al. §4 (mask-1 actions) [2nd]", _UNSIGNED, "rewind"),
    Claim("zhou_zeros_matter", "Zhou et al. abstract; blog Fig. 2 (mask-0 actions)",
          "The zeros matter: freezing the pruned weights at their initial values instead of zero hurts "
          "(clear on CIFAR-10 Conv nets; the FC outcome is NOT FOUND)",
          0.0, "pp", "> {v} (zero better than frozen at w_0)",
          f"large_final (pruned weights zero) minus frozen_init, test accuracy at early stop, per trial, at every "
          f"level at {SPARSE_BAND[0]:g}–{SPARSE_BAND[1]:g}% remaining",
          gap_every_level("large_final", "frozen_init", SPARSE_BAND), Rule(SIGN), "cifar10"),
    Claim("zhou_untrained_random_chance", "Zhou et al. blog Fig. 1 (supermasks)",
          "An untrained network under a random mask is at chance (10% on MNIST)",
          CHANCE, "%", "{v} (chance)",
          f"untrained w_0 under a one-shot random mask, test accuracy per trial, at every level; ±{READ_OUT:g} pp",
          accuracy_every_level("untrained:random:init"), Rule(LEVEL, spread=READ_OUT), "mnist"),
    Claim("zhou_untrained_large_final_above_chance", "Zhou et al. abstract (supermasks)",
          "Masks applied to an untrained, randomly initialised network give performance far better than chance",
          CHANCE, "%", "> {v} (chance)",
          "untrained w_0 under the one-shot large-final mask (scored on the trained dense network), test accuracy "
          "per trial at the level of the best mean",
          best_level_accuracy("untrained:large_final:init"), Rule(AT_LEAST), "mnist"),
    Claim("zhou_untrained_large_final_40", "Zhou et al. §5 (supermasks) [2nd]",
          "Untrained FC on MNIST under large-final masks: about 40% test accuracy [2nd-hand; sparsity not given]",
          40.0, "%", "about {v}",
          f"untrained w_0 under the one-shot large-final mask, test accuracy per trial at the level of the best mean; "
          f"about = ±{ABOUT:g} pp (ours)",
          best_level_accuracy("untrained:large_final:init"), Rule(LEVEL, spread=ABOUT), "mnist"),
    Claim("zhou_untrained_best_86", "Zhou et al. abstract (supermasks)",
          "The best heuristic supermask on an untrained network reaches 86% on MNIST [P; the mask "
          "large_final_same_sign over signed-constant weights: 2nd-hand; sparsity NOT FOUND]",
          86.0, "%", "{v} (best sparsity)",
          f"untrained signed constant sign(w_0)·std under the one-shot large_final_same_sign mask, test accuracy per "
          f"trial at the level of the best mean; ±{READ_OUT:g} pp",
          best_level_accuracy("untrained:large_final_same_sign:signed_constant"), Rule(LEVEL, spread=READ_OUT),
          "mnist"),
    Claim("zhou_supermask_mnist", "Zhou et al. §5.2 (learned supermask) [2nd]",
          "A learned (Bernoulli) supermask over the frozen Glorot-normal FC 300-100-10 reaches 95.3% on MNIST "
          "(no weight rescaling) [2nd-hand]",
          95.3, "%", "{v} (learned supermask, no DWR)",
          f"learned Bernoulli supermask over frozen Glorot-normal weights, test accuracy with a sampled mask at the end "
          f"of training, per trial; ±{SAME:g} pp; {SHORTENED_SUPERMASK}",
          accuracy("supermask:glorot_normal"), Rule(LEVEL, spread=SAME), "mnist"),
    Claim("zhou_supermask_best_variant", "Zhou et al. (learned supermask) [2nd]",
          "The best learned-supermask variant reaches 98.0% on MNIST FC [2nd-hand; the variant is not named]",
          98.0, "%", "{v} (best variant)",
          f"learned Bernoulli supermask over frozen Glorot signed-constant weights, test accuracy at the end, per "
          f"trial; {SHORTENED_SUPERMASK}",
          accuracy("supermask:glorot_signed_constant"), Rule(LEVEL, spread=SAME), "mnist",
          not_comparable="the source does not name the variant behind 98.0% (likely signed constant and/or dynamic "
                         "weight rescaling, which is not implemented here): shown, not judged"),
]


# ---- Conv nets (Zhou et al.'s Conv-2/4/6 on CIFAR-10) --------------------------------------------
CIFAR_BEST_UNTRAINED = 41.0  # %: the best heuristic supermask on an untrained CIFAR-10 Conv net [P abstract]
# The claims above that Zhou et al. state for every network (2nd-hand: the criteria ranking, the mask-1 actions),
# judged on a Conv net's run.
_CONV_AS_FC = ("zhou_criterion_magnitude_increase", "zhou_criterion_movement", "zhou_criterion_large_init_large_final",
               "zhou_small_final_below_large_final", "zhou_random_below_large_final", "zhou_signed_constant_as_rewind",
               "zhou_reinit_below_large_final", "zhou_reshuffle_below_large_final")


def _conv(claim: Claim, **changes) -> Claim:
    """``claim`` read on a Conv net: its id ``zhou_conv_*``, its figure marked Conv, data set CIFAR-10."""
    fields = dict(id=claim.id.replace("zhou_", "zhou_conv_", 1), figure=f"{claim.figure} [Conv nets]", dataset="cifar10")
    return dataclasses.replace(claim, **{**fields, **changes})


_BY_ID = {c.id: c for c in DECONSTRUCT}
DECONSTRUCT_CONV = [
    *(_conv(_BY_ID[id]) for id in _CONV_AS_FC),
    _conv(_BY_ID["zhou_zeros_matter"],
          quote="The zeros matter: freezing the pruned weights of CIFAR-10 Conv nets at their initial values instead "
                "of zero hurts far more than zeroing them [P abstract; uber-blog Fig. 2 caption]"),
    _conv(_BY_ID["zhou_untrained_large_final_above_chance"]),  # the abstract: masks on untrained networks
    _conv(_BY_ID["zhou_untrained_best_86"], id="zhou_conv_untrained_best_41",
          quote="The best heuristic supermask on an untrained CIFAR-10 Conv net reaches 41% [P abstract; the Conv net, "
                "mask (large_final_same_sign over signed-constant weights: 2nd-hand) and sparsity NOT FOUND]",
          paper_value=CIFAR_BEST_UNTRAINED),
]
