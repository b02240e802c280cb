"""Renda, Frankle & Carbin 2020 (learning-rate rewinding): how IMP's retraining compares, judged on
the rewinding notebook's runs (`lth.notebook.run_rewinding`: one experiment per method, told apart
by the `experiment` column = the method name, imp_init / imp_weights / imp_lr / imp_finetune).

Renda et al.'s networks are ResNet-20/56/110 and VGG-16 on CIFAR-10, ResNet-50 on ImageNet and GNMT;
ours are LeNet-300-100 on MNIST and Conv-2 on Fashion-MNIST, so every verdict here is "not
comparable" (the number is shown). The claims are the abstract's orderings, which hold at every
sparsity they test: each is a range claim over every pruned level of our runs."""

from __future__ import annotations

import pandas as pd

from lth.results.analysis import MissingData, per_trial
from lth.results.verdicts import AT_LEAST, Claim, Rule, Sample

_FIGURE = "Renda et al. 2020"
COLUMN = "final_test_accuracy"  # Renda et al. report the accuracy at the end of retraining


def method_gap(better: str, worse: str, column: str = COLUMN):
    """Per pruned level, per trial: `column` of method ``better`` minus method ``worse`` (pp), trials
    paired (same initialisation and data order). MissingData where either method is absent."""
    def measure(networks: pd.DataFrame) -> list[Sample]:
        a, b = networks[networks.experiment == better], networks[networks.experiment == worse]
        if a.empty or b.empty:
            raise MissingData(f"needs both {better} and {worse} runs")
        samples = []
        for level in sorted(set(a.level) & set(b.level) - {0}):
            gap = (100 * (per_trial(a, level, column) - per_trial(b, level, column))).dropna()
            density = 100 * a[a.level == level].density.mean()
            samples.append(Sample(gap, f"{density:.1f}% of weights remaining, {len(gap)} paired trials, "
                                       f"{better} − {worse} {gap.min():+.2f} to {gap.max():+.2f} pp"))
        if not samples:
            raise MissingData(f"no pruned level shared by {better} and {worse}")
        return samples
    return measure


def _claim(key: str, quote: str, better: str, worse: str, what: str) -> Claim:
    return Claim(
        f"renda_{key}", _FIGURE, quote, 0.0, "pp", "{v} or more at every sparsity (CIFAR-10, ImageNet)",
        f"final test accuracy of {what}, per trial, paired, at each pruned level (range claim: a miss at any "
        "level is a miss). 'Matches' cannot be told from 'slightly worse' at our n, so the rule asks for "
        "an interval above 0 (beats) and a tie reads inconclusive",
        method_gap(better, worse), Rule(AT_LEAST), "cifar10")


RENDA_REWINDING = [
    _claim("lr_vs_weights", "Learning-rate rewinding matches or outperforms weight rewinding (abstract).",
           "imp_lr", "imp_weights", "learning-rate rewinding minus weight rewinding"),
    _claim("weights_vs_finetune", "Weight rewinding outperforms fine-tuning (abstract).",
           "imp_weights", "imp_finetune", "weight rewinding minus fine-tuning"),
    _claim("lr_vs_finetune", "Learning-rate rewinding outperforms fine-tuning (abstract).",
           "imp_lr", "imp_finetune", "learning-rate rewinding minus fine-tuning"),
]
