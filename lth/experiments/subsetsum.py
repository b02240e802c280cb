"""Pensia et al. 2020, Experiment 1, as a kind: a training job trains the target 784-500-10 network
(no biases, job ``target``), then a compute job approximates every weight by a subset sum of n
random coefficients (`lth.prune.subsetsum`) and measures what the paper reports: coefficients kept,
the largest error, the approximated network's test accuracy, the solver's time; plus our checks of
the solver against brute force and a MILP.

The trained target is cached in the store (the hash covering only what the target depends on), so
a rerun, or one with another epsilon or c, trains nothing. The solve is redone on every run: it is
the thing being timed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd
import torch

from lth.data import DataSplits, derive_seed
from lth import validate as v
from lth.experiments.registry import Kind, check_common, operative_text, register
from lth.experiments.runner import Context, Job
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.prune import subsetsum
from lth.schema import Member
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.step import synchronize

TARGET_KEY = "target"

# Pensia et al.'s run (acnagle/optimal-lottery-tickets, subset-sum/results/paper/fc2_approx.out).
PAPER = {
    "weights": 397_000, "n": 21, "low": -0.46423155069351196, "high": 0.5407021641731262,
    "coefficients": 8_337_000, "kept": 3_725_871, "target_accuracy": 97.19, "approximated_accuracy": 97.19,
    "solver_seconds": 77_266.02, "solver": "Gurobi MIP per weight (MIPGap 0.01, error <= eps), 36 cores",
}


@dataclass(frozen=True)
class SubsetSumConfig:
    """Pensia et al. Experiment 1: train a target, approximate each weight by a subset sum.

    Attributes:
        experiment: run name (default ``"pensia_subsetsum"``). dataset: as ImpConfig (default ``"mnist"``).
        widths: hidden widths of the bias-free fc target, at least one (default (500,): 784-500-10).
        init: the target's initialisation (default ``"default"``: torch's own Linear init, as their code).
        seed: the target's initialisation and data order (default 0); split_seed: the validation split (default 0).
        c, epsilon: n = c * round(log2(1/epsilon)) coefficients per weight (default 3.0, 0.01: n = 21);
            epsilon is the error bound each weight is judged against, in (0, 1).
        coefficient_seed: the coefficients' draw (default 0).
        weight_sample: 0 (default) approximates every weight, k > 0 a seeded sample of k weights.
        paper_range_sample: weights solved again with the paper's coefficient interval, >= 0 (default 20,000; 0: none).
        brute_force_sample: weights checked against all 2^n subsets, >= 0 (default 8).
        milp_sample: weights checked against scipy's MILP (HiGHS), >= 0 (default 5).
        milp_time_limit: seconds per MILP weight, > 0 (default 60).
        Only the target's fields are hashed: another c, epsilon, seed or sample reuses the trained target.
    """
    experiment: str = "pensia_subsetsum"
    dataset: str = "mnist"
    widths: tuple = (500,)
    init: str = "default"
    seed: int = 0
    split_seed: int = 0
    c: float = 3.0
    epsilon: float = 0.01
    coefficient_seed: int = 0
    weight_sample: int = 0
    paper_range_sample: int = 20_000
    brute_force_sample: int = 8
    milp_sample: int = 5
    milp_time_limit: float = 60.0

    def __post_init__(self):
        check_common(self)
        v.items(self, "widths", empty=False, each=lambda w: None if isinstance(w, int) and not isinstance(w, bool)
                and w >= 1 else v.fail(self, "widths", "a tuple of hidden widths, integers >= 1, e.g. (500,)"))
        v.number(self, "c", above=0)
        v.number(self, "epsilon", above=0, below=1)
        subsetsum.num_coefficients(self.c, self.epsilon)
        v.seeds(self, "coefficient_seed")
        for name in ("weight_sample", "paper_range_sample", "brute_force_sample", "milp_sample"):
            v.integer(self, name, minimum=0)
        v.number(self, "milp_time_limit", above=0)

    @property
    def n(self) -> int:
        return subsetsum.num_coefficients(self.c, self.epsilon)


# What the target network depends on is hashed; the approximation's parameters are not, so another
# epsilon, c, coefficient seed or sample reuses the trained target.
_NOT_HASHED = frozenset({"c", "epsilon", "coefficient_seed", "weight_sample", "paper_range_sample",
                         "brute_force_sample", "milp_sample", "milp_time_limit"})


def operative_config(config: SubsetSumConfig, train_cfg: TrainConfig) -> str:
    return operative_text(config, {"subsetsum": train_cfg}, {"subsetsum": ""}, skip=_NOT_HASHED)


@dataclass
class Solved:
    """One SubsetSum run's measurements (the compute job's output)."""
    approximation: "Approximation"
    paper_range: "Approximation | None"
    checks: "Checks"
    target_accuracy: float          # test accuracy, %
    approximated_accuracy: float    # the same network with the approximated weights, %
    layer_sizes: dict = field(default_factory=dict)
    trained_now: bool = False       # the target was trained in this run (else loaded from the store)

    @property
    def total_weights(self) -> int:
        return sum(self.layer_sizes.values())


def jobs(ctx: Context) -> Iterator[Job]:
    cfg = ctx.config

    def model(seed: int) -> torch.nn.Module:
        return build_model("fc", ctx.data.input_shape, ctx.data.num_classes, init=cfg.init, seed=seed,
                           widths=tuple(cfg.widths), bias=False)

    target = Job(TARGET_KEY, [Member(0, 0, TARGET_KEY)],
                 build=lambda: NetworkStack.build(model, [derive_seed("init", cfg.seed, 0)], ctx.device),
                 train_cfg=ctx.trains["subsetsum"], data_seeds=[derive_seed("data", cfg.seed, 0)], labels=["target"],
                 after=lambda stack, history, snapshot: stack.state())

    def compute() -> Solved:
        trained_now = ctx.key(TARGET_KEY) in ctx.states
        stack = NetworkStack.from_states(model(0).to("meta"), [ctx.state(TARGET_KEY)]).to(ctx.device)
        return solve(cfg, stack, ctx.data, ctx.run, ctx.profile, trained_now)

    return iter([target, Job("solve", compute=compute)])


def solve(cfg: SubsetSumConfig, stack: NetworkStack, data: DataSplits, run, profile: str | None,
          trained_now: bool) -> Solved:
    """Approximate the target's weights, check the solver, evaluate; the manifest records the solve."""
    layers = {name: stack.params[name].detach()[0] for name in stack.kinds}
    sizes = {name: w.numel() for name, w in layers.items()}
    flat = torch.cat([w.flatten() for w in layers.values()])
    low, high = subsetsum.coefficient_range(layers.values())
    main = approximate(flat, cfg.n, cfg.epsilon, low, high, seed=cfg.coefficient_seed, sample=cfg.weight_sample,
                       device=stack.device)
    paper_range = None
    if cfg.paper_range_sample:
        paper_range = approximate(flat, cfg.n, cfg.epsilon, PAPER["low"], PAPER["high"],
                                  seed=cfg.coefficient_seed + 1, sample=cfg.paper_range_sample, device=stack.device)
    checks = check(main, cfg.brute_force_sample, cfg.milp_sample, seed=cfg.coefficient_seed,
                   milp_time_limit=cfg.milp_time_limit)
    approximated = flat.detach().to("cpu", torch.float64).clone()
    approximated[main.indices] = main.solution.approximation.cpu()
    new_layers, start = {}, 0
    for name, weight in layers.items():
        new_layers[name] = approximated[start:start + weight.numel()].view_as(weight).float()
        start += weight.numel()
    solved = Solved(main, paper_range, checks, 100 * test_accuracy(stack, data),
                    100 * test_accuracy(stack, data, new_layers), sizes, trained_now)
    run.write_manifest(last_subsetsum={
        "at": datetime.now(timezone.utc).isoformat(), "profile": profile, "device": main.device, "n": main.n,
        "epsilon": main.epsilon, "weights_approximated": main.count, "kept": main.kept_total,
        "max_error": main.max_error, "solve_seconds": round(main.solve_seconds, 4),
        "generation_seconds": round(main.generation_seconds, 4),
        "target_accuracy": solved.target_accuracy, "approximated_accuracy": solved.approximated_accuracy})
    return solved


