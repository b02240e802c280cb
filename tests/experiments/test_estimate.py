"""The --dry-run estimate (lth.experiments.estimate): measured per distinct stack, not per job."""

from lth import config
from lth.experiments import estimate
from lth.experiments.runner import Runner


def test_jobs_that_differ_only_in_their_masks_share_one_measurement(tmp_path, monkeypatch):
    # pai_lenet300 on smoke: each method (SNIP, GraSP, SynFlow, random...) is a job of the same LeNet stack
    recipe = config.load_recipe("pai_lenet300", profile="smoke")
    runner = Runner(recipe.spec, recipe.config, recipe.trains, root=tmp_path, device="cpu", plan_only=True)
    measured = []
    monkeypatch.setattr(estimate, "_seconds_per_network_step",
                        lambda stack, *args: measured.append(stack) or 1e-3)
    seconds = estimate.job_seconds(runner)
    shapes = {tuple((n, tuple(p.shape)) for n, p in s.params.items()) for s in measured}
    assert len(measured) == len(shapes) < len([s for s in seconds.values() if s is not None])
    assert all(s is not None and s > 0 for s in seconds.values())
