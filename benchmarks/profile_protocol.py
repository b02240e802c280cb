"""Probe (not a benchmark): where the LeNet-300-100 paper protocol spends its wall time beyond the
training steps themselves. Runs the protocol (with the given gin bindings) twice in one process: cold
(compilation, first CUDA graph captures) and warm under cProfile, then prints the host time of the phases
around the steps: waiting for the device, compilation, graph capture, evaluation, checkpoints, results.

    python benchmarks/profile_protocol.py 'ImpConfig.levels = 2' ['TrainConfig.checkpoint_every = 50000']"""
import cProfile
import pstats
import re
import sys
import time

import torch

from throughput import PROTOCOL, time_protocol

# (label, pstats regex) of the phases worth a line each; cumulative host seconds
PHASES = [
    ("whole protocol", r"throughput.py.*time_protocol"),
    ("train (all levels)", r"lth/train/loop.py.*\(_train\)"),
    ("  step.run (launch chunks)", r"lth/train/step.py.*\(run\)"),
    ("    graph capture", r"lth/train/step.py.*\(_capture\)"),
    ("    epoch permutations", r"lth/data.py.*\(epoch_batches\)"),
    ("  record (evaluations)", r"lth/train/loop.py.*\(record\)"),
    ("  History.settle", r"lth/train/loop.py.*\(settle\)"),
    ("  deep copies (checkpointed optimiser state)", r"^[^:]*copy.py:\d+\(deepcopy\)"),
    ("  History.state (checkpointed metrics)", r"lth/train/loop.py.*\(state\)"),
    ("  NetworkStack.state", r"lth/nets/stack.py.*\(state\)"),
    ("waiting for the device (event / stream sync)", r"method 'synchronize' of|torch/cuda/__init__.py:\d+\(synchronize\)"),
    ("compilation (dynamo frames)", r"convert_frame.py.*\(_compile\)"),
    ("level stacks (prune, rewind, masks)", r"lth/experiments/imp.py:\d+\(stack\)"),
    ("metric rows", r"lth/schema.py.*\(metric_rows\)"),
    ("background writes waited for", r"lth/store/.*wait_for_writes"),
]


def phase_table(stats: pstats.Stats) -> str:
    """One line per phase: cumulative host seconds and calls of the functions its pattern matches."""
    out = []
    for label, pattern in PHASES:
        matched = [(calls, cumulative) for (file, line, name), (_, calls, _, cumulative, _) in stats.stats.items()
                   if re.search(pattern, f"{file}:{line}({name})")]
        out.append(f"{sum(c for _, c in matched):9.2f} s  {sum(n for n, _ in matched):8d} calls  {label}")
    return "\n".join(out)


def main() -> None:
    bindings = PROTOCOL + sys.argv[1:]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    cold = time_protocol(device, bindings, None)
    print(f"cold run: {time.perf_counter() - start:.1f} s  {cold}", flush=True)
    profiler = cProfile.Profile()
    profiler.enable()
    warm = time_protocol(device, bindings, None)
    profiler.disable()
    print(f"warm run (under cProfile): {warm['wall_s']:.1f} s  {warm}", flush=True)
    stats = pstats.Stats(profiler)
    print("\nhost seconds by phase (cumulative; nested phases are indented):")
    print(phase_table(stats))
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
