"""The exact SubsetSum solver (lth.prune.subsetsum) against brute force and a MILP, its tie-break, its errors."""

import math
from types import SimpleNamespace

import pytest
import torch

from lth.prune import subsetsum

PAPER_LOW, PAPER_HIGH = -0.46423155069351196, 0.5407021641731262


def problem(count: int, n: int, seed: int, scale: float = 0.05):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(count, generator=generator, dtype=torch.float64) * scale
    return weights, subsetsum.draw_coefficients(count, n, PAPER_LOW, PAPER_HIGH, seed=seed)


def assert_same(found: subsetsum.SubsetSum, reference: subsetsum.SubsetSum):
    assert torch.equal(found.masks, reference.masks)
    assert torch.allclose(found.error, reference.error, rtol=0, atol=1e-12)


def test_paper_parameters():
    assert subsetsum.num_coefficients(3, 0.01) == 21  # their code's int(c * round(log2(1/eps))); the README's gives 20
    assert subsetsum.num_coefficients(1, 0.01) == 7


@pytest.mark.parametrize("n", [1, 2, 3, 6, 9, 12])
def test_equals_brute_force_for_small_n(n):
    weights, coefficients = problem(150, n, seed=n, scale=0.3)
    weights[:3] = torch.tensor([5.0, -5.0, 0.0], dtype=torch.float64)  # beyond every sum; exactly 0
    found = subsetsum.solve(weights, coefficients, chunk_size=7)  # chunks that do not divide the weights
    assert_same(found, subsetsum.brute_force(weights, coefficients))
    assert torch.equal(found.approximation, subsetsum.subset_values(coefficients, found.masks))
    positives = sum(1 << i for i in range(n) if coefficients[0, i] > 0)
    assert int(found.masks[0]) == positives  # w = 5 is best approached by every positive coefficient


def test_equals_brute_force_at_n21_on_a_sample():
    weights, coefficients = problem(3, 21, seed=21)
    found = subsetsum.solve(weights, coefficients)
    assert_same(found, subsetsum.brute_force(weights, coefficients))
    assert bool((found.error < 1e-3).all())


def test_equals_milp():
    weights, coefficients = problem(4, 12, seed=5)
    weights21, coefficients21 = problem(1, 21, seed=6)
    for w, a in ((weights, coefficients), (weights21, coefficients21)):
        ours = subsetsum.solve(w, a)
        for i in range(len(w)):
            milp = subsetsum.milp_min_error(float(w[i]), a[i].tolist())
            assert milp.status == "optimal"
            assert abs(milp.error - float(ours.error[i])) <= 1e-9
            assert abs(milp.objective - float(ours.error[i])) <= 1e-9


def test_ties_go_to_fewer_coefficients_then_the_lower_bitmask():
    quarter = torch.full((4, 6), 0.25, dtype=torch.float64)  # every subset of a size has the same sum
    weights = torch.tensor([0.5, 0.6, -1.0, 1.5], dtype=torch.float64)
    found = subsetsum.solve(weights, quarter)
    assert found.masks.tolist() == [0b11, 0b11, 0, 0b111111]
    assert_same(found, subsetsum.brute_force(weights, quarter))

    weights, coefficients = problem(100, 10, seed=3)
    coefficients[:, 3] = 0.0                  # keeping it never changes a sum: it must never be kept
    coefficients[:, 8] = coefficients[:, 1]   # equal coefficients: equal counts either way
    found, reference = subsetsum.solve(weights, coefficients), subsetsum.brute_force(weights, coefficients)
    assert not bool(((found.masks >> 3) & 1).any())
    assert torch.equal(found.kept, reference.kept)
    assert torch.allclose(found.error, reference.error, rtol=0, atol=1e-12)