def test_accuracy(stack: NetworkStack, data: DataSplits, weights: dict[str, torch.Tensor] | None = None) -> float:
    """Test accuracy of the stack's one network, or of it with ``weights`` (name -> tensor) in place."""
    if weights is not None:
        state = stack.state()
        for name, value in weights.items():
            state["params"][name] = value.to(state["params"][name]).unsqueeze(0)
        stack = NetworkStack.from_states(stack.template, [state])
    return float(evaluate(stack, data.test)["accuracy"][0])


# ---- the approximation ---------------------------------------------------------------------------

@dataclass
class Approximation:
    """One solve: which weights, their coefficients' interval, the subsets found, the timings."""
    n: int
    epsilon: float
    low: float
    high: float
    indices: torch.Tensor           # (K,) positions of the approximated weights in the flat target
    weights: torch.Tensor           # (K,) their target values, float64
    coefficients: torch.Tensor      # (K, n)
    solution: subsetsum.SubsetSum
    device: str
    generation_seconds: float
    solve_seconds: float

    @property
    def count(self) -> int:
        return int(self.indices.numel())

    @property
    def kept_total(self) -> int:
        return int(self.solution.kept.sum())

    @property
    def kept_ratio(self) -> float:
        """Coefficients kept per approximated weight (the paper's 9.39x)."""
        return self.kept_total / self.count

    @property
    def max_error(self) -> float:
        return float(self.solution.error.max())

    @property
    def within(self) -> int:
        return int(self.solution.within(self.epsilon).sum())


