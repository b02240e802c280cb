"""``python -m lth sweep``: a grid of experiments (recipes x profiles x grid bindings x seeds), one
submitit job each, all writing into one result store.

Every point of the grid is loaded first (`lth.config.load_recipe`), so an unknown recipe, profile or
binding, or a bad value, refuses the whole sweep before anything is submitted. A point is one run
folder ``<root>/<experiment>/<config hash>``: points whose run already finished are skipped, two
points with the same config run once. Each job runs ``python -m lth run`` in a subprocess; the store
skips finished levels and resumes a killed or requeued job from its last checkpoint, so
resubmitting a sweep finishes what is missing and nothing already stored is lost. Within a job,
spread over GPUs with torchrun as usual. On Slurm the jobs form one job array.

Executors (submitit): ``local`` (processes on this machine, what the tests use), ``slurm``,
``debug`` (in this process, one after the other).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

EXECUTORS = ("local", "slurm", "debug")
SUMMARY_COLUMNS = ("recipe", "profile", "seed", "bindings", "run_folder", "state", "wall_time_s", "error")


class SweepError(ValueError):
    """A sweep refused before submission: every bad point is listed."""


@dataclass(frozen=True)
class Point:
    """One experiment of the grid. ``recipe``: recipe names / .gin paths joined by '+' (loaded
    together); ``bindings``: the sweep's and the grid's bindings, the seed binding last."""
    recipe: str
    profile: str | None
    seed: int | None
    bindings: tuple[str, ...]
    run_folder: str

    def command(self, root: str, device: str) -> list[str]:
        """The ``python -m lth run`` command line of this point."""
        cmd = [sys.executable, "-m", "lth", "run", *self.recipe.split("+"), "--root", root, "--device", device]
        if self.profile:
            cmd += ["--profile", self.profile]
        for binding in self.bindings:
            cmd += ["--binding", binding]
        return cmd


@dataclass
class Outcome:
    """What a job reports: its exit status, wall time (s), host and the error (last stderr lines)."""
    returncode: int
    wall_time_s: float
    host: str
    error: str = ""


@dataclass
class Experiment:
    """A submitit job: runs one point with ``python -m lth run`` (a subprocess that dies with the
    job). Requeued on preemption or timeout (submitit's ``checkpoint``); the store resumes it."""
    point: Point
    root: str
    device: str = "auto"

    def __call__(self) -> Outcome:
        import socket
        start = time.time()
        process = subprocess.Popen(self.point.command(self.root, self.device), stderr=subprocess.PIPE, text=True,
                                   preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        tail: list[str] = []
        try:
            for line in process.stderr:
                sys.stderr.write(line)
                tail = (tail + [line.rstrip()])[-20:]
            returncode = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
        errors = [line for line in tail if line.startswith("error:") or "Error" in line]
        error = (errors[-1] if errors else (tail[-1] if tail else "")) if returncode else ""
        return Outcome(returncode, round(time.time() - start, 2), socket.gethostname(), error[:500])

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the job process dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


# ---- the grid ------------------------------------------------------------------------------------

def grid_bindings(grid: Sequence[str]) -> list[tuple[str, ...]]:
    """``'Name.field = [v1, v2]'`` per entry -> the product of their bindings, e.g.
    [('Name.field = v1', ...), ...]. Raises SweepError for an entry that is no list binding."""
    axes = []
    for entry in grid:
        name, sep, values = entry.partition("=")
        try:
            parsed = ast.literal_eval(values.strip()) if sep else None
        except (ValueError, SyntaxError):
            parsed = None
        if not isinstance(parsed, list) or not parsed or not name.strip():
            raise SweepError(f"grid entry {entry!r}: expected 'Name.field = [value, ...]' with a non-empty list")
        axes.append([f"{name.strip()} = {value!r}" for value in parsed])
    return list(itertools.product(*axes))


def plan(recipes: Sequence[str], profiles: Sequence[str | None] = (None,), bindings: Sequence[str] = (),
         seeds: Sequence[int] | None = None, grid: Sequence[str] = (), root: str | Path = "runs") -> list[Point]:
    """Every point of the grid, each loaded to find its run folder (nothing is run or written).

    ``seeds``: bound as ``<the recipe's config class>.seed = s``; None keeps the recipe's seed.
    Raises SweepError listing every point that does not load (unknown recipe, profile or binding,
    bad value) and why."""
    from lth.store import config_hash
    root, points, errors = Path(root).absolute(), [], []
    for recipe, profile, extra, seed in itertools.product(recipes, profiles or (None,), grid_bindings(grid),
                                                          seeds if seeds else (None,)):
        where = f"recipe {recipe!r}, profile {profile}, seed {seed}" + (f", {'; '.join(extra)}" if extra else "")
        try:
            loaded = _load(recipe, profile, [*bindings, *extra])
            chosen = [*bindings, *extra]
            if seed is not None:
                cls = type(loaded.config).__name__
                if not hasattr(loaded.config, "seed"):
                    raise SweepError(f"{cls} has no seed field to sweep")
                chosen.append(f"{cls}.seed = {int(seed)}")
                loaded = _load(recipe, profile, chosen)
        except (ValueError, TypeError) as err:  # ConfigError is a ValueError
            errors.append((str(err).splitlines()[0], where))
            continue
        folder = root / loaded.config.experiment / config_hash(loaded.text)
        points.append(Point(recipe, profile, seed, tuple(chosen), str(folder)))
    if errors:
        reasons: dict[str, list[str]] = {}
        for reason, where in errors:
            reasons.setdefault(reason, []).append(where)
        lines = [f"{reason} ({where[0]}" + (f", and {len(where) - 1} more points)" if len(where) > 1 else ")")
                 for reason, where in reasons.items()]
        raise SweepError(f"sweep refused, nothing submitted: {len(errors)} of the grid's points do not load:\n  "
                         + "\n  ".join(lines))
    return points


def _load(recipe: str, profile: str | None, bindings: Sequence[str]):
    from lth import config
    return config.load_recipe(recipe.split("+"), profile=profile, bindings=list(bindings))


def is_finished(run_folder: str | Path) -> bool:
    """Whether the run folder's last start was followed by a finish (its manifest says so)."""
    path = Path(run_folder) / "manifest.json"
    if not path.is_file():
        return False
    manifest = json.loads(path.read_text())
    return bool(manifest.get("finished_at")) and manifest.get("finished_at", "") >= manifest.get("started_at", "")


# ---- submission ----------------------------------------------------------------------------------

@dataclass
class Row:
    point: Point
    state: str = "pending"
    wall_time_s: float | None = None
    error: str = ""
    job_id: str = ""
    job: object = field(default=None, repr=False)

    def as_dict(self) -> dict:
        p = self.point
        return {"recipe": p.recipe, "profile": p.profile or "", "seed": "" if p.seed is None else p.seed,
                "bindings": "; ".join(b for b in p.bindings if not b.endswith(f".seed = {p.seed}")),
                "run_folder": p.run_folder, "state": self.state,
                "wall_time_s": "" if self.wall_time_s is None else self.wall_time_s,
                "error": self.error}


def executor_for(kind: str, folder: str | Path, *, timeout_min: int = 60, partition: str | None = None,
                 gpus: int = 0, cpus: int = 2, mem_gb: float | None = None, max_parallel: int | None = None):
    """A submitit executor: ``local``, ``slurm`` or ``debug`` (ValueError otherwise)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")
    import submitit
    executor = submitit.AutoExecutor(folder=str(folder), cluster=kind)
    params = dict(name="lth-sweep", timeout_min=timeout_min, cpus_per_task=cpus)
    if gpus:
        params["gpus_per_node"] = gpus
    if mem_gb:
        params["mem_gb"] = mem_gb
    if partition:
        params["slurm_partition"] = partition
    if max_parallel and kind == "slurm":
        params["slurm_array_parallelism"] = max_parallel
    executor.update_parameters(**params)
    return executor


def submit(points: Sequence[Point], executor, *, root: str | Path = "runs", device: str = "auto",
           wait: bool = True, rerun_finished: bool = False) -> list[Row]:
    """Submit one job per point not yet finished (one job array where the executor batches) and,
    with ``wait``, wait for them all; the rows of the summary table."""
    root = str(Path(root).absolute())
    rows, seen = [], {}
    for point in points:
        row = Row(point)
        if point.run_folder in seen:
            row.state = f"duplicate of row {seen[point.run_folder]}"
        elif is_finished(point.run_folder) and not rerun_finished:
            row.state = "skipped (finished)"
        seen.setdefault(point.run_folder, len(rows))
        rows.append(row)
    todo = [row for row in rows if row.state == "pending"]
    if todo:
        with executor.batch():
            for row in todo:
                row.job = executor.submit(Experiment(row.point, root, device))
        for row in todo:
            row.job_id, row.state = str(row.job.job_id), "submitted"
    if wait:
        for row in todo:
            collect(row)
    return rows


def collect(row: Row) -> None:
    """Wait for a row's job and record its state, wall time and error."""
    try:
        outcome = row.job.result()
    except Exception as err:  # killed, cancelled, or the job process itself failed
        row.state, row.error = "failed", " ".join(str(err).split())[-500:]
        return
    row.wall_time_s = outcome.wall_time_s
    row.state, row.error = ("done", "") if outcome.returncode == 0 else ("failed", outcome.error)


def summary(rows: Sequence[Row]) -> str:
    """The summary table, one line per point."""
    import pandas as pd
    frame = pd.DataFrame([row.as_dict() for row in rows], columns=list(SUMMARY_COLUMNS))
    return frame.to_string(index=False, na_rep="")


# ---- command line --------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The sweep command's arguments (a subparser of ``python -m lth``)."""
    parser.add_argument("recipes", nargs="+", help="recipe names or .gin paths, one experiment each "
                                                   "(join files loaded together with '+')")
    parser.add_argument("-p", "--profile", nargs="+", default=[None], help="profiles, one experiment each")
    parser.add_argument("-b", "--binding", action="append", default=[], help="a gin binding for every experiment")
    parser.add_argument("-g", "--grid", action="append", default=[],
                        help="a binding over a list, one experiment per value: 'ImpConfig.rewind = [\"init\", \"lr\"]'")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds, bound as <ConfigClass>.seed (default: the recipe's)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="submitit executor (default local)")
    parser.add_argument("--root", default="runs", help="the shared result store (default runs)")
    parser.add_argument("--device", default="auto", help="device of every job (default auto)")
    parser.add_argument("--log-folder", help="submitit's logs and the summary (default <root>/.sweeps/<time>)")
    parser.add_argument("--slurm-partition", help="Slurm partition")
    parser.add_argument("--timeout-min", type=int, default=60, help="per job, minutes (default 60)")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs per job (default 0)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs per job (default 2)")
    parser.add_argument("--mem-gb", type=float, help="memory per job")
    parser.add_argument("--max-parallel", type=int, help="jobs of the array running at once (Slurm)")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the points; submit nothing")
    parser.add_argument("--no-wait", action="store_true", help="submit and return (rerun the sweep for the table)")
    return parser


def command(args: argparse.Namespace) -> int:
    """Run the sweep: 0 when every experiment finished (or was skipped), 1 when one failed, 2 when refused."""
    try:
        points = plan(args.recipes, args.profile, args.binding, args.seeds, args.grid, args.root)
        if args.dry_run:
            print(summary([Row(p, "finished" if is_finished(p.run_folder) else "to run") for p in points]))
            return 0
        folder = Path(args.log_folder or Path(args.root) / ".sweeps" / time.strftime("%Y%m%d-%H%M%S")).absolute()
        executor = executor_for(args.executor, folder, timeout_min=args.timeout_min,
                                partition=args.slurm_partition, gpus=args.gpus, cpus=args.cpus, mem_gb=args.mem_gb,
                                max_parallel=args.max_parallel)
    except (SweepError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(points)} experiments; logs in {folder}", flush=True)
    rows = submit(points, executor, root=args.root, device=args.device, wait=not args.no_wait)
    table = summary(rows)
    print(table)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.txt").write_text(table + "\n")
    return 1 if any(row.state == "failed" for row in rows) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lth.sweep ...`` until `lth.cli` wires the ``sweep`` command."""
    return command(add_arguments(argparse.ArgumentParser(prog="python -m lth sweep", description=__doc__)).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
