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


def _snip_claim(key: str, network: str, reference: float, pruned: int, error: float) -> Claim:
    remaining = 100 - pruned
    return Claim(
        f"snip_{key}_{pruned}", "SNIP Table 1",
        f"SNIP, {network} on MNIST (reference error {reference}%): {pruned}% of the weights pruned at "
        f"initialisation, {error}% test error.",
        error, "% error", f"{{v}} at {pruned}% pruned",
        f"test error at early stop (minimum validation loss) of SNIP networks at {remaining}% of weights "
        f"remaining, per trial (SNIP's code reports 1 − the best test accuracy over checkpoints)",
        method_error("snip", remaining), Rule(LEVEL), "mnist")


SNIP_LENET300 = [_snip_claim("lenet300", "LeNet-300-100", 1.7, 95, 1.6),
                 _snip_claim("lenet300", "LeNet-300-100", 1.7, 98, 2.4)]
SNIP_LENET5_CAFFE = [_snip_claim("lenet5_caffe", "LeNet-5-Caffe", 0.9, 98, 0.8),
                     _snip_claim("lenet5_caffe", "LeNet-5-Caffe", 0.9, 99, 1.1)]
