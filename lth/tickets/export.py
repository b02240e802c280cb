"""Take one network's ticket out of a run folder: IMP here, strong-ticket kinds in `lth.tickets.strong`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import torch

import lth
from lth.data import derive_seed
from lth.nets.models import build_model
from lth.prune.masks import random_masks
from lth.schema import TICKET
from lth.tickets.fileformat import Ticket, TicketError, write_ticket
from lth.tickets.strong import STRONG_CONFIGS, export_strong_ticket

# (C, H, W) and classes of each data set; synthetic: the config's synthetic_shape, else MNIST's shape.
SHAPES = {"mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10),
          "cifar100": ((3, 32, 32), 100), "synthetic": ((1, 28, 28), 10)}
_LINE = re.compile(r"^\s*([\w/]+)\.(\w+)\s*=\s*(.+?)\s*$")
_CHECKPOINT = re.compile(r"^level_(\d+)(?:_shard(\d+)of(\d+))?$")


def read_operative_config(run_dir: str | Path) -> dict[str, dict]:
    """A run folder's config.gin as {class or scope/class: {field: value}}; values by
    ``ast.literal_eval`` (a value it cannot read stays its text). Raises TicketError without config.gin."""
    path = Path(run_dir) / "config.gin"
    if not path.is_file():
        raise TicketError(f"{run_dir} is not a run folder: it has no config.gin (a run folder is "
                          "runs/<experiment>/<hash>)")
    out: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        scope, name, text = match.groups()
        value = _literal(text)
        out.setdefault(scope, {})[name] = value
    return out


def _literal(text: str):
    """The Python value of a gin right-hand side; a trailing ``# comment`` dropped; else the text."""
    for candidate in (text, text.rsplit("#", 1)[0].strip()):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            continue
    return text


def export_ticket(run_dir: str | Path, level: int | None, trial: int, control: str | None = TICKET,
                  replicate: int = 0, include_trained: bool = False, *, path: str | Path | None = None,
                  input_shape: tuple | None = None, num_classes: int | None = None,
                  network: str | None = None) -> Path:
    """Write one network of a run as a ticket file (`lth.tickets.fileformat`); returns its path.

    A strong-ticket run (edge-popup, Pensia, Gem-Miner, train_ticket) is written as seeds and a
    bit-packed mask by `lth.tickets.strong.export_strong_ticket` (``network``, ``control`` and
    ``level`` may then be left out where the run has one choice). An IMP run:

    ``run_dir``: runs/<experiment>/<hash>. ``level``, ``trial``, ``control`` (``none`` = the ticket,
    ``reinit``, ``random_mask``), ``replicate`` (numbers reinits): which network. Its mask and
    initial weights (the weights its training started from: the rewind point under weight or
    learning-rate rewinding) are stored; ``include_trained`` adds the trained weights, which the
    run keeps for the tickets only (control ``none``). ``path``: default
    ``<run_dir>/tickets/level_LL_trial_T_<control>[_R].safetensors``. ``input_shape`` /
    ``num_classes``: only for a run given data the config does not name.

    Raises TicketError when the folder is no IMP run, lacks the network (listing those it has), or
    lacks what is asked of it; nothing in the run folder is changed."""
    run = Path(run_dir)
    config = read_operative_config(run)
    if any(name in config for name in STRONG_CONFIGS):
        if include_trained:
            raise TicketError(f"{run} is a strong-ticket run: its networks' weights are the frozen random ones "
                              "(regenerated from seeds); leave include_trained off")
        return export_strong_ticket(run, config, trial, level, control, network, path)
    cfg = config.get("ImpConfig")
    if cfg is None:
        raise TicketError(f"{run} is neither an IMP nor a strong-ticket run (its config.gin binds {sorted(config)}); "
                          "only those store their networks")
    files = _checkpoints(run)
    members = _members(run)
    control = TICKET if control is None else control
    if level is None:
        raise TicketError(f"{run}: name a level (--level); it has levels {sorted(files)}")
    wanted = (int(level), int(trial), str(control), int(replicate))
    if level not in files or wanted not in members:
        raise TicketError(f"{run} has no network at level {level}, trial {trial}, control {control!r}, replicate "
                          f"{replicate}. It has: {_describe(members, files)}")
    if include_trained and control != TICKET:
        raise TicketError(f"{run} keeps trained weights for the tickets only (control 'none'), not for control "
                          f"{control!r}; export its initial weights (leave include_trained off)")
    shape, classes = _data_shape(cfg, input_shape, num_classes)
    state = _load(files, level, trial)
    final, mask = state["final"], state["final"]["masks"]
    device = torch.device("cpu")
    if control == "random_mask":
        device = _run_device(run)
        generator = torch.Generator(device=device).manual_seed(derive_seed("random_mask", cfg.get("seed", 0), trial, level))
        mask = {n: m[0].bool().cpu() for n, m in random_masks({n: m[None].to(device) for n, m in mask.items()},
                                                               generator).items()}
    if control == "reinit":
        model = build_model(cfg["model"], shape, classes, init=cfg.get("init", "glorot_normal"),
                            seed=derive_seed("reinit", cfg.get("seed", 0), trial, level, replicate),
                            **cfg.get("model_kwargs", {}))
        init = {n: v.detach().clone() for n, v in model.state_dict().items()}
    else:
        rewound = _rewound(files, cfg, level, trial, state)
        init = {**rewound["params"], **rewound["buffers"]}
    masks = {n: m.bool() for n, m in mask.items()}
    states = {"init": {n: v * masks[n] if n in masks else v for n, v in init.items()}}
    if include_trained:
        states["trained"] = {**final["params"], **final["buffers"]}
    _check_fits(cfg, shape, classes, states["init"], run)
    kept = {n: float(m.float().mean()) for n, m in masks.items()}
    total = sum(m.numel() for m in masks.values())
    meta = {"model": cfg["model"], "model_kwargs": cfg.get("model_kwargs", {}), "init": cfg.get("init"),
            "dataset": cfg.get("dataset"), "input_shape": list(shape), "num_classes": classes,
            "densities": kept, "density": sum(int(m.sum()) for m in masks.values()) / total,
            "kind": "imp", "run_hash": run.name, "experiment": run.parent.name, "lth_version": lth.__version__,
            "level": level, "trial": trial, "control": control, "replicate": replicate,
            "rewind": cfg.get("rewind", "init"), "rewind_iteration": cfg.get("rewind_iteration", 0)}
    if path is None:
        suffix = f"_{replicate}" if control == "reinit" else ""
        path = run / "tickets" / f"level_{level:02d}_trial_{trial}_{control}{suffix}.safetensors"
    return write_ticket(Ticket(meta, masks, states), path)


