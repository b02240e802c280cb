"""Pensia et al. 2020, Experiment 1, on the result store: train the target 784-500-10 network (no
biases), approximate every weight by a subset sum of n random coefficients (`lth.prune.subsetsum`), and
measure what the paper reports: coefficients kept, the largest error, the approximated network's test
accuracy, the solver's time; plus our checks of the solver against brute force and a MILP.

The trained target is cached in the store (``runs/<experiment>/<hash>/``, the hash covering only what
the target depends on), so a rerun, or one with another epsilon or c, trains nothing. The solve is
redone on every run: it is the thing being timed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import gin
import pandas as pd
import torch

from lth.experiments import imp
from lth.prune import subsetsum
from lth.data import DataSplits, derive_seed, load_splits
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model
from lth.store import RunDir
from lth.train.loop import TrainConfig, evaluate, train

GIN_SCOPE = "subsetsum"  # profiles bind subsetsum/TrainConfig.* for the target's training only
TARGET_KEY = "target"

# Pensia et al.'s run (acnagle/optimal-lottery-tickets, subset-sum/results/paper/fc2_approx.out).
PAPER = {
    "weights": 397_000, "n": 21, "low": -0.46423155069351196, "high": 0.5407021641731262,
    "coefficients": 8_337_000, "kept": 3_725_871, "target_accuracy": 97.19, "approximated_accuracy": 97.19,
    "solver_seconds": 77_266.02, "solver": "Gurobi MIP per weight (MIPGap 0.01, error <= eps), 36 cores",
}


@gin.configurable
@dataclass(frozen=True)
class SubsetSumConfig:
    experiment: str = "pensia_subsetsum"
    dataset: str = "mnist"
    widths: tuple = (500,)
    init: str = "default"           # torch's own Linear init, as Pensia et al.'s code
    seed: int = 0                   # the target's initialisation and data order
    split_seed: int = 0
    c: float = 3.0
    epsilon: float = 0.01
    coefficient_seed: int = 0
    weight_sample: int = 0          # 0: approximate every weight; k: a seeded sample of k weights
    paper_range_sample: int = 20_000  # weights solved again with the paper's coefficient interval (0: none)
    brute_force_sample: int = 8     # weights checked against all 2^n subsets
    milp_sample: int = 5            # weights checked against scipy's MILP (HiGHS)
    milp_time_limit: float = 60.0   # seconds per weight

    def __post_init__(self):
        subsetsum.num_coefficients(self.c, self.epsilon)  # refuses a bad c or epsilon, naming it
        for name in ("weight_sample", "paper_range_sample", "brute_force_sample", "milp_sample"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.widths:
            raise ValueError("widths must name at least one hidden layer (the paper's: (500,))")

    @property
    def n(self) -> int:
        return subsetsum.num_coefficients(self.c, self.epsilon)


def configs() -> tuple[SubsetSumConfig, TrainConfig]:
    """The config and the target's TrainConfig as gin binds them (TrainConfig in the subsetsum scope)."""
    with gin.config_scope(GIN_SCOPE):
        return SubsetSumConfig(), TrainConfig()


# What the target network depends on is hashed; the approximation's parameters are not, so another
# epsilon, c, coefficient seed or sample reuses the trained target.
_NOT_HASHED = frozenset({"c", "epsilon", "coefficient_seed", "weight_sample", "paper_range_sample",
                         "brute_force_sample", "milp_sample", "milp_time_limit"})


def operative_config(config: SubsetSumConfig, train_cfg: TrainConfig) -> str:
    return imp.operative_config(config, train_cfg, skip=_NOT_HASHED)


# ---- the target --------------------------------------------------------------------------------

@dataclass
class Target:
    """The trained target network (a stack of one) and where it is stored."""
    stack: NetworkStack
    data: DataSplits
    run: RunDir
    metrics: pd.DataFrame   # its training history, tidy
    trained_now: bool

    @property
    def layers(self) -> dict[str, torch.Tensor]:
        """Each prunable weight of the one network, in model order."""
        return {name: self.stack.params[name].detach()[0] for name in self.stack.kinds}


