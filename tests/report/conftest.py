"""The tiny notebooks (tiny_notebooks.py) run through lth.report.batch once per session."""

import pytest
from tiny_notebooks import BAD, GOOD, run_batch


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """Both notebooks run once: the folder, the exit status and the report's HTML."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "notebooks").mkdir()
    (folder / "notebooks" / "good.py").write_text(GOOD)
    (folder / "notebooks" / "bad.py").write_text(BAD)
    with pytest.MonkeyPatch.context() as monkeypatch:
        status = run_batch(folder, monkeypatch)
    return folder, status, (folder / "report" / "index.html").read_text()
