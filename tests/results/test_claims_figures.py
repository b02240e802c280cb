"""Claims' verdicts on hand-made per-network frames, figure files, and the notebook helpers."""

import pandas as pd
import pytest

from lth.results import analysis, claims
from lth.results import figures
from lth.paths import workspace

REPO = workspace()
from lth.notebook import output_folder, resolve_path, run

LENET_LADDER = {0: 1.0, 3: 0.513, 7: 0.211, 9: 0.135}


TRIAL_NOISE = (-0.0002, 0.0, 0.0002)  # accuracies per trial: a small, hand-chosen spread


def networks(values: dict, experiment: str = "lth_lenet300", trials: int = 3) -> pd.DataFrame:
    """Per-network rows: values[(level, control)] = (early-stop iteration, accuracy at early stop,
    final accuracy); accuracies move by TRIAL_NOISE[trial], iterations by 100 * (trial - 1)."""
    rows = []
    for (level, control), (stop, early, final) in values.items():
        for trial in range(trials):
            rows.append({"experiment": experiment, "level": level, "control": control, "trial": trial,
                         "replicate": 0, "density": LENET_LADDER[level],
                         "early_stop_iteration": stop + 100 * (trial - 1) * (level == 0),
                         "early_stop_test_accuracy": early + TRIAL_NOISE[trial] * (level == 0),
                         "final_test_accuracy": final})
    return pd.DataFrame(rows)


def lenet(stop21=5000, acc13=0.9830, reinit21=0.9780, final_best=0.9840) -> pd.DataFrame:
    return networks({
        (0, "none"): (8000, 0.9800, 0.9800),
        (3, "none"): (7000, 0.9810, 0.9790), (3, "reinit"): (8000, 0.9800, 0.9800),
        (7, "none"): (stop21, 0.9820, final_best), (7, "reinit"): (8000, reinit21, 0.9780),
        (9, "none"): (6000, acc13, 0.9790), (9, "reinit"): (9000, 0.9750, 0.9750),
    })


def verdict(claim, frame, **kwargs) -> str:
    return claims.evaluate([claim], frame, **kwargs).verdict[0]


LENET = {c.id: c for c in claims.LENET_ITERATIVE + claims.LENET_CURVES + claims.LENET_ONE_SHOT}


@pytest.mark.parametrize("stop21,expected", [(5000, "reproduced"),         # 37.5 % earlier, [36.3, 38.7]
                                             (6500, "not reproduced"),     # 18.8 %: misses 38 %
                                             (8000, "not reproduced")])    # 0 %: misses it too
def test_early_stop_claim_is_an_effect_judged_two_sided(stop21, expected):
    # dense stops at 7900, 8000, 8100: drops 1 - stop21 / those, per trial
    assert verdict(LENET["lenet_early_stop_21"], lenet(stop21=stop21)) == expected


@pytest.mark.parametrize("acc13,expected", [(0.9840, "reproduced"),        # +0.4 pp ± 0.05 above 0.3
                                            (0.9830, "inconclusive"),      # +0.3 pp: interval holds 0.3
                                            (0.9820, "not reproduced")])   # +0.2 pp: below 0.3
def test_accuracy_claim_is_at_least(acc13, expected):
    table = claims.evaluate([LENET["lenet_accuracy_13"]], lenet(acc13=acc13))
    assert table.verdict[0] == expected and table.ours[0].endswith("pp") and table.n[0] == 3


