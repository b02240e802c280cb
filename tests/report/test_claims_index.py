"""The claims section of REPRODUCIBILITY.md (lth.report.claims_index): it is what the committed claims.csv
files give, and the renderer on a hand-made frame."""

import pandas as pd
import pytest

from lth.report import claims_index as ci
from lth.report.page import read_claims

CONTEXT = "MNIST, paper profile: 3 trials × 1,000 iterations"


def _row(notebook, claim, paper, ours, verdict, detail, n="3.0", figure="Fig. 1"):
    return dict(notebook=notebook, figure=figure, claim=claim, paper=paper, ours=ours, verdict=verdict,
                detail=detail, n=n)


def tiny_claims() -> pd.DataFrame:
    return pd.DataFrame([
        _row("a", "Tickets |w| beat dense.", "+0.30 pp", "+0.40 pp", "reproduced",
             f"{CONTEXT}: ticket minus dense, per trial; n = 3, 95% t-interval over trials [+0.1 pp, +0.7 pp]"),
        _row("a", "Reinit is slower and worse.", "2.50x faster", "1.90x", "not reproduced",
             f"{CONTEXT}: reinit over ticket, per trial; n = 3, 95% t-interval over trials [1.7x, 2.1x]"),
        _row("a", "Reinit is slower and worse.", "+0.50 pp", "+0.10 pp", "not reproduced",
             f"{CONTEXT}: ticket minus reinit, per trial; n = 3, 95% t-interval over trials [+0.0 pp, +0.2 pp]"),
        _row("a", "Back to dense at 3.6%.", "+0.00 pp", "+1.00 pp", "inconclusive",
             f"{CONTEXT}: ticket minus dense, per trial; n = 2, 95% t-interval over trials [-1.0 pp, +3.0 pp]; "
             "depends on the schedule: 10 of 100 epochs (the paper 100)", n="2.0"),
        _row("b", "Conv-2 up to +3.4 pp.", "+3.40 pp", "", "not run",
             "CIFAR-10, paper profile: 5 trials × 20,000 iterations; experiment c2: data set 'cifar10' not found. "
             "Looked in: data", n=""),
        _row("b", "Supermask reaches 95%.", "95.0 %", "97.0 %", "not comparable",
             f"{CONTEXT}: edge-popup, per trial; n = 3, 95% t-interval over trials [96 %, 98 %]; run on mnist, the "
             "paper on cifar10: not comparable"),
    ])


def tiny_causes() -> pd.DataFrame:
    return pd.DataFrame([dict(notebook="a", claim="Reinit is slower", paper="2.50x faster", cause="Noisy early stop."),
                         dict(notebook="b", claim="Supermask", paper="", cause="Stale: that claim is no miss.")])


def test_tiny_frame_renders_counts_tables_and_causes_from_data():
    text = ci.render(tiny_claims(), tiny_causes())
    lines = text.splitlines()
    assert "6 claims in 2 notebooks: 1 reproduced, 2 not reproduced, 1 inconclusive, 1 not comparable, 1 not run." in lines
    assert "| `a` | 1 | 2 | 1 | 0 | 0 | 4 |" in lines
    assert "| `b` | 0 | 0 | 0 | 1 | 1 | 2 |" in lines
    assert "| **all** | 1 | 2 | 1 | 1 | 1 | 6 |" in lines
    table_a = lines[lines.index("### `a`") + 2:lines.index("### `b`") - 1]
    assert table_a == [
        "| claim | paper | ours | n | verdict | cause |",
        "|---|---|---|---:|---|---|",
        "| Tickets \\|w\\| beat dense. | +0.30 pp | +0.40 pp | 3 | reproduced |  |",
        "| **reinit over ticket**: Reinit is slower and worse. | 2.50x faster | 1.90x | 3 | not reproduced | Noisy early stop. |",
        "| **ticket minus reinit**: Reinit is slower and worse. | +0.50 pp | +0.10 pp | 3 | not reproduced | "
        "cause not established |",
        "| Back to dense at 3.6%. | +0.00 pp | +1.00 pp | 2 | inconclusive | n = 2, 95% t-interval over trials "
        "[-1.0 pp, +3.0 pp]; depends on the schedule: 10 of 100 epochs (the paper 100) |",
    ]
    table_b = lines[lines.index("### `b`") + 4:]
    assert table_b == [
        "| Conv-2 up to +3.4 pp. | +3.40 pp |  | – | not run | experiment c2: data set 'cifar10' not found. |",
        "| Supermask reaches 95%. | 95.0 % | 97.0 % | 3 | not comparable | run on mnist, the paper on cifar10: "
        "not comparable |",
    ]