def approximate(flat: torch.Tensor, n: int, epsilon: float, low: float, high: float, *, seed: int,
                sample: int = 0, device: str | torch.device = "cpu") -> Approximation:
    """Solve every weight of ``flat`` (or a seeded sample of ``sample`` of them) with its own n
    coefficients drawn from U[low, high]; the two timings exclude each other."""
    device = torch.device(device)
    total = flat.numel()
    if sample and sample < total:
        generator = torch.Generator().manual_seed(derive_seed("subsetsum_sample", seed))
        indices = torch.randperm(total, generator=generator)[:sample].sort().values
    else:
        indices = torch.arange(total)
    weights = flat.detach().to("cpu", torch.float64)[indices].to(device)
    synchronize(device)
    started = time.perf_counter()
    coefficients = subsetsum.draw_coefficients(indices.numel(), n, low, high,
                                               seed=derive_seed("subsetsum_coefficients", seed), device=device)
    synchronize(device)
    generated = time.perf_counter()
    solution = subsetsum.solve(weights, coefficients)
    synchronize(device)
    solved = time.perf_counter()
    return Approximation(n, epsilon, low, high, indices, weights, coefficients, solution, str(device),
                         generated - started, solved - generated)


@dataclass
class Checks:
    """The solver against references on a sample of the approximated weights."""
    brute_force: pd.DataFrame   # per weight: ours and brute force
    milp: pd.DataFrame          # per weight: ours and HiGHS

    @property
    def brute_force_agree(self) -> int:
        return int(self.brute_force.same_subset.sum()) if not self.brute_force.empty else 0

    @property
    def milp_max_difference(self) -> float:
        return float(self.milp.error_difference.abs().max()) if not self.milp.empty else math.nan


def check(approximation: Approximation, brute_force_sample: int, milp_sample: int, *, seed: int,
          milp_time_limit: float = 60.0) -> Checks:
    """Brute force over all 2^n subsets and scipy's MILP on seeded samples of the approximated weights."""
    generator = torch.Generator().manual_seed(derive_seed("subsetsum_check", seed))
    order = torch.randperm(approximation.count, generator=generator)
    solution = approximation.solution
    weights, coefficients = approximation.weights.cpu(), approximation.coefficients.cpu()
    masks, errors = solution.masks.cpu(), solution.error.cpu()

    picked = order[:brute_force_sample]
    reference = subsetsum.brute_force(weights[picked], coefficients[picked])
    brute = pd.DataFrame({
        "weight_index": approximation.indices[picked].tolist(), "weight": weights[picked].tolist(),
        "our_mask": masks[picked].tolist(), "brute_force_mask": reference.masks.tolist(),
        "our_error": errors[picked].tolist(), "brute_force_error": reference.error.tolist()})
    brute["same_subset"] = brute.our_mask == brute.brute_force_mask

    rows = []
    for i in order[:milp_sample].tolist():
        found = subsetsum.milp_min_error(float(weights[i]), coefficients[i].tolist(), time_limit=milp_time_limit)
        rows.append({"weight_index": int(approximation.indices[i]), "weight": float(weights[i]),
                     "our_error": float(errors[i]), "milp_error": found.error, "milp_objective": found.objective,
                     "error_difference": found.error - float(errors[i]), "our_mask": int(masks[i]),
                     "milp_mask": found.mask, "milp_status": found.status, "milp_seconds": found.seconds})
    milp = pd.DataFrame(rows, columns=["weight_index", "weight", "our_error", "milp_error", "milp_objective",
                                       "error_difference", "our_mask", "milp_mask", "milp_status", "milp_seconds"])
    return Checks(brute, milp)


KIND = register(Kind("subsetsum", SubsetSumConfig, ("subsetsum",), jobs,
                     lambda config, trains: operative_config(config, trains["subsetsum"])))