# ---- reading a run folder ----------------------------------------------------------------------

def _checkpoints(run: Path) -> dict[int, dict[int, tuple[Path, int]]]:
    """level -> {shard rank: (file, world)} of the run's level checkpoints."""
    out: dict[int, dict[int, tuple[Path, int]]] = {}
    for file in (run / "checkpoints").glob("level_*.pt"):
        match = _CHECKPOINT.match(file.stem)
        if match:
            level, rank, world = int(match[1]), int(match[2] or 0), int(match[3] or 1)
            out.setdefault(level, {})[rank] = (file, world)
    return out


def _members(run: Path) -> set[tuple[int, int, str, int]]:
    """(level, trial, control, replicate) of every network the run's metrics record."""
    found = set()
    for file in (run / "metrics").glob("level_*.csv"):
        frame = pd.read_csv(file, usecols=["trial", "level", "control", "replicate"]).drop_duplicates()
        found |= {(int(r.level), int(r.trial), str(r.control), int(r.replicate)) for r in frame.itertuples()}
    return found


def _describe(members, files) -> str:
    if not members:
        return "no finished level (no metrics); run it to the level first"
    levels = sorted(files)
    trials = sorted({m[1] for m in members})
    controls = sorted({(m[2], m[3]) for m in members})
    text = ", ".join(f"{c}" + (f" (replicate {r})" if c == "reinit" else "") for c, r in controls)
    return f"levels {levels} (with checkpoints), trials {trials}, controls: {text}"


def _load(files, level: int, trial: int) -> dict:
    """The level's checkpoint, narrowed to the trial's row (leading dim 1 removed)."""
    shards = files[level]
    world = next(iter(shards.values()))[1]
    rank, row = trial % world, trial // world
    if rank not in shards:
        raise TicketError(f"level {level}: the checkpoint of shard {rank} of {world} (trial {trial}) is missing")
    file = shards[rank][0]
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TicketError(f"checkpoint {file} is unreadable ({type(err).__name__}: {err})") from err
    pick = lambda part: {g: {n: v[row] for n, v in part[g].items()} for g in part}
    return {key: pick(value) for key, value in state.items() if isinstance(value, dict)}


def _rewound(files, cfg: dict, level: int, trial: int, state: dict) -> dict:
    """The weights level ``level``'s networks started training from (before masking)."""
    if level == 0:
        return state["init"]
    rewind = cfg.get("rewind", "init")
    if rewind in ("lr", "finetune"):
        source = 0 if cfg.get("strategy", "iterative") == "one_shot" else level - 1
        return _load(files, source, trial)["final"]
    if rewind == "weights":
        dense = _load(files, 0, trial)
        if "rewind" in dense:
            return dense["rewind"]
    return state["init"]


def _data_shape(cfg: dict, input_shape, num_classes) -> tuple[tuple, int]:
    dataset = cfg.get("dataset", "mnist")
    shape, classes = SHAPES.get(dataset, ((1, 28, 28), 10))
    if dataset == "synthetic" and "synthetic_shape" in cfg:
        shape = tuple(cfg["synthetic_shape"])
    return tuple(input_shape or shape), int(num_classes or classes)


def _check_fits(cfg: dict, shape, classes, state: dict, run: Path) -> None:
    model = build_model(cfg["model"], shape, classes, init="default", seed=0, **cfg.get("model_kwargs", {}))
    expected = {n: tuple(v.shape) for n, v in model.state_dict().items()}
    found = {n: tuple(v.shape) for n, v in state.items()}
    if expected != found:
        raise TicketError(f"{run}: the stored networks do not fit {cfg['model']!r} on inputs {shape} with {classes} "
                          "classes (the run was given other data than its config names?); pass input_shape= and "
                          f"num_classes=. Stored shapes: {found}")


def _run_device(run: Path) -> torch.device:
    """The device the run trained on (its manifest): random masks are drawn on it."""
    import json
    manifest = run / "manifest.json"
    device = json.loads(manifest.read_text())["device"] if manifest.is_file() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TicketError(f"{run} drew its random masks on {device}; re-draw them on a machine with CUDA")
    return torch.device(device)