def train_target(config: SubsetSumConfig, train_cfg: TrainConfig, *, root: str | Path = "runs",
                 device: str | torch.device = "auto", data: DataSplits | None = None) -> Target:
    """Train the target (or load it from the store when a run of the same config finished)."""
    device = imp.resolve_device(device)
    data = (data or load_splits(config.dataset, seed=config.split_seed)).to(device)
    run = RunDir(root, config.experiment, operative_config(config, train_cfg))

    def model(seed: int) -> torch.nn.Module:
        return build_model("fc", data.input_shape, data.num_classes, init=config.init, seed=seed,
                           widths=tuple(config.widths), bias=False)

    template = model(0).to("meta")
    if run.is_done(TARGET_KEY):
        state = run.load_checkpoint(TARGET_KEY)
        if state is None:
            raise FileNotFoundError(f"the target is marked done in {run.path} but its checkpoint is missing; "
                                    f"delete {run.path / 'done' / TARGET_KEY} to train it again")
        stack = NetworkStack.from_states(template, [state]).to(device)
        return Target(stack, data, run, run.read_metrics(), trained_now=False)

    started = time.time()
    run.write_manifest(seed=config.seed, device=str(device), started_at=_now())
    progress = f"{TARGET_KEY}_progress"
    resume = run.load_checkpoint(progress)
    stack = NetworkStack.build(model, [derive_seed("init", config.seed, 0)], device)
    history, _ = train(stack, data, train_cfg, data_seeds=[derive_seed("data", config.seed, 0)],
                       labels=["target"], resume=resume, checkpoint=lambda state: run.save_checkpoint(progress, state),
                       desc=f"{config.experiment} target")
    rows = []
    for key, values in history.values.items():
        split, metric = key.split("/")
        iterations = history.iterations[-len(values):]  # train/* metrics start after iteration 0
        rows += [{"experiment": config.experiment, "trial": 0, "level": 0, "density": 1.0, "control": TARGET_KEY,
                  "replicate": 0, "iteration": it, "split": split, "metric": metric, "value": float(v[0])}
                 for it, v in zip(iterations, values)]
    run.write_metrics(TARGET_KEY, rows)
    run.save_checkpoint(TARGET_KEY, stack.state())
    run.mark_done(TARGET_KEY)
    run.delete_checkpoint(progress)
    run.write_manifest(finished_at=_now(), wall_time_s=round(time.time() - started, 2))
    return Target(stack, data, run, run.read_metrics(), trained_now=True)


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


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    _synchronize(device)
    started = time.perf_counter()
    coefficients = subsetsum.draw_coefficients(indices.numel(), n, low, high,
                                               seed=derive_seed("subsetsum_coefficients", seed), device=device)
    _synchronize(device)
    generated = time.perf_counter()
    solution = subsetsum.solve(weights, coefficients)
    _synchronize(device)
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# ---- the whole experiment, as a notebook sees it -----------------------------------------------

@dataclass
class SubsetSumOutcome:
    ran: bool
    reason: str
    profile: str
    config: SubsetSumConfig
    train_cfg: TrainConfig
    target: Target | None = None
    approximation: Approximation | None = None
    paper_range: Approximation | None = None
    checks: Checks | None = None
    target_accuracy: float = math.nan         # test accuracy, %
    approximated_accuracy: float = math.nan   # the same network with the approximated weights, %
    layer_sizes: dict = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        return self.config.experiment

    @property
    def run_path(self) -> Path | None:
        return self.target.run.path if self.target else None

    @property
    def total_weights(self) -> int:
        return sum(self.layer_sizes.values())

    @property
    def context(self) -> str:
        sampled = "" if not self.approximation or self.approximation.count == self.total_weights else \
            f", {self.approximation.count:,} of {self.total_weights:,} weights approximated"
        return f"{self.config.dataset}, {self.profile} profile{sampled}"

    def save_provenance(self, folder: str | Path) -> None:
        """The target's manifest (versions, device, commit, wall time, the last solve) and config."""
        from lth.notebook import save_provenance
        save_provenance(self.run_path, self.experiment, folder)

    def describe(self) -> str:
        if not self.ran:
            return (f"**`{self.experiment}` did not run** ({self.profile} profile). Its figure is skipped and its "
                    f"claims are marked *not run*.\n\n```text\n{self.reason}\n```")
        a = self.approximation
        target = "trained now" if self.target.trained_now else "loaded from the store (trained earlier)"
        sample = ("every weight" if a.count == self.total_weights else
                  f"**a seeded random sample of {a.count:,} of the {self.total_weights:,} weights** (the others keep "
                  "the target's values, so the approximated network's accuracy mixes both)")
        note = {"paper": "", "smoke": " The **smoke** profile only exercises the code: its numbers measure nothing."
                }.get(self.profile, f" The **{self.profile}** profile is smaller than the paper's protocol.")
        return (f"Target {'-'.join(map(str, [784, *self.config.widths, 10]))} (no biases) on {self.config.dataset}, "
                f"{target}: `{self.run_path}`. Approximated {sample}, n = {a.n} coefficients each from "
                f"U[{a.low:.3f}, {a.high:.3f}], solved on `{a.device}` in {a.solve_seconds:.2f} s.{note}")