def test_a_cause_that_matches_no_miss_is_reported_stale():
    stale = ci.unused_causes(tiny_claims(), tiny_causes())
    assert list(stale["claim"]) == ["Supermask"]


def test_short_cause_is_clipped_at_a_word():
    detail = f"{CONTEXT}: x; n = 1 < 3: inconclusive; " + "because " * 60
    cause = ci.short_cause(detail, "inconclusive")
    assert cause.startswith("n = 1 < 3: inconclusive; because") and cause.endswith(" …")
    assert len(cause) <= ci.MAX_CAUSE


def test_semicolons_inside_brackets_do_not_split_a_detail():
    detail = f"{CONTEXT}: x; n = 3, 95% t-interval over trials [1; 2]; the paper's claim is about X (a; b)"
    assert ci.short_cause(detail, "not comparable") == "the paper's claim is about X (a; b)"


def test_read_causes_names_a_missing_column(tmp_path):
    path = tmp_path / "causes.csv"
    path.write_text("notebook,claim,cause\na,b,c\n")
    with pytest.raises(ValueError, match="lacking \\['paper'\\]"):
        ci.read_causes(path)


def test_section_is_replaced_between_the_markers_only():
    text = f"intro\n\n{ci.CLAIMS_BEGIN}\nold\n{ci.CLAIMS_END}\n\nprose\n"
    new = ci.replace_section(text, "## new\n")
    assert new == f"intro\n\n{ci.CLAIMS_BEGIN}\n## new\n{ci.CLAIMS_END}\n\nprose\n"
    assert ci.committed_section(new) == "## new\n"
    with pytest.raises(ValueError, match="claims:begin"):
        ci.committed_section("no markers here")


def test_cli_checks_rewrites_and_refuses_a_document_without_markers(tmp_path, capsys):
    folder = tmp_path / "figures" / "paper" / "a"
    folder.mkdir(parents=True)
    tiny_claims().query("notebook == 'a'").drop(columns="notebook").to_csv(folder / "claims.csv", index=False)
    causes = tmp_path / "causes.csv"
    tiny_causes().to_csv(causes, index=False)
    doc = tmp_path / "DOC.md"
    doc.write_text(f"intro\n{ci.CLAIMS_BEGIN}\n{ci.CLAIMS_END}\nprose\n")
    args = ["--figures", str(tmp_path / "figures"), "--causes", str(causes), "--doc", str(doc)]
    assert ci.main([*args, "--check"]) == 1
    assert ci.main(args) == 0
    assert ci.main([*args, "--check"]) == 0
    assert doc.read_text().startswith(f"intro\n{ci.CLAIMS_BEGIN}\n## Every claim") and doc.read_text().endswith("prose\n")
    assert "matches no missed claim" in capsys.readouterr().err  # the Supermask cause: no such claim in 'a'
    doc.write_text("no markers\n")
    assert ci.main(args) == 2


# -- the committed files --------------------------------------------------------------------------------


def test_committed_section_is_what_the_committed_claims_give():
    """Fails when a claims.csv or causes.csv changed without `python -m lth.report.claims_index`."""
    rendered = ci.render(ci.load_claims(ci.figures_dir()), ci.read_causes(ci.causes_path()))
    committed = ci.committed_section(ci.doc_path().read_text(encoding="utf-8"))
    assert committed == rendered, "REPRODUCIBILITY.md's claims section is stale: run python -m lth.report.claims_index"


def test_every_committed_cause_belongs_to_a_current_miss():
    stale = ci.unused_causes(ci.load_claims(ci.figures_dir()), ci.read_causes(ci.causes_path()))
    assert stale.empty, f"causes.csv rows that match no missed claim: {stale[['notebook', 'claim']].values.tolist()}"


def test_snip_cause_says_what_the_ablation_shows():
    """The SNIP cause says every ablated variant is still not reproduced: the ablation's own verdicts."""
    causes = ci.read_causes(ci.causes_path())
    assert "all still not reproduced" in causes.set_index("notebook").loc["pai_lenet", "cause"]
    ablation = read_claims(ci.figures_dir() / "paper" / "pai_lenet" / "snip_ablation.csv")
    assert len(ablation) >= 2 and set(ablation["verdict"]) == {"not reproduced"}
