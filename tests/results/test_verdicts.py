"""The verdict standard (issue 13) on hand-computed intervals: each rule, n < 3, smoke, another
data set or algorithm, and the claims table's columns."""

import math

import pandas as pd
import pytest
from scipy import stats

from lth.results import verdicts
from lth.results.analysis import MissingData
from lth.results.verdicts import AT_LEAST, AT_MOST, EFFECT, LEVEL, SIGN, Claim, Rule, Sample

T2 = 4.302652729911275   # t_{0.975, 2 degrees of freedom}, from a t table
T4 = 2.7764451051977987  # t_{0.975, 4}


def test_t_interval_matches_the_hand_computed_one():
    mean, low, high = verdicts.t_interval([1.0, 2.0, 3.0])  # s = 1, n = 3
    assert mean == 2.0 and low == pytest.approx(2 - T2 / math.sqrt(3)) and high == pytest.approx(2 + T2 / math.sqrt(3))
    mean, low, high = verdicts.t_interval([10, 12, 14, 16, 18])  # s = sqrt(10), n = 5
    assert (low, high) == pytest.approx((14 - T4 * math.sqrt(10 / 5), 14 + T4 * math.sqrt(10 / 5)))
    assert T4 == pytest.approx(stats.t.ppf(0.975, 4))
    assert verdicts.t_interval([7.0, 7.0, 7.0]) == (7.0, 7.0, 7.0)
    mean, low, high = verdicts.t_interval([5.0])
    assert mean == 5.0 and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("values", [[], [1.0, math.nan]])
def test_t_interval_refuses_no_values_or_non_finite_ones(values):
    with pytest.raises(ValueError):
        verdicts.t_interval(values)


def judge(rule: Rule, paper: float, values) -> str:
    claim = Claim("x", "Fig", "quote", paper, "pp", "{v}", "method", lambda n: Sample(values), rule, "mnist")
    return claim.verdict(Sample(values))


# [1, 2, 3]: 2 ± 2.484 -> [-0.484, 4.484];  [a-0.1, a, a+0.1]: a ± 0.248
@pytest.mark.parametrize("rule,paper,values,expected", [
    (Rule(LEVEL), 2.0, [1.8, 2.0, 2.2], "reproduced"),                # [1.50, 2.50] inside 2 ± 1 pp (resolution)
    (Rule(LEVEL), 2.0, [1, 2, 3], "inconclusive"),                    # [-0.48, 4.48] past 2 ± 1 on both sides
    (Rule(LEVEL, spread=3.0), 2.0, [1, 2, 3], "reproduced"),          # ... but inside 2 ± 3
    (Rule(LEVEL), 2.0, [2.5, 3.0, 3.5], "reproduced"),                # [1.76, 4.24] holds 2, past 3 on one side only
    (Rule(LEVEL), 2.0, [2.9, 3.0, 3.1], "not reproduced"),            # [2.75, 3.25] misses 2
    (Rule(LEVEL, spread=1.0), 2.0, [2.9, 3.0, 3.1], "reproduced"),    # ... but meets [1, 3]
    (Rule(AT_LEAST), 0.3, [0.5, 0.6, 0.7], "reproduced"),             # [0.35, 0.85] above 0.3
    (Rule(AT_LEAST), 0.3, [0.1, 0.2, 0.3], "inconclusive"),           # [-0.05, 0.45] holds 0.3
    (Rule(AT_LEAST), 0.3, [0.0, 0.05, 0.1], "not reproduced"),        # [-0.07, 0.17] below 0.3
    (Rule(AT_MOST), 1.0, [0.5, 0.6, 0.7], "reproduced"),              # [0.35, 0.85] below 1
    (Rule(AT_MOST), 1.0, [1.2, 1.3, 1.4], "not reproduced"),          # [1.05, 1.55] above 1
    (Rule(EFFECT), 0.5, [0.4, 0.5, 0.6], "reproduced"),               # [0.25, 0.75]: 0.5 in, 0 out
    (Rule(EFFECT), 0.5, [-0.5, 0.5, 1.5], "inconclusive"),            # 0.5 ± 2.48 holds 0.5 and 0
    (Rule(EFFECT), 0.5, [1.4, 1.5, 1.6], "not reproduced"),           # [1.25, 1.75] misses 0.5: overshoot
    (Rule(EFFECT, null=1.0), 2.5, [2.4, 2.5, 2.6], "reproduced"),     # a ratio: no effect = 1x
    (Rule(SIGN), 0.0, [1, 2, 3], "inconclusive"),                     # [-0.48, 4.48] holds 0
    (Rule(SIGN), 0.0, [2, 3, 4], "reproduced"),                       # [0.52, 5.48] above 0
    (Rule(SIGN), 0.0, [-4, -3, -2], "not reproduced"),                # below 0: the wrong sign
    (Rule(SIGN, direction=-1), 0.0, [-4, -3, -2], "reproduced"),
    (Rule(LEVEL), 1.5, [1.0, 2.0], "inconclusive"),                   # n = 2 < 3, whatever the rule
])
def test_each_rule_on_hand_computed_intervals(rule, paper, values, expected):
    assert judge(rule, paper, values) == expected


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="valid kinds"):
        Rule("roughly")
    with pytest.raises(ValueError, match="spread"):
        Rule(LEVEL, spread=-1.0)


