"""Every notebook in notebooks/ runs end to end on the smoke profile through lth.report.batch, and the report lists it."""

import pytest

from lth.report import batch
from lth.report.page import build_report

NOTEBOOKS = list(batch.notebook_sources())


class SmokeRuns:
    """Executes the notebooks this session selected once, in one batch (two at a time on a 2-core machine, as
    ``./run_all.sh --profile smoke`` does), into one temporary workspace."""

    def __init__(self, folder, selected):
        self.folder, self.selected = folder, selected
        self.output_dir, self.build_dir = folder / "figures", folder / "build"
        self.runs = {}

    def run(self, name):
        if name not in self.runs:
            # One result store for all: notebooks sharing an experiment reuse its finished levels.
            names = [n for n in NOTEBOOKS if n in self.selected or n == name]
            runs, _ = batch.run_batch("smoke", only=names, output_dir=self.output_dir, root=self.folder / "runs",
                                      device="cpu", build_dir=self.build_dir, report_dir=self.folder / "report")
            self.runs.update({run.name: run for run in runs})
        return self.runs[name]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, request):
    selected = {item.callspec.params["name"] for item in request.session.items
                if item.originalname == "test_notebook_runs_on_smoke" and hasattr(item, "callspec")}
    if any(item.originalname == "test_report_contains_every_notebook" for item in request.session.items):
        selected = set(NOTEBOOKS)
    return SmokeRuns(tmp_path_factory.mktemp("notebooks"), selected)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_smoke(smoke, name):
    run = smoke.run(name)
    assert run.status == "succeeded", f"{name}: {run.reason}\nexecuted notebook: {run.executed}"
    folder = smoke.output_dir / "smoke" / name
    assert (folder / "claims.csv").exists()
    assert list(folder.glob("*.png")), f"{name} wrote no PNG in {folder}"
    assert list(folder.glob("*.svg")), f"{name} wrote no SVG in {folder}"


def test_report_contains_every_notebook(smoke):
    for name in NOTEBOOKS:
        smoke.run(name)
    runs = batch.collect_runs(batch.notebook_sources(), "smoke", smoke.build_dir)
    html = build_report(runs, "smoke", smoke.folder / "report").read_text()
    for name in NOTEBOOKS:
        section = f'<section class="notebook" id="nb-{name}">'
        assert section in html, f"no section for {name}"
        local = html[html.index(section):][:800]  # this run's block comes first
        assert '<span class="counts">' in local, f"{name}: no verdict counts in its block"
        assert '<span class="status' not in local, f"{name} did not succeed"  # the page names only other statuses
    assert {run.name: run.status for run in runs} == {name: "succeeded" for name in NOTEBOOKS}
