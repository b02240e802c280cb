"""Take one network's ticket out of a run folder (IMP) or out of a supermask stack (strong tickets)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pandas as pd
import torch

import lth
from lth.data import derive_seed
from lth.nets.models import build_model
from lth.nets.supermask import RedFanOut, RedLinear, SupermaskLayer, SupermaskStack, kaiming_std, seeded_weight
from lth.prune.masks import random_masks
from lth.schema import TICKET
from lth.tickets.fileformat import Ticket, TicketError, write_ticket

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


def export_ticket(run_dir: str | Path, level: int, trial: int, control: str = TICKET, replicate: int = 0,
                  include_trained: bool = False, *, path: str | Path | None = None,
                  input_shape: tuple | None = None, num_classes: int | None = None) -> Path:
    """Write one network of an IMP run as a ticket file (`lth.tickets.fileformat`); returns its path.

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
    cfg = config.get("ImpConfig")
    if cfg is None:
        raise TicketError(f"{run} is not an IMP run (its config.gin binds {sorted(config)}); only IMP runs store "
                          "their networks' weights. Strong tickets: lth.tickets.export_supermask_ticket")
    files = _checkpoints(run)
    members = _members(run)
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


def export_supermask_ticket(stack: SupermaskStack, index: int, path: str | Path, *, model: str, input_shape: tuple,
                            num_classes: int, weight_init: str, model_kwargs: dict | None = None,
                            dataset: str | None = None, source: dict | None = None) -> Path:
    """Write network ``index`` of a supermask stack (edge-popup, Gem-Miner: `lth.nets.supermask`)
    as a ticket of seeds and a mask: each supermask layer's frozen weights are stored as their seed
    (checked here to regenerate them bit for bit), its hard mask bit-packed, everything else as is.

    ``model``, ``model_kwargs``, ``input_shape`` (C, H, W), ``num_classes``: what
    `lth.nets.models.build_model` built the network from before `to_supermask` (e.g. ``bias=False``).
    ``weight_init``: the frozen weights' init (`lth.nets.supermask.WEIGHT_INITS`). ``source``: extra
    metadata (run hash, level, trial, ...). Raises TicketError for redundant (Pensia) layers, which
    no plain model has, a weight_init that does not regenerate the weights, or a plain model whose
    tensors differ."""
    model_kwargs = dict(model_kwargs or {})
    plain = build_model(model, input_shape, num_classes, init="default", seed=0, **model_kwargs)
    layers = {name: m for name, m in stack.template.named_modules() if isinstance(m, SupermaskLayer)}
    if any(isinstance(m, (RedFanOut, RedLinear)) for m in stack.template.modules()):
        raise TicketError("redundant (Pensia) layers have no plain-model equivalent; they cannot be exported")
    scored = stack.layer_masks()
    masks, seeds, stds, state = {}, {}, {}, {}
    for name, layer in layers.items():
        key = f"{name}.weight" if name else "weight"
        shape = tuple(layer.weight.shape)
        seed = int(stack.buffers[f"{key}_seed"][index])
        std = kaiming_std(math.prod(shape[1:]))
        stored = stack.buffers[key][index].detach().cpu()
        if not torch.equal(seeded_weight(shape, seed, weight_init, std), stored):
            raise TicketError(f"layer {name}: weight_init {weight_init!r} does not regenerate its frozen weights "
                              "from its seed; pass the init the stack was converted with")
        seeds[key], stds[key] = seed, std
        if layer.rule is not None:
            masks[key] = scored[name][index].bool().cpu()
    tensors = {**stack.params, **stack.buffers}
    for key, value in plain.state_dict().items():
        if key in seeds:
            continue
        if key in tensors:
            state[key] = tensors[key][index].detach().cpu()
        elif key.rpartition(".")[2] in ("weight", "bias") and isinstance(
                plain.get_submodule(key.rpartition(".")[0]), torch.nn.modules.batchnorm._BatchNorm):
            state[key] = value.detach().clone()  # affine BN made non-affine by to_supermask: the identity
        else:
            raise TicketError(f"the supermask network has no tensor for {key} of model {model!r}")
    total = sum(m.numel() for m in masks.values()) or 1
    meta = {"model": model, "model_kwargs": model_kwargs, "init": "seeded", "dataset": dataset,
            "input_shape": list(input_shape), "num_classes": num_classes, "kind": "strong",
            "weight_init": weight_init, "weight_std": stds,
            "seeded_shapes": {k: list(layers[k.rpartition('.')[0]].weight.shape) for k in seeds},
            "densities": {n: float(m.float().mean()) for n, m in masks.items()},
            "density": sum(int(m.sum()) for m in masks.values()) / total, "lth_version": lth.__version__,
            **(source or {})}
    return write_ticket(Ticket(meta, masks, {"init": state} if state else {}, seeds), path)


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