def run_subsetsum(config: str, profile: str, bindings: str | Sequence[str] = (), *, root: str | Path = "runs",
                  device: str = "auto") -> SubsetSumOutcome:
    """Load the recipe, train or reload the target, solve, check, evaluate. A missing data set is
    not an error: the outcome says why nothing ran."""
    from lth.config import load
    from lth.data import DatasetNotFound
    from lth.notebook import as_bindings, resolve_path

    load([config], profile=profile, bindings=as_bindings(bindings))
    cfg, train_cfg = configs()
    try:
        target = train_target(cfg, train_cfg, root=resolve_path(root), device=device)
    except DatasetNotFound as missing:
        return SubsetSumOutcome(False, str(missing), profile, cfg, train_cfg)
    layers = target.layers
    sizes = {name: w.numel() for name, w in layers.items()}
    flat = torch.cat([w.flatten() for w in layers.values()])
    low, high = subsetsum.coefficient_range(layers.values())
    solve_device = target.stack.device
    main = approximate(flat, cfg.n, cfg.epsilon, low, high, seed=cfg.coefficient_seed, sample=cfg.weight_sample,
                       device=solve_device)
    paper_range = None
    if cfg.paper_range_sample:
        paper_range = approximate(flat, cfg.n, cfg.epsilon, PAPER["low"], PAPER["high"],
                                  seed=cfg.coefficient_seed + 1, sample=cfg.paper_range_sample, device=solve_device)
    checks = check(main, cfg.brute_force_sample, cfg.milp_sample, seed=cfg.coefficient_seed,
                   milp_time_limit=cfg.milp_time_limit)

    approximated = flat.detach().to("cpu", torch.float64).clone()
    approximated[main.indices] = main.solution.approximation.cpu()
    new_layers, start = {}, 0
    for name, weight in layers.items():
        new_layers[name] = approximated[start:start + weight.numel()].view_as(weight).float()
        start += weight.numel()
    outcome = SubsetSumOutcome(True, "", profile, cfg, train_cfg, target, main, paper_range, checks,
                               100 * test_accuracy(target.stack, target.data),
                               100 * test_accuracy(target.stack, target.data, new_layers), sizes)
    target.run.write_manifest(last_subsetsum={
        "at": _now(), "profile": profile, "device": main.device, "n": main.n, "epsilon": main.epsilon,
        "weights_approximated": main.count, "kept": main.kept_total, "max_error": main.max_error,
        "solve_seconds": round(main.solve_seconds, 4), "generation_seconds": round(main.generation_seconds, 4),
        "target_accuracy": outcome.target_accuracy, "approximated_accuracy": outcome.approximated_accuracy})
    return outcome


# ---- tables -------------------------------------------------------------------------------------

