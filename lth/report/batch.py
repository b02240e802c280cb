"""Execute the notebooks in notebooks/ on one profile with papermill, then build the report.

    python -m lth.report.batch [--profile smoke|quick|paper] [--only NAME ...] [--output-dir DIR] [--root DIR]
                        [--device DEV] [-b BINDING ...] [--report-only]

Each ``notebooks/<name>.py`` (jupytext percent format) is converted to
``build/notebooks/<profile>/<name>.ipynb`` and executed from the repo root into
``build/notebooks/<profile>/executed/<name>.ipynb``, with the parameters profile, bindings,
output_dir, root and device. A failing notebook does not stop the others; the end says which
notebook failed, in which cell, with what error, and the exit status is 1. The report is built
whatever happened. Notebooks are rerun every time: the result store makes finished work cheap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import os
import re
import resource
import sys
import time
from pathlib import Path

from lth.config import PROFILES
from lth.paths import workspace
from lth.report.page import REPORT_DIR, ClaimsError, NotebookRun, build_report, format_duration, read_claims

NOTEBOOK_DIR = workspace() / "notebooks"
BUILD_DIR = workspace() / "build" / "notebooks"
COMMITTED_DIR = workspace() / "figures"  # the committed results: figures/paper/<notebook>/
REFERENCE_PROFILE = "paper"
KERNEL = "python3"
# Wall seconds per notebook on an idle 2-core CPU without a GPU (real MNIST and Fashion-MNIST, kernel start
# included), said before a batch starts: measured in the default batch, two notebooks at a time, one torch thread
# each (`./run_all.sh --profile smoke` and `./run_all.sh`; REPRODUCIBILITY.md, "Running on a laptop").
ESTIMATE_NOTE = "measured on an idle 2-core CPU"
ESTIMATED_S = {
    "smoke": {"deconstruct_tickets": 15, "lmc_instability": 12, "lth_conv": 9, "lth_lenet_curves": 13,
              "lth_lenet_iterative": 10, "lth_lenet_oneshot": 16, "pai_lenet": 13, "pai_lenet5_caffe": 15,
              "pensia_subsetsum": 12, "rewinding": 19, "strong_edgepopup": 10, "strong_gem_miner": 12,
              "strong_pensia_redundant": 16, "strong_train_ticket": 12, "transfer_tickets": 20},
    "quick": {"deconstruct_tickets": 96, "lmc_instability": 103, "lth_conv": 7, "lth_lenet_curves": 78,
              "lth_lenet_iterative": 9, "lth_lenet_oneshot": 72, "pai_lenet": 23, "pai_lenet5_caffe": 75,
              "pensia_subsetsum": 28, "rewinding": 131, "strong_edgepopup": 97, "strong_gem_miner": 25,
              "strong_pensia_redundant": 162, "strong_train_ticket": 31, "transfer_tickets": 122},
}


def notebook_sources(notebook_dir: Path | str | None = None) -> dict[str, Path]:
    """name -> path of every notebook, in name order."""
    folder = Path(notebook_dir or NOTEBOOK_DIR)
    return {path.stem: path for path in sorted(folder.glob("*.py"))}


def source_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_path(build_dir: Path | str, profile: str, name: str) -> Path:
    return Path(build_dir) / profile / "executed" / f"{name}.json"


def default_jobs(profile: str) -> int:
    """Notebooks run at once by default: two on the CPU-sized profiles where the machine has two cores or
    more (a notebook's kernel start-up and its single-threaded parts leave a core idle), one on the paper
    profile (a GPU's memory and a long run's progress are easier to follow one at a time)."""
    return 1 if profile == REFERENCE_PROFILE else max(1, min(2, os.cpu_count() or 1))


def run_batch(profile: str = "quick", *, only: list[str] | None = None, output_dir: Path | str = "figures",
              root: Path | str = "runs", device: str = "auto", bindings: list[str] | None = None,
              notebook_dir: Path | str | None = None, build_dir: Path | str | None = None,
              report_dir: Path | str = REPORT_DIR, log_output: bool = False,
              jobs: int | None = None) -> tuple[list[NotebookRun], Path]:
    """Execute the notebooks (all, or those named in `only`) and build the report.

    Relative output_dir and root are taken from the repo root, where the notebooks run. ``jobs``: notebooks
    executed at once (default `default_jobs`), each kernel then given ``cores // jobs`` torch threads (unless
    OMP_NUM_THREADS is set); notebooks sharing an experiment wait for each other (the result store's lock).
    Returns the runs of this batch (in notebook order) and the report's path; the report also lists the
    notebooks not run this time, from their last recorded run on this profile. ValueError for an unknown
    profile, notebook or a jobs count below 1."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    jobs = default_jobs(profile) if jobs is None else jobs
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    sources = notebook_sources(notebook_dir)
    unknown = sorted(set(only or ()) - set(sources))
    if unknown:
        raise ValueError(f"no notebook named {', '.join(unknown)}; the notebooks are: {', '.join(sources) or 'none'}")
    build_dir = Path(build_dir or BUILD_DIR)
    chosen = [name for name in sources if not only or name in only]
    _check_kernel()

    print(plan_text(chosen, profile, jobs), flush=True)
    settings = dict(profile=profile, output_dir=workspace() / output_dir, root=workspace() / root, device=device,
                    bindings=list(bindings or ()), build_dir=build_dir, log_output=log_output)
    runs, started = {}, time.perf_counter()

    def report_progress(run: NotebookRun, cpu_s: float) -> None:
        runs[run.name] = run
        print(progress_line(len(runs), len(chosen), run, cpu_s, time.perf_counter() - started), flush=True)

    if jobs == 1 or len(chosen) == 1:
        for name in chosen:
            report_progress(*_timed_run(sources[name], settings))
    else:
        import concurrent.futures
        import multiprocessing
        # Longest first (by the estimates), so the last notebook to start is a short one.
        known = ESTIMATED_S.get(profile, {})
        order = sorted(chosen, key=lambda name: -known.get(name, 0.0))
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_share_cores, initargs=(threads,)) as pool:
            pending = [pool.submit(_timed_run, sources[name], settings) for name in order]
            for done in concurrent.futures.as_completed(pending):
                report_progress(*done.result())

    report = build_report(collect_runs(sources, profile, build_dir), profile, report_dir,
                          reference=reference_runs(sources, profile, build_dir))
    return [runs[name] for name in chosen], report


