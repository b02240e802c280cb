"""What lth.report.batch says while it runs: the plan with its time estimate before the first notebook, one
line per finished notebook, and every notebook of the repository with an estimate on the quick and smoke
profiles (so the estimate before a batch is never silently short)."""

import pytest

from lth.report import batch
from lth.report.page import NotebookRun


def test_every_notebook_has_a_time_estimate_on_quick_and_smoke():
    names = set(batch.notebook_sources())
    for profile in ("quick", "smoke"):
        assert names <= set(batch.ESTIMATED_S[profile]), f"{profile}: no estimate for {names - set(batch.ESTIMATED_S[profile])}"


@pytest.mark.parametrize("profile, limit_s", [("quick", 600), ("smoke", 180)])
def test_the_estimated_total_fits_the_profiles_promise(profile, limit_s):
    """The promises are for an idle 2-core machine, where a batch runs two notebooks at a time by default;
    the estimates are wall times measured in such a batch (REPRODUCIBILITY.md, "Running on a laptop")."""
    assert batch.estimated_total(list(batch.ESTIMATED_S[profile]), profile, jobs=2) <= limit_s


def test_two_at_a_time_halves_the_estimate_but_never_beats_the_longest(monkeypatch):
    monkeypatch.setitem(batch.ESTIMATED_S, "quick", {"a": 30.0, "b": 40.0, "c": 200.0})
    assert batch.estimated_total(["a", "b"], "quick", jobs=2) == 40.0
    assert batch.estimated_total(["a", "b", "c"], "quick", jobs=2) == 200.0
    assert batch.estimated_total(["a", "b", "c"], "quick", jobs=1) == 270.0


def test_the_plan_names_each_notebook_and_the_total(monkeypatch):
    monkeypatch.setitem(batch.ESTIMATED_S, "quick", {"a": 30.0, "b": 95.0})
    text = batch.plan_text(["a", "b"], "quick")
    assert text.startswith("Running 2 notebooks on profile quick: about 2 min 05 s on an idle 2-core CPU")
    assert "a ~30 s, b ~1 min 35 s" in text


def test_the_plan_says_which_notebooks_have_no_estimate(monkeypatch):
    monkeypatch.setitem(batch.ESTIMATED_S, "quick", {"a": 30.0})
    assert "no estimate for new" in batch.plan_text(["a", "new"], "quick")
    assert "no time estimate" in batch.plan_text(["a"], "paper")


def test_a_progress_line_gives_status_wall_and_cpu_time_and_the_reason_of_a_failure():
    ok = NotebookRun("lth_conv", "succeeded", wall_s=12.4)
    assert batch.progress_line(1, 12, ok, 9.6, 14.0) == "[1/12] lth_conv: succeeded in 12 s (CPU 10 s; 14 s so far)"
    bad = NotebookRun("pai_lenet", "failed", reason="cell 3 of pai_lenet.py: ValueError: x\nmore", wall_s=61.0)
    line = batch.progress_line(2, 12, bad, 50.0, 75.0)
    assert line.splitlines() == ["[2/12] pai_lenet: failed in 1 min 01 s (CPU 50 s; 1 min 15 s so far)",
                                 "    cell 3 of pai_lenet.py: ValueError: x"]
