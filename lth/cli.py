"""``python -m lth``: run gin recipes from scripts and clusters.

Commands: ``run`` (or resume; ``--dry-run`` says what would run), ``list`` (recipes and profiles),
``show`` (a recipe's operative config and its run folder), ``export`` (a ticket as a file),
``sweep`` (many experiments), ``download`` (a data set).

Exit status: 0 done; 2 bad input, refused before any run folder is made or any training starts (a
config, a recipe of the wrong kind, a device this machine lacks, an unwritable --root, a missing or
damaged data set); 1 a fault during the run (disk full, a damaged result store, a diverged network).
"""

from __future__ import annotations

import argparse
import sys

from lth.config import PROFILES, ConfigError, load_recipe

STRONG_KINDS = ("edgepopup", "pensia", "gem_miner", "train_ticket")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("lth")
    except PackageNotFoundError:
        from lth import __version__
        return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lth", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lth {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) an experiment of any kind from gin recipes")
    _recipe_arguments(run, many=True)
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (default)")
    run.add_argument("--data-parallel", action="store_true",
                     help="under torchrun: every process trains all trials on its share of each batch "
                          "(one large network over GPUs) instead of taking a share of the trials")
    run.add_argument("--tensorboard", metavar="DIR",
                     help="also write every network's metrics as TensorBoard scalars under DIR "
                          "(needs the tensorboard package; default: $LTH_TENSORBOARD, else off)")
    run.add_argument("--add-trials", type=int, default=0, metavar="N",
                     help="train N more trials (new seeds) beside the recipe's own, in the same run folder, "
                          "whose results then hold all of them (IMP kinds; e.g. 5 trials done, --add-trials 10: 15)")
    run.add_argument("--dry-run", action="store_true",
                     help="say what would run (kind, jobs, networks, iterations) and the run folder; create nothing")
    commands.add_parser("list", help="the recipes (one line each) and the profiles")
    show = commands.add_parser("show", help="a recipe's operative config and the run folder it maps to")
    _recipe_arguments(show, many=False)
    from lth.tickets import add_export_arguments
    add_export_arguments(commands.add_parser("export", help="export one network of a run as a ticket file"))
    from lth.sweep import add_arguments as add_sweep_arguments
    add_sweep_arguments(commands.add_parser("sweep", help="many experiments (grids, seeds) locally or on Slurm"))
    download = commands.add_parser("download", help="download a data set into the data root (needs internet)")
    download.add_argument("dataset")
    return parser


