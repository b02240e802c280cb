"""Strong tickets (edge-popup, Pensia, Gem-Miner, train_ticket) as files of seeds and bit-packed masks:
from a live supermask stack (`export_supermask_ticket`) or from a run folder (`export_strong_ticket`),
whose supermask jobs keep their final masks (`lth.experiments.strong.ticket_record`)."""

from __future__ import annotations

from pathlib import Path

import torch

import lth
from lth.nets.models import build_model
from lth.nets.supermask import SupermaskStack, portable_state, seeded_weight
from lth.tickets.fileformat import Ticket, TicketError, write_ticket

# config classes of the strong kinds, as a run folder's config.gin names them
STRONG_CONFIGS = ("EdgePopupConfig", "PensiaConfig", "GemMinerConfig", "TrainTicketConfig")


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
    record = {**portable_state(stack, weight_init), "model": model, "model_kwargs": dict(model_kwargs or {}),
              "weight_init": weight_init, "dataset": dataset, "input_shape": list(input_shape),
              "num_classes": num_classes}
    _refuse_redundant(record)
    for key, seeds in record["seeds"].items():
        regenerated = seeded_weight(record["shapes"][key], int(seeds[index]), weight_init, record["stds"][key])
        if not torch.equal(regenerated, stack.buffers[key][index].detach().cpu()):
            raise TicketError(f"layer {key}: weight_init {weight_init!r} does not regenerate its frozen weights "
                              "from its seed; pass the init the stack was converted with")
    return write_ticket(strong_ticket(record, index, source or {}), path)


def strong_ticket(record: dict, index: int, source: dict) -> Ticket:
    """Network ``index`` of a `lth.experiments.strong.ticket_record` (or the same fields) as a `Ticket`."""
    _refuse_redundant(record)
    model, kwargs = record["model"], dict(record["model_kwargs"])
    plain = build_model(model, tuple(record["input_shape"]), int(record["num_classes"]), init="default", seed=0,
                        **kwargs)
    seeds = {key: int(value[index]) for key, value in record["seeds"].items()}
    tensors, state = record["tensors"], {}
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
    masks = {key: mask[index].bool() for key, mask in record["masks"].items()}
    total = sum(m.numel() for m in masks.values()) or 1
    meta = {"model": model, "model_kwargs": _plain(kwargs), "init": "seeded", "dataset": record.get("dataset"),
            "input_shape": list(record["input_shape"]), "num_classes": int(record["num_classes"]), "kind": "strong",
            "weight_init": record["weight_init"], "weight_std": {k: record["stds"][k] for k in seeds},
            "seeded_shapes": {k: list(record["shapes"][k]) for k in seeds},
            "densities": {n: float(m.float().mean()) for n, m in masks.items()},
            "density": sum(int(m.sum()) for m in masks.values()) / total, "lth_version": lth.__version__, **source}
    return Ticket(meta, masks, {"init": state} if state else {}, seeds)


def export_strong_ticket(run: Path, config: dict, trial: int, level: int | None = None, control: str | None = None,
                         network: str | None = None, path: str | Path | None = None) -> Path:
    """Write one network of a strong-ticket run folder (``config``: its config.gin as read by
    `lth.tickets.export.read_operative_config`) as seeds and a bit-packed mask; returns the path.

    ``network`` (the metrics' experiment column, e.g. ``lenet300``), ``control`` (the method or
    variant, e.g. ``signed_constant``) and ``level`` (the index of the density) may be left out where
    the run has one choice. ``path``: default ``<run>/tickets/<network>_<control>_level_LL_trial_T.safetensors``.
    Raises TicketError when the run has no such network (listing those it has), kept no final
    supermasks (stored before runs kept them), or the network has redundant (Pensia) layers."""
    kind = next(name for name in STRONG_CONFIGS if name in config)
    found = []  # (record, row, (network, control, level, trial))
    for file in sorted((run / "checkpoints").glob("*.pt")):
        if file.stem.endswith("_progress"):
            continue
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:
            raise TicketError(f"checkpoint {file} is unreadable ({type(err).__name__}: {err})") from err
        record = state.get("ticket") if isinstance(state, dict) else None
        if record is not None:
            found += [(record, row, (record["network"], m[2], int(m[1]), int(m[0])))
                      for row, m in enumerate(record["members"])]
    wanted = lambda n, c, lv, t: (t == trial and (network is None or n == network)
                                  and (control in (None, "none") or c == control) and (level is None or lv == level))
    matches = [f for f in found if wanted(*f[2])]
    if len(matches) != 1:
        raise TicketError(_what_is_there(run, kind, found, matches))
    record, row, (name, chosen, lv, t) = matches[0]
    source = {"run_hash": run.name, "experiment": run.parent.name, "network": name, "level": lv, "trial": t,
              "control": chosen, "replicate": 0, "source_kind": kind}
    if path is None:
        path = run / "tickets" / f"{name}_{chosen}_level_{lv:02d}_trial_{t}.safetensors"
    return write_ticket(strong_ticket(record, row, source), path)


def _what_is_there(run: Path, kind: str, found: list, matches: list) -> str:
    if not found:
        done = sorted(p.name for p in (run / "done").glob("*") if not p.name.startswith(".")) \
            if (run / "done").is_dir() else []
        return (f"{run} ({kind}) keeps no final supermasks: " + (
            f"its jobs {done} finished before strong runs kept them; delete their markers under {run / 'done'} "
            "and run it again to keep them" if done else "no supermask job has finished; run it first"))
    names = lambda i: sorted({f[2][i] for f in found})
    what = "several networks match; name one with --network, --control and --level" if matches else "no such network"
    listed = [f"{n} {c} level {lv} trial {t}" for n, c, lv, t in sorted(f[2] for f in found)]
    more = f"; ... ({len(listed) - 12} more)" if len(listed) > 12 else ""
    return (f"{run} ({kind}): {what}. It has networks {names(0)}, controls {names(1)}, levels {names(2)}, "
            f"trials {names(3)}: " + "; ".join(listed[:12]) + more)


def _refuse_redundant(record: dict) -> None:
    if record.get("redundant"):
        raise TicketError("redundant (Pensia) layers have no plain-model equivalent; they cannot be exported")


def _plain(value):
    """Tuples as lists, for the JSON metadata."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value
