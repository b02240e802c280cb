"""Strong lottery tickets (`lth.experiments.strong`: experiment = the network, control = the method
or variant): edge-popup (Ramanujan et al.), Zhou et al.'s supermask, Pensia et al. Experiment 2,
Gem-Miner's sanity checks (Rare Gems Table 2) and train_ticket's README."""

from __future__ import annotations

import dataclasses

import pandas as pd

from lth.results.analysis import MissingData
from lth.results.strong import GATES_OFF, GEM_BEFORE_FINETUNE
from lth.results.verdicts import AT_LEAST, EFFECT, LEVEL, MAX, SIGN, Claim, Rule, Sample

FINAL = "final_test_accuracy"
READ_OUT = 2.0  # pp: the precision of a number read off a paper's figure


def _rows(networks: pd.DataFrame, network: str | None, control: str) -> pd.DataFrame:
    """The networks of one control, of one network (None: of whichever the run trained)."""
    rows = networks[(networks.control == control) & ((networks.experiment == network) if network else True)]
    if rows.empty:
        raise MissingData(f"no {control} networks{f' of {network}' if network else ''} in the results")
    return rows


def _trials(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows.groupby("trial")[column].mean()


def best_density_outside(network: str, control: str, low: float, high: float, column: str = FINAL):
    """Per trial: how far (pp of density) the density of that trial's best accuracy lies outside
    [low, high] % kept."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, network, control)
        if rows.level.nunique() < 3:
            raise MissingData(f"{rows.level.nunique()} densities of {network}: too few to locate the best")
        best = rows.loc[rows.groupby("trial")[column].idxmax()]
        k = 100 * best.density
        outside = [max(0.0, low - d, d - high) for d in k]
        return Sample(outside, f"best k per trial {', '.join(f'{d:g}' for d in k)} % of "
                               f"{', '.join(f'{100 * d:g}' for d in sorted(rows.density.unique()))} %")
    return measure


def best_level_accuracy(network: str, control: str, minus: str | None = None, column: str = FINAL):
    """Per trial: accuracy (%) at the density of the best mean accuracy, or its gap (pp) to the same
    trial's mean of control `minus`."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, network, control)
        means = rows.groupby("level").agg(d=("density", "mean"), acc=(column, "mean"))
        level = means.acc.idxmax()
        at = _trials(rows[rows.level == level], column)
        where = f"best mean at {100 * means.d[level]:.1f}% kept: {100 * at.mean():.2f} %"
        if minus is None:
            return Sample(100 * at, where)
        other = _trials(_rows(networks, network, minus), column)
        return Sample(100 * (at - other), f"{where} vs {minus} {100 * other.mean():.2f} % (means)")
    return measure


def accuracy_at_weights(network: str, control: str, weights: float, factor: float = 1.3, column: str = FINAL):
    """Per trial: accuracy (%) at the level whose remaining weights (column `remaining_weights`) are
    nearest `weights`, if within `factor` of it."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, network, control)
        levels = rows.groupby("level")["remaining_weights"].mean()
        ratio = (levels / weights).apply(lambda r: max(r, 1 / r))
        if ratio.min() > factor:
            raise MissingData(f"no {control} level of {network} within {factor}x of {weights:,.0f} remaining weights")
        level = ratio.idxmin()
        return Sample(100 * _trials(rows[rows.level == level], column), f"{levels[level]:,.0f} weights remaining")
    return measure


def level_accuracy(control: str, network: str | None = None, column: str = FINAL):
    """Per trial: the accuracy (%) of `control`'s networks (one density)."""
    def measure(networks: pd.DataFrame) -> Sample:
        rows = _rows(networks, network, control)
        return Sample(100 * _trials(rows, column), f"{control} at {100 * rows.density.mean():.2f}% kept")
    return measure


def control_gap(network: str | None, control: str, other: str, column: str = FINAL):
    """Per trial: accuracy of `control` minus that of `other`, in pp."""
    def measure(networks: pd.DataFrame) -> Sample:
        a, b = _trials(_rows(networks, network, control), column), _trials(_rows(networks, network, other), column)
        return Sample(100 * (a - b), f"{control} {100 * a.mean():.2f} % vs {other} {100 * b.mean():.2f} % (means)")
    return measure


def control_ratio(network: str, control: str, other: str, column: str):
    """Per trial: `column` of `control` over that of `other` (e.g. epochs to the best accuracy)."""
    def measure(networks: pd.DataFrame) -> Sample:
        a, b = _trials(_rows(networks, network, control), column), _trials(_rows(networks, network, other), column)
        return Sample(a / b.where(b > 0), f"{control} {a.mean():.1f} vs {other} {b.mean():.1f} epochs (means)")
    return measure


_EP_K = ("Ramanujan et al. (edge-popup): the best accuracy occurs when k ∈ [30, 70] (% of weights kept) "
         "[2nd-hand quote; CIFAR-10 Conv nets]")
STRONG_EDGEPOPUP = [
    Claim("ep_best_k_lenet300", "edge-popup §4", _EP_K, 0.0, "pp of density", "best k inside [30, 70]% ({v} outside)",
          "LeNet-300-100, signed Kaiming constant: density of each trial's best test accuracy, pp outside [30, 70]%",
          best_density_outside("lenet300", "signed_constant", 30, 70), Rule(LEVEL), "cifar10",
          not_comparable="the paper's claim is about Conv nets on CIFAR-10; this is LeNet-300-100"),
    Claim("ep_best_k_conv4", "edge-popup §4", _EP_K, 0.0, "pp of density", "best k inside [30, 70]% ({v} outside)",
          "Conv-4, signed Kaiming constant: density of each trial's best test accuracy, pp outside [30, 70]%",
          best_density_outside("conv4", "signed_constant", 30, 70), Rule(LEVEL), "cifar10"),
    Claim("ep_conv4_vs_dense", "edge-popup Fig. (read-out)",
          "Conv-4 on CIFAR-10: edge-popup at its best k ~86% vs the trained dense network ~86.5% [2nd-hand read-out]",
          -0.5, "pp", "{v} (CIFAR-10)",
          "Conv-4, signed Kaiming constant, best density minus the dense trained network, test accuracy per trial",
          best_level_accuracy("conv4", "signed_constant", minus="dense"), Rule(LEVEL, spread=READ_OUT), "cifar10"),
    Claim("ep_lenet300_supermask", "Zhou et al. (supermask)",
          "Zhou et al.: a learned supermask on the frozen MNIST FC 300-100-10 reaches 95.3% [2nd-hand]",
          95.3, "%", "{v} (learned supermask, no DWR)",
          "LeNet-300-100 edge-popup, signed Kaiming constant, best density, test accuracy per trial",
          best_level_accuracy("lenet300", "signed_constant"), Rule(LEVEL), "mnist",
          not_comparable="judged with edge-popup, not Zhou et al.'s learned (Bernoulli) supermask: another algorithm; "
                         "Zhou et al.'s own method is judged in notebooks/deconstruct_tickets.py (claim "
                         "zhou_supermask_mnist)"),
]


# Pensia et al.'s Experiment 2 figures (acnagle/optimal-lottery-tickets pruning/figures/*.png), read by eye
# (±2 pp; the reference notes on the papers §5): network -> (variant, remaining weights) -> test accuracy %.
# Each curve is the maximum over five runs. The 16 red/wide points are judged; "dense" (the target
# trained normally) is drawn only.
PENSIA_READ_OUTS = {
    "fc2": {("red", 500_000): 97, ("red", 200_000): 96, ("red", 100_000): 89, ("red", 50_000): 72,
            ("red", 20_000): 39, ("wide", 200_000): 97, ("wide", 100_000): 95, ("dense", 397_000): 98.5},
    "fc4": {("red", 450_000): 97, ("red", 225_000): 93, ("red", 90_000): 73, ("wide", 90_000): 97,
            ("dense", 897_000): 98.5},
    "lenet5": {("red", 75_000): 97, ("red", 30_000): 88, ("red", 15_000): 57, ("wide", 30_000): 92,
               ("wide", 15_000): 83, ("dense", 58_920): 98.4},
}
PENSIA_CAVEAT = ("depends on the schedule: the paper trains 30 to 150 epochs (which one each figure used is not "
                 "stated), the paper profile 5 epochs; fewer epochs lower the accuracy most at the sparsest points")


def _pensia_claim(network: str, variant: str, weights: int, accuracy: float) -> Claim:
    short = f"{weights // 1000}k"
    return Claim(f"pensia_{network}_{variant}_{short}", "Pensia Exp. 2 figure",
                 f"Pensia et al. ({network}, {variant} network pruned by edge-popup): ~{accuracy:g}% test accuracy at "
                 f"~{short} remaining weights, the best of five runs [figure read-out, ±2 pp]",
                 accuracy, "%", f"~{{v}} ± 2 at {short} weights (max of 5 runs)",
                 f"{network} {variant}: test accuracy at the end per trial, at the density nearest {short} remaining weights",
                 accuracy_at_weights(network, variant, weights), Rule(LEVEL, spread=READ_OUT), "mnist",
                 statistic=MAX, caveat=PENSIA_CAVEAT)


STRONG_PENSIA = [_pensia_claim(network, variant, weights, accuracy)
                 for network, points in PENSIA_READ_OUTS.items()
                 for (variant, weights), accuracy in points.items() if variant != "dense"]

GM_CAVEAT = ("depends on the schedule: the paper profile mines 20 and fine-tunes 20 epochs (the paper 150 + 150), "
             "freezing 29 times as the paper does, every 2/3 epoch; fine-tuning in bf16")
_GM_TABLE_2 = ("Rare Gems Table 2, ResNet-20 on CIFAR-10 at 3.72% kept: Gem-Miner fine-tuned 83.4% vs {what} "
               "{value}%: Gem-Miner passes the sanity checks")
STRONG_GEM_MINER = [
    Claim("gem_shuffle", "Rare Gems Table 2", _GM_TABLE_2.format(what="layerwise shuffled mask", value=78.73),
          4.67, "pp", "{v} (CIFAR-10)", "Gem-Miner minus layerwise shuffled mask, both fine-tuned, test accuracy per trial",
          control_gap(None, "gem_miner", "shuffle"), Rule(EFFECT), "cifar10", caveat=GM_CAVEAT),
    Claim("gem_reinit", "Rare Gems Table 2", _GM_TABLE_2.format(what="reinitialised weights", value=78.6),
          4.8, "pp", "{v} (CIFAR-10)", "Gem-Miner minus reinitialised weights, both fine-tuned, test accuracy per trial",
          control_gap(None, "gem_miner", "reinit"), Rule(EFFECT), "cifar10", caveat=GM_CAVEAT),
    Claim("gem_invert", "Rare Gems §5 (sanity checks)",
          "Score inversion (keeping the lowest scores) loses accuracy: the scores carry information (no number given)",
          0.0, "pp", "> {v}", "Gem-Miner minus inverted scores, both fine-tuned, test accuracy per trial",
          control_gap(None, "gem_miner", "invert"), Rule(SIGN), "cifar10", caveat=GM_CAVEAT),
    Claim("gem_before_finetune", "Rare Gems Table 3, Fig. 6",
          "Gem-Miner's mask is accurate before any weight training (a 'rare gem'), far above chance (10%): "
          "ResNet-20 on CIFAR-10 at 0.59% kept reaches 45.30% before fine-tuning (at 3.72% kept, a denser "
          "mask, no number is given)",
          45.3, "%", "≥ {v} before fine-tuning (at 0.59% kept)",
          "Gem-Miner's mined mask on the frozen random weights, no weight trained (BatchNorm statistics recomputed "
          "under it), test accuracy at the end of mining per trial",
          level_accuracy(GEM_BEFORE_FINETUNE), Rule(AT_LEAST), "cifar10", caveat=GM_CAVEAT),
]

MIN_GATES_OFF = 0.05  # ours: a gated network "gates" when at least 5% of the gates of each gated layer are off


def gates_summary(networks: pd.DataFrame, network: str, control: str = "gated") -> tuple[str, str]:
    """(where, why not): the fraction of gates off per gated layer (mean over trials, from the
    ``gates_off:<layer>`` columns of `lth.results.strong.with_gates_off`), in words, and why the
    gated networks do not gate (some layer below `MIN_GATES_OFF`; empty when they do)."""
    rows = _rows(networks, network, control)
    columns = [c for c in rows.columns if c.startswith(GATES_OFF) and rows[c].notna().any()]
    if not columns:
        raise MissingData(f"no gates-off fractions of {network} (merge lth.results.strong.with_gates_off)")
    off = {c[len(GATES_OFF):]: float(rows[c].mean()) for c in columns}
    where = "gates off " + ", ".join(f"{layer} {100 * f:.2f}%" for layer, f in off.items())
    closed = min(off.values())
    why = (f"the gates do not gate (at most {100 * closed:.2f}% off in a gated layer, under {100 * MIN_GATES_OFF:g}%): "
           "the gated network is the frozen random layer itself" if closed < MIN_GATES_OFF else "")
    return where, why


def when_gating(network: str, measure):
    """`measure`, judged only when the gated networks of `network` gate (`gates_summary`);
    its sample says the gates-off fraction per layer either way."""
    def gated(networks: pd.DataFrame) -> Sample:
        sample = measure(networks)
        where, why = gates_summary(networks, network)
        return dataclasses.replace(sample, where=f"{sample.where}; {where}", inconclusive=why)
    return gated


TT_CAVEAT = ("depends on the schedule: train_ticket trains up to 300 epochs with warm restarts and stops after 10 "
             "epochs without a better validation accuracy; the paper profile trains a fixed number of epochs "
             "(cosine), and 'converges in N epochs' is read with the same patience off our per-epoch curves")
_TT = "train_ticket README: baseline 98.77% in 38 epochs vs gated ticket 98.37% in 100 epochs (network not named)"
STRONG_TRAIN_TICKET = [
    *(Claim(f"ticket_gap_{net}", "train_ticket README", _TT, 0.4, "pp", "{v} (baseline ahead)",
            f"{net}: baseline minus gated, test accuracy at the end of training, per trial",
            when_gating(net, control_gap(net, "baseline", "gated")), Rule(EFFECT), "mnist", caveat=TT_CAVEAT)
      for net in ("mlp", "cnn")),
    *(Claim(f"ticket_slower_{net}", "train_ticket README", _TT, 100 / 38, "x", "{v} (100 vs 38 epochs)",
            f"{net}: epochs to the best validation accuracy under patience 10, gated over baseline, per trial",
            when_gating(net, control_ratio(net, "gated", "baseline", "epochs_to_best_patience")),
            Rule(EFFECT, null=1.0), "mnist", caveat=TT_CAVEAT)
      for net in ("mlp", "cnn")),
]