def test_reinit_rows_accuracy_speed_and_where_it_falls_below_dense():
    frame = lenet(reinit21=0.9770)  # ticket 98.2 vs reinit 97.7 at 21.1%: +0.5 pp
    assert verdict(LENET["lenet_reinit_21"], frame) == "reproduced"
    assert verdict(LENET["lenet_reinit_21"], lenet(reinit21=0.9700)) == "not reproduced"  # +1.2 pp
    # reinit 8000 vs ticket 5000 iterations: 1.6x, the paper's 2.51x is outside a zero-width interval
    speed = claims.evaluate([LENET["lenet_reinit_speed_21"]], frame).iloc[0]
    assert speed.verdict == "not reproduced" and speed.ours == "1.60x"
    # reinit below dense (97.98, 98.00, 98.02 per trial) from 21.1% in trials 0 and 1; trial 2's dense
    # 98.02 is above reinit's 98.00 at 51.3% too: 21.1, 21.1, 51.3 -> 31.2 ± 43.3 = [-12.1, 74.5]: it meets
    # 21.1 ± 5 but reaches past it on both sides, too wide to test it
    below = claims.evaluate([LENET["lenet_reinit_below_dense"]], frame).iloc[0]
    assert "21.1%, 21.1%, 51.3%" in below.detail and below["mean"] == pytest.approx(31.1667, abs=1e-3)
    assert below.verdict == "inconclusive"


def test_ticket_back_to_dense_is_two_sided_and_missing_densities_are_not_run():
    frame = lenet()
    table = claims.evaluate([LENET["lenet_back_to_dense_3_6"], LENET["lenet_accuracy_13"]], frame[frame.level != 9])
    assert list(table.verdict) == ["not run", "not run"]
    assert "3.6%" in table.detail[0] and "13.5%" in table.detail[1]


def test_experiment_that_did_not_run():
    empty = pd.DataFrame()
    table = claims.evaluate(claims.LENET_ITERATIVE, empty, reason="data set 'mnist' not found", context="MNIST")
    assert set(table.verdict) == {"not run"} and table.detail.str.contains("not found").all()
    assert set(claims.evaluate(claims.LENET_ITERATIVE, empty).verdict) == {"not run"}


def test_one_shot_claims_and_its_ranges():
    iterative, one_shot = lenet(), lenet(acc13=0.9790)
    assert verdict(LENET["lenet_one_shot"], {"iterative": iterative, "one_shot": one_shot}) == "reproduced"
    assert verdict(LENET["lenet_one_shot"], {"iterative": one_shot, "one_shot": iterative}) == "not reproduced"
    assert verdict(LENET["lenet_one_shot"], {"iterative": iterative}) == "not run"
    # earlier than dense at 51.3% and 21.1% (7000, 5000 vs 7900-8100): reproduced over 67.5-17.6%
    assert verdict(LENET["lenet_one_shot_earlier"], {"one_shot": one_shot}) == "reproduced"
    # more accurate than dense at every level of 95-5.17%? at 13.5% 97.9 < 98.0: not reproduced
    row = claims.evaluate([LENET["lenet_one_shot_accuracy"]], {"one_shot": one_shot}).iloc[0]
    assert row.verdict == "not run"  # the hand-made ladder stops at 13.5%: it does not cover 5.17%


def curves(speed: dict) -> pd.DataFrame:
    """Test accuracy rows: level -> iteration at which it first reaches 98% (97.5% 200 earlier)."""
    rows = []
    for level, reach in speed.items():
        for trial in range(3):
            for it in range(0, 10001, 100):
                value = 0.985 if it >= reach + 100 * trial else 0.976 if it >= reach - 200 + 100 * trial else 0.9
                rows.append({"experiment": "lth_lenet300", "level": level, "control": "none", "trial": trial,
                             "replicate": 0, "iteration": it, "split": "test", "metric": "accuracy", "value": value})
    return pd.DataFrame(rows)


def test_figure_3_speed_is_read_off_the_accuracy_curves():
    frame = analysis.with_iterations_to(lenet(), curves({0: 6000, 3: 3000, 7: 1000}), [0.975, 0.98])
    assert frame[(frame.level == 7) & (frame.control == "none")].test_iterations_to_98.tolist() == [1000, 1100, 1200]
    assert [verdict(c, frame) for c in claims.LENET_CURVES] == ["reproduced", "reproduced"]
    slow = analysis.with_iterations_to(lenet(), curves({0: 6000, 3: 3000, 7: 5000}), [0.975, 0.98])
    assert [verdict(c, slow) for c in claims.LENET_CURVES] == ["reproduced", "not reproduced"]
    assert verdict(claims.LENET_CURVES[0], lenet()) == "not run"  # without the curves' column


