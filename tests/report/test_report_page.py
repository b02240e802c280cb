"""lth.report.page on hand-written claims.csv files: old and new columns, empty tables, blank figures, paths."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lth.report.batch import committed_run  # noqa: E402
from lth.report.page import NotebookRun, build_report  # noqa: E402

OLD = "figure,claim,paper,ours,verdict,detail\nFig. 1,Tickets win,98.1%,98.0%,partly,looked in {where}/data\n"
NEW = ("figure,claim,paper,ours,verdict,detail,n,mean,ci_low,ci_high,interval,rule\n"
       "Fig. 2,Faster,38 %,28.6 %,inconclusive,d,2,28.61234567,-3.123456,60.345678,95% t-interval over trials,>= 19\n")


def _run(tmp_path, name, claims, profile="quick", figure_title=None):
    folder = tmp_path / "figures" / profile / name
    folder.mkdir(parents=True)
    (folder / "claims.csv").write_text(claims.format(where=tmp_path))
    if figure_title is not None:
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1])
        if figure_title:
            fig.suptitle(figure_title)
        fig.savefig(folder / "curve.png", dpi=150)
        fig.savefig(folder / "curve.svg")
        plt.close(fig)
    return NotebookRun(name, "succeeded", profile=profile, output_dir=str(tmp_path / "figures"),
                       finished="2026-01-01T00:00:00+00:00", wall_s=1.0)


def _html(tmp_path, runs, reference=()):
    return build_report(runs, "quick", tmp_path / "report", reference=reference).read_text()


def test_old_and_new_claims_files_render_with_rounded_statistics(tmp_path):
    html = _html(tmp_path, [_run(tmp_path, "old", OLD), _run(tmp_path, "new", NEW)])
    assert '<span class="verdict partly">partly</span>' in html
    assert '<span class="verdict inconclusive">inconclusive</span>' in html
    assert "28.6123" not in html and "<th>mean</th>" not in html  # the mean is 'ours', not a raw float
    assert "[-3.1,\u00a060.3]" in html  # the interval, both ends to three significant digits of the larger
    assert "95% t-interval over trials" in html and "rule: &gt;= 19" in html
    assert html.count("<th>95% interval</th>") == 1  # only the new file has the column


def test_paths_in_claims_are_relative_to_the_project_folder(tmp_path):
    html = _html(tmp_path, [_run(tmp_path, "old", OLD)])
    assert "looked in data" in html and str(tmp_path) not in html


def test_an_empty_claims_table_says_so(tmp_path):
    html = _html(tmp_path, [_run(tmp_path, "empty", "figure,claim,paper,ours,verdict,detail\n")])
    assert '<table class="claims">' not in html and "No claims" in html


def test_a_notebook_that_ran_nothing_shows_no_blank_figure(tmp_path):
    claims = "figure,claim,paper,ours,verdict,detail\nFig. 5,x,1,,not run,no CIFAR-10\n"
    html = _html(tmp_path, [_run(tmp_path, "conv", claims, figure_title="Not run: no CIFAR-10")])
    assert "<img" not in html and "Figures not shown" in html


def test_figures_are_linked_and_described_by_their_title(tmp_path):
    html = _html(tmp_path, [_run(tmp_path, "lenet", OLD, figure_title="Figure 4a rebuilt")])
    assert re.search(r'<a href="../figures/quick/lenet/curve.png"[^>]*><img [^>]*alt="Figure 4a rebuilt \(lenet, '
                     r'profile quick\)"', html)
    assert 'href="../figures/quick/lenet/curve.svg"' in html


def test_reference_results_appear_beside_the_local_run_labelled_with_their_profile(tmp_path):
    local = _run(tmp_path, "lenet", OLD)
    reference = [_run(tmp_path, "lenet", NEW, profile="paper"), _run(tmp_path, "only_paper", OLD, profile="paper")]
    for run in reference:
        run.finished, run.wall_s = "", None  # committed results: never executed here
    html = _html(tmp_path, [local], reference)
    section = html[html.index('id="nb-lenet"'):html.index('id="nb-only_paper"')]
    assert "This run <span class=\"profile\">profile quick</span>" in section
    assert "Committed results <span class=\"profile\">profile paper</span>" in section
    assert '<th>profile quick</th><th>profile paper</th>' in html
    assert "not executed on profile quick" in html  # only_paper has no local run


def test_committed_run_reads_the_committed_folder(tmp_path):
    _run(tmp_path, "lenet", OLD, profile="paper")
    assert committed_run("lenet", tmp_path / "figures").status == "succeeded"
    missing = committed_run("nothing", tmp_path / "figures")
    assert missing.status == "not run" and "no committed results" in missing.reason


def test_paths_become_relative_even_between_colour_codes(tmp_path):
    from lth.report.page import _Paths

    paths = _Paths(tmp_path / "report")
    text = f"\x1b[0;32mFile \x1b[0;32m{tmp_path}/lth/x.py:25\x1b[0m, see {tmp_path / 'figures'}."
    assert paths.text(text) == "\x1b[0;32mFile \x1b[0;32mlth/x.py:25\x1b[0m, see figures."
    assert paths.text("/elsewhere/deep/file.txt and 3/4 and https://x.org/a/b") == "…/file.txt and 3/4 and https://x.org/a/b"
