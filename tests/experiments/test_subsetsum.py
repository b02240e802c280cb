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


def test_kept_claim_bands():
    frame = pd.DataFrame([{"experiment": "pensia_subsetsum", "weights": 10, "total_weights": 10, "n": 21,
                           "epsilon": 0.01, "max_error": 0.003, "within": 10, "kept_ratio": 9.39,
                           "paper_range_kept_ratio": math.nan, "low": -0.3, "high": 0.4,
                           "target_accuracy": 98.0, "approximated_accuracy": 97.7}])
    verdicts = lambda f: claims.evaluate(claims.PENSIA_SUBSETSUM, f).verdict.tolist()
    assert verdicts(frame) == ["reproduced", "partly", "reproduced", "reproduced"]
    assert verdicts(frame.assign(kept_ratio=11.0, max_error=0.015, within=9)) == \
        ["partly", "partly", "reproduced", "partly"]
    assert verdicts(frame.assign(kept_ratio=13.0, max_error=0.03)) == \
        ["not reproduced", "partly", "reproduced", "not reproduced"]


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
