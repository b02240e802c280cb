"""Frankle & Carbin (2019), Figure 5: Conv-2/4/6 on CIFAR-10 (reference/papers.md §1b). A run on
another data set (e.g. Fashion-MNIST) shows its numbers as "not comparable"."""

from __future__ import annotations

from lth.results.claims.lenet import best_accuracy_gain, best_early_stop_speedup
from lth.results.verdicts import EFFECT, Claim, Rule


def _conv_claims(name: str, gain: float, gain_at: str, speedup: float, speedup_at: str) -> list[Claim]:
    recipe = f"lth_{name.lower().replace('-', '')}"
    key = recipe.removeprefix("lth_")
    return [
        Claim(f"{key}_accuracy", "Figure 5", f"Test accuracy up to +{gain} pp ({name} at {gain_at}).",
              gain, "pp", f"up to {{v}} at Pm={gain_at}",
              "test accuracy at early stop, pruned level of the largest mean gain minus dense, per trial",
              best_accuracy_gain("early_stop_test_accuracy"), Rule(EFFECT), "cifar10", experiment=recipe),
        Claim(f"{key}_early_stop", "Figure 5", f"Early stop up to {speedup}× faster ({name} at Pm {speedup_at}).",
              speedup, "x", f"up to {{v}} at Pm={speedup_at}",
              "dense early-stop iteration / a pruned level's (the level of the largest mean factor), tickets, per trial",
              best_early_stop_speedup, Rule(EFFECT, null=1.0), "cifar10", experiment=recipe),
    ]


CONV = [*_conv_claims("Conv-2", 3.4, "4.6%", 3.5, "8.8%"),
        *_conv_claims("Conv-4", 3.5, "11.1%", 3.5, "9.2%"),
        *_conv_claims("Conv-6", 3.3, "26.4%", 2.5, "15.1%")]