def summary_table(outcome: SubsetSumOutcome) -> pd.DataFrame:
    """The paper's numbers beside ours, one row per quantity."""
    p = PAPER
    rows = [
        ("target weights", f"{p['weights']:,}", ""),
        ("weights approximated", f"{p['weights']:,}", ""),
        ("coefficients per weight n", f"{p['n']}", ""),
        ("coefficient interval [min w, max w]", f"[{p['low']:.3f}, {p['high']:.3f}]", ""),
        ("coefficients drawn", f"{p['coefficients']:,} ({p['coefficients'] / p['weights']:.2f}x)", ""),
        ("coefficients kept", f"{p['kept']:,} ({p['kept'] / p['weights']:.2f}x)", ""),
        ("kept with the paper's interval", f"{p['kept'] / p['weights']:.2f}x", ""),
        ("largest error", "all within eps = 0.01", ""),
        ("target test accuracy", f"{p['target_accuracy']:.2f} %", ""),
        ("approximated test accuracy", f"{p['approximated_accuracy']:.2f} % (their code evaluates the target)", ""),
        ("solver", p["solver"], ""),
        ("solve time", f"{p['solver_seconds']:,.0f} s", ""),
        ("check: brute force over 2^n subsets", "", ""),
        ("check: MILP (scipy HiGHS, no gap)", "", ""),
    ]
    table = pd.DataFrame(rows, columns=["quantity", "paper", "ours"])
    if not outcome.ran:
        table["ours"] = "not run"
        return table
    a, r, c = outcome.approximation, outcome.paper_range, outcome.checks
    ours = [
        f"{outcome.total_weights:,}",
        f"{a.count:,}" + ("" if a.count == outcome.total_weights else " (a seeded sample)"),
        f"{a.n}",
        f"[{a.low:.3f}, {a.high:.3f}]",
        f"{a.count * a.n:,} ({a.n:.2f}x)",
        f"{a.kept_total:,} ({a.kept_ratio:.2f}x)",
        f"{r.kept_ratio:.2f}x ({r.count:,} weights)" if r else "not run",
        f"{a.max_error:.2e}; {a.within:,} of {a.count:,} within eps = {a.epsilon:g}",
        f"{outcome.target_accuracy:.2f} %",
        f"{outcome.approximated_accuracy:.2f} %",
        f"exact meet-in-the-middle, float64, on {a.device}",
        f"{a.solve_seconds:.2f} s (+ {a.generation_seconds:.2f} s drawing the coefficients)",
        f"{c.brute_force_agree} of {len(c.brute_force)} weights: the same subset" if len(c.brute_force) else "none",
        (f"{len(c.milp)} weights: largest |error difference| {c.milp_max_difference:.1e}, "
         f"{int((c.milp.milp_status == 'optimal').sum())} proven optimal, "
         f"{c.milp.milp_seconds.sum():.1f} s in all") if len(c.milp) else "none",
    ]
    table["ours"] = ours
    return table


def layer_table(outcome: SubsetSumOutcome) -> pd.DataFrame:
    """Per layer: weights approximated, coefficients kept per weight, largest error, within eps."""
    columns = ["layer", "weights", "approximated", "kept_per_weight", "max_error", "within_eps"]
    if not outcome.ran:
        return pd.DataFrame(columns=columns)
    a = outcome.approximation
    starts, rows, offset = {}, [], 0
    for name, size in outcome.layer_sizes.items():
        in_layer = (a.indices >= offset) & (a.indices < offset + size)
        kept, error = a.solution.kept.cpu()[in_layer], a.solution.error.cpu()[in_layer]
        rows.append({"layer": name, "weights": size, "approximated": int(in_layer.sum()),
                     "kept_per_weight": float(kept.double().mean()) if kept.numel() else math.nan,
                     "max_error": float(error.max()) if error.numel() else math.nan,
                     "within_eps": int((error <= a.epsilon).sum())})
        offset += size
    return pd.DataFrame(rows, columns=columns)