def level_claim(**kwargs) -> Claim:
    measure = lambda networks: Sample(networks.value, "at the level")
    return Claim("c", "Figure 1", "It is 2.", 2.0, "%", "{v}", "our value", measure, Rule(LEVEL), "mnist", **kwargs)


NETWORKS = pd.DataFrame({"experiment": "e", "value": [1.8, 2.0, 2.2]})  # 2 ± 0.50: inside 2 ± 1 pp


def test_the_claims_table_carries_the_evidence_and_the_rule():
    table = verdicts.evaluate([level_claim()], NETWORKS, context="MNIST, paper profile")
    assert list(table.columns) == verdicts.COLUMNS and verdicts.COLUMNS[:6] == verdicts.BASE_COLUMNS
    row = table.iloc[0]
    assert row.verdict == "reproduced" and row.n == 3 and row["mean"] == 2.0 and row.ours == "2.0 %"
    assert (row.ci_low, row.ci_high) == pytest.approx((2 - 0.2 * T2 / math.sqrt(3), 2 + 0.2 * T2 / math.sqrt(3)))
    assert row.interval == "95% t-interval over trials" and row.paper_value == 2.0 and row.paper_spread == 0.0
    assert row.rule.startswith("two-sided") and "n < 3" in row.rule
    assert row.detail.startswith("MNIST, paper profile: our value; at the level; n = 3")


def test_smoke_is_not_judged_and_another_data_set_or_algorithm_is_not_comparable():
    smoke = verdicts.evaluate([level_claim()], NETWORKS, profile="smoke", dataset="mnist").iloc[0]
    assert smoke.verdict == "not judged" and smoke.ours == "2.0 %" and "measures nothing" in smoke.detail
    other = verdicts.evaluate([level_claim()], NETWORKS, profile="paper", dataset="fashion_mnist").iloc[0]
    assert other.verdict == "not comparable" and other.ours == "2.0 %" and "fashion_mnist" in other.detail
    algorithm = verdicts.evaluate([level_claim(not_comparable="another algorithm")], NETWORKS, profile="paper",
                                  dataset="mnist").iloc[0]
    assert algorithm.verdict == "not comparable" and "another algorithm" in algorithm.detail
    same = verdicts.evaluate([level_claim()], NETWORKS, profile="quick", dataset="mnist").iloc[0]
    assert same.verdict == "reproduced"


def test_few_trials_are_inconclusive_and_missing_results_not_run():
    two = verdicts.evaluate([level_claim()], NETWORKS.iloc[:2]).iloc[0]
    assert two.verdict == "inconclusive" and "n = 2 < 3" in two.detail
    one = verdicts.evaluate([level_claim()], NETWORKS.iloc[:1]).iloc[0]
    assert one.verdict == "inconclusive" and one.n == 1 and math.isnan(one.ci_low)
    assert verdicts.evaluate([level_claim()], pd.DataFrame()).iloc[0].verdict == "not run"
    gone = verdicts.evaluate([level_claim()], NETWORKS, reason="data set 'cifar10' not found").iloc[0]
    assert gone.verdict == "not run" and "not found" in gone.detail and gone.n == 0


def test_a_range_claim_fails_where_any_density_fails():
    claim = Claim("r", "Fig", "q", 0.0, "pp", "{v}", "m", lambda n: None, Rule(SIGN), "mnist")
    good, wide, bad = Sample([2, 3, 4], "a"), Sample([1, 2, 3], "b"), Sample([-4, -3, -2], "c")
    assert verdicts.judge(claim, [good, good]) == ("reproduced", good)
    assert verdicts.judge(claim, [good, wide]) == ("inconclusive", wide)
    assert verdicts.judge(claim, [wide, bad, good]) == ("not reproduced", bad)


def test_a_sample_keeps_finite_values_and_needs_one():
    assert Sample([1.0, math.nan, 2.0]).n == 2
    with pytest.raises(MissingData):
        Sample([math.nan])


# ---- the paper's statistic: the best of its runs (Pensia et al.'s curves) -------------------------

