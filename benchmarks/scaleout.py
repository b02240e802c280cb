"""Scale-out: the same IMP config on one GPU and, through torchrun, on several (trials spread over
ranks, or with --data-parallel every rank a share of every batch).

Runs `python -m lth run` once in one process and once under `torchrun --nproc_per_node N` into two
fresh result stores, times both, and compares every network's results (early-stop and final test
accuracy). Writes scaleout.{md,json} (scaleout_data_parallel.* with --data-parallel) to --out.

    python benchmarks/scaleout.py --nproc 2 --out benchmarks/results/h200x2
    python benchmarks/scaleout.py --nproc 2 --data-parallel --out benchmarks/results/h200x2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# LeNet-300-100's paper recipe, shortened: 20 trials x (ticket + 3 reinits) = 80 networks a level.
DEFAULT = ["ImpConfig.trials = 20", "ImpConfig.reinits = 3", "ImpConfig.controls = ('reinit',)", "ImpConfig.levels = 4",
           "TrainConfig.iterations = '10000it'", "TrainConfig.precision = 'tf32'"]
# Data parallelism is for one large run: one Conv-2 (the Conv recipe, on MNIST here) at batch 4,096.
DATA_PARALLEL = ("lth_conv2", ["ImpConfig.dataset = 'mnist'", "ImpConfig.trials = 1", "ImpConfig.controls = ()",
                               "ImpConfig.levels = 1", "TrainConfig.batch_size = 4096", "TrainConfig.iterations = '2000it'",
                               "TrainConfig.eval_every = 500", "TrainConfig.precision = 'tf32'"])


def run(command: list[str], root: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command + ["--root", str(root)], capture_output=True, text=True,
                            env={**os.environ, "LTH_QUIET": "1"})
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "Error" in line or "error" in line]
        sys.exit(f"{' '.join(command)} failed:\n" + "\n".join(errors[-20:]) + "\n" + result.stderr[-2000:])
    return time.perf_counter() - start


def networks(root: Path, experiment: str):
    from lth.results.analysis import per_network
    from lth.store import find_runs
    (info,) = find_runs(root, experiment)
    import pandas as pd
    metrics = pd.concat(map(pd.read_csv, sorted((info.path / "metrics").glob("*.csv"))), ignore_index=True)
    return per_network(metrics), info.hash


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, default=torch.cuda.device_count())
    parser.add_argument("-b", "--binding", action="append", default=None, help="replaces the default bindings")
    parser.add_argument("--device", default="cuda", help="cuda (one GPU per rank) or cpu (to check it runs)")
    parser.add_argument("--data-parallel", action="store_true", help="every rank a share of every batch (DDP's scheme)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    recipe, bindings = DATA_PARALLEL if args.data_parallel else ("lth_lenet300", DEFAULT)
    bindings = args.binding or bindings
    lth_run = ["-m", "lth", "run", recipe, "--profile", "paper", *[x for b in bindings for x in ("-b", b)]]
    how = "data parallel: each rank a share of every batch" if args.data_parallel else "trials spread over ranks"
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp) / "one", Path(tmp) / "many"
        lth_run += ["--device", args.device]
        t_one = run([sys.executable, *lth_run], one)
        t_many = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                      str(args.nproc), *lth_run] + (["--data-parallel"] if args.data_parallel else []), many)
        (a, hash_one), (b, hash_many) = networks(one, recipe), networks(many, recipe)
    key = ["level", "control", "trial", "replicate"]
    merged = a.merge(b, on=key, suffixes=("_one", "_many"), validate="one_to_one")
    diff = {c: float((merged[f"{c}_one"] - merged[f"{c}_many"]).abs().max() * 100)
            for c in ("early_stop_test_accuracy", "final_test_accuracy")}
    means = merged.groupby("level")[["final_test_accuracy_one", "final_test_accuracy_many"]].mean() * 100
    result = dict(device=torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", gpus=args.nproc, recipe=recipe,
                  how=how, bindings=bindings, wall_one_gpu_s=t_one,
                  wall_many_gpus_s=t_many, speedup=t_one / t_many, networks=len(merged), same_run_hash=hash_one == hash_many,
                  max_abs_diff_pp=diff, final_accuracy_by_level={int(k): [round(v, 2) for v in row]
                                                               for k, row in means.iterrows()})
    lines = [f"device: {result['device']} x{args.nproc}; torch {torch.__version__}; `python -m lth run {recipe} "
             f"--profile paper` with {'; '.join(bindings)}", "",
             "| run | wall s | speed-up |", "|---|---|---|",
             f"| 1 GPU, one process | {t_one:.1f} | 1.0x |",
             f"| {args.nproc} GPUs, torchrun ({how}) | {t_many:.1f} | {t_one / t_many:.2f}x |", "",
             f"{len(merged)} networks in both runs (same run folder hash: {hash_one == hash_many}); largest per-network "
             f"difference: early-stop test accuracy {diff['early_stop_test_accuracy']:.2f} pp, final test accuracy "
             f"{diff['final_test_accuracy']:.2f} pp.", "", "| level | final test accuracy, 1 GPU | N GPUs |", "|---|---|---|"]
    lines += [f"| {level} | {row.iloc[0]:.2f} | {row.iloc[1]:.2f} |" for level, row in means.iterrows()]
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = "scaleout_data_parallel" if args.data_parallel else "scaleout"
        (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
