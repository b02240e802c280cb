"""Approximate each weight by a subset sum of random coefficients, exactly (Pensia et al. 2020, Experiment 1).

Every weight w gets its own n coefficients a_1..a_n; we want the subset S minimising |w - sum_{i in S} a_i|.
Pensia et al. gave each weight to Gurobi (77,266 s for 397,000 weights, n = 21). Here all weights are
solved at once by meet-in-the-middle, as tensors, on CPU or GPU with the same code (torch, float64;
the one device-specific step is the per-row sort, numpy's on CPU: `sort_rows`):

1. Split the coefficients into a low half Q (the first ceil(n/2)) and a high half T. Enumerate the
   2^|Q| subset sums s_Q and the 2^|T| subset sums s_T of every weight (one matmul with a fixed 0/1
   matrix, `union_matrix`).
2. A pair (s_Q, s_T) approximates w with error |(w - s_Q) - s_T|: the distance between a "query"
   q = w - s_Q and a table entry t = s_T. Sort, per weight, the union of the queries and the table
   (3 * 2^(n/2) numbers). The closest (query, table) pair is adjacent in that order, so one pass
   over neighbouring differences finds the minimum. No search per query: with torch on CPU, a sort
   of the union cost less than sorting the table and binary-searching every query.
3. Weights are processed in chunks, so memory stays bounded whatever the number of weights.

Exact: the result is the minimum over all 2^n subsets (tests check it against `brute_force` and
against an independent MILP, `milp_min_error`).

Tie-break (it decides the kept-coefficient count when it applies): among subsets of equal minimum
error, the one with the fewest kept coefficients, then the one with the lowest bitmask. Exact ties
have probability zero for coefficients drawn from a continuous distribution in float64 (they need a
coefficient that is exactly 0, or equal subset sums); the solver detects the weights where the
minimum might be shared (equal neighbours or a repeated minimum gap) and resolves those weights by
groups of equal values, so the rule holds always, not just almost surely.

Bitmask: bit i set means coefficient i is kept. The error reported is |w - approximation|, where the
approximation is the sum of the kept coefficients.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

MAX_COEFFICIENTS = 48            # bitmasks and tie-break keys are packed into int64
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of working memory per chunk of weights
BYTES_PER_SUBSET_SUM = 56        # union values, sorted values, sort indices, differences, flags
CPU_CHUNK = 64                   # weights per chunk on CPU (measured best of 64, 256, 1024)
# On CPU the sort (numpy's) runs on SORT_THREADS threads and the light elementwise torch work on
# TORCH_CPU_THREADS: torch's OpenMP threads wait for each other at every op, which on a machine shared
# with other jobs cost 3-10x (2 cores: 80-300 s with 2 torch threads, 25 s with 1).
SORT_THREADS = os.cpu_count() or 1
TORCH_CPU_THREADS = 1


# ---- the paper's parameters ------------------------------------------------------------------

def num_coefficients(c: float, epsilon: float) -> int:
    """n = int(c * round(log2(1/eps))), as Pensia et al.'s code computes it (c=3, eps=0.01: 21;
    their README's round(c * log2(1/eps)) would give 20)."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
        raise ValueError(f"c must be a finite number > 0, got {c!r}")
    n = int(c * round(math.log2(1 / epsilon)))
    if n < 1:
        raise ValueError(f"c={c} and epsilon={epsilon} give n = int(c * round(log2(1/eps))) = {n} "
                         f"coefficients; need at least 1 (use epsilon < 0.5 or a larger c)")
    return n


def coefficient_range(weights: Iterable[torch.Tensor]) -> tuple[float, float]:
    """[min, max] over all the target's weights: the interval the coefficients are drawn from
    (Pensia et al.: [-0.464, 0.541] for their network)."""
    tensors = [w.detach() for w in weights]
    if not tensors or all(t.numel() == 0 for t in tensors):
        raise ValueError("no weights to take the coefficient range from")
    low = min(float(t.min()) for t in tensors if t.numel())
    high = max(float(t.max()) for t in tensors if t.numel())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"the weights' range [{low}, {high}] is not finite")
    return low, high


