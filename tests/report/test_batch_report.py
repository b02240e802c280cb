"""lth.report.batch and lth.report.page on two tiny notebooks (tests/report/conftest.py): one writes its claims and
a figure, one raises."""

import re

import pytest
from tiny_notebooks import run_batch

from lth.report.page import ClaimsError, read_claims


def _section(html: str, name: str) -> str:
    start = html.index(f'<section class="notebook" id="nb-{name}">')
    return html[start:html.index("</section>", start)]


def _claim_row(html: str, name: str, text: str) -> str:
    """The row of notebook `name`'s claims table that holds `text`."""
    table = re.search(r'<table class="claims">.*?</table>', _section(html, name), re.S).group()
    rows = [row for row in re.findall(r"<tr>.*?</tr>", table, re.S) if text in row]
    assert rows, f"no claims row with {text!r}"
    return rows[0]


def test_a_failing_notebook_makes_the_exit_status_non_zero(executed):
    _, status, _ = executed
    assert status == 1


def test_the_good_notebook_wrote_its_files(executed):
    folder, _, _ = executed
    assert {p.name for p in (folder / "figures" / "smoke" / "good").iterdir()} == {"claims.csv", "accuracy.png", "accuracy.svg"}
    assert (folder / "build" / "smoke" / "good.ipynb").exists()
    assert (folder / "build" / "smoke" / "executed" / "good.ipynb").exists()


def test_report_has_the_claim_with_its_verdict(executed):
    _, _, html = executed
    row = _claim_row(html, "good", "Tickets learn faster")
    for cell in ("Fig. 1", "<q>Tickets learn faster</q>", "98.1%", "98.0%", "at 20% density"):
        assert cell in row
    assert '<span class="verdict reproduced">reproduced</span>' in row


def test_each_section_has_one_claims_table_and_no_cell_values(executed):
    _, _, html = executed
    good = _section(html, "good")
    assert good.count('<table class="claims">') == 1  # not again as the notebook's DataFrame
    assert "PosixPath(" not in html  # a cell's last value (here a list of paths) is not shown
    assert "writing to figures/smoke/good" in good  # printed output stays, its path made relative


def test_report_marks_the_failing_notebook_with_its_cell_and_error(executed):
    _, _, html = executed
    section = _section(html, "bad")
    assert '<span class="status failed">failed</span>' in section
    assert "cell 3 of bad.py" in section and "ValueError: deliberate failure" in section
    assert "before the error" in section  # its executed outputs up to the error are shown
    assert '<table class="claims">' not in section


def test_report_links_the_figure_files_and_the_executed_notebook(executed):
    folder, _, html = executed
    good = _section(html, "good")
    for href in ("../figures/smoke/good/accuracy.png", "../figures/smoke/good/accuracy.svg",
                 "../figures/smoke/good/claims.csv", "../build/smoke/executed/good.ipynb"):
        assert f'href="{href}"' in good
        assert (folder / "report" / href).resolve().exists()


def test_report_is_one_self_contained_file_without_code(executed):
    _, _, html = executed
    assert "data:image/png;base64," in html  # the figure, inline
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched from elsewhere
    assert "csv.writer" not in html  # code cells hidden


def test_only_reruns_one_notebook_and_the_report_keeps_the_other(executed, monkeypatch):
    folder, _, _ = executed
    assert run_batch(folder, monkeypatch, "--only", "good") == 0
    html = (folder / "report" / "index.html").read_text()
    assert '<span class="status failed">failed</span>' in _section(html, "bad")
    assert "Tickets learn faster" in html


def test_an_unknown_notebook_name_is_an_error(executed, monkeypatch, capsys):
    folder, _, _ = executed
    assert run_batch(folder, monkeypatch, "--only", "nope") == 2
    assert "no notebook named nope" in capsys.readouterr().err


def test_notebooks_run_two_at_a_time_and_one_at_a_time_alike(executed, monkeypatch, capsys):
    """The session's batch ran with the default (two at once on a 2-core machine, spawned workers); run
    again one at a time, the statuses and files are the same, and every notebook gets one progress line."""
    folder, status, _ = executed
    capsys.readouterr()
    assert run_batch(folder, monkeypatch, "--jobs", "1") == status
    out = capsys.readouterr().out
    assert re.search(r"\[1/2\] (good|bad): ", out) and re.search(r"\[2/2\] (good|bad): ", out)
    assert run_batch(folder, monkeypatch, "--jobs", "2") == status
    out = capsys.readouterr().out
    assert "2 notebooks at a time" in out and "[2/2]" in out
    assert {p.name for p in (folder / "figures" / "smoke" / "good").iterdir()} == {"claims.csv", "accuracy.png", "accuracy.svg"}


def test_a_jobs_count_below_one_is_an_error(executed, monkeypatch, capsys):
    folder, _, _ = executed
    assert run_batch(folder, monkeypatch, "--jobs", "0") == 2
    assert "jobs must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_claims_must_keep_the_contract(tmp_path):
    path = tmp_path / "claims.csv"
    with pytest.raises(ClaimsError, match="wrote no"):
        read_claims(path)
    path.write_text("figure,claim,verdict\nFig. 1,x,reproduced\n")
    with pytest.raises(ClaimsError, match=r"lacking \['paper', 'ours', 'detail'\]"):
        read_claims(path)
    path.write_text("figure,claim,paper,ours,verdict,detail\nFig. 1,x,1,2,yes,\n")
    with pytest.raises(ClaimsError, match="verdicts"):
        read_claims(path)
