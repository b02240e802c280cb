"""What the notebooks call, so that they stay thin: run (or reuse) an experiment, say what ran,
and put figures and tables in one folder per profile and notebook."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from lth.paths import resolve as resolve_path
from lth.train.schedules import parse_steps, step_unit

ONE_SHOT = "ImpConfig.strategy = 'one_shot'"
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "synthetic": "synthetic data"}



def output_folder(output_dir: str | Path, notebook_name: str, profile: str) -> Path:
    """`<output_dir>/<profile>/<notebook_name>/`, created; checked before any experiment runs, so a
    read-only or impossible ``output_dir`` is one ValueError naming it, not a lost run."""
    from lth.checks import check_writable
    folder = check_writable(resolve_path(output_dir) / profile / notebook_name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def as_bindings(bindings: str | Sequence[str] | None) -> list[str]:
    """papermill's `-p bindings "..."` passes one string; a list is what we mean."""
    if not bindings:
        return []
    return [bindings] if isinstance(bindings, str) else list(bindings)


@dataclass
class Outcome:
    """One experiment of any kind as a notebook sees it: its results, or why there are none.

    ``config`` is the kind's config dataclass; ``details`` what a compute step returned (SubsetSum:
    `lth.experiments.subsetsum.Solved`, whose fields read as the outcome's own, e.g. ``outcome.checks``)."""
    ran: bool
    reason: str                 # why it did not run ("" when it ran)
    kind: str                   # lth.experiments.registry kind name
    config: Any                 # the kind's config dataclass
    metrics: pd.DataFrame
    networks: pd.DataFrame      # lth.results.analysis.per_network(metrics)
    run_path: Path | None
    profile: str
    config_text: str            # the operative gin config
    iterations: int | str = ""  # per run (strong kinds: score training)
    recipe_dataset: str = ""    # the data set the recipe names (the paper's), before profile and bindings
    details: Any = None

    @classmethod
    def of(cls, recipe, *, ran: bool, metrics: pd.DataFrame, run_path: Path | None, reason: str = "",
           iterations: int | str = "", details: Any = None) -> "Outcome":
        from lth.results import analysis
        return cls(ran, reason, recipe.kind, recipe.config, metrics, flag_failures(analysis.per_network(metrics), metrics), run_path,
                   recipe.profile or "", recipe.text, iterations, getattr(recipe.recipe_config, "dataset", ""), details)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "details":
            raise AttributeError(name)
        details = self.__dict__.get("details")
        if details is not None and hasattr(details, name):
            return getattr(details, name)
        raise AttributeError(f"{type(self).__name__} of kind {self.__dict__.get('kind')!r} has no {name!r}")

    @property
    def dataset(self) -> str:
        return self.config.dataset

    @property
    def experiment(self) -> str:
        return self.config.experiment

    @property
    def trials(self) -> int:
        """Trials in the results: the config's, or more where trials were added to the run
        (``python -m lth run --add-trials``)."""
        own = getattr(self.config, "trials", 1)
        if self.ran and "trial" in self.metrics:
            return max(own, int(self.metrics["trial"].nunique()))
        return own

    @property
    def methods(self) -> tuple:
        return tuple(getattr(self.config, "methods", ()))

    @property
    def densities(self) -> tuple:
        return tuple(getattr(self.config, "densities", ()))

    @property
    def networks_run(self) -> tuple:
        return tuple(getattr(self.config, "networks", None) or (getattr(self.config, "model", ""),))

    @property
    def dataset_name(self) -> str:
        """The data set's name; a transfer run's two, e.g. 'MNIST ↔ Fashion-MNIST'."""
        name = DATASET_NAMES.get(self.dataset, self.dataset)
        target = getattr(self.config, "target", None)
        return f"{name} ↔ {DATASET_NAMES.get(target, target)}" if self.kind == "transfer" and target else name

    @property
    def headline(self) -> str:
        """The reason's first sentence, e.g. "data set 'cifar10' not found"."""
        return " ".join(self.reason.split()).split(". ")[0].rstrip(".")

    @property
    def context(self) -> str:
        """One line for titles and claim details: data set, profile, trials, iterations."""
        swapped = self.recipe_dataset and self.recipe_dataset != self.dataset
        instead = f" (not the recipe's {DATASET_NAMES.get(self.recipe_dataset, self.recipe_dataset)})" if swapped else ""
        if self.kind == "subsetsum":
            a = self.details.approximation if self.details is not None else None
            sampled = "" if a is None or a.count == self.total_weights else \
                f", {a.count:,} of {self.total_weights:,} weights approximated"
            return f"{self.dataset}, {self.profile} profile{sampled}"
        return (f"{self.dataset_name}{instead}, {self.profile} profile: {self.trials} "
                f"trial{'s' * (self.trials != 1)} × {_count(self.iterations)} iterations")

    def _note(self) -> str:
        if self.profile == "paper":
            return ""
        if self.profile == "smoke":
            return " The **smoke** profile only exercises the code: its numbers measure nothing."
        if self.kind == "imp":
            return (f" The **{self.profile}** profile is smaller than the paper's protocol "
                    f"(5 trials, full training): its numbers indicate, they do not settle.")
        if self.kind == "subsetsum":
            return f" The **{self.profile}** profile is smaller than the paper's protocol."
        return f" The **{self.profile}** profile is smaller than the paper's protocol: its numbers indicate, they do not settle."

    def describe(self) -> str:
        """Markdown: what ran, or why not."""
        if not self.ran:
            if self.kind == "subsetsum":
                return (f"**`{self.experiment}` did not run** ({self.profile} profile). Its figure is skipped and its "
                        f"claims are marked *not run*.\n\n```text\n{self.reason}\n```")
            return (f"**`{self.experiment}` did not run** ({self.profile} profile, data set "
                    f"{self.dataset_name}). Its figures are skipped and its claims are marked "
                    f"*not run*.\n\n```text\n{self.reason}\n```")
        runs = f"{self.trials} trial{'s' * (self.trials != 1)}, {_count(self.iterations)}"
        where = f"Results in `{self.run_path}`.{self._note()}"
        if self.kind == "pai":
            from lth.results.figures import label
            extra = sorted(set(self.networks.control) - set(self.methods))
            return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: {runs} iterations "
                    f"per run, methods {', '.join(label(m) for m in self.methods)}"
                    + (f" (and, from earlier runs in the store, {', '.join(label(m) for m in extra)})" if extra else "")
                    + f", at {', '.join(f'{100 * d:g}%' for d in self.densities)} of weights remaining. {where}")
        if self.kind == "subsetsum":
            a, cfg = self.details.approximation, self.config
            target = "trained now" if self.details.trained_now else "loaded from the store (trained earlier)"
            sample = ("every weight" if a.count == self.total_weights else
                      f"**a seeded random sample of {a.count:,} of the {self.total_weights:,} weights** (the others "
                      "keep the target's values, so the approximated network's accuracy mixes both)")
            return (f"Target {'-'.join(map(str, [784, *cfg.widths, 10]))} (no biases) on {cfg.dataset}, "
                    f"{target}: `{self.run_path}`. Approximated {sample}, n = {a.n} coefficients each from "
                    f"U[{a.low:.3f}, {a.high:.3f}], solved on `{a.device}` in {a.solve_seconds:.2f} s.{self._note()}")
        if self.kind != "imp":  # the strong-ticket kinds
            from lth.results.strong import label
            controls = ", ".join(label(c) for c in dict.fromkeys(self.networks.control))
            return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: {runs} "
                    f"score-training iterations per run; networks {', '.join(label(n) for n in self.networks_run)}; "
                    f"{controls}. {where}")
        levels = sorted(self.networks.level.unique()) if not self.networks.empty else []
        tickets = self.networks[self.networks.control == "none"]
        lowest = 100 * tickets.density.min() if not tickets.empty else float("nan")
        controls = ", ".join(sorted(set(self.networks.control) - {"none"})) or "none"
        return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: {runs} iterations "
                f"per run, {len(levels)} levels (100% → {lowest:.1f}% of weights remaining), controls: {controls}. "
                f"{where}")

    def save_provenance(self, folder: str | Path) -> None:
        save_provenance(self.run_path, self.experiment, folder)