def draw_coefficients(num_weights: int, n: int, low: float, high: float, seed: int,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """(num_weights, n) float64 coefficients, each weight its own, uniform on [low, high).

    Drawn by a CPU generator from ``seed`` and then moved, so every device gets the same numbers."""
    if num_weights < 0 or n < 1:
        raise ValueError(f"need num_weights >= 0 and n >= 1, got {num_weights} and {n}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"the coefficient interval [{low}, {high}] must be finite with low < high")
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(num_weights, n, dtype=torch.float64, generator=generator)
    return (low + (high - low) * draws).to(device)


# ---- the result ------------------------------------------------------------------------------

@dataclass
class SubsetSum:
    """One subset per weight: its bitmask, the sum of its coefficients and the error."""
    masks: torch.Tensor          # (N,) int64: bit i set = coefficient i kept
    approximation: torch.Tensor  # (N,) float64: the sum of the kept coefficients
    error: torch.Tensor          # (N,) float64: |w - approximation|
    n: int                       # coefficients per weight

    @property
    def kept(self) -> torch.Tensor:
        """(N,) int64: coefficients kept per weight."""
        return popcount(self.masks, self.n)

    def within(self, epsilon: float) -> torch.Tensor:
        """(N,) bool: the weights approximated to within epsilon."""
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
        return self.error <= epsilon


def popcount(masks: torch.Tensor, n: int) -> torch.Tensor:
    """Set bits among the low n bits of each int64."""
    count = torch.zeros_like(masks)
    for bit in range(n):
        count += (masks >> bit) & 1
    return count


def subset_bits(masks: torch.Tensor, n: int) -> torch.Tensor:
    """(..., n) float64 0/1 of each mask's low n bits (bit i in column i)."""
    return ((masks.unsqueeze(-1) >> torch.arange(n, device=masks.device)) & 1).to(torch.float64)


def subset_values(coefficients: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The sum of each weight's kept coefficients."""
    return (coefficients.to(torch.float64) * subset_bits(masks, coefficients.shape[1])).sum(1)


# ---- input checks ----------------------------------------------------------------------------

def _check_inputs(weights: torch.Tensor, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if weights.dim() != 1:
        raise ValueError(f"weights must be 1-D (N,), got shape {tuple(weights.shape)}; flatten a layer's "
                         "weight with .flatten()")
    if coefficients.dim() != 2 or coefficients.shape[0] != weights.shape[0]:
        raise ValueError(f"coefficients must be (N, n) with N = {weights.shape[0]} weights, got shape "
                         f"{tuple(coefficients.shape)}")
    n = coefficients.shape[1]
    if not 1 <= n <= MAX_COEFFICIENTS:
        raise ValueError(f"n = {n} coefficients per weight; valid: 1 to {MAX_COEFFICIENTS}")
    for name, tensor in (("weights", weights), ("coefficients", coefficients)):
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            first = bad.nonzero()[0].tolist()
            raise ValueError(f"{name} hold {int(bad.sum())} non-finite values (the first at index "
                             f"{first[0] if len(first) == 1 else tuple(first)}: {tensor[tuple(first)].item()}); "
                             "every value must be finite")
    return weights.detach().to(torch.float64), coefficients.detach().to(device=weights.device, dtype=torch.float64)


def bytes_per_weight(n: int) -> int:
    """Working memory of one weight in `solve`."""
    return BYTES_PER_SUBSET_SUM * ((1 << ((n + 1) // 2)) + (1 << (n // 2)))


def chunk_size_for(n: int, device: torch.device, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Weights per chunk: all that fit in ``memory_budget`` (at most CPU_CHUNK on CPU)."""
    per_weight = bytes_per_weight(n)
    if per_weight > memory_budget:
        largest = max(k for k in range(1, MAX_COEFFICIENTS + 1) if bytes_per_weight(k) <= memory_budget) \
            if bytes_per_weight(1) <= memory_budget else 0
        raise ValueError(f"n = {n} coefficients needs {per_weight / 2**30:.2f} GiB per weight for the "
                         f"meet-in-the-middle (2^{(n + 1) // 2} + 2^{n // 2} subset sums), more than the "
                         f"memory budget of {memory_budget / 2**30:.2f} GiB: use n <= {largest} or raise "
                         "memory_budget")
    fit = memory_budget // per_weight
    return int(min(fit, CPU_CHUNK) if device.type == "cpu" else fit)


# ---- the solver ------------------------------------------------------------------------------

def _bit_matrix(h: int, device: torch.device) -> torch.Tensor:
    """(2^h, h) float64 0/1: row m holds the bits of m."""
    return subset_bits(torch.arange(1 << h, device=device), h)


def union_matrix(n: int, device: torch.device) -> torch.Tensor:
    """(1 + n, 2^high + 2^low) float64 M such that [w, a_1..a_n] @ M is the union of one weight:
    first the table entries s_T (subset sums of the high half), then the queries w - s_Q (low half)."""
    low_bits, high_bits = (n + 1) // 2, n // 2
    table_size = 1 << high_bits
    matrix = torch.zeros(1 + n, table_size + (1 << low_bits), dtype=torch.float64, device=device)
    matrix[1 + low_bits:, :table_size] = _bit_matrix(high_bits, device).T
    matrix[0, table_size:] = 1.0
    matrix[1:1 + low_bits, table_size:] = -_bit_matrix(low_bits, device).T
    return matrix


def solve(weights: torch.Tensor, coefficients: torch.Tensor, *, chunk_size: int | None = None,
          memory_budget: int = DEFAULT_MEMORY_BUDGET) -> SubsetSum:
    """The minimum-error subset of each weight's coefficients (module docstring: method, tie-break).

    ``weights`` (N,) and ``coefficients`` (N, n) on one device; computed there in float64."""
    weights, coefficients = _check_inputs(weights, coefficients)
    device, n = weights.device, coefficients.shape[1]
    fits = chunk_size_for(n, device, memory_budget)  # also refuses an n too large for the budget
    chunk = fits if chunk_size is None else chunk_size
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    matrix = union_matrix(n, device)
    inputs = torch.cat([weights.unsqueeze(1), coefficients], dim=1)
    masks = torch.empty(weights.shape[0], dtype=torch.int64, device=device)
    with _torch_threads(TORCH_CPU_THREADS if device.type == "cpu" else None):
        for start in range(0, weights.shape[0], chunk):
            part = slice(start, start + chunk)
            masks[part] = _solve_chunk(inputs[part] @ matrix, n)
    approximation = subset_values(coefficients, masks)
    return SubsetSum(masks, approximation, (weights - approximation).abs(), n)


def sort_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, order) of every row sorted ascending; equal values in any order (the solver does not
    depend on it). On CPU numpy's argsort, a vectorised quicksort (AVX-512 / AVX2 where the CPU has
    them), split over SORT_THREADS threads: 6x faster than torch.sort on our 2-core machine, and the
    sort is nearly all of the solve. Elsewhere torch.sort."""
    if rows.device.type != "cpu":
        return torch.sort(rows, dim=1)
    import numpy as np  # here, not at the top: on a GPU the solver needs torch only

    array = rows.numpy()
    order = np.empty(array.shape, dtype=np.int64)

    def argsort(part: slice) -> None:
        order[part] = np.argsort(array[part], axis=1)

    threads = min(SORT_THREADS, len(array))
    step = -(-len(array) // max(threads, 1))
    parts = [slice(start, start + step) for start in range(0, len(array), step)]
    if len(parts) > 1:
        list(_sort_pool(threads).map(argsort, parts))  # numpy releases the GIL while sorting
    else:
        for part in parts:
            argsort(part)
    order_tensor = torch.from_numpy(order)
    return rows.gather(1, order_tensor), order_tensor


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """torch's CPU thread count set to ``threads`` for the block (None: unchanged), then restored."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.cache
def _sort_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="subsetsum-sort")


def _solve_chunk(union: torch.Tensor, n: int) -> torch.Tensor:
    """Bitmasks of the best subsets of one chunk of weights, from their unions (see `union_matrix`)."""
    low_bits, table_size = (n + 1) // 2, 1 << (n // 2)
    values, order = sort_rows(union)
    is_table = order < table_size
    gap = torch.sub(values[:, 1:], values[:, :-1], out=union[:, 1:])  # the union is not needed again
    # Only a (table, query) neighbour pair is a subset; a (table, table) or (query, query) gap is not.
    gap.masked_fill_(is_table[:, 1:] == is_table[:, :-1], math.inf)
    best_gap, position = gap.min(dim=1)
    first, second = order.gather(1, position[:, None]).squeeze(1), order.gather(1, position[:, None] + 1).squeeze(1)
    table_index = torch.where(first < table_size, first, second)
    query_index = torch.where(first < table_size, second, first) - table_size
    masks = query_index | (table_index << low_bits)

    # Rows where another subset might reach the same error: the minimum gap occurs twice, or a value
    # next to the best pair repeats (equal subset sums). Resolve them by the tie-break rule.
    repeated = (gap == best_gap[:, None]).sum(1) > 1
    last = values.shape[1] - 1
    before = values.gather(1, (position - 1).clamp(min=0)[:, None]).squeeze(1)
    after = values.gather(1, (position + 2).clamp(max=last)[:, None]).squeeze(1)
    left, right = values.gather(1, position[:, None]).squeeze(1), values.gather(1, (position + 1)[:, None]).squeeze(1)
    shared = ((position > 0) & (before == left)) | ((position + 2 <= last) & (after == right))
    ties = (repeated | shared).nonzero().squeeze(1)
    if ties.numel():
        masks[ties] = _resolve_ties(values[ties], order[ties], table_size, low_bits, n)
    return masks


def _resolve_ties(values: torch.Tensor, order: torch.Tensor, table_size: int, low_bits: int, n: int) -> torch.Tensor:
    """The tie-break rule on rows of a sorted union: among all (query, table) pairs at the minimum
    distance, the fewest kept coefficients, then the lowest bitmask.

    Equal values form groups. A pair at the minimum distance has nothing strictly between its two
    values, so it joins a query and a table entry of one group (distance 0) or of neighbouring
    groups. Within a group the best query and the best table entry can be chosen separately: a
    pair's count is the sum of theirs, and its bitmask orders by the table part (high bits) first."""
    rows, width = values.shape
    device = values.device
    huge = torch.iinfo(torch.int64).max
    is_table = order < table_size
    local = torch.where(is_table, order, order - table_size)  # the bitmask within its half
    key = (popcount(local, low_bits) << low_bits) | local     # (kept count, bitmask): smaller is better
    group = torch.cat([torch.zeros(rows, 1, dtype=torch.int64, device=device),
                       (values[:, 1:] != values[:, :-1]).long().cumsum(1)], dim=1)
    groups = group[:, -1:] + 1

    def per_group(source: torch.Tensor, fill, reduce: str = "amin") -> torch.Tensor:
        out = torch.full((rows, width), fill, dtype=source.dtype, device=device)
        return out.scatter_reduce_(1, group, source, reduce)

    best_query = per_group(torch.where(is_table, huge, key), huge)
    best_table = per_group(torch.where(is_table, key, huge), huge)
    group_value = per_group(values, math.inf)
    index = torch.arange(width, device=device).expand(rows, width)
    following = (index + 1).clamp(max=width - 1)
    next_query, next_table = best_query.gather(1, following), best_table.gather(1, following)
    step = (group_value.gather(1, following) - group_value).masked_fill(index + 1 >= groups, math.inf)
    same = torch.zeros_like(step).masked_fill(index >= groups, math.inf)
    # Candidates: same group; query in g and table in g+1; table in g and query in g+1.
    distance = torch.cat([same, step, step], dim=1)
    query_key = torch.cat([best_query, best_query, next_query], dim=1)
    table_key = torch.cat([best_table, next_table, best_table], dim=1)
    present = (query_key != huge) & (table_key != huge)
    distance = distance.masked_fill(~present, math.inf)
    half_mask = (1 << low_bits) - 1
    full = (query_key & half_mask) | ((table_key & half_mask) << low_bits)
    kept = (query_key >> low_bits) + (table_key >> low_bits)
    at_minimum = present & (distance == distance.min(dim=1, keepdim=True).values)
    rank = torch.where(at_minimum, (kept << n) | full, huge)
    return full.gather(1, rank.argmin(dim=1, keepdim=True)).squeeze(1)


# ---- references ------------------------------------------------------------------------------

def brute_force(weights: torch.Tensor, coefficients: torch.Tensor) -> SubsetSum:
    """All 2^n subsets of every weight (2^n * 24 bytes each): the reference `solve` is tested
    against. Same tie-break: minimum error, then fewest kept, then lowest bitmask."""
    weights, coefficients = _check_inputs(weights, coefficients)
    n = coefficients.shape[1]
    if n > 26:
        raise ValueError(f"brute force over 2^{n} subsets per weight is too large; valid: n <= 26")
    all_masks = torch.arange(1 << n, device=weights.device)
    rank = (popcount(all_masks, n) << n) | all_masks
    bits = _bit_matrix(n, weights.device).T
    masks = torch.empty(weights.shape[0], dtype=torch.int64, device=weights.device)
    for i in range(weights.shape[0]):
        error = (weights[i] - coefficients[i] @ bits).abs()
        rank_at_min = torch.where(error == error.min(), rank, torch.iinfo(torch.int64).max)
        masks[i] = all_masks[rank_at_min.argmin()]
    approximation = subset_values(coefficients, masks)
    return SubsetSum(masks, approximation, (weights - approximation).abs(), n)


@dataclass(frozen=True)
class MilpResult:
    error: float         # |w - sum of the kept coefficients|, recomputed from the rounded solution
    objective: float     # the solver's own optimum of the error variable
    mask: int
    seconds: float
    status: str          # scipy's message; "optimal" only if HiGHS proved optimality


def milp_min_error(weight: float, coefficients: Sequence[float], *, time_limit: float = 60.0) -> MilpResult:
    """An independent check: min |w - sum_i x_i a_i| over binary x as a MILP, solved by HiGHS
    (scipy.optimize.milp). The formulation is Pensia et al.'s (an error variable z >= +-(w - a.x)),
    without their eps constraint and with no optimality gap, and with tolerances tightened to 1e-10
    (HiGHS's defaults, 1e-6 on integrality and an absolute gap of 1e-6, are larger than the errors
    themselves, about 1e-6 at n = 21)."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    a = np.asarray(coefficients, dtype=np.float64)
    n = a.shape[0]
    objective = np.zeros(n + 1)
    objective[n] = 1.0
    rows = np.zeros((2, n + 1))
    rows[0, :n], rows[0, n] = a, -1.0     #  a.x - z <= w
    rows[1, :n], rows[1, n] = -a, -1.0    # -a.x - z <= -w
    constraints = LinearConstraint(rows, [-np.inf, -np.inf], [weight, -weight])
    tight = {"mip_feasibility_tolerance": 1e-10, "primal_feasibility_tolerance": 1e-10}
    started = time.perf_counter()
    # HiGHS sometimes stops with a numerical "solve error" under the tight tolerances: then it gets
    # a second try with its defaults, and a weight it still cannot solve is reported, not fatal.
    for extra in (tight, {}):
        options = {"mip_rel_gap": 0.0, "time_limit": time_limit, "mip_abs_gap": 0.0, **extra}
        with warnings.catch_warnings():  # scipy passes the tolerances to HiGHS but warns it does not know them
            warnings.filterwarnings("ignore", message="Unrecognized options", category=RuntimeWarning)
            result = milp(objective, integrality=np.r_[np.ones(n), 0.0],
                          bounds=Bounds(np.zeros(n + 1), np.r_[np.ones(n), np.inf]), constraints=constraints,
                          options=options)
        if result.x is not None:
            break
    seconds = time.perf_counter() - started
    if result.x is None:
        return MilpResult(math.nan, math.nan, -1, seconds, f"no solution (status {result.status}: {result.message})")
    chosen = np.round(result.x[:n]).astype(np.int64)
    mask = int(sum(int(bit) << i for i, bit in enumerate(chosen)))
    status = "optimal" if result.status == 0 else result.message
    return MilpResult(float(abs(weight - float(a @ chosen))), float(result.fun), mask, seconds, status)
