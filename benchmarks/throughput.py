"""Training throughput, side by side in one process on one device: the conventional loop against lth.

(a) conventional: a torchvision-style data set with per-sample ToTensor/Normalize transforms, a
    DataLoader (shuffle, 4 workers), one network, masks re-applied after every step: the way most
    LTH code trains;
(b) lth with one network (a stack of M=1);
(c) lth with M networks stacked, M in --stacks.

LeNet-300-100 on real MNIST (batch 60); Conv-2 (batch 60) and ResNet-20 (batch 128, SGD) on
CIFAR-shaped synthetic data. With --protocol, also the end-to-end wall time of the LeNet-300-100
paper protocol (5 trials, 21 levels down to 1.2% remaining, 3 reinitialisations per ticket, 50K
iterations, evaluation every 100) run through `lth.experiments.runner.Runner` into a fresh result store,
beside the conventional loop's time for the same network-iterations at its measured rate.
Prints a markdown table and writes it (plus JSON) to --out.

    python benchmarks/throughput.py --protocol --out benchmarks/results/h100   # on a GPU
    python benchmarks/throughput.py --quick --device cpu                      # a few steps, to check it runs
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from lth.data import load_splits
from lth.nets.stack import NetworkStack
from lth.nets.models import build_model, prunable_weights
from lth.store.files import git_state
from lth.train.config import PRECISIONS, TrainConfig
from lth.train.step import GRAPH_STEPS, TrainStep, make_optimizer, matmul_precision, use_cuda_graphs

WORKLOADS = {  # model, data set, batch, optimizer, learning rate
    "lenet300": ("lenet300", "mnist", 60, "adam", 1.2e-3),
    "conv2": ("conv2", "cifar_synthetic", 60, "adam", 2e-4),
    "resnet20": ("resnet20", "cifar_synthetic", 128, "sgd", 0.1),
}


class ImageDataset(Dataset):
    """uint8 HWC images transformed per sample, as torchvision's ToTensor + Normalize do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(255)
        return (x - self.mean) / self.std, int(self.labels[i])


def conventional_dataset(name: str) -> Dataset:
    if name == "mnist":
        from torchvision import datasets, transforms
        from lth.data import data_roots
        root = _decompressed_mnist(data_roots())
        return datasets.MNIST(root, train=True, download=False, transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
    rng = np.random.default_rng(0)
    return ImageDataset(rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
                        rng.integers(0, 10, 50000), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def _decompressed_mnist(roots) -> str:
    """torchvision reads the decompressed IDX files; the offline copies are gzipped."""
    import gzip
    import shutil
    import tempfile
    source = next(r for r in roots if (r / "MNIST" / "raw").exists()) / "MNIST" / "raw"
    target = Path(tempfile.mkdtemp()) / "MNIST" / "raw"
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.suffix == ".gz":
            with gzip.open(path) as src, open(target / path.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy(path, target / path.name)
    return str(target.parents[1])


def conventional_loop(model, loader, optimizer, masks: dict, device: torch.device):
    """``run(n)``: n steps of the textbook loop (DataLoader batches copied to ``device``, forward,
    backward, optimizer step, then the pruned weights zeroed again by ``masks``)."""
    params = dict(model.named_parameters())

    def run(n: int) -> None:
        done = 0
        while done < n:
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for name, mask in masks.items():
                        params[name].mul_(mask)
                done += 1
                if done == n:
                    return
    return run


def time_conventional(workload: str, device: torch.device, steps: int) -> float:
    model_name, data_name, batch, opt_name, lr = WORKLOADS[workload]
    dataset = conventional_dataset(data_name)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=4, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=True)
    shape = (1, 28, 28) if data_name == "mnist" else (3, 32, 32)
    model = build_model(model_name, shape, 10, seed=0).to(device)
    masks = {n: (torch.rand_like(p) < 0.5).float() for n, p in model.named_parameters()
             if n in prunable_weights(model)}
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if opt_name == "adam"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4))

    run = conventional_loop(model, loader, optimizer, masks, device)

    run(min(50, steps))  # warm up the workers and kernels
    _sync(device)
    start = time.perf_counter()
    run(steps)
    _sync(device)
    return steps / (time.perf_counter() - start)


