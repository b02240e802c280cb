"""lth against the strongest references, side by side in one process on one device (issue 16).

For each workload (LeNet-300-100 on MNIST, batch 60, Adam; Conv-2 on CIFAR-shaped synthetic data,
batch 60, Adam; ResNet-20, batch 128, SGD; every network masked at density ~0.5):

- the conventional loop: per-sample transforms, a DataLoader, one network, fp32 (as
  benchmarks/throughput.py, the denominator of "vs conventional");
- the JAX idiom (LeNet only): ``jit(lax.scan(vmap(train_step)))`` over M masked networks, each with
  its own batch, at JAX's default matmul precision (TF32 on recent GPUs; compared with lth tf32) and
  at ``precision='highest'`` (true fp32; compared with lth fp32). Skipped, with a message, where jax
  is not installed (benchmarks/jax_idiom.py);
- the best single-network PyTorch loop: data resident on the device, augmentation on the device,
  bf16 autocast and channels_last for conv nets, loss and optimiser step compiled, the whole step
  captured as a CUDA graph (benchmarks/single_loop.py), the denominator of "vs single loop";
- lth: NetworkStack + TrainStep (compiled, CUDA graphs on a GPU) at M = 1, 20, 100 for LeNet (tf32
  and fp32) and M = 20, 50 for the conv nets (bf16).

Ratios compare network-iterations per second (= images per second / batch) at the same precision.
Writes side_by_side.md and side_by_side.csv to --out after every row (a run cut short keeps the rows
done). ``--smoke``: tiny synthetic data, tiny stacks, a few steps, no compilation: checks on a CPU in
seconds that every path runs.

    python benchmarks/side_by_side.py --out benchmarks/results/h200          # on a GPU
    python benchmarks/side_by_side.py --smoke --device cpu --out results/sbs  # check that it runs
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax_idiom  # noqa: E402
from single_loop import SingleLoop  # noqa: E402
from throughput import ImageDataset, commit_label, conventional_dataset, conventional_loop, settle_compile_workers  # noqa: E402

from lth.data import load_splits  # noqa: E402
from lth.nets.models import build_model, prunable_weights  # noqa: E402
from lth.nets.stack import NetworkStack  # noqa: E402
from lth.train.config import TrainConfig  # noqa: E402
from lth.train.step import GRAPH_STEPS, TrainStep, make_optimizer, matmul_precision, use_cuda_graphs  # noqa: E402

WORKLOADS = {  # model, data set, batch, optimizer, learning rate (as benchmarks/throughput.py)
    "lenet300": ("lenet300", "mnist", 60, "adam", 1.2e-3),
    "conv2": ("conv2", "cifar_synthetic", 60, "adam", 2e-4),
    "resnet20": ("resnet20", "cifar_synthetic", 128, "sgd", 0.1),
}
COLUMNS = ["workload", "method", "precision", "networks", "batch", "steps_per_s", "network_its_per_s",
           "images_per_s", "vs_conventional", "vs_single_loop", "vs_jax_idiom", "peak_gib", "note"]
JAX_PRECISION = {"default": "tf32", "highest": "fp32"}  # the lth precision each JAX setting is compared with
CONVENTIONAL, SINGLE, JAX, LTH = ("conventional loop", "best single-network loop", "JAX idiom jit(scan(vmap))",
                                  "lth stack (compile and CUDA graphs: see the header)")


# ---- the measurements --------------------------------------------------------------------------

def load_data(data_name: str, smoke: bool, device: torch.device):
    if data_name == "mnist":
        return (load_splits("synthetic", synthetic_shape=(1, 28, 28), synthetic_sizes=(600, 100, 100), device=device)
                if smoke else load_splits("mnist", device=device))
    if smoke:  # small images too: a CPU step of a conv net must take milliseconds
        return load_splits("synthetic", synthetic_shape=(3, 16, 16), synthetic_sizes=(100, 20, 20), device=device)
    return load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(45000, 5000, 10000), device=device)


def time_conventional(workload: str, device: torch.device, seconds: float, smoke: bool) -> float:
    """Steps/s of the conventional loop (benchmarks/throughput.py's): DataLoader, per-sample
    transforms, one masked network, fp32, masks re-applied to the weights after every step."""
    model_name, data_name, batch, opt_name, lr = WORKLOADS[workload]
    if smoke:
        shape = (28, 28, 1) if data_name == "mnist" else (16, 16, 3)
        rng = np.random.default_rng(0)
        dataset = ImageDataset(rng.integers(0, 256, (4 * batch, *shape), dtype=np.uint8), rng.integers(0, 10, 4 * batch),
                               (0.5,) * shape[-1], (0.25,) * shape[-1])
    else:
        dataset = conventional_dataset(data_name)
    workers = 0 if smoke else 4
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    shape = tuple(torch.as_tensor(dataset[0][0]).shape)
    model = build_model(model_name, shape, 10, seed=0).to(device)
    params = dict(model.named_parameters())
    masks = {n: (torch.rand_like(params[n]) < 0.5).float() for n in prunable_weights(model)}
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if opt_name == "adam"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4))

    run = conventional_loop(model, loader, optimizer, masks, device)

    probe = 1 if smoke else 50
    run(probe)  # warm up the workers and kernels
    _sync(device)
    start = time.perf_counter()
    run(probe)
    _sync(device)
    steps = probe if smoke else max(probe, int(probe / (time.perf_counter() - start) * seconds))
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return steps / (time.perf_counter() - start)


def time_lth(workload: str, data, device: torch.device, networks: int, precision: str, compile: bool,
             seconds: float) -> tuple[float, float]:
    """(steps/s, peak GiB) of a NetworkStack of ``networks`` masked networks trained by lth's TrainStep
    (as benchmarks/throughput.py drives it; captured as CUDA graphs of GRAPH_STEPS steps on a GPU)."""
    model_name, _, batch, opt_name, lr = WORKLOADS[workload]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stack = NetworkStack.build(lambda s: build_model(model_name, data.input_shape, 10, seed=s),
                               list(range(networks)), device)
    stack.set_masks({n: (torch.rand(m.shape, device=device) < 0.5).float() for n, m in stack.masks.items()})
    cfg = TrainConfig(batch_size=batch, optimizer=opt_name, lr=lr, momentum=0.9,
                      weight_decay=1e-4 if opt_name == "sgd" else 0)
    graphed = use_cuda_graphs(device)
    step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg), list(range(networks)),
                     batch, graphed, chunk=GRAPH_STEPS, precision=precision, compile=compile)
    chunk = GRAPH_STEPS if graphed else 1
    with matmul_precision(precision):
        done = 2 * GRAPH_STEPS if graphed else 1  # eager warm-up, then a chunk's capture (not timed)
        step.run(0, [lr] * done)
        _sync(device)
        if compile:
            settle_compile_workers(device)
        probe = chunk
        start = time.perf_counter()
        step.run(done, [lr] * probe)
        _sync(device)
        done += probe
        steps = max(probe, int(probe / (time.perf_counter() - start) * seconds) // chunk * chunk)
        start = time.perf_counter()
        step.run(done, [lr] * steps)
        _sync(device)
        rate = steps / (time.perf_counter() - start)
    stack.check_masks()
    if not torch.isfinite(step.take_running_loss()).all():
        raise FloatingPointError(f"lth {workload} M={networks} {precision}: training loss is not finite")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return rate, peak


def time_single(workload: str, data, device: torch.device, precision: str, compile: bool, seconds: float,
                smoke: bool, graphs: bool = True) -> tuple[float, float]:
    """(steps/s, peak GiB) of benchmarks/single_loop.py's loop; if capturing it as a CUDA graph fails,
    measured again without graphs (and the row's note says so)."""
    model_name, data_name, batch, opt_name, lr = WORKLOADS[workload]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with matmul_precision(precision):
            loop = SingleLoop(model_name, data.train.x, data.train.y, batch, opt_name, lr, precision, device,
                              augment=data_name != "mnist", compile=compile, graphs=graphs, chunk=5 if smoke else 50)
            rate = loop.time(seconds, probe=1 if smoke else 10)
    except Exception as error:
        if not (graphs and device.type == "cuda"):
            raise
        print(f"single loop: CUDA graph capture failed ({type(error).__name__}: {error}); again without graphs", flush=True)
        rate, peak = time_single(workload, data, device, precision, compile, seconds, smoke, graphs=False)
        raise Fallback(rate, peak, f"without CUDA graph (capture failed: {type(error).__name__})")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return rate, peak


class Fallback(Exception):
    """A measurement that ran another way than asked: its rate, peak memory and a note saying how."""

    def __init__(self, rate: float, peak: float, note: str):
        super().__init__(note)
        self.rate, self.peak, self.note = rate, peak, note


# ---- the table -----------------------------------------------------------------------------------

def with_ratios(rows: list[dict]) -> list[dict]:
    """Fill vs_conventional, vs_single_loop and vs_jax_idiom (network-it/s over the reference's, same
    workload; single loop and JAX at the same precision, JAX at the same M)."""
    def find(workload, method, precision=None, networks=None):
        for r in rows:
            if (r["workload"] == workload and r["method"] == method and r["steps_per_s"] == r["steps_per_s"]
                    and (precision is None or r["precision"] == precision)
                    and (networks is None or r["networks"] == networks)):
                return r["network_its_per_s"]
        return None

    for r in rows:
        if r["steps_per_s"] != r["steps_per_s"]:  # skipped or failed
            continue
        w, p = r["workload"], r["precision"]
        base = find(w, CONVENTIONAL)
        single = find(w, SINGLE, p)
        jax_rate = find(w, JAX, p, r["networks"])
        r["vs_conventional"] = r["network_its_per_s"] / base if base else float("nan")
        r["vs_single_loop"] = r["network_its_per_s"] / single if single else float("nan")
        r["vs_jax_idiom"] = r["network_its_per_s"] / jax_rate if jax_rate else float("nan")
    return rows


def _fmt(value, digits=0, suffix="") -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def write_table(rows: list[dict], header: str, out: Path | None) -> str:
    rows = with_ratios(rows)
    lines = [header, "", "| workload | method | precision | M | steps/s | network-it/s | images/s | vs conventional | "
             "vs single loop | vs JAX idiom | peak GiB | note |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['method']} | {r['precision']} | {r['networks']} | {_fmt(r['steps_per_s'])} | "
                     f"{_fmt(r['network_its_per_s'])} | {_fmt(r['images_per_s'])} | {_fmt(r['vs_conventional'], 1, 'x')} | "
                     f"{_fmt(r['vs_single_loop'], 2, 'x')} | {_fmt(r['vs_jax_idiom'], 2, 'x')} | "
                     f"{_fmt(r['peak_gib'], 2)} | {r['note']} |")
    text = "\n".join(lines) + "\n"
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "side_by_side.md").write_text(text)
        with open(out / "side_by_side.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: r[k] for k in COLUMNS} for r in rows)
    return text


def row(workload: str, method: str, precision: str, networks: int, rate: float, peak: float = float("nan"),
        note: str = "") -> dict:
    batch = WORKLOADS[workload][2]
    return dict(workload=workload, method=method, precision=precision, networks=networks, batch=batch,
                steps_per_s=rate, network_its_per_s=rate * networks, images_per_s=rate * networks * batch,
                vs_conventional=float("nan"), vs_single_loop=float("nan"), vs_jax_idiom=float("nan"),
                peak_gib=peak, note=note)


# ---- main ------------------------------------------------------------------------------------------

def plan(workload: str, args) -> list[tuple]:
    """(method, precision, networks) of every row of a workload, in the order run."""
    rows = [(CONVENTIONAL, "fp32", 1)]
    if workload == "lenet300":
        rows += [(JAX, JAX_PRECISION[p], m) for p in ("default", "highest")
                 for m in (args.jax_stacks if p == "default" else [m for m in args.jax_stacks if m in args.lenet_stacks])]
        rows += [(SINGLE, p, 1) for p in ("tf32", "fp32")]
        rows += [(LTH, p, m) for p in ("tf32", "fp32") for m in args.lenet_stacks]
    else:
        conv = "fp32" if args.smoke else "bf16"  # bf16 autocast is slow on CPUs
        rows += [(SINGLE, conv, 1)] + [(LTH, conv, m) for m in args.conv_stacks]
    return rows


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--lenet-stacks", nargs="+", type=int, default=[1, 20, 100])
    parser.add_argument("--jax-stacks", nargs="+", type=int, default=[1, 20, 100, 1000])
    parser.add_argument("--conv-stacks", nargs="+", type=int, default=[20, 50])
    parser.add_argument("--seconds", type=float, default=2.0, help="rough timed seconds per row")
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="skip the rows still to run once this many seconds have passed")
    parser.add_argument("--no-compile", action="store_true", help="eager single loop and lth (compiling needs a compiler)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark = True for every method: cuDNN times its algorithms "
                             "for each convolution shape and keeps the fastest (the conv nets' rows)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny synthetic data, stacks of 1-2, a few steps, no compilation: checks that it runs")
    parser.add_argument("--out", type=Path, help="folder for side_by_side.md and side_by_side.csv")
    args = parser.parse_args(argv)
    if args.smoke:
        args.lenet_stacks, args.jax_stacks, args.conv_stacks, args.seconds = [1, 2], [1, 2], [2], 0.05
        args.no_compile = True
        for name, (model, data, batch, opt, lr) in WORKLOADS.items():
            WORKLOADS[name] = (model, data, 4, opt, lr)
    device = torch.device(args.device)
    compile = not args.no_compile
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    for limit in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, limit):  # one compiled step per (model, M, precision): many recompiles
            setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 256))
    jax_note = "" if jax_idiom.available() else "jax is not installed: JAX idiom rows skipped"
    if jax_note:
        print(jax_note, flush=True)
    header = (f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}; "
              f"commit {commit_label()}; "
              f"torch {torch.__version__}; jax {_jax_version()}; CUDA graphs {'on' if use_cuda_graphs(device) else 'off'}; "
              f"compile {'on' if compile else 'off'}; cuDNN benchmark {'on' if args.cudnn_benchmark else 'off'}; "
              f"~{args.seconds:g} s timed per row"
              + ("; SMOKE (tiny synthetic data, batch 4, 16x16 conv inputs: not a measurement)" if args.smoke else ""))
    rows: list[dict] = []
    start = time.perf_counter()
    for workload in args.workloads:
        data = load_data(WORKLOADS[workload][1], args.smoke, device)
        for method, precision, networks in plan(workload, args):
            if method == JAX and jax_note:
                continue
            if time.perf_counter() - start > args.budget_s:
                rows.append(row(workload, method, precision, networks, float("nan"), note="skipped: time budget spent"))
                continue
            t0 = time.perf_counter()
            try:
                rate, peak, note = *measure(workload, data, device, method, precision, networks, compile, args), ""
            except Fallback as fallback:
                rate, peak, note = fallback.rate, fallback.peak, fallback.note
            except Exception as error:  # one failing row must not lose the others
                rate, peak, note = float("nan"), float("nan"), f"failed: {type(error).__name__}: {str(error)[:120]}"
            rows.append(row(workload, method, precision, networks, rate, peak, note))
            print(f"[{time.perf_counter() - start:6.1f}s, row {time.perf_counter() - t0:5.1f}s] "
                  f"{workload} | {method} | {precision} | M={networks} | {rate:,.1f} steps/s {note}", flush=True)
            write_table(rows, header, args.out)
        del data
    print(write_table(rows, header, args.out), flush=True)
    return rows


def measure(workload, data, device, method, precision, networks, compile, args) -> tuple[float, float]:
    if method == CONVENTIONAL:
        return time_conventional(workload, device, args.seconds, args.smoke), float("nan")
    if method == SINGLE:
        return time_single(workload, data, device, precision, compile, args.seconds, args.smoke)
    if method == LTH:
        return time_lth(workload, data, device, networks, precision, compile, args.seconds)
    jax_precision = next(k for k, v in JAX_PRECISION.items() if v == precision)
    x = data.train.x.reshape(len(data.train.y), -1).cpu().numpy()
    result = jax_idiom.time_jax_idiom(x, data.train.y.cpu().numpy(), networks, WORKLOADS[workload][2], jax_precision,
                                      steps_per_call=5 if args.smoke else min(1000, max(50, 50000 // networks)),
                                      seconds=args.seconds)
    if device.type == "cuda" and not any(k in result["device"].lower() for k in ("cuda", "gpu")):
        raise Fallback(result["steps_per_s"], float("nan"), f"JAX ran on {result['device']}, not the GPU")
    return result["steps_per_s"], float("nan")


def _jax_version() -> str:
    if not jax_idiom.available():
        return "absent"
    from importlib.metadata import version
    return version("jax")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