def _share_cores(threads: str) -> None:
    """In each worker of a parallel batch: the kernels it starts use this many threads each."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, threads)


def _timed_run(source: Path, settings: dict) -> tuple[NotebookRun, float]:
    """`run_notebook` and the CPU seconds its kernel used."""
    cpu_before = _children_cpu_s()
    run = run_notebook(source, **settings)
    return run, _children_cpu_s() - cpu_before


def run_notebook(source: Path, *, profile: str, output_dir: Path, root: Path, device: str, bindings: list[str],
                 build_dir: Path, log_output: bool = False) -> NotebookRun:
    """Convert, execute and check one notebook; record and return what happened (never raises for its errors)."""
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    name = source.stem
    converted = build_dir / profile / f"{name}.ipynb"
    executed = build_dir / profile / "executed" / f"{name}.ipynb"
    run = NotebookRun(name, "failed", profile=profile, output_dir=str(output_dir), bindings=bindings, device=device,
                      source_sha=source_sha(source))
    # A claims.csv left by an earlier run must not pass for this run's.
    run.claims_path.unlink(missing_ok=True)
    executed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        notebook = jupytext.read(source)
        # A .py carries no kernel; name the one papermill is to start so the .ipynb stands on its own.
        notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
        converted.parent.mkdir(parents=True, exist_ok=True)
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, converted)
        papermill.execute_notebook(
            str(converted), str(executed), kernel_name=KERNEL, cwd=str(workspace()), log_output=log_output,
            progress_bar=_watched(),  # a cell-by-cell bar only where someone watches a terminal
            # the kernel's own log (a warning that it runs over TCP on this machine, a KeyboardInterrupt at
            # shutdown) is noise in batch and CI logs; a cell's error reaches the executed notebook and the report
            extra_arguments=["--log-level=CRITICAL"],
            parameters=dict(profile=profile, bindings=bindings, output_dir=str(output_dir), root=str(root), device=device))
        read_claims(run.claims_path)
        run.status = "succeeded"
    except PapermillExecutionError as err:
        run.reason = _cell_error(err, notebook, source)
    except ClaimsError as err:
        run.reason = str(err)
    except Exception as err:  # a dead kernel, a notebook jupytext cannot read, ...: recorded, not raised
        run.reason = f"{type(err).__name__}: {err}"
    run.wall_s = time.perf_counter() - start
    run.finished = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run.executed = str(executed) if executed.exists() else ""
    run.save(record_path(build_dir, profile, name))
    return run


def collect_runs(sources: dict[str, Path], profile: str, build_dir: Path | str | None = None) -> list[NotebookRun]:
    """Each notebook's last recorded run on this profile, or a 'not run' entry where there is none.

    On the paper profile a notebook without a record gets its committed results (`committed_run`)."""
    runs = []
    for name, source in sources.items():
        path = record_path(build_dir or BUILD_DIR, profile, name)
        if not path.exists():
            if profile == REFERENCE_PROFILE:
                runs.append(committed_run(name))
            else:
                runs.append(NotebookRun(name, "not run", reason=f"not executed yet on profile {profile}", profile=profile))
            continue
        run = NotebookRun.load(path)
        if run.source_sha != source_sha(source):
            run.reason = f"{run.reason}\nthe notebook has been edited since this run".strip()
        runs.append(run)
    return runs


def committed_run(name: str, committed_dir: Path | str | None = None) -> NotebookRun:
    """The committed paper-profile results of one notebook (<committed_dir>/paper/<name>/claims.csv and the
    figures beside it) as a run; 'not run' when that folder has no claims.csv."""
    committed_dir = Path(committed_dir or COMMITTED_DIR)
    run = NotebookRun(name, "succeeded", profile=REFERENCE_PROFILE, output_dir=str(committed_dir))
    if not run.claims_path.exists():
        run.status, run.reason = "not run", f"no committed results in {run.claims_path.parent}"
    return run


def reference_runs(sources: dict[str, Path], profile: str, build_dir: Path | str | None = None) -> list[NotebookRun]:
    """What the report of `profile` shows beside its own runs: the paper profile's (its records, else the
    committed results) for quick and smoke; nothing for the paper profile itself."""
    return [] if profile == REFERENCE_PROFILE else collect_runs(sources, REFERENCE_PROFILE, build_dir)


def _watched() -> bool:
    """A person at a terminal (not CI, not a log file, and tqdm not disabled)."""
    return sys.stderr.isatty() and not os.environ.get("CI") and not os.environ.get("TQDM_DISABLE")


def _cell_error(err, notebook, source: Path) -> str:
    """'cell N of x.py: Error: message', N counting the `# %%` cells of the source (papermill adds one)."""
    number = next((i for i, cell in enumerate(notebook.cells, 1) if cell.source == err.source), None)
    where = f"cell {number} of {source.name}" if number else f"cell {err.cell_index} of the executed notebook"
    first_line = next((line for line in err.source.splitlines() if line.strip()), "")
    return f"{where} ({first_line.strip()[:80]}): {err.ename}: {_strip_ansi(err.evalue)}"


def _check_kernel() -> None:
    """Make sure the kernel papermill starts is this interpreter (the venv's), not some other python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    # Kernel specs installed in this environment win over a user-wide python3 spec in ~/.local.
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    command = spec.argv[0]
    # jupyter_client swaps these generic names for sys.executable when it launches the kernel.
    generic = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if command not in generic and Path(command).absolute() != Path(sys.executable).absolute():
        raise RuntimeError(f"the {KERNEL!r} Jupyter kernel found in {spec.resource_dir} runs {command}, not this "
                           f"environment's {sys.executable}: remove that kernel spec (JUPYTER_PATH?) or run "
                           f"`{sys.executable} -m ipykernel install --sys-prefix`")


def estimated_total(names: list[str], profile: str, jobs: int = 1) -> float:
    """Estimated wall seconds of a batch: the notebooks' `ESTIMATED_S` (0 where unknown), one at a time, or
    with ``jobs`` at once the longer of the longest notebook and an even split."""
    known = ESTIMATED_S.get(profile, {})
    total = sum(known.get(name, 0.0) for name in names)
    return total if jobs == 1 else max(max((known.get(name, 0.0) for name in names), default=0.0), total / jobs)


def plan_text(names: list[str], profile: str, jobs: int = 1) -> str:
    """What is about to run and roughly how long (from `ESTIMATED_S`, one notebook at a time; ``jobs`` at once
    divide the total by up to ``jobs``), said before the first notebook starts."""
    known = ESTIMATED_S.get(profile, {})
    total = estimated_total(names, profile, jobs)
    missing = [name for name in names if name not in known]
    if not known:
        how_long = "no time estimate for this profile (on a CPU the paper profile takes hours to days)"
    else:
        how_long = (f"about {format_duration(total)} on an idle 2-core CPU ({ESTIMATE_NOTE}"
                    + (f"; {jobs} notebooks at a time" if jobs > 1 else "") + "); longer on a busy machine"
                    + (f"; no estimate for {', '.join(missing)}" if missing else ""))
    listing = ", ".join(f"{name} ~{format_duration(known[name])}" if name in known else name for name in names)
    return f"Running {len(names)} notebook{'s' * (len(names) != 1)} on profile {profile}: {how_long}.\n  {listing}"


def progress_line(number: int, count: int, run: NotebookRun, cpu_s: float, elapsed_s: float) -> str:
    """One line per finished notebook: status, wall and CPU time (the kernel's user + system), time so far."""
    line = (f"[{number}/{count}] {run.name}: {run.status} in {format_duration(run.wall_s or 0.0)} "
            f"(CPU {format_duration(cpu_s)}; {format_duration(elapsed_s)} so far)")
    return line + (f"\n    {_first_line(run.reason)}" if run.reason else "")


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (the notebook kernels)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lth.report.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="quick", help="smoke, quick (default) or paper")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks (names without .py)")
    parser.add_argument("--output-dir", help="figures, tables and claims (default figures)")
    parser.add_argument("--root", help="result store (default runs)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    parser.add_argument("-b", "--binding", action="append", default=[], help="a gin binding for every notebook")
    parser.add_argument("--build-dir", help="converted and executed notebooks (default build/notebooks)")
    parser.add_argument("--report-dir", help="where index.html goes (default report)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' cell outputs")
    parser.add_argument("-j", "--jobs", type=int, help="notebooks executed at once (default: 2 on smoke and quick "
                        "where there are 2 cores or more, 1 on paper)")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the last runs; execute nothing")
    parser.add_argument("--committed", action="store_true",
                        help="with --report-only --profile paper: from the committed results in figures/paper only, "
                             "ignoring local runs (how docs/index.html is built)")
    args = parser.parse_args(argv)
    # A path given on the command line is relative to where the caller stands; the defaults are the repo's.
    output_dir, root, build_dir, report_dir = (
        Path(given).absolute() if given else default for given, default in (
            (args.output_dir, workspace() / "figures"), (args.root, workspace() / "runs"),
            (args.build_dir, BUILD_DIR), (args.report_dir, REPORT_DIR)))
    if args.log_output:
        logging.basicConfig(level=logging.INFO, format="%(message)s")  # papermill logs cell outputs at INFO

    if args.committed and not (args.report_only and args.profile == REFERENCE_PROFILE):
        print("error: --committed goes with --report-only --profile paper", file=sys.stderr)
        return 2
    if args.report_only:
        sources = notebook_sources()
        if args.committed:  # no build records: every notebook shows its committed results
            build_dir = build_dir / "no-records"
        report = build_report(collect_runs(sources, args.profile, build_dir), args.profile, report_dir,
                              reference=reference_runs(sources, args.profile, build_dir))
        print(f"report: {report}")
        return 0
    try:
        runs, report = run_batch(args.profile, only=args.only, output_dir=output_dir, root=root, device=args.device,
                                 bindings=args.binding, build_dir=build_dir, report_dir=report_dir,
                                 log_output=args.log_output,
                                 jobs=args.jobs if args.jobs is not None else (1 if args.log_output else None))  # streamed outputs: one at a time
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [run for run in runs if run.status != "succeeded"]
    print(f"\n{len(runs) - len(failed)} of {len(runs)} notebooks succeeded on profile {args.profile}")
    for run in failed:
        print(f"  FAILED {run.name}: {run.reason}\n    executed notebook: {run.executed or 'none'}")
    print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
