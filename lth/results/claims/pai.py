"""Pruning at initialisation: SNIP's Table 1 (Lee et al. 2019), LeNet-300-100 and LeNet-5-Caffe on
MNIST. The control column holds the method (`lth.experiments.pai`)."""

from __future__ import annotations

import pandas as pd

from lth.results.analysis import nearest_level, per_trial
from lth.results.verdicts import LEVEL, Claim, Rule, Sample


def method_error(method: str, percent: float, column: str = "early_stop_test_accuracy"):
    """Per trial: test error (%) of a pruning-at-init method's networks (control = the method) at
    `percent` of weights remaining."""
    def measure(networks: pd.DataFrame) -> Sample:
        level = nearest_level(networks, percent, control=method)
        errors = 100 * (1 - per_trial(networks, level, column, control=method))
        density = 100 * networks[(networks.level == level) & (networks.control == method)].density.mean()
        return Sample(errors, f"{len(errors)} network{'s' * (len(errors) != 1)} at {density:.2f}% remaining, "
                              f"error {errors.min():.2f}–{errors.max():.2f} %")
    return measure


def _snip_claim(key: str, network: str, reference: float, pruned: int, error: float, method: str = "snip") -> Claim:
    remaining = 100 - pruned
    variant = f" ({method})" if method != "snip" else ""
    return Claim(
        f"snip_{key}_{pruned}" + (f"_{method}" if variant else ""), "SNIP Table 1" + variant,
        f"SNIP, {network} on MNIST (reference error {reference}%): {pruned}% of the weights pruned at "
        f"initialisation, {error}% test error.",
        error, "% error", f"{{v}} at {pruned}% pruned",
        f"test error at early stop (minimum validation loss) of {method} networks at {remaining}% of weights "
        f"remaining, per trial (SNIP's code reports 1 − the best test accuracy over checkpoints)",
        method_error(method, remaining), Rule(LEVEL), "mnist")


# SNIP's Table 1: network key -> (name, reference error %, ((percent pruned, test error %), ...)).
TABLE_1 = {"lenet300": ("LeNet-300-100", 1.7, ((95, 1.6), (98, 2.4))),
           "lenet5_caffe": ("LeNet-5-Caffe", 0.9, ((98, 0.8), (99, 1.1)))}


def snip_claims(network: str, method: str = "snip") -> list[Claim]:
    """SNIP's Table 1 claims for ``network`` (a `TABLE_1` key), judged on ``method``'s networks."""
    name, reference, rows = TABLE_1[network]
    return [_snip_claim(network, name, reference, pruned, error, method) for pruned, error in rows]


SNIP_LENET300 = snip_claims("lenet300")
SNIP_LENET5_CAFFE = snip_claims("lenet5_caffe")


def snip_ablation(variants, network: str = "lenet300") -> list[Claim]:
    """SNIP's Table 1 claims judged on plain SNIP and on each ablation variant's networks
    (`lth.experiments.pai`: control ``snip+<variant>``): does any of SNIP's own choices close the gap?"""
    return [claim for method in ("snip", *(f"snip+{v}" for v in variants)) for claim in snip_claims(network, method)]
