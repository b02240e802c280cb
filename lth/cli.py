"""``python -m lth``: run a gin config from scripts and clusters."""

from __future__ import annotations

import argparse
import sys

from lth.config import PROFILES, ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) an IMP, pruning-at-init or strong-ticket experiment from gin configs")
    run.add_argument("configs", nargs="+", help="recipe names in lth/recipes/ or paths to .gin files")
    run.add_argument("-p", "--profile", choices=PROFILES, help="scale the recipe (smoke, quick, paper)")
    run.add_argument("-b", "--binding", action="append", default=[], help="an extra gin binding, e.g. 'ImpConfig.trials = 3'")
    run.add_argument("--root", default="runs", help="result store folder (default: runs)")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    run.add_argument("--data-parallel", action="store_true",
                     help="under torchrun: every process trains all trials on its share of each batch "
                          "(one large network over GPUs) instead of taking a share of the trials")
    download = commands.add_parser("download", help="download a data set into the data root (needs internet)")
    download.add_argument("dataset")
    args = parser.parse_args(argv)

    if args.command == "download":
        from lth.data import load_splits
        load_splits(args.dataset, download=True)
        return 0

    from lth.experiments import pai
    from lth.experiments import strong
    from lth.results.analysis import level_table
    from lth.data import DatasetNotFound
    from lth.experiments.imp import Experiment, ImpConfig
    from lth.store import CorruptCheckpoint
    from lth.train.loop import DivergedError, TrainConfig
    try:
        load(args.configs, profile=args.profile, bindings=args.binding)
        if _binds("SubsetSumConfig.experiment"):  # SubsetSum (Pensia et al. Exp. 1): train the target, solve
            return _run_subsetsum(args)
        rank, world, device = _distributed(args.device)
        if _binds("PaiConfig.experiment"):  # a pruning-at-init recipe (profiles never name the experiment)
            if world > 1:
                raise ValueError("pruning-at-init recipes run in one process; start them without torchrun")
            experiment = pai.PaiExperiment(*pai.configs(), root=args.root, device=device)
        elif (strong_config := strong.config_type_bound()) is not None:  # a strong-ticket recipe
            if world > 1:
                raise ValueError("strong-ticket recipes run in one process; start them without torchrun")
            experiment = strong.make_experiment(*strong.configs(strong_config), root=args.root, device=device)
        else:
            if args.data_parallel:  # identical replicas share the store: a resumed run resumes on every rank
                experiment = Experiment(ImpConfig(), TrainConfig(), root=args.root, device=device,
                                        data_parallel=world > 1)
            else:
                experiment = Experiment(ImpConfig(), TrainConfig(), root=args.root, device=device, shard=(rank, world))
    except (ConfigError, ValueError, DatasetNotFound) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if rank == 0:
        how = "each with its share of every batch" if args.data_parallel else "trials spread over them"
        print(f"run folder: {experiment.run.path}" + (f" ({world} processes, {how})" if world > 1 else ""), flush=True)
    try:
        metrics = experiment.run_all()
    except (CorruptCheckpoint, DivergedError) as err:  # finished levels stay in the run folder
        print(f"error: {err}", file=sys.stderr)
        return 1
    if world > 1:  # every shard's metrics are in the run folder once all processes arrive
        import torch.distributed as dist
        dist.barrier()
        metrics = experiment.run.read_metrics()
        dist.destroy_process_group()
    if rank == 0:
        table = strong.summary_table(metrics) if isinstance(experiment, strong.StrongExperiment) else level_table(metrics)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _run_subsetsum(args) -> int:
    """Train (or reload) the SubsetSum target, solve, check, and print the paper's numbers beside ours."""
    from lth.experiments.subsetsum import run_subsetsum, summary_table
    if len(args.configs) != 1:
        raise ValueError("a SubsetSum recipe runs alone: name one config (profile and bindings go in -p and -b)")
    outcome = run_subsetsum(args.configs[0], args.profile or "paper", args.binding, root=args.root, device=args.device)
    if not outcome.ran:
        print(f"error: {outcome.reason}", file=sys.stderr)
        return 2
    print(f"run folder: {outcome.run_path}\n{summary_table(outcome).to_string(index=False)}")
    return 0


def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) of this process: under torchrun each process takes a share of the
    trials and, on GPUs, the GPU of its local rank."""
    import os
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch
    import torch.distributed as dist
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)  # CUDA graphs capture on the current device
    elif device == "auto":
        device = "cpu"
    # Trial shards only meet at a final barrier; data-parallel replicas average gradients every step.
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world, device


def _binds(parameter: str) -> bool:
    import gin
    try:
        gin.query_parameter(parameter)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
