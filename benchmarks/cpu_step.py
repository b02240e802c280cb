"""On a CPU: is a stacked step slower per network than a single network, and does evaluation dominate?

LeNet-300-100 on real MNIST (batch 60, Adam, density ~0.5), lth's NetworkStack + TrainStep as training
runs them on a CPU (eager, no graphs): milliseconds per network and training step at M = 1, 5, 20, and
per network for one evaluation of the validation and test sets (15,000 images, lth.train.evaluate), in
one process, with torch's thread count as given (default: torch's own). Then the share of evaluation
in a run that evaluates every ``--eval-every`` iterations (the quick profile's 100).

    python benchmarks/cpu_step.py --out benchmarks/results/cpu-2cores
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lth.data import load_splits
from lth.nets.models import build_model
from lth.nets.stack import NetworkStack
from lth.train.config import TrainConfig
from lth.train.evaluate import evaluate
from lth.train.step import TrainStep, make_optimizer
from throughput import commit_label  # the benchmarks folder: this script's own


def per_network_step_ms(data, networks: int, steps: int) -> float:
    stack = NetworkStack.build(lambda s: build_model("lenet300", data.input_shape, 10, seed=s), list(range(networks)))
    stack.set_masks({n: (torch.rand(m.shape) < 0.5).float() for n, m in stack.masks.items()})
    cfg = TrainConfig(batch_size=60, optimizer="adam", lr=1.2e-3)
    step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg), list(range(networks)), 60,
                     graphed=False)
    step.run(0, [cfg.lr] * 3)  # warm-up
    start = time.perf_counter()
    step.run(3, [cfg.lr] * steps)
    return (time.perf_counter() - start) / steps / networks * 1e3


def per_network_eval_ms(data, networks: int) -> float:
    stack = NetworkStack.build(lambda s: build_model("lenet300", data.input_shape, 10, seed=s), list(range(networks)))
    evaluate(stack, data.val, 1000)  # warm-up
    start = time.perf_counter()
    evaluate(stack, data.val, 1000)
    evaluate(stack, data.test, 1000)
    return (time.perf_counter() - start) / networks * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stacks", nargs="+", type=int, default=[1, 5, 20])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per stack")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_splits("mnist")
    rows = []
    for networks in args.stacks:
        step_ms = per_network_step_ms(data, networks, args.steps)
        eval_ms = per_network_eval_ms(data, networks)
        share = eval_ms / (eval_ms + args.eval_every * step_ms)
        rows.append(dict(networks=networks, step_ms=step_ms, eval_ms=eval_ms, eval_share=share))
        print(rows[-1], flush=True)
    header = (f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"commit {commit_label()}, "
              f"torch {torch.__version__}; LeNet-300-100, MNIST, batch 60, Adam")
    lines = [header, "", "| M | ms per network and step | vs M=1 | ms per network, val+test evaluation | "
             f"evaluation share at eval_every={args.eval_every} |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['networks']} | {row['step_ms']:.2f} | {row['step_ms'] / rows[0]['step_ms']:.2f}x | "
                     f"{row['eval_ms']:.0f} | {100 * row['eval_share']:.0f}% |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cpu_step.md").write_text(text)
        (args.out / "cpu_step.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