def max_claim(paper: float, spread: float = 2.0) -> Claim:
    return Claim("m", "Fig", "best of five", paper, "%", "{v}", "accuracy per trial", lambda n: Sample(n.value),
                 Rule(LEVEL, spread=spread), "mnist", statistic="max")


@pytest.mark.parametrize("paper,values,expected", [
    (97.0, [94.0, 95.0, 96.0, 95.5, 94.5], "reproduced"),     # max 96.0 inside [95, 99] (the mean 95.0 is not)
    (97.0, [90.0, 91.0, 92.0, 93.0, 94.0], "not reproduced"),  # max 94.0 below 95: a miss, however wide the spread of trials
    (89.0, [92.0, 95.0, 91.0], "not reproduced"),             # max 95.0 above 91: two-sided
    (89.0, [91.0, 90.0, 87.0], "reproduced"),                 # max 91.0 meets the band's edge
    (89.0, [89.0, 89.5], "inconclusive"),                     # n = 2 < 3
])
def test_a_best_of_runs_claim_is_judged_on_our_maximum_as_a_point(paper, values, expected):
    assert max_claim(paper).verdict(Sample(values)) == expected


def test_a_best_of_runs_row_reports_the_maximum_and_the_mean_and_says_which_is_judged():
    row = verdicts.evaluate([max_claim(97.0)], pd.DataFrame({"experiment": "e", "value": [94, 95, 96, 95.5, 94.5]})).iloc[0]
    assert row.verdict == "reproduced" and row.n == 5 and row["mean"] == pytest.approx(95.0)
    assert row.ours == "96.0 % (max of 5; mean 95.0 %)"
    assert (row.ci_low, row.ci_high) == pytest.approx((95 - T4 * math.sqrt(0.625 / 5), 95 + T4 * math.sqrt(0.625 / 5)))
    assert row.interval.startswith("judged: the maximum") and "judged: the maximum over the 5 trials, 96.0 %" in row.detail
    with pytest.raises(ValueError, match="statistic"):
        Claim("m", "Fig", "q", 1.0, "%", "{v}", "m", lambda n: None, Rule(LEVEL), "mnist", statistic="median")


def test_a_sample_that_cannot_test_the_claim_is_inconclusive_with_its_reason_and_a_caveat_is_shown():
    blocked = Claim("g", "Fig", "q", 2.0, "%", "{v}", "m",
                    lambda n: Sample(n.value, "here", inconclusive="no gate closed (0.00% off)"), Rule(LEVEL), "mnist",
                    caveat="depends on the shortened schedule")
    row = verdicts.evaluate([blocked], NETWORKS).iloc[0]
    assert row.verdict == "inconclusive" and row.ours == "2.0 %"  # [1, 2, 3] would be reproduced
    assert "no gate closed (0.00% off): inconclusive" in row.detail and row.detail.endswith("depends on the shortened schedule")


def test_verdicts_of_the_retired_standard_without_per_trial_data_become_not_judged(tmp_path):
    """A committed claims.csv of the old six columns: "partly" and "reproduced" cannot stand for verdicts
    of the current standard, so they read "not judged" (the old word kept in the detail); "not run" stays."""
    import pandas as pd
    from lth.results.rejudge import retire_old_verdicts
    path = tmp_path / "claims.csv"
    pd.DataFrame({"figure": ["F"] * 3, "claim": ["a", "b", "c"], "paper": ["1"] * 3, "ours": ["2"] * 3,
                  "verdict": ["partly", "reproduced", "not run"], "detail": ["x", "y", "z"]}).to_csv(path, index=False)
    assert retire_old_verdicts(path).startswith("2 verdicts")
    table = pd.read_csv(path)
    assert list(table.columns) == verdicts.COLUMNS
    assert table.verdict.tolist() == ["not judged", "not judged", "not run"]
    assert "The retired rule said 'partly'" in table.detail[0] and table.detail[2] == "z"
    assert retire_old_verdicts(path).startswith("left alone")  # already in the current format


@pytest.mark.parametrize("values,expected", [
    ([9.3, 9.4, 9.5], "reproduced"),       # [9.15, 9.65] inside 9.39 ± 0.47 (5% of a ratio)
    ([8.0, 9.4, 10.8], "inconclusive"),    # [5.92, 12.88] past 9.39 ± 0.47 on both sides
    ([10.9, 11.0, 11.1], "not reproduced"),
])
def test_a_ratio_level_has_a_resolution_relative_to_its_value(values, expected):
    claim = Claim("k", "Fig", "q", 9.39, "x", "{v}", "m", lambda n: Sample(values), Rule(LEVEL), "mnist")
    assert claim.verdict(Sample(values)) == expected
