"""Does reduced precision change accuracy? The same networks trained in fp32, tf32 and bf16, side by side.

Each row trains one stack (same seeds, same data order, same masks: none) on real MNIST and
reports the mean and spread of test accuracy and the training rate. Writes precision.{md,json}.

    python benchmarks/precision.py --out benchmarks/results/h200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lth.data import load_splits
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model
from lth.train.config import PRECISIONS, TrainConfig
from lth.train.loop import train

MODELS = {"lenet300": dict(lr=1.2e-3), "lenet5_caffe": dict(lr=1e-3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--networks", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    data = load_splits("mnist").to(device)
    rows = []
    for model in args.models:
        for precision in PRECISIONS:
            seeds = list(range(args.networks))
            stack = NetworkStack.build(lambda s: build_model(model, data.input_shape, 10, seed=s), seeds, device)
            cfg = TrainConfig(iterations=args.iterations, lr=MODELS[model]["lr"], eval_every=args.iterations,
                              precision=precision)
            start = time.perf_counter()
            history, _ = train(stack, data, cfg, data_seeds=seeds)
            seconds = time.perf_counter() - start
            accuracy = history.series("test/accuracy")[:, -1] * 100
            rows.append(dict(model=model, precision=precision, networks=args.networks, iterations=args.iterations,
                             test_accuracy_mean=float(accuracy.mean()), test_accuracy_std=float(accuracy.std()),
                             seconds=seconds))
            print(rows[-1], flush=True)
    header = (f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; torch {torch.__version__}; "
              f"MNIST, Adam, batch 60, {args.iterations} iterations, {args.networks} networks per row (seeds 0..)")
    table = [header, "", "| model | precision | test accuracy % (mean ± sd) | wall s (incl. capture) |", "|---|---|---|---|"]
    table += [f"| {r['model']} | {r['precision']} | {r['test_accuracy_mean']:.2f} ± {r['test_accuracy_std']:.2f} | "
              f"{r['seconds']:.1f} |" for r in rows]
    print("\n".join(table))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "precision.md").write_text("\n".join(table) + "\n")
        (args.out / "precision.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
