"""Time the exact SubsetSum solve of Pensia et al.'s Experiment 1 size: 397,000 weights, n = 21 coefficients each.

Needs torch only (no gin, no data): the weights are a 784-500-10 network's at torch's default Linear
init (or a trained target's, with --target), the coefficients drawn from the paper's interval
[-0.464, 0.541] (or the target's [min w, max w]). Drawing the coefficients is timed apart from the
solve; the solve is timed ``--repeats`` times after ``--warmup`` untimed runs, with
torch.cuda.synchronize around each on a GPU. A few weights are checked against brute force over all
2^n subsets. Writes ``<out>/<label>/subsetsum.{json,md}``.

    python benchmarks/subsetsum.py --device cpu --label cpu-2cores     # this project's 2-core machine
    python benchmarks/subsetsum.py --device cuda --label h100          # one GPU
    python benchmarks/subsetsum.py --device cpu --weights 20000 --repeats 1 --out results/bench   # a quick look (results/ is ignored)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, lth need not be installed
from lth.prune import subsetsum  # noqa: E402  (imports torch only)

PAPER_INTERVAL = (-0.46423155069351196, 0.5407021641731262)
PAPER_SECONDS = 77_266.02  # Gurobi, 36 cores (subset-sum/results/paper/fc2_approx.out)
LAYERS = ((500, 784), (10, 500))  # the 784-500-10 target without biases: 397,000 weights


def target_weights(path: str | None, seed: int) -> tuple[torch.Tensor, tuple[float, float], str]:
    """The flat weights to approximate, the coefficient interval and where they came from."""
    if path:
        state = torch.load(path, map_location="cpu", weights_only=True)
        params = state.get("params", state)  # an lth store checkpoint (stack state) or a plain state dict
        tensors = [p[0] if p.dim() == 3 else p for name, p in params.items() if name.endswith("weight")]
        return torch.cat([t.flatten() for t in tensors]).double(), subsetsum.coefficient_range(tensors), path
    generator = torch.Generator().manual_seed(seed)
    layers = [(torch.rand(out, inp, generator=generator, dtype=torch.float64) * 2 - 1) / math.sqrt(inp)
              for out, inp in LAYERS]  # torch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    return torch.cat([w.flatten() for w in layers]), PAPER_INTERVAL, "torch's default init (seeded)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return (f"{model}, {os.cpu_count()} CPU cores (the solve: sort on {subsetsum.SORT_THREADS} threads, "
            f"torch ops on {subsetsum.TORCH_CPU_THREADS})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--label", help="results folder name (default: the device type)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--weights", type=int, default=397_000, help="weights to solve (default: all 397,000)")
    parser.add_argument("--c", type=float, default=3.0)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="CPU threads of the solve's torch ops (default: "
                        f"{subsetsum.TORCH_CPU_THREADS}; the sort uses --sort-threads)")
    parser.add_argument("--sort-threads", type=int, help=f"CPU threads of the sort (default: {subsetsum.SORT_THREADS})")
    parser.add_argument("--chunk-size", type=int, help="weights per chunk (default: from the memory budget)")
    parser.add_argument("--memory-budget-gib", type=float, default=subsetsum.DEFAULT_MEMORY_BUDGET / 2**30)
    parser.add_argument("--target", help="a trained target's checkpoint (e.g. runs/pensia_subsetsum/<hash>/checkpoints/target.pt)")
    parser.add_argument("--check", type=int, default=3, help="weights checked against brute force")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        subsetsum.TORCH_CPU_THREADS = args.threads
    if args.sort_threads:
        subsetsum.SORT_THREADS = args.sort_threads
    device = torch.device(args.device)
    n = subsetsum.num_coefficients(args.c, args.epsilon)
    budget = int(args.memory_budget_gib * 2**30)

    flat, (low, high), source = target_weights(args.target, args.seed)
    if args.weights > flat.numel():
        parser.error(f"--weights {args.weights} exceeds the {flat.numel():,} weights of the target")
    weights = flat[:args.weights].to(device)
    load_before = os.getloadavg()

    synchronize(device)
    started = time.perf_counter()
    coefficients = subsetsum.draw_coefficients(args.weights, n, low, high, seed=args.seed, device=device)
    synchronize(device)
    generation = time.perf_counter() - started

    times, solution = [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for run in range(args.warmup + args.repeats):
        synchronize(device)
        started = time.perf_counter()
        solution = subsetsum.solve(weights, coefficients, chunk_size=args.chunk_size, memory_budget=budget)
        synchronize(device)
        if run >= args.warmup:
            times.append(time.perf_counter() - started)
    load_after = os.getloadavg()

    sample = torch.arange(min(args.check, args.weights), device=device)
    reference = subsetsum.brute_force(weights[sample], coefficients[sample])
    kept = int(solution.kept.sum())
    result = {
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version(), "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(), "cpu_sort_threads": subsetsum.SORT_THREADS,
        "cpu_torch_threads_in_solve": subsetsum.TORCH_CPU_THREADS,
        "load_average_before": load_before, "load_average_after": load_after,
        "weights": args.weights, "n": n, "c": args.c, "epsilon": args.epsilon, "source": source,
        "interval": [low, high], "chunk_size": args.chunk_size or subsetsum.chunk_size_for(n, device, budget),
        "memory_budget_gib": args.memory_budget_gib,
        "generation_seconds": generation, "solve_seconds": times,
        "solve_seconds_min": min(times), "solve_seconds_median": statistics.median(times),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "max_error": float(solution.error.max()), "within_epsilon": int(solution.within(args.epsilon).sum()),
        "kept": kept, "kept_per_weight": kept / args.weights,
        "brute_force_checked": int(sample.numel()),
        "brute_force_same_subsets": int((reference.masks == solution.masks[sample]).sum()),
        "speedup_vs_paper": PAPER_SECONDS / min(times) * 397_000 / args.weights,
    }
    label = args.label or device.type
    folder = Path(args.out) / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subsetsum.json").write_text(json.dumps(result, indent=2) + "\n")
    (folder / "subsetsum.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {folder / 'subsetsum.json'} and subsetsum.md")
    return result


def markdown(r: dict) -> str:
    times = ", ".join(f"{t:.3f}" for t in r["solve_seconds"])
    memory = f"; peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB" if r["peak_gpu_memory_gib"] is not None else ""
    return (f"# SubsetSum solve (Pensia et al. Exp. 1 size)\n\n"
            f"device: {r['device_name']} ({r['device']}); torch {r['torch']}, CUDA {r['cuda']}, Python {r['python']}; "
            f"load average before/after {r['load_average_before'][0]:.2f}/{r['load_average_after'][0]:.2f}{memory}\n\n"
            f"| quantity | value |\n|---|---|\n"
            f"| weights, coefficients each | {r['weights']:,}, n = {r['n']} (c = {r['c']:g}, eps = {r['epsilon']:g}) |\n"
            f"| weights from | {r['source']} |\n"
            f"| coefficient interval | [{r['interval'][0]:.3f}, {r['interval'][1]:.3f}] |\n"
            f"| chunk size (weights) | {r['chunk_size']:,} |\n"
            f"| drawing the coefficients | {r['generation_seconds']:.3f} s |\n"
            f"| **solve, min (median) of {len(r['solve_seconds'])}** | **{r['solve_seconds_min']:.3f} s** "
            f"({r['solve_seconds_median']:.3f} s; all: {times}) |\n"
            f"| largest error; within eps | {r['max_error']:.2e}; {r['within_epsilon']:,} of {r['weights']:,} |\n"
            f"| kept | {r['kept']:,} ({r['kept_per_weight']:.2f} per weight) |\n"
            f"| brute force over 2^n subsets | {r['brute_force_same_subsets']} of {r['brute_force_checked']} weights: same subset |\n"
            f"| vs the paper's Gurobi run (77,266 s, 36 cores) | {r['speedup_vs_paper']:,.0f}x faster |\n")


if __name__ == "__main__":
    main()
