"""lth.report.batch and lth.report.page on two tiny notebooks: one writes its claims and a figure, one raises."""

import re

import pytest

from lth.report import batch
from lth.report.page import ClaimsError, read_claims

PARAMETERS = '''# %% tags=["parameters"]
profile = "quick"
bindings = []
output_dir = "figures"
root = "runs"
device = "auto"
'''

GOOD = PARAMETERS + '''
# %% [markdown]
# A notebook that keeps the contract.

# %%
import csv
from pathlib import Path
import matplotlib.pyplot as plt
folder = Path(output_dir) / profile / "good"
folder.mkdir(parents=True, exist_ok=True)
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([1.0, 0.5, 0.2], [97.0, 98.0, 96.5])
fig.savefig(folder / "accuracy.png")
fig.savefig(folder / "accuracy.svg")
plt.show()

# %%
with open(folder / "claims.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["figure", "claim", "paper", "ours", "verdict", "detail"])
    writer.writerow(["Fig. 1", "Tickets learn faster", "98.1%", "98.0%", "reproduced", "at 20% density"])
'''

BAD = PARAMETERS + '''
# %%
print("before the error")

# %%
raise ValueError("deliberate failure")
'''


def _batch(folder, monkeypatch, *args):
    monkeypatch.setattr(batch, "NOTEBOOK_DIR", folder / "notebooks")
    return batch.main(["--profile", "smoke", "--output-dir", str(folder / "figures"), "--root", str(folder / "runs"),
                       "--build-dir", str(folder / "build"), "--report-dir", str(folder / "report"), *args])


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Both notebooks run once: the exit status and the report's HTML."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "notebooks").mkdir()
    (folder / "notebooks" / "good.py").write_text(GOOD)
    (folder / "notebooks" / "bad.py").write_text(BAD)
    with pytest.MonkeyPatch.context() as monkeypatch:
        status = _batch(folder, monkeypatch)
    return folder, status, (folder / "report" / "index.html").read_text()


def _claim_row(html: str, text: str) -> str:
    """The row of the report's claims table that holds `text`."""
    table = re.search(r'<table class="claims">.*?</table>', html, re.S).group()
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
    row = _claim_row(html, "Tickets learn faster")
    for cell in ("Fig. 1", "<q>Tickets learn faster</q>", "98.1%", "98.0%", "at 20% density"):
        assert cell in row
    assert '<span class="verdict reproduced">reproduced</span>' in row


def test_report_marks_the_failing_notebook_with_its_cell_and_error(executed):
    _, _, html = executed
    row = _claim_row(html, '<a href="#nb-bad">')
    assert '<span class="verdict failed">failed</span>' in row
    assert "cell 3 of bad.py" in row and "ValueError: deliberate failure" in row
    section = html[html.index('<section class="notebook" id="nb-bad">'):]
    assert "before the error" in section  # its executed outputs up to the error are shown


def test_report_is_one_self_contained_file_without_code(executed):
    _, _, html = executed
    assert "data:image/png;base64," in html  # the figure, inline
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)  # nothing fetched from elsewhere
    assert "csv.writer" not in html  # code cells hidden


def test_only_reruns_one_notebook_and_the_report_keeps_the_other(executed, monkeypatch):
    folder, _, _ = executed
    assert _batch(folder, monkeypatch, "--only", "good") == 0
    html = (folder / "report" / "index.html").read_text()
    assert '<span class="verdict failed">failed</span>' in _claim_row(html, '<a href="#nb-bad">')
    assert "Tickets learn faster" in html


def test_an_unknown_notebook_name_is_an_error(executed, monkeypatch, capsys):
    folder, _, _ = executed
    assert _batch(folder, monkeypatch, "--only", "nope") == 2
    assert "no notebook named nope" in capsys.readouterr().err


def test_claims_must_keep_the_contract(tmp_path):
    path = tmp_path / "claims.csv"
    with pytest.raises(ClaimsError, match="wrote no"):
        read_claims(path)
    path.write_text("figure,claim,verdict\nFig. 1,x,reproduced\n")
    with pytest.raises(ClaimsError, match="expected exactly"):
        read_claims(path)
    path.write_text("figure,claim,paper,ours,verdict,detail\nFig. 1,x,1,2,yes,\n")
    with pytest.raises(ClaimsError, match="verdicts"):
        read_claims(path)
