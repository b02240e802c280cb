"""What the notebooks call, so that they stay thin: run (or reuse) an experiment, say what ran,
and put figures and tables in one folder per profile and notebook."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from lth.paths import resolve as resolve_path

ONE_SHOT = "ImpConfig.strategy = 'one_shot'"
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "synthetic": "synthetic data"}



def output_folder(output_dir: str | Path, notebook_name: str, profile: str) -> Path:
    """`<output_dir>/<profile>/<notebook_name>/`, created."""
    folder = resolve_path(output_dir) / profile / notebook_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def as_bindings(bindings: str | Sequence[str] | None) -> list[str]:
    """papermill's `-p bindings "..."` passes one string; a list is what we mean."""
    if not bindings:
        return []
    return [bindings] if isinstance(bindings, str) else list(bindings)


@dataclass
class Outcome:
    """One experiment as a notebook sees it: its results, or why there are none."""
    ran: bool
    reason: str                 # why it did not run ("" when it ran)
    dataset: str
    experiment: str
    metrics: pd.DataFrame
    networks: pd.DataFrame      # lth.results.analysis.per_network(metrics)
    run_path: Path | None
    profile: str
    config_text: str            # the operative gin config
    trials: int = 0
    iterations: int | str = ""  # per run
    recipe_dataset: str = ""    # the data set the recipe names (the paper's), before bindings

    @property
    def dataset_name(self) -> str:
        return DATASET_NAMES.get(self.dataset, self.dataset)

    @property
    def headline(self) -> str:
        """The reason's first sentence, e.g. "data set 'cifar10' not found"."""
        return " ".join(self.reason.split()).split(". ")[0].rstrip(".")

    @property
    def context(self) -> str:
        """One line for titles and claim details: data set, profile, trials, iterations."""
        swapped = self.recipe_dataset and self.recipe_dataset != self.dataset
        instead = f" (not the recipe's {DATASET_NAMES.get(self.recipe_dataset, self.recipe_dataset)})" if swapped else ""
        return (f"{self.dataset_name}{instead}, {self.profile} profile: {self.trials} "
                f"trial{'s' * (self.trials != 1)} × {_count(self.iterations)} iterations")

    def describe(self) -> str:
        """Markdown: what ran, or why not."""
        if not self.ran:
            return (f"**`{self.experiment}` did not run** ({self.profile} profile, data set "
                    f"{self.dataset_name}). Its figures are skipped and its claims are marked "
                    f"*not run*.\n\n```text\n{self.reason}\n```")
        levels = sorted(self.networks.level.unique()) if not self.networks.empty else []
        tickets = self.networks[self.networks.control == "none"]
        lowest = 100 * tickets.density.min() if not tickets.empty else float("nan")
        controls = ", ".join(sorted(set(self.networks.control) - {"none"})) or "none"
        notes = {"paper": "",
                 "smoke": " The **smoke** profile only exercises the code: its numbers measure nothing."}
        note = notes.get(self.profile, f" The **{self.profile}** profile is smaller than the paper's protocol "
                                       f"(5 trials, full training): its numbers indicate, they do not settle.")
        return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: "
                f"{self.trials} trial{'s' * (self.trials != 1)}, {_count(self.iterations)} iterations per run, "
                f"{len(levels)} levels (100% → {lowest:.1f}% of weights remaining), controls: {controls}. "
                f"Results in `{self.run_path}`.{note}")

    def save_provenance(self, folder: str | Path) -> None:
        save_provenance(self.run_path, self.experiment, folder)


def save_provenance(run_path: Path | None, experiment: str, folder: str | Path) -> None:
    """Copy a run's manifest (versions, device, commit, wall time) and operative config beside the
    figures made from it."""
    if run_path is None:
        return
    for name in ("manifest.json", "config.gin"):
        source = run_path / name
        if source.exists():
            shutil.copyfile(source, Path(folder) / f"{experiment}-{run_path.name}.{name}")


def _count(iterations: int | str) -> str:
    if isinstance(iterations, str) and iterations.endswith("it") and iterations[:-2].isdigit():
        iterations = int(iterations[:-2])  # a run that never started has only its config's '40it'
    return f"{iterations:,}" if isinstance(iterations, int) else str(iterations)


def run_experiment(config: str, profile: str, bindings: str | Sequence[str] = (), root: str | Path = "runs",
                   device: str = "auto") -> Outcome:
    """Load the gin recipe, profile and bindings, then run the experiment (finished levels are
    reused from the store, so notebooks sharing an experiment compute it once). A missing data
    set is not an error here: the Outcome says so, and the notebook reports it."""
    from lth.config import load
    from lth.experiments.imp import Experiment, ImpConfig, operative_config
    from lth.train.loop import TrainConfig

    load([config], profile=profile)
    recipe_dataset = ImpConfig().dataset  # to say so when bindings swap the paper's data set
    load([config], profile=profile, bindings=as_bindings(bindings))
    imp, train = ImpConfig(), TrainConfig()
    common = {"dataset": imp.dataset, "experiment": imp.experiment, "profile": profile,
              "config_text": operative_config(imp, train), "trials": imp.trials, "recipe_dataset": recipe_dataset}
    return _run(Outcome, lambda: Experiment(imp, train, root=resolve_path(root), device=device), train, common)