def test_conv_claims_per_experiment_and_data_set():
    conv2 = networks({(0, "none"): (8000, 0.65, 0.64), (3, "none"): (2300, 0.684, 0.67),
                      (7, "none"): (4000, 0.66, 0.66)}, experiment="lth_conv2")
    table = claims.evaluate(claims.CONV, {"lth_conv2": conv2}, reason={"lth_conv4": "data set 'cifar10' not found"},
                            context="CIFAR-10", dataset={"lth_conv2": "cifar10"})
    assert list(table.verdict[:2]) == ["reproduced", "reproduced"]  # +3.4 pp, ~3.5x
    assert list(table.verdict[2:]) == ["not run"] * 4
    assert table.detail.str.startswith("CIFAR-10").all()
    assert "51.3%" in table.detail[0] and "not found" in table.detail[2] and "no results" in table.detail[4]
    fashion = claims.evaluate(claims.CONV[:2], {"lth_conv2": conv2}, dataset="fashion_mnist")
    assert list(fashion.verdict) == ["not comparable"] * 2 and (fashion.ours != "").all()


def test_smoke_profile_is_never_judged():
    for family in claims.ALL.values():
        table = claims.evaluate(family, lenet(), profile="smoke")
        assert set(table.verdict) <= {"not judged", "not run"}
    assert verdict(LENET["lenet_accuracy_13"], lenet(), profile="smoke") == "not judged"


def test_zhou_supermask_is_not_comparable():
    zhou = next(c for c in claims.STRONG_EDGEPOPUP if c.id == "ep_lenet300_supermask")
    rows = pd.DataFrame([{"experiment": "lenet300", "control": "signed_constant", "level": 0, "trial": t,
                          "density": 0.5, "final_test_accuracy": 0.953} for t in range(3)])
    row = claims.evaluate([zhou], rows, profile="paper", dataset="mnist").iloc[0]
    assert row.verdict == "not comparable" and row.ours == "95.3 %" and "edge-popup" in row.detail


def test_density_ticks_and_save(tmp_path):
    ladder = [100 * (265200 * 0.8 ** k + 1000 * 0.9 ** k) / 266200 for k in range(21)]
    ticks = figures.density_ticks(ladder)
    assert [round(t, 1) for t in ticks[:6]] == [100, 51.3, 21.1, 7.0, 3.6, 1.9]
    fig = figures.density_figure(lenet(), ["early_stop_iteration", "early_stop_test_accuracy"], "test")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert "mean over 3 trials" in ax.get_legend().get_title().get_text()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["winning ticket (n=3)", "random reinit (n=3)"]
    paths = figures.save(fig, tmp_path / "out", "figure")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)


def test_paths_are_taken_from_the_repo(tmp_path):
    assert resolve_path("runs") == REPO / "runs" and resolve_path(tmp_path) == tmp_path
    folder = output_folder(tmp_path, "nb", "smoke")
    assert folder == tmp_path / "smoke" / "nb" and folder.is_dir()


def test_missing_data_set_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_DATA", str(tmp_path))
    outcome = run("lth_conv2", "smoke", ["ImpConfig.dataset = 'cifar10'"], root=tmp_path / "runs")
    assert not outcome.ran and outcome.dataset == "cifar10" and outcome.experiment == "lth_conv2"
    assert "cifar10" in outcome.reason and str(tmp_path) in outcome.reason
    assert outcome.networks.empty and outcome.run_path is None
    assert "did not run" in outcome.describe() and "CIFAR-10" in outcome.context
    assert outcome.headline == "data set 'cifar10' not found"
    table = claims.evaluate(claims.CONV[:2], {}, reason={outcome.experiment: outcome.reason})
    assert set(table.verdict) == {"not run"}