def flag_failures(networks: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """``networks`` (per network) with a bool column ``failed_to_learn``: the network was flagged as
    not learning (`lth.experiments.runner.learning_failures`); no claim is judged on it."""
    from lth.experiments.runner import failed_networks
    out = networks.copy()
    failed = failed_networks(metrics)
    keys = ["experiment", "level", "control", "trial", "replicate"]
    if out.empty or failed.empty or not set(keys) <= set(out.columns):
        out["failed_to_learn"] = False
        return out
    flagged = set(map(tuple, failed[keys].itertuples(index=False)))
    out["failed_to_learn"] = [tuple(row) in flagged for row in out[keys].itertuples(index=False)]
    return out


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
    try:  # a run that never started has only its config's '40it'
        if step_unit(iterations) == "it":
            iterations = parse_steps(iterations)
    except ValueError:
        pass
    return f"{iterations:,}" if isinstance(iterations, int) else str(iterations)


def run(recipe: str, profile: str, bindings: str | Sequence[str] = (), root: str | Path = "runs",
        device: str = "auto", kind: str | None = None) -> Outcome:
    """Load the recipe, profile and bindings, then run the experiment through the one runner
    (finished jobs are reused from the store, so notebooks sharing an experiment compute it once).
    ``kind``: the kind the notebook is about ('imp', 'pai', ...): a recipe of another kind raises
    `lth.config.ConfigError` naming both kinds. Before training: the device is checked and its
    description printed (one line), the store folder checked writable (ValueError naming it). A
    missing data set is not an error here: the Outcome says so, and the notebook reports it."""
    from lth.checks import check_device, check_writable
    from lth.config import load_recipe
    from lth.data import DatasetNotFound
    from lth.experiments.runner import Runner

    loaded = load_recipe(recipe, profile=profile, bindings=as_bindings(bindings), kind=kind)
    chosen, description = check_device(device)
    print(description)
    check_writable(resolve_path(root))
    try:
        runner = Runner(loaded.spec, loaded.config, loaded.trains, root=resolve_path(root), device=chosen,
                        profile=profile)
    except DatasetNotFound as missing:
        first = loaded.trains[loaded.spec.roles[0]]
        return Outcome.of(loaded, ran=False, reason=str(missing), metrics=pd.DataFrame(), run_path=None,
                          iterations=first.iterations)
    result = runner.run()
    return Outcome.of(loaded, ran=True, metrics=result.metrics, run_path=runner.run_dir.path,
                      iterations=runner.steps.total, details=result.outputs.get("solve"))


CONV_PROFILES = ("paper",)  # a conv net's recipe runs on these profiles only (quick, smoke: tens of CPU-minutes)


def network_recipes(config: str, conv_config: str, profile: str) -> dict[str, str]:
    """The recipes a notebook runs, by network: ``{'lenet300': config, 'conv': conv_config}``, the conv
    net's '' (skipped) unless ``profile`` is in `CONV_PROFILES`; ``conv_config = ''`` skips it everywhere."""
    return {"lenet300": config, "conv": conv_config if profile in CONV_PROFILES else ""}


def skipped(network: str, profile: str) -> str:
    """Markdown: why a network of `network_recipes` did not run."""
    why = f"the {profile} profile runs LeNet-300-100 only" if profile not in CONV_PROFILES else "its recipe is ''"
    return f"*{network}: skipped ({why}).*"


def run_networks(config: str, conv_config: str, profile: str, bindings: str | Sequence[str] = (), *,
                 kind: str, folder: Path, describe: Callable[[Outcome], str], show: Callable[[str], None] = print,
                 root: str | Path = "runs", device: str = "auto") -> dict[str, Outcome]:
    """Run each network of `network_recipes` (the conv net on the paper profile only), save each run's
    provenance in ``folder`` and ``show`` its ``describe`` text (or why it was skipped, in Markdown);
    the outcomes by network ('lenet300', 'conv'), skipped ones left out. Errors as `run`."""
    outcomes = {}
    for network, recipe in network_recipes(config, conv_config, profile).items():
        if not recipe:
            show(skipped(network, profile))
            continue
        outcome = run(recipe, profile, bindings, root=root, device=device, kind=kind)
        outcome.save_provenance(folder)
        show(describe(outcome))
        outcomes[network] = outcome
    return outcomes


def file_suffix(network: str, outcome: Outcome) -> str:
    """What a network's figure and table names end with, so two networks share a folder: '' for
    LeNet-300-100 (the names its notebook always wrote), ``_<model>`` (e.g. '_resnet20') for the other."""
    return "" if network == "lenet300" else f"_{outcome.config.model}"


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


# ---- IMP rewinding (notebooks/rewinding.py) ----------------------------------------------------

# open_lth's rewinding default; LMC finds IMP subnetworks of ResNet-20 stable when rewound to iteration 500.
PREFERRED_REWIND_ITERATION = 500


def rewind_iteration(config: str, profile: str, bindings: str | Sequence[str] = (),
                     preferred: int = PREFERRED_REWIND_ITERATION) -> int:
    """Iteration k to rewind to: ``preferred``, or a quarter of the run where the run is shorter
    (the smoke profile), since k must fall inside the training schedule."""
    from lth.config import load_recipe
    from lth.data import load_splits, steps_per_epoch

    loaded = load_recipe(config, profile=profile, bindings=as_bindings(bindings), kind="imp")
    train = loaded.trains[""]
    iterations = train.iterations
    if isinstance(iterations, int) or str(iterations).strip().endswith("it"):
        total = parse_steps(iterations, 1)
    else:  # epochs: the length depends on the data set's size
        total = parse_steps(iterations, steps_per_epoch(len(load_splits(loaded.config.dataset).train), train.batch_size))
    return min(preferred, total // 4)


REWINDING_METHODS = {
    "imp_init": [],
    "imp_weights": ["ImpConfig.rewind = 'weights'"],
    "imp_lr": ["ImpConfig.rewind = 'lr'"],
    "imp_finetune": ["ImpConfig.rewind = 'finetune'"],
}


def run_rewinding(config: str, profile: str, bindings: str | Sequence[str] = (), densities: Sequence[float] = (),
                  root: str | Path = "runs", device: str = "auto",
                  methods: Sequence[str] = tuple(REWINDING_METHODS)) -> tuple[dict[str, Outcome], int]:
    """IMP (Renda et al. 2020's comparison) with each of ``methods``: ``imp_init`` (rewind to the
    initialisation), ``imp_weights`` (weight rewinding to iteration k), ``imp_lr`` (learning-rate
    rewinding: the final weights retrained on the schedule replayed from k) and ``imp_finetune`` (the
    final weights trained from k to the end at the schedule's last rate); the last three retrain
    T - k iterations. Controls off; at ``densities`` (the recipe's ladder if empty). The recipe needs a
    schedule that decays after k, or ``imp_lr`` is refused (a no-op). Returns the outcomes by method
    name and k. ValueError naming an unknown method."""
    from lth.config import binds_other_kind
    unknown = [m for m in methods if m not in REWINDING_METHODS]
    if unknown:
        raise ValueError(f"unknown rewinding methods {unknown}; valid: {', '.join(REWINDING_METHODS)}")
    bindings = [b for b in as_bindings(bindings) if not binds_other_kind(b, "imp")]  # e.g. the PaI notebook's
    k = rewind_iteration(config, profile, bindings)
    common = [*bindings, "ImpConfig.controls = ()"]
    if densities:
        common.append(f"ImpConfig.densities = {tuple(float(d) for d in densities)!r}")
    at_k = [f"ImpConfig.rewind_iteration = '{k}it'"]
    return {name: run(config, profile, [*common, *REWINDING_METHODS[name], *(at_k if name != "imp_init" else [])],
                      root=root, device=device, kind="imp") for name in methods}, k