def time_lth(workload: str, device: torch.device, stack_size: int, steps: int,
             precision: str = "fp32", compile: bool = False) -> tuple[float, float]:
    """(steps per second, peak device memory in GiB) for a stack of ``stack_size`` networks."""
    model_name, data_name, batch, opt_name, lr = WORKLOADS[workload]
    data = (load_splits("mnist") if data_name == "mnist" else
            load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(45000, 5000, 10000))).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stack = NetworkStack.build(lambda s: build_model(model_name, data.input_shape, 10, seed=s),
                               list(range(stack_size)), device)
    stack.set_masks({n: (torch.rand(m.shape, device=device) < 0.5).float() for n, m in stack.masks.items()})
    cfg = TrainConfig(batch_size=batch, optimizer=opt_name, lr=lr, momentum=0.9, weight_decay=1e-4 if opt_name == "sgd" else 0)
    graphed = use_cuda_graphs(device)
    step = TrainStep(stack, data, make_optimizer(list(stack.params.values()), cfg),
                     list(range(stack_size)), batch, graphed, chunk=GRAPH_STEPS, precision=precision, compile=compile)
    if graphed:  # time whole captured chunks only
        steps = -(-steps // GRAPH_STEPS) * GRAPH_STEPS
    with matmul_precision(precision):
        step.run(0, [lr] * (2 * GRAPH_STEPS))  # eager warm-up, then a chunk's capture (kept out of the timing)
        _sync(device)
        if compile:
            settle_compile_workers(device)
        start = time.perf_counter()
        step.run(2 * GRAPH_STEPS, [lr] * steps)
        _sync(device)
    rate = steps / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return rate, peak


PROTOCOL = ["ImpConfig.trials = 5", "ImpConfig.reinits = 3", "ImpConfig.controls = ('reinit',)",
            "TrainConfig.precision = 'tf32'"]


def time_protocol(device: torch.device, bindings: list[str], out: Path | None) -> dict:
    """Wall time, peak memory and network-iterations of the LeNet-300-100 paper protocol, end to end;
    its per-network summary goes to out/protocol_networks.csv (to compare with other runs of it)."""
    from lth.results.analysis import per_network
    from lth.config import load_recipe
    from lth.experiments.imp import ImpPlan
    from lth.experiments.runner import Runner
    recipe = load_recipe("lth_lenet300", profile="paper", bindings=bindings)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        experiment = Runner(recipe.spec, recipe.config, recipe.trains, root=root, device=device)
        metrics = experiment.run().metrics
    wall = time.perf_counter() - start
    if out:
        out.mkdir(parents=True, exist_ok=True)
        per_network(metrics).to_csv(out / "protocol_networks.csv", index=False)
    networks = metrics.groupby(["level", "control", "trial", "replicate"]).ngroups
    total = experiment.steps.total
    tickets = metrics[(metrics.control == "none") & (metrics.split == "test") & (metrics.metric == "accuracy")]
    final = tickets[tickets.iteration == total].groupby("level").value.mean()
    return dict(wall_s=wall, networks=networks, network_iterations=networks * total, levels=len(ImpPlan(experiment.context).targets),
                peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
                final_test_accuracy_by_level=[round(100 * v, 2) for v in final.tolist()], bindings=bindings)


def settle_compile_workers(device: torch.device) -> None:
    """Wait, after compiling, until Inductor's pool of compile workers has started. A process whose compiled
    code all comes from Inductor's disk cache still starts that pool at its first compile, and while the
    workers start (~5 s) a stack of 20's captured step ran 1.3-2.8x slower on an H200
    (benchmarks/results/h200/concurrent_stacks.txt): a timing then measures the start-up, not the step.
    Nothing to wait for on a CPU or where this private API is absent."""
    from torch._inductor.async_compile import AsyncCompile
    if device.type == "cuda" and hasattr(AsyncCompile, "wait_pool_ready"):
        AsyncCompile.wait_pool_ready()


def commit_label() -> str:
    """The short commit of the code being measured (LTH_GIT_COMMIT where the tree is a copy), or 'unknown':
    every benchmark's results header names it."""
    commit = git_state(Path(__file__).parent)["git_commit"]
    return commit[:7] if commit else "unknown"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--stacks", nargs="+", type=int, default=[1, 5, 20, 100])
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(PRECISIONS),
                        help="lth rows for each (tf32: TF32 matmuls; bf16: autocast)")
    parser.add_argument("--compile", action="store_true", help="also lth rows with TrainConfig.compile")
    parser.add_argument("--seconds", type=float, default=10.0, help="rough time per measurement")
    parser.add_argument("--quick", action="store_true", help="a handful of steps: checks that it runs")
    parser.add_argument("--protocol", action="store_true", help="also time the LeNet-300-100 paper protocol end to end")
    parser.add_argument("-b", "--binding", action="append", default=[], help="extra gin binding for --protocol")
    parser.add_argument("--out", type=Path, help="folder for results.md and results.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for workload in args.workloads:
        probe = 5 if args.quick else 50
        steps_for = lambda rate: probe if args.quick else max(probe, int(rate * args.seconds))
        base = time_conventional(workload, device, probe)
        base = time_conventional(workload, device, steps_for(base)) if not args.quick else base
        rows.append(dict(workload=workload, method="conventional loop", networks=1, precision="fp32", steps_per_s=base,
                         network_its_per_s=base, peak_gib=float("nan"), ratio=1.0))
        print(rows[-1], flush=True)
        for precision in args.precisions:
            for compiled in (False, True) if args.compile else (False,):
                for m in args.stacks:
                    rate, _ = time_lth(workload, device, m, probe, precision, compiled)  # also compiles
                    rate, peak = time_lth(workload, device, m, steps_for(rate), precision, compiled)
                    rows.append(dict(workload=workload, method=("lth" if m == 1 else "lth stacked") + (", compiled" if compiled else ""),
                                     networks=m, precision=precision, steps_per_s=rate, network_its_per_s=rate * m,
                                     peak_gib=peak, ratio=rate * m / base))
                    print(rows[-1], flush=True)
    protocol = None
    if args.protocol:
        protocol = time_protocol(device, PROTOCOL + args.binding, args.out)
        print(protocol, flush=True)
    header = (f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}; "
              f"commit {commit_label()}; "
              f"torch {torch.__version__}; CUDA graphs {'on' if use_cuda_graphs(device) else 'off'}")
    table = [header, "", "| workload | method | precision | networks | steps/s | network-it/s | peak GiB | vs conventional |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['workload']} | {r['method']} | {r['precision']} | {r['networks']} | {r['steps_per_s']:.0f} | "
              f"{r['network_its_per_s']:.0f} | {r['peak_gib']:.2f} | {r['ratio']:.1f}x |" for r in rows]
    if protocol:
        conventional = next((r["steps_per_s"] for r in rows if r["workload"] == "lenet300" and r["networks"] == 1
                             and r["method"] == "conventional loop"), None)
        table += ["", f"LeNet-300-100 paper protocol end to end ({'; '.join(protocol['bindings'])}): "
                  f"{protocol['levels']} levels, {protocol['networks']} networks, "
                  f"{protocol['network_iterations'] / 1e6:.2f}M network-iterations in {protocol['wall_s']:.0f} s "
                  f"({protocol['network_iterations'] / protocol['wall_s']:,.0f} network-it/s), peak {protocol['peak_gib']:.2f} GiB"]
        if conventional:
            hours = protocol["network_iterations"] / conventional / 3600
            table[-1] += (f"; the conventional loop at its measured {conventional:.0f} it/s: {hours:.1f} h "
                          f"({hours * 3600 / protocol['wall_s']:.0f}x longer)")
    print("\n".join(table))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.md").write_text("\n".join(table) + "\n")
        (args.out / "results.json").write_text(json.dumps({"header": header, "rows": rows, "protocol": protocol},
                                                          indent=2))


if __name__ == "__main__":
    main()
