"""The SubsetSum kind (Pensia et al. Exp. 1) on the runner: the target cached in the store, a
sample solved, the CLI's table, the claim bands."""

import math

import pandas as pd
import torch

from lth.experiments import kind_of
from lth.experiments.runner import Runner
from lth.experiments.subsetsum import SubsetSumConfig, approximate
from lth.prune import subsetsum
from lth.results import claims
from lth.train.config import TrainConfig


def test_subsetsum_claims_need_three_runs_and_judge_each_rule():
    run = {"experiment": "pensia_subsetsum", "weights": 10, "total_weights": 10, "n": 21, "epsilon": 0.01,
           "max_error": 0.003, "within": 10, "kept_ratio": 9.39, "paper_range_kept_ratio": math.nan,
           "low": -0.3, "high": 0.4, "target_accuracy": 97.19, "approximated_accuracy": 97.19}
    verdicts = lambda f: claims.evaluate(claims.PENSIA_SUBSETSUM, f, profile="paper").verdict.tolist()
    assert verdicts(pd.DataFrame([run])) == ["inconclusive"] * 4  # n = 1
    # Three coefficient draws: errors well under eps (at most), accuracies and kept counts around the paper's.
    three = pd.DataFrame([{**run, "kept_ratio": k, "target_accuracy": t, "approximated_accuracy": t + d}
                          for k, t, d in ((9.3, 97.1, 0.0), (9.4, 97.2, 0.01), (9.5, 97.3, -0.01))])
    # The target is one network shared by the draws: its accuracy has n = 1 whatever the draws.
    assert verdicts(three) == ["reproduced", "reproduced", "inconclusive", "reproduced"]
    # Kept 12x in every draw: the interval (t over 3 runs) excludes the paper's 9.39x.
    assert verdicts(three.assign(kept_ratio=[11.9, 12.0, 12.1]))[3] == "not reproduced"
    # An error of 3 eps in every draw: "at most 1 eps" is refuted.
    assert verdicts(three.assign(max_error=0.03))[0] == "not reproduced"


def test_target_is_cached_and_a_sample_is_solved(tmp_path):
    config = SubsetSumConfig(dataset="synthetic", widths=(16,))
    train_cfg = TrainConfig(iterations="4it", batch_size=8, eval_every="2it")
    config = SubsetSumConfig(dataset="synthetic", widths=(16,), paper_range_sample=0, milp_sample=0)
    run = lambda: Runner(kind_of("subsetsum"), config, {"subsetsum": train_cfg}, root=tmp_path, device="cpu").run()
    first, again = run(), run()
    assert first.trained == ["target"] and again.trained == []
    assert first.outputs["solve"].trained_now and not again.outputs["solve"].trained_now
    target = first.run.load_checkpoint("target")
    assert set(again.metrics.split) >= {"val", "test"}

    layers = {name: target["params"][name][0] for name in ("fc.0.weight", "fc.1.weight")}
    flat = torch.cat([w.flatten() for w in layers.values()])
    low, high = subsetsum.coefficient_range(layers.values())
    part = approximate(flat, 12, 0.01, low, high, seed=0, sample=50)
    assert part.count == 50 and torch.equal(part.indices, part.indices.sort().values)
    assert torch.equal(part.weights, flat.double()[part.indices])
    assert part.max_error <= 0.01


def test_cli_runs_the_experiment(tmp_path, capsys):
    from lth import cli
    assert cli.main(["run", "pensia_subsetsum", "-p", "smoke", "--root", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "run folder:" in out and "2,000 (a seeded sample)" in out and "2 of 2 weights: the same subset" in out
