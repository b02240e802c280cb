"""How a claim is judged: the statistics (a 95% t-interval over trials), the rules, and the claims
table. The claims themselves live beside their rules in `lth.results.claims` (one module per paper
family).

A claim's `measure` takes a per-network frame (`lth.results.analysis.per_network`, one or several
experiments told apart by its `experiment` column) and returns a `Sample`: our values in the claim's
unit, one per trial (or run), and where they were read. A "range" claim (the effect holds at every
density of a range) returns one Sample per density. `MissingData` means the results cannot answer
the claim (a density the run never reached): the verdict "not run".

The standard (issue 13), in the order it is applied:
  not run         the experiment did not run, or its results cannot answer the claim;
  not judged      the smoke profile: it exercises code and measures nothing (the number is shown);
  not comparable  our data set, architecture or algorithm is not the paper's (the number is shown);
  inconclusive    n < 3 trials, or an interval that holds both the paper's value and its negation,
                  or a sample that cannot test the claim whatever its values (`Sample.inconclusive`:
                  e.g. gates that never close, so nothing is gated);
  reproduced / not reproduced   by the claim's `Rule`, on the 95% t-interval of the mean, or, where
                  the paper reports the best of its runs (`Claim.statistic` = "max"), on the maximum
                  over our trials as a point (the mean and its interval are still reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special  # scipy.stats takes seconds to import: every notebook kernel would pay them

from lth.results.analysis import MissingData, combine

BASE_COLUMNS = ["figure", "claim", "paper", "ours", "verdict", "detail"]  # the claims.csv of old
COLUMNS = BASE_COLUMNS + ["n", "mean", "ci_low", "ci_high", "interval", "paper_value", "paper_spread", "rule"]
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_COMPARABLE, NOT_JUDGED, NOT_RUN = "not comparable", "not judged", "not run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_COMPARABLE, NOT_JUDGED, NOT_RUN)
MIN_TRIALS = 3
CONFIDENCE = 0.95
INTERVAL = "95% t-interval over trials"
MEAN, MAX = "mean", "max"  # the statistic a claim is judged on (Claim.statistic)
MAX_INTERVAL = "judged: the maximum over trials (the paper's statistic), as a point; ci: 95% t-interval of the mean"
UNJUDGED_PROFILES = ("smoke",)


# ---- statistics --------------------------------------------------------------------------------

def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean, mean ± t_{(1+c)/2, n-1} · s / √n
    (s: the sample standard deviation, ddof = 1). n = 1 gives (value, nan, nan). ValueError for
    no values, a non-finite value, or a confidence outside (0, 1)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to make an interval of")
    if not np.isfinite(values).all():
        raise ValueError(f"values must be finite, got {values.tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r} is not in (0, 1)")
    mean = float(values.mean())
    if values.size == 1:
        return mean, math.nan, math.nan
    half = float(special.stdtrit(values.size - 1, (1 + confidence) / 2) * values.std(ddof=1) / math.sqrt(values.size))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Sample:
    """Our measurement for one claim: `values` in the claim's unit, one per trial (or run); `where`
    says where it was read (a density, the levels compared), in words. `inconclusive`: why these
    values cannot test the claim whatever they are (the verdict is then "inconclusive", the
    number still shown), e.g. "no gate closed"; empty when they can."""
    values: tuple[float, ...]
    where: str = ""
    inconclusive: str = ""

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(float(v) for v in self.values if math.isfinite(v)))
        if not self.values:
            raise MissingData(f"no finite value ({self.where})" if self.where else "no finite value")

    @property
    def n(self) -> int:
        return len(self.values)

    def interval(self) -> tuple[float, float, float]:
        return t_interval(self.values)


# ---- rules -------------------------------------------------------------------------------------

LEVEL, AT_LEAST, AT_MOST, EFFECT, SIGN = "level", "at least", "at most", "effect", "sign"
# The smallest difference that matters in each unit: a level claim's interval reaching past the paper's
# value by more than this (or the claim's spread) on both sides cannot test it. Ratios ("x"): 5% of the value.
RESOLUTION = {"%": 1.0, "pp": 1.0, "pp of density": 1.0, "% error": 0.1}
RELATIVE_RESOLUTION = {"x": 0.05}


def resolution(unit: str, value: float) -> float:
    """The smallest meaningful difference around ``value`` in ``unit`` (>= 0; 0 for units not listed)."""
    return RESOLUTION.get(unit, RELATIVE_RESOLUTION.get(unit, 0.0) * abs(value))


@dataclass(frozen=True)
class Rule:
    """How the interval [low, high] of our mean is compared with the paper's value v ± spread.

    - ``level``: two-sided (absolute levels, figure read-outs). Not reproduced if the interval misses
      [v − spread, v + spread]; inconclusive if it reaches past v ± max(spread, resolution) on both
      sides (it holds the paper's value and misses either way: too wide to test it; ``resolution``
      is the unit's smallest meaningful difference, `resolution`); else reproduced.
    - ``at least`` / ``at most``: reproduced if the interval lies above v (below, for at most); not
      reproduced if it lies below (above); else inconclusive.
    - ``effect``: a two-sided read-out of an effect whose absence is `null` (0 pp, 1x).
      Not reproduced if the interval misses v ± spread; inconclusive if it also holds `null`;
      else reproduced.
    - ``sign``: an effect with no number: reproduced if the interval lies beyond `null` on the side
      of `direction` (+1: above, −1: below), not reproduced if it lies on the other side, else
      inconclusive."""
    kind: str
    spread: float = 0.0
    null: float = 0.0
    direction: int = 1

    def __post_init__(self):
        if self.kind not in (LEVEL, AT_LEAST, AT_MOST, EFFECT, SIGN):
            raise ValueError(f"rule kind {self.kind!r}: valid kinds are level, at least, at most, effect, sign")
        if self.spread < 0 or self.direction not in (1, -1):
            raise ValueError(f"spread {self.spread!r} must be >= 0 and direction {self.direction!r} +1 or -1")

    def judge(self, value: float, low: float, high: float, resolution: float = 0.0) -> str:
        """The verdict for an interval [low, high] (no n check here: see `judge`). Comparisons
        allow a relative 1e-9, so a zero-width interval at the paper's value (equal trials, with
        floating-point error) meets it. ``resolution`` (>= 0, the claim's unit): see ``level``."""
        slack = 1e-9 * max(1.0, abs(value), abs(low), abs(high))
        if self.kind == LEVEL:
            if low - slack > value + self.spread or high + slack < value - self.spread:
                return NOT_REPRODUCED
            tolerance = max(self.spread, resolution)
            return INCONCLUSIVE if low < value - tolerance - slack and high > value + tolerance + slack else REPRODUCED
        low, high = low - slack, high + slack
        if self.kind in (AT_LEAST, AT_MOST):
            sign = 1 if self.kind == AT_LEAST else -1
            lo, hi = sorted((sign * low, sign * high))
            return REPRODUCED if lo > sign * value else NOT_REPRODUCED if hi < sign * value else INCONCLUSIVE
        if self.kind == EFFECT:
            if high < value - self.spread or low > value + self.spread:
                return NOT_REPRODUCED
            return INCONCLUSIVE if low <= self.null <= high else REPRODUCED
        lo, hi = sorted((self.direction * (low - self.null), self.direction * (high - self.null)))
        return REPRODUCED if lo > 0 else NOT_REPRODUCED if hi < 0 else INCONCLUSIVE

    def text(self, value: float, unit: str) -> str:
        """The rule in words, for the claims table."""
        v = format_value(value, unit)
        band = f"{v} ± {format_value(self.spread, unit, signed=False)}" if self.spread else v
        null = format_value(self.null, unit)
        tail = f"; inconclusive if n < {MIN_TRIALS}"
        if self.kind == LEVEL:
            wide = format_value(max(self.spread, resolution(unit, value)), unit, signed=False)
            return (f"two-sided: not reproduced if the interval misses {band}; inconclusive if it reaches "
                    f"past {v} ± {wide} on both sides, else reproduced{tail}")
        if self.kind in (AT_LEAST, AT_MOST):
            side, other = ("above", "below") if self.kind == AT_LEAST else ("below", "above")
            return (f"{self.kind} {v}: reproduced if the interval lies {side} it, not reproduced if "
                    f"{other}, else inconclusive{tail}")
        if self.kind == EFFECT:
            return (f"effect, two-sided: not reproduced if the interval misses {band}; reproduced if it "
                    f"meets it and excludes no effect ({null}), else inconclusive{tail}")
        side, other = ("above", "below") if self.direction > 0 else ("below", "above")
        return (f"sign: reproduced if the interval lies {side} {null}, not reproduced if {other}, else "
                f"inconclusive{tail}")


def format_value(value: float, unit: str, signed: bool = True) -> str:
    """A value in a claim's unit: "%", "% error", "pp" (signed), "x" (a ratio) or "pp of density"."""
    if unit in ("pp", "pp of density"):
        return f"{value:+.2f} {unit}" if signed else f"{value:.2f} {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "% error":  # errors of a few percent: the second decimal matters
        return f"{value:.2f} % error"
    return f"{value:.1f} %"


# ---- claims ------------------------------------------------------------------------------------

Measure = Callable[[pd.DataFrame], "Sample | list[Sample]"]


@dataclass(frozen=True)
class Claim:
    """One thing a paper says, with how we measure it and the rule that judges it.

    `dataset` is the paper's data set (e.g. "mnist", "cifar10"): a run on another is "not
    comparable". `not_comparable` says why the claim cannot be compared whatever the run (another
    algorithm or architecture than the paper's); empty when it can. `statistic`: what the paper
    reports over its runs, "mean" (judged on the 95% t-interval of our mean) or "max" (the best of
    its runs, e.g. Pensia et al.'s curves: judged on the maximum over our trials as a point against
    the paper's value ± the rule's spread). `caveat`: what the verdict depends on (e.g. a schedule
    shorter than the paper's), shown in the detail."""
    id: str
    figure: str                      # e.g. "Figure 4a"
    quote: str                       # the paper's words
    paper_value: float
    unit: str                        # "%", "% error", "pp", "x" or "pp of density"
    paper_text: str                  # the paper column, {v} = the value: e.g. "{v} at Pm=21%"
    method: str                      # what "ours" is, in words
    measure: Measure
    rule: Rule
    dataset: str
    experiment: str | None = None    # only this experiment's rows (None: the whole frame)
    not_comparable: str = ""
    statistic: str = MEAN
    caveat: str = ""

    def __post_init__(self):
        if self.statistic not in (MEAN, MAX):
            raise ValueError(f"claim {self.id}: statistic {self.statistic!r}; valid: {MEAN}, {MAX}")

    def verdict(self, sample: Sample) -> str:
        """The verdict of the standard for one sample (n < 3 or a sample that cannot test the claim
        -> inconclusive, else the rule on the interval of the mean, or on the maximum as a point)."""
        if sample.n < MIN_TRIALS or sample.inconclusive:
            return INCONCLUSIVE
        if self.statistic == MAX:
            best = max(sample.values)
            return self.rule.judge(self.paper_value, best, best)
        mean, low, high = sample.interval()
        return self.rule.judge(self.paper_value, low, high, resolution(self.unit, self.paper_value))

    def rule_text(self) -> str:
        return self.rule.text(self.paper_value, self.unit)


def judge(claim: Claim, samples: Sample | Sequence[Sample]) -> tuple[str, Sample]:
    """The verdict and the sample shown: for a range claim (several samples: the effect must hold
    at each), a miss anywhere is "not reproduced", else any inconclusive one is "inconclusive";
    the sample shown is the one that decides (the first miss, the first inconclusive, or the one
    whose interval comes nearest the rule's boundary)."""
    samples = [samples] if isinstance(samples, Sample) else list(samples)
    if not samples:
        raise MissingData("no sample")
    verdicts = [claim.verdict(s) for s in samples]
    for wanted in (NOT_REPRODUCED, INCONCLUSIVE):
        if wanted in verdicts:
            return wanted, samples[verdicts.index(wanted)]
    margin = [min(abs(b - claim.rule.null) for b in s.interval()[1:]) for s in samples]
    return REPRODUCED, samples[int(np.argmin(margin))]


def _measure(claim: Claim, networks: pd.DataFrame) -> list[Sample]:
    if networks.empty or "experiment" not in networks:
        raise MissingData("no results")
    if claim.experiment is not None:
        networks = networks[networks.experiment == claim.experiment]
        if networks.empty:
            raise MissingData(f"no results for {claim.experiment}")
    if "failed_to_learn" in networks:  # flagged by lth.experiments.runner.learning_failures: not judged
        learned = networks[~networks.failed_to_learn.astype(bool)]
        if learned.empty:
            raise MissingData("not judged: no network of this experiment learned (each is flagged failed_to_learn)")
        networks = learned
    measured = claim.measure(networks)
    return [measured] if isinstance(measured, Sample) else list(measured)


def _pick(value: str | Mapping[str, str] | None, claim: Claim) -> str | None:
    return value.get(claim.experiment) if isinstance(value, Mapping) else value


def evaluate(claims: list[Claim], networks: pd.DataFrame | Mapping[str, pd.DataFrame], *,
             reason: str | Mapping[str, str] = "", context: str = "", profile: str | None = None,
             dataset: str | Mapping[str, str] | None = None) -> pd.DataFrame:
    """The claims table, one row per claim, columns `COLUMNS`.

    `reason` says why an experiment did not run (one text for all claims, or per experiment name):
    its claims are "not run". `context` (data set, profile) starts every detail. `profile`: the run's
    profile ("smoke" gives "not judged"). `dataset`: the run's data set key (one, or per experiment
    name), compared with each claim's; None skips the check. Numbers: n = trials (or runs) in the
    sample shown, mean and ci_low/ci_high in the claim's unit."""
    if isinstance(networks, Mapping):
        networks = combine(networks)
    rows = []
    for claim in claims:
        why = " ".join((_pick(reason, claim) or "").split())  # one line per claim, also in the CSV
        row = {"ours": "", "verdict": NOT_RUN, "n": 0, "mean": math.nan, "ci_low": math.nan,
               "ci_high": math.nan}
        detail = why
        if not why:
            try:
                verdict, sample = judge(claim, _measure(claim, networks))
            except MissingData as missing:
                detail = str(missing)
            else:
                mean, low, high = sample.interval()
                ours = format_value(mean, claim.unit)
                row.update(ours=ours, n=sample.n, mean=mean, ci_low=low, ci_high=high,
                           verdict=_override(claim, verdict, profile, _pick(dataset, claim)))
                interval = (f"n = {sample.n}, {INTERVAL} [{format_value(low, claim.unit)}, "
                            f"{format_value(high, claim.unit)}]" if sample.n > 1 else f"n = {sample.n}, no interval")
                if claim.statistic == MAX:
                    best = format_value(max(sample.values), claim.unit)
                    row["ours"] = f"{best} (max of {sample.n}; mean {ours})"
                    interval = (f"judged: the maximum over the {sample.n} trials, {best} (the paper's statistic: "
                                f"the best of its runs); the mean {ours}, " + interval.split(", ", 1)[1])
                detail = "; ".join(part for part in (claim.method, sample.where, interval,
                                                     _why(claim, row["verdict"], profile, _pick(dataset, claim), sample),
                                                     claim.caveat)
                                   if part)
        prefix = "; ".join(part for part in (context, claim.experiment and f"experiment {claim.experiment}") if part)
        rows.append({
            **row, "figure": claim.figure, "claim": claim.quote,
            "paper": claim.paper_text.format(v=format_value(claim.paper_value, claim.unit)),
            "detail": f"{prefix}: {detail}" if prefix else detail,
            "interval": MAX_INTERVAL if claim.statistic == MAX else INTERVAL, "paper_value": claim.paper_value, "paper_spread": claim.rule.spread,
            "rule": claim.rule_text(),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def _override(claim: Claim, verdict: str, profile: str | None, dataset: str | None) -> str:
    if profile in UNJUDGED_PROFILES:
        return NOT_JUDGED
    if claim.not_comparable or (dataset is not None and dataset != claim.dataset):
        return NOT_COMPARABLE
    return verdict


def _why(claim: Claim, verdict: str, profile: str | None, dataset: str | None, sample: Sample) -> str:
    if verdict == INCONCLUSIVE and sample.n < MIN_TRIALS:
        return f"n = {sample.n} < {MIN_TRIALS}: inconclusive"
    if verdict == INCONCLUSIVE and sample.inconclusive:
        return f"{sample.inconclusive}: inconclusive"
    if verdict == NOT_JUDGED:
        return f"the {profile} profile measures nothing: not judged"
    if verdict == NOT_COMPARABLE:
        return claim.not_comparable or f"run on {dataset}, the paper on {claim.dataset}: not comparable"
    return ""