def _run(outcome_type, make_experiment, train, common: dict):
    """Build and run the experiment; a missing data set gives an outcome that says so instead."""
    from lth.results import analysis
    from lth.data import DatasetNotFound

    try:
        experiment = make_experiment()
    except DatasetNotFound as missing:
        empty = pd.DataFrame()
        return outcome_type(ran=False, reason=str(missing), metrics=empty, networks=analysis.per_network(empty),
                            run_path=None, iterations=train.iterations, **common)
    metrics = experiment.run_all()
    return outcome_type(ran=True, reason="", metrics=metrics, networks=analysis.per_network(metrics),
                        run_path=experiment.run.path, iterations=experiment.steps.total, **common)


def level_tables(outcomes: Mapping[str, Outcome]) -> pd.DataFrame:
    """The per-level tables (lth.results.analysis.level_table) of the outcomes that ran, keyed by name."""
    from lth.results.analysis import level_table
    tables = [level_table(o.metrics).assign(experiment=name) for name, o in outcomes.items() if o.ran]
    if not tables:
        return pd.DataFrame()
    table = pd.concat(tables, ignore_index=True)
    return table[["experiment", *table.columns.drop("experiment")]]


def save_table(table: pd.DataFrame, folder: str | Path, name: str) -> Path:
    path = Path(folder) / f"{name}.csv"
    table.to_csv(path, index=False, float_format="%.6g")
    return path


# ---- pruning at initialisation and IMP rewinding (notebooks/pai_*.py) ---------------------------

@dataclass
class PaiOutcome(Outcome):
    """A pruning-at-init experiment as a notebook sees it (control = the method)."""
    methods: tuple = ()
    densities: tuple = ()

    def describe(self) -> str:
        if not self.ran:
            return super().describe()
        from lth.results.figures import label
        extra = sorted(set(self.networks.control) - set(self.methods))
        note = ("" if self.profile == "paper" else
                " The **smoke** profile only exercises the code: its numbers measure nothing." if self.profile == "smoke"
                else f" The **{self.profile}** profile is smaller than the paper's protocol: its numbers indicate, "
                     "they do not settle.")
        return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: {self.trials} "
                f"trial{'s' * (self.trials != 1)}, {_count(self.iterations)} iterations per run, methods "
                f"{', '.join(label(m) for m in self.methods)}"
                + (f" (and, from earlier runs in the store, {', '.join(label(m) for m in extra)})" if extra else "")
                + f", at {', '.join(f'{100 * d:g}%' for d in self.densities)} of weights remaining. "
                f"Results in `{self.run_path}`.{note}")


def run_pai_experiment(config: str, profile: str, bindings: str | Sequence[str] = (), root: str | Path = "runs",
                       device: str = "auto") -> PaiOutcome:
    """`run_experiment` for a pruning-at-init recipe (one that binds PaiConfig)."""
    from lth.config import load
    from lth.experiments.pai import PaiExperiment, configs, operative_config

    load([config])  # the recipe's own data set: the smoke profile swaps in synthetic data
    recipe_dataset = configs()[0].dataset
    load([config], profile=profile, bindings=as_bindings(bindings))
    pai, train = configs()
    common = {"dataset": pai.dataset, "experiment": pai.experiment, "profile": profile,
              "config_text": operative_config(pai, train), "trials": pai.trials, "recipe_dataset": recipe_dataset,
              "methods": tuple(pai.methods), "densities": tuple(pai.densities)}
    return _run(PaiOutcome, lambda: PaiExperiment(pai, train, root=resolve_path(root), device=device), train, common)


# open_lth's rewinding default; LMC finds IMP subnetworks of ResNet-20 stable when rewound to iteration 500.
PREFERRED_REWIND_ITERATION = 500


def rewind_iteration(config: str, profile: str, bindings: str | Sequence[str] = (),
                     preferred: int = PREFERRED_REWIND_ITERATION) -> int:
    """Iteration k to rewind to: ``preferred``, or a quarter of the run where the run is shorter
    (the smoke profile), since k must fall inside the training schedule."""
    from lth.config import load
    from lth.data import load_splits, steps_per_epoch
    from lth.experiments.imp import ImpConfig
    from lth.train.schedules import parse_steps
    from lth.train.loop import TrainConfig

    load([config], profile=profile, bindings=as_bindings(bindings))
    train = TrainConfig()
    iterations = train.iterations
    if isinstance(iterations, int) or str(iterations).strip().endswith("it"):
        total = parse_steps(iterations, 1)
    else:  # epochs: the length depends on the data set's size
        total = parse_steps(iterations, steps_per_epoch(len(load_splits(ImpConfig().dataset).train), train.batch_size))
    return min(preferred, total // 4)


def run_rewinding(config: str, profile: str, bindings: str | Sequence[str] = (), densities: Sequence[float] = (),
                  root: str | Path = "runs", device: str = "auto") -> tuple[dict[str, Outcome], int]:
    """IMP with rewinding to init, weight rewinding to iteration k, and learning-rate rewinding
    (the final weights retrained on the schedule replayed from k: the same retraining length as
    weight rewinding), controls off, at ``densities`` (the recipe's ladder if empty). Returns the
    outcomes by variant name and k."""
    k = rewind_iteration(config, profile, bindings)
    common = [*as_bindings(bindings), "ImpConfig.controls = ()"]
    if densities:
        common.append(f"ImpConfig.densities = {tuple(float(d) for d in densities)!r}")
    variants = {
        "imp_init": [],
        "imp_weights": ["ImpConfig.rewind = 'weights'", f"ImpConfig.rewind_iteration = '{k}it'"],
        "imp_lr": ["ImpConfig.rewind = 'lr'", f"ImpConfig.rewind_iteration = '{k}it'"],
    }
    return {name: run_experiment(config, profile, [*common, *extra], root=root, device=device)
            for name, extra in variants.items()}, k