def worst_weights(outcome: SubsetSumOutcome, count: int = 5) -> pd.DataFrame:
    """The weights approximated worst: value, layer, error, coefficients kept, and how many of their
    coefficients are negative (a weight whose coefficients nearly all share a sign has few subset
    sums near it)."""
    columns = ["weight_index", "layer", "weight", "error", "kept", "negative_coefficients", "coefficients"]
    if not outcome.ran:
        return pd.DataFrame(columns=columns)
    a = outcome.approximation
    errors = a.solution.error.cpu()
    worst = errors.argsort(descending=True)[:count]
    bounds = torch.tensor(list(outcome.layer_sizes.values())).cumsum(0)
    names = list(outcome.layer_sizes)
    coefficients = a.coefficients.cpu()
    rows = [{"weight_index": int(a.indices[i]), "layer": names[int((bounds <= a.indices[i]).sum())],
             "weight": float(a.weights[i]), "error": float(errors[i]), "kept": int(a.solution.kept[i]),
             "negative_coefficients": int((coefficients[i] < 0).sum()), "coefficients": a.n} for i in worst.tolist()]
    return pd.DataFrame(rows, columns=columns)


def claims_frame(outcome: SubsetSumOutcome) -> pd.DataFrame:
    """One row of our measured quantities, for `lth.results.claims.PENSIA_SUBSETSUM`."""
    if not outcome.ran:
        return pd.DataFrame()
    a, r = outcome.approximation, outcome.paper_range
    return pd.DataFrame([{
        "experiment": outcome.experiment, "weights": a.count, "total_weights": outcome.total_weights,
        "n": a.n, "epsilon": a.epsilon, "max_error": a.max_error, "within": a.within,
        "kept_ratio": a.kept_ratio, "paper_range_kept_ratio": r.kept_ratio if r else math.nan,
        "low": a.low, "high": a.high,
        "target_accuracy": outcome.target_accuracy, "approximated_accuracy": outcome.approximated_accuracy,
    }])


# ---- the figure ---------------------------------------------------------------------------------

def subsetsum_figure(outcome: SubsetSumOutcome):
    """Left: the error of every approximated weight against eps (both axes log). Right: coefficients kept
    per weight, ours and with the paper's coefficient interval, against the paper's mean."""
    import numpy as np
    from lth.results import figures
    fig, axes = figures.subplots(2, width=5.4, height=3.8)
    left, right = axes[0]
    a, r = outcome.approximation, outcome.paper_range
    errors = a.solution.error.cpu().numpy()
    positive = errors[errors > 0]
    lowest = np.floor(np.log10(positive.min())) if positive.size else -12
    bins = np.logspace(lowest, np.log10(a.epsilon) + 0.5, 60)
    left.hist(np.clip(errors, bins[0], None), bins=bins, color="C0")
    left.axvline(a.epsilon, color="C3", linestyle="--", label=f"eps = {a.epsilon:g}")
    left.set_xscale("log")
    left.set_yscale("log")  # the tail, down to single weights beyond eps, stays visible
    left.set_xlabel("|w − subset sum| (minimum over all 2^n subsets)")
    left.set_ylabel("weights")
    left.set_title(f"Error per weight: largest {a.max_error:.1e}, {a.within:,} of {a.count:,} within eps", fontsize=9)
    left.legend(fontsize=8)

    counts, tallest = np.arange(a.n + 1), 0.0
    for k, (result, label, colour) in enumerate(((a, f"ours, U[{a.low:.3f}, {a.high:.3f}]", "C0"),
                                                  (r, "ours, the paper's U[-0.464, 0.541]", "C1"))):
        if result is None:
            continue
        kept = result.solution.kept.cpu().numpy()
        share = np.bincount(kept, minlength=a.n + 1)[:a.n + 1] / kept.size
        right.bar(counts + (k - 0.5) * 0.4, 100 * share, width=0.4, color=colour,
                  label=f"{label}: mean {result.kept_ratio:.2f}")
        tallest = max(tallest, 100 * float(share.max()))
    right.axvline(PAPER["kept"] / PAPER["weights"], color="k", linestyle="--",
                  label=f"paper's mean {PAPER['kept'] / PAPER['weights']:.2f} (Gurobi)")
    right.set_xlabel(f"coefficients kept (of n = {a.n})")
    right.set_ylabel("% of weights")
    right.set_title("Coefficients kept per weight", fontsize=9)
    right.set_ylim(0, 1.5 * tallest)  # room for the legend above the bars
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"SubsetSum (Pensia et al. Exp. 1): {outcome.context}", fontsize=10)
    return fig
