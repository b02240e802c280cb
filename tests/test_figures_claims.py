"""Claims' verdicts on hand-made per-network frames, figure files, and the notebook helpers."""

import pandas as pd
import pytest

from lth.results import claims
from lth.results import figures
from lth.paths import workspace

REPO = workspace()
from lth.notebook import output_folder, resolve_path, run_experiment

LENET_LADDER = {0: 1.0, 3: 0.513, 7: 0.211, 9: 0.135}


def networks(values: dict, experiment: str = "lth_lenet300", trials: int = 2) -> pd.DataFrame:
    """Per-network rows: values[(level, control)] = (early-stop iteration, accuracy at early stop,
    final accuracy), the same for every trial."""
    rows = []
    for (level, control), (stop, early, final) in values.items():
        for trial in range(trials):
            rows.append({"experiment": experiment, "level": level, "control": control, "trial": trial,
                         "replicate": 0, "density": LENET_LADDER[level], "early_stop_iteration": stop,
                         "early_stop_test_accuracy": early, "final_test_accuracy": final})
    return pd.DataFrame(rows)


def lenet(stop21=5000, acc13=0.9830, reinit21=0.9780, final_best=0.9840) -> pd.DataFrame:
    return networks({
        (0, "none"): (8000, 0.9800, 0.9800),
        (3, "none"): (7000, 0.9810, 0.9790), (3, "reinit"): (8000, 0.9800, 0.9800),
        (7, "none"): (stop21, 0.9820, final_best), (7, "reinit"): (8000, reinit21, 0.9780),
        (9, "none"): (6000, acc13, 0.9790), (9, "reinit"): (9000, 0.9750, 0.9750),
    })


def verdicts(claim_list, frame, **kwargs) -> dict:
    table = claims.evaluate(claim_list, frame, **kwargs)
    assert list(table.columns) == ["figure", "claim", "paper", "ours", "verdict", "detail"]
    return dict(zip(table.figure + " " + table.paper, table.verdict))


@pytest.mark.parametrize("stop21,expected", [(5000, "reproduced"),       # 37.5 % earlier
                                             (7000, "partly"),           # 12.5 %
                                             (8000, "not reproduced")])  # 0 %
def test_early_stop_claim(stop21, expected):
    table = claims.evaluate([claims.LENET_ITERATIVE[0]], lenet(stop21=stop21))
    assert table.verdict[0] == expected


@pytest.mark.parametrize("acc13,expected", [(0.9820, "reproduced"),       # +0.2 pp
                                            (0.9795, "partly"),           # -0.05 pp: within noise
                                            (0.9780, "not reproduced")])  # -0.2 pp
def test_accuracy_claim(acc13, expected):
    table = claims.evaluate([claims.LENET_ITERATIVE[1]], lenet(acc13=acc13))
    assert table.verdict[0] == expected
    assert table.ours[0].endswith("pp")


@pytest.mark.parametrize("reinit21,final_best,expected", [(0.9790, 0.9820, "reproduced"),
                                                          (0.9810, 0.9801, "partly"),
                                                          (0.9830, 0.9790, "not reproduced")])
def test_reinit_and_final_claims(reinit21, final_best, expected):
    table = claims.evaluate(claims.LENET_ITERATIVE[2:4], lenet(reinit21=reinit21, final_best=final_best))
    assert list(table.verdict) == [expected, expected]


def test_missing_density_is_not_run():
    frame = lenet()
    table = claims.evaluate(claims.LENET_ITERATIVE, frame[frame.level != 9])
    assert list(table.verdict) == ["reproduced", "not run", "reproduced", "reproduced"]
    assert "13.5%" in table.detail[1]


def test_experiment_that_did_not_run():
    empty = pd.DataFrame()
    table = claims.evaluate(claims.LENET_ITERATIVE, empty, reason="data set 'mnist' not found", context="MNIST")
    assert set(table.verdict) == {"not run"} and table.detail.str.contains("not found").all()
    assert set(claims.evaluate(claims.LENET_ITERATIVE, empty).verdict) == {"not run"}


def test_one_shot_claim():
    iterative = lenet()
    one_shot = lenet(acc13=0.9815)
    assert claims.evaluate(claims.LENET_ONE_SHOT, {"iterative": iterative, "one_shot": one_shot}).verdict[0] == "reproduced"
    assert claims.evaluate(claims.LENET_ONE_SHOT, {"iterative": one_shot, "one_shot": iterative}).verdict[0] == "partly"
    assert claims.evaluate(claims.LENET_ONE_SHOT, {"iterative": iterative}).verdict[0] == "not run"


def test_conv_claims_per_experiment():
    conv2 = networks({(0, "none"): (8000, 0.65, 0.64), (3, "none"): (2000, 0.68, 0.67),
                      (7, "none"): (4000, 0.66, 0.66)}, experiment="lth_conv2")
    table = claims.evaluate(claims.CONV, {"lth_conv2": conv2},
                            reason={"lth_conv4": "data set 'cifar10' not found"}, context="Fashion-MNIST")
    assert list(table.verdict) == ["reproduced", "reproduced"] + ["not run"] * 4  # +3 pp, 4x
    assert table.detail.str.startswith("Fashion-MNIST").all()
    assert "51.3%" in table.detail[0] and "not found" in table.detail[2] and "no results" in table.detail[4]


def test_thresholds_cover_every_claim():
    for claim in claims.LENET_ITERATIVE + claims.LENET_CURVES + claims.LENET_ONE_SHOT + claims.CONV:
        assert claim.verdict(1e9) == "reproduced" and claim.verdict(-1e9) == "not reproduced"


def test_density_ticks_and_save(tmp_path):
    ladder = [100 * (265200 * 0.8 ** k + 1000 * 0.9 ** k) / 266200 for k in range(21)]
    ticks = figures.density_ticks(ladder)
    assert [round(t, 1) for t in ticks[:6]] == [100, 51.3, 21.1, 7.0, 3.6, 1.9]
    fig = figures.density_figure(lenet(), ["early_stop_iteration", "early_stop_test_accuracy"], "test")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()
    assert "mean over 2 trials" in ax.get_legend().get_title().get_text()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["winning ticket (n=2)", "random reinit (n=2)"]
    paths = figures.save(fig, tmp_path / "out", "figure")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in paths)


def test_paths_are_taken_from_the_repo(tmp_path):
    assert resolve_path("runs") == REPO / "runs" and resolve_path(tmp_path) == tmp_path
    folder = output_folder(tmp_path, "nb", "smoke")
    assert folder == tmp_path / "smoke" / "nb" and folder.is_dir()


def test_missing_data_set_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("LTH_DATA", str(tmp_path))
    outcome = run_experiment("lth_conv2", "smoke", ["ImpConfig.dataset = 'cifar10'"], root=tmp_path / "runs")
    assert not outcome.ran and outcome.dataset == "cifar10" and outcome.experiment == "lth_conv2"
    assert "cifar10" in outcome.reason and str(tmp_path) in outcome.reason
    assert outcome.networks.empty and outcome.run_path is None
    assert "did not run" in outcome.describe() and "CIFAR-10" in outcome.context
    assert outcome.headline == "data set 'cifar10' not found"
    table = claims.evaluate(claims.CONV[:2], {}, reason={outcome.experiment: outcome.reason})
    assert set(table.verdict) == {"not run"}