def test_deterministic_for_a_seed_and_independent_of_chunking():
    weights, _ = problem(500, 21, seed=0)
    first = subsetsum.draw_coefficients(500, 21, PAPER_LOW, PAPER_HIGH, seed=7)
    assert torch.equal(first, subsetsum.draw_coefficients(500, 21, PAPER_LOW, PAPER_HIGH, seed=7))
    assert not torch.equal(first, subsetsum.draw_coefficients(500, 21, PAPER_LOW, PAPER_HIGH, seed=8))
    assert float(first.min()) >= PAPER_LOW and float(first.max()) < PAPER_HIGH
    one = subsetsum.solve(weights, first)
    assert torch.equal(one.masks, subsetsum.solve(weights, first).masks)
    assert torch.equal(one.masks, subsetsum.solve(weights, first, chunk_size=33).masks)


def test_the_gpu_sort_route_gives_the_same_answer(monkeypatch):
    """On GPUs the rows are sorted by torch.sort (numpy's argsort on CPU): the rest must not care."""
    weights, coefficients = problem(300, 14, seed=2)
    threads = torch.get_num_threads()
    numpy_sorted = subsetsum.solve(weights, coefficients)
    assert torch.get_num_threads() == threads  # the solve restores torch's thread count
    monkeypatch.setattr(subsetsum, "sort_rows", lambda rows: torch.sort(rows, dim=1))
    assert torch.equal(subsetsum.solve(weights, coefficients).masks, numpy_sorted.masks)
    quarter = torch.full((2, 6), 0.25, dtype=torch.float64)  # the tie path, after torch's sort
    assert subsetsum.solve(torch.tensor([0.6, 1.5], dtype=torch.float64), quarter).masks.tolist() == [0b11, 0b111111]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_gives_the_cpu_answer():
    weights, coefficients = problem(2000, 21, seed=1)
    gpu = subsetsum.solve(weights.cuda(), coefficients.cuda())
    assert torch.equal(gpu.masks.cpu(), subsetsum.solve(weights, coefficients).masks)


def test_bad_input_is_named():
    weights, coefficients = problem(10, 8, seed=0)
    for epsilon in (0, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="epsilon must be a finite number > 0"):
            subsetsum.num_coefficients(3, epsilon)
    with pytest.raises(ValueError, match="c must be"):
        subsetsum.num_coefficients(0, 0.01)
    bad = weights.clone()
    bad[4] = math.nan
    with pytest.raises(ValueError, match=r"weights hold 1 non-finite values \(the first at index 4: nan\)"):
        subsetsum.solve(bad, coefficients)
    bad = coefficients.clone()
    bad[2, 5] = math.inf
    with pytest.raises(ValueError, match=r"coefficients hold 1 non-finite .*index \(2, 5\)"):
        subsetsum.solve(weights, bad)
    with pytest.raises(ValueError, match=r"n = 30 coefficients needs .* GiB per weight.*use n <= \d+"):
        subsetsum.solve(weights[:1], torch.zeros(1, 30, dtype=torch.float64), memory_budget=2**20)
    with pytest.raises(ValueError, match="valid: 1 to 48"):
        subsetsum.solve(weights[:1], torch.zeros(1, 60, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"coefficients must be \(N, n\) with N = 10"):
        subsetsum.solve(weights, coefficients[:9])
    with pytest.raises(ValueError, match="weights must be 1-D"):
        subsetsum.solve(weights.view(2, 5), coefficients)
    with pytest.raises(ValueError, match="epsilon must be"):
        subsetsum.solve(weights, coefficients).within(0.0)


def test_a_weight_highs_cannot_solve_is_reported_not_fatal(monkeypatch):
    import scipy.optimize
    calls = []

    def failing_milp(*args, **kwargs):
        calls.append(kwargs["options"])
        return SimpleNamespace(x=None, status=4, message="Solve error", fun=None)

    monkeypatch.setattr(scipy.optimize, "milp", failing_milp)
    result = subsetsum.milp_min_error(0.1, [0.05, 0.2, -0.3])
    assert len(calls) == 2 and "primal_feasibility_tolerance" not in calls[1]  # retried with HiGHS's defaults
    assert math.isnan(result.error) and result.mask == -1 and "Solve error" in result.status