def _recipe_arguments(parser: argparse.ArgumentParser, many: bool) -> None:
    if many:
        parser.add_argument("configs", nargs="+", help="recipe names in lth/recipes/ or paths to .gin files (one kind)")
    else:
        parser.add_argument("configs", nargs=1, metavar="recipe", help="a recipe name in lth/recipes/ or a .gin path")
    parser.add_argument("-p", "--profile", choices=PROFILES, help="scale the recipe (smoke, quick, paper)")
    parser.add_argument("-b", "--binding", action="append", default=[],
                        help="an extra gin binding, e.g. 'ImpConfig.trials = 3'")
    parser.add_argument("--root", default="runs", help="result store folder (default: runs)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "download":
        from lth.data import load_splits
        load_splits(args.dataset, download=True)
        return 0
    if args.command == "list":
        return _list()
    if args.command == "export":
        from lth.tickets import export_command
        return export_command(args)
    if args.command == "sweep":
        from lth.sweep import command
        return command(args)
    if args.command == "show":
        return _show(args)
    return _run(args)


def _error(err: BaseException) -> None:
    """``error: <message>`` on stderr (a message of several lines, e.g. a bad binding's list of parameters, kept),
    then the error's notes, one a line."""
    print("\n".join([f"error: {str(err).strip()}", *getattr(err, "__notes__", ())]), file=sys.stderr)


def _list() -> int:
    from lth.config import describe_recipe, kind_of_recipe, profile_path, recipes
    names = recipes()
    width = max(map(len, names))
    print("recipes (python -m lth run RECIPE):")
    for name in names:
        print(f"  {name:<{width}}  [{kind_of_recipe(name)}] {describe_recipe(name)}")
    print("profiles (-p PROFILE):")
    for profile in PROFILES:
        print(f"  {profile:<{width}}  {describe_recipe(profile_path(profile))}")
    return 0


def _show(args) -> int:
    from pathlib import Path

    from lth.store import config_hash
    try:
        recipe = load_recipe(args.configs, profile=args.profile, bindings=args.binding)
    except (ConfigError, ValueError) as err:
        _error(err)
        return 2
    folder = Path(args.root) / recipe.config.experiment / config_hash(recipe.text)
    done = sorted(p.name for p in (folder / "done").glob("*") if not p.name.startswith(".")) \
        if (folder / "done").is_dir() else []
    state = (f"exists, {len(done)} job{'s' * (len(done) != 1)} done" if folder.is_dir() else "not made yet")
    print(f"# kind: {recipe.kind}; profile: {recipe.profile or 'none'}")
    print(f"# run folder: {folder} ({state})")
    print(recipe.text, end="")
    return 0


def _run(args) -> int:
    from lth.checks import check_data, check_device, check_writable
    from lth.data import DatasetDamaged, DatasetNotFound
    from lth.experiments.runner import OutOfMemory, Runner
    from lth.store import StoreError
    from lth.train.loop import DivergedError
    rank, world = 0, 1
    try:
        recipe = load_recipe(args.configs, profile=args.profile, bindings=args.binding)
        device, description = check_device(args.device)
        if not args.dry_run:
            check_writable(args.root)
        check_data(recipe.config.dataset)
        rank, world, device = _distributed(args.device, device)
        if rank == 0:
            print(description, flush=True)
        # identical data-parallel replicas share the store: a resumed run resumes on every rank
        shard = (0, 1) if args.data_parallel else (rank, world)
        runner = Runner(recipe.spec, recipe.config, recipe.trains, root=args.root, device=device, shard=shard,
                        data_parallel=args.data_parallel and world > 1, profile=args.profile, plan_only=args.dry_run,
                        tensorboard=args.tensorboard, add_trials=args.add_trials)
    except (ConfigError, ValueError, ImportError, DatasetNotFound, DatasetDamaged) as err:
        _error(err)
        return 2
    if args.dry_run:
        if rank == 0:
            print(_plan_text(recipe, runner))
        return 0
    if rank == 0:
        how = "each with its share of every batch" if args.data_parallel else "trials spread over them"
        print(f"run folder: {runner.run_dir.path}" + (f" ({world} processes, {how})" if world > 1 else ""), flush=True)
    try:
        result = runner.run()
    except (StoreError, DivergedError, DatasetDamaged, OutOfMemory) as err:  # finished jobs stay in the run folder
        _error(err)
        return 1
    metrics = result.metrics
    if world > 1:  # every shard's metrics are in the run folder once all processes arrive
        import torch.distributed as dist
        dist.barrier()
        metrics = runner.run_dir.read_metrics()
        dist.destroy_process_group()
    if rank == 0:
        print(_summary(recipe, metrics, result.outputs))
        failed = _failed_text(metrics)
        if failed:
            print(failed)
    return 0


def _plan_text(recipe, runner) -> str:
    """--dry-run: kind, run folder, per job its networks and iterations, and a measured time estimate."""
    from lth.experiments.estimate import job_seconds
    from lth.report.page import format_duration as _duration
    plan = runner.plan()
    seconds = job_seconds(runner) if not all(row["done"] for row in plan if row["networks"]) else {}
    training = [row for row in plan if row["networks"]]
    to_do = [row for row in training if not row["done"]]
    known = [seconds.get(row["job"]) for row in to_do]
    device = runner.context.device
    total = ("nothing to train" if not to_do else f"about {_duration(sum(known))} on {device}" if None not in known
             else "no estimate")
    lines = [f"kind {recipe.kind}, experiment {recipe.config.experiment}, profile {recipe.profile or 'none'}",
             f"run folder: {runner.run_path}" + ("" if runner.run_path.is_dir() else " (not made: dry run)"),
             f"{len(training)} training job{'s' * (len(training) != 1)}, {len(to_do)} to run "
             f"({sum(r['networks'] for r in to_do)} networks, "
             f"{sum(r['networks'] * r['iterations'] for r in to_do):,} network-iterations): {total}"
             + (" (timed eagerly: CUDA graphs and compile make GPU runs faster)" if device.type == "cuda" else "")]
    for row in plan:
        if row["networks"]:
            estimate = seconds.get(row["job"])
            lines.append(f"  {row['job']}: {row['networks']} network{'s' * (row['networks'] != 1)} x "
                         f"{row['iterations']:,} iterations" + (" (done)" if row["done"] else "")
                         + (f", ~{_duration(estimate)}" if estimate is not None and not row["done"] else ""))
        else:
            lines.append(f"  {row['job']}: computed on every run (trains nothing)")
    return "\n".join(lines)


def _failed_text(metrics) -> str:
    from lth.experiments.runner import FAILURE_RULE, failed_networks
    failed = failed_networks(metrics)
    if failed.empty:
        return ""
    rows = [f"  {r.experiment} trial {r.trial} level {r.level} ({r.control}) at density {r.density:.4g}"
            for r in failed.itertuples()]
    return (f"warning: {len(failed)} network{'s' * (len(failed) != 1)} did not learn ({FAILURE_RULE}); "
            f"flagged 'failed_to_learn' in the metrics and the manifest, and no claim is judged on them:\n"
            + "\n".join(rows))


def _summary(recipe, metrics, outputs) -> str:
    """The table printed at the end: per level (IMP, PaI), per network (strong kinds), the paper beside us (SubsetSum)."""
    number = lambda v: f"{v:.2f}"
    if recipe.kind == "subsetsum":
        from lth.notebook import Outcome
        from lth.results.subsetsum import summary_table
        outcome = Outcome.of(recipe, ran=True, metrics=metrics, run_path=None, details=outputs.get("solve"))
        return summary_table(outcome).to_string(index=False)
    if recipe.kind in STRONG_KINDS:  # rows per network
        from lth.results.strong import summary_table
        return summary_table(metrics).to_string(index=False, float_format=number)
    from lth.results.analysis import level_table
    return level_table(metrics).to_string(index=False, float_format=number)


def _distributed(device: str, checked=None) -> tuple[int, int, object]:
    """(rank, world size, device) of this process: under torchrun each process takes a share of the
    trials and, on GPUs, the GPU of its local rank. ``checked``: the device `check_device` chose."""
    import os
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, checked if checked is not None else device
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


if __name__ == "__main__":
    sys.exit(main())
