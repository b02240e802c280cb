"""Step strings and learning-rate schedules."""

import pytest

from lth.train.schedules import lr_at, parse_steps


def test_step_strings():
    assert parse_steps("50000it", 916) == 50000
    assert parse_steps("160ep", 351) == 160 * 351
    assert parse_steps(7, 100) == 7
    for bad in ("50k", "ep", "-3it", "3 epochs"):
        with pytest.raises(ValueError, match="bad step string"):
            parse_steps(bad, 100)


def test_multistep_drops_at_milestones():
    rates = [lr_at(i, lr=0.1, total=300, schedule="multistep", milestones=(100, 200)) for i in (0, 99, 100, 199, 200)]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_cosine_and_warmup():
    assert lr_at(0, lr=1.0, total=100, schedule="cosine") == 1.0
    assert lr_at(50, lr=1.0, total=100, schedule="cosine") == pytest.approx(0.5)
    assert lr_at(100, lr=1.0, total=100, schedule="cosine") == pytest.approx(0.0, abs=1e-12)
    warm = [lr_at(i, lr=0.03, total=1000, warmup=20) for i in (0, 9, 19, 20, 500)]
    assert warm == pytest.approx([0.03 / 20, 0.03 * 10 / 20, 0.03, 0.03, 0.03])


def test_unknown_schedule_lists_valid_ones():
    with pytest.raises(ValueError, match="'linear'.*constant, multistep, cosine"):
        lr_at(0, lr=0.1, total=10, schedule="linear")


def test_step_strings_in_iterations_need_no_epoch_length_and_epochs_do():
    from lth.train.schedules import step_unit
    assert parse_steps("40it") == 40 and parse_steps(7) == 7
    assert step_unit("3ep") == "ep" and step_unit("40it") == step_unit(40) == "it"
    with pytest.raises(ValueError, match="epochs"):
        parse_steps("3ep")
