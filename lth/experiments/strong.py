"""Strong lottery tickets: drivers of the supermask experiments (`lth.nets.supermask`) on the result store.

Each experiment is a list of *groups*: one stack of networks trained as one (every density and
trial of a sweep together), stored under its own key with a done marker and a progress
checkpoint, so reruns skip finished groups and a killed group resumes. Rows are IMP's tidy
metrics with ``experiment`` = the network (e.g. ``lenet300``), ``control`` = the method or
variant, ``level`` = the index of the target density; split ``mask`` holds per-layer densities
and split ``meta`` the number of scored weights and the iterations per epoch.

- `EdgePopupConfig` (Ramanujan et al.): top-k supermasks on frozen signed-constant or
  Kaiming-normal weights at each density, beside the same network trained densely.
- `PensiaConfig` (Pensia et al. Experiment 2): redundant (RedLayer, r paths per weight) and
  parameter-matched wide networks pruned by edge-popup, beside the dense trained target.
- `GemMinerConfig` (Sreenivasan et al.): bounded scores, L2 on scores, iterative freezing, then
  fine-tuning with the mask fixed, with the sanity checks (layerwise shuffle, weight reinit,
  score inversion) fine-tuned alike.
- `TrainTicketConfig` (catid/train_ticket): gates on seeded random weights vs the same network
  trained normally.

Each driver trains its score networks with ``<scope>/TrainConfig`` and its weight-trained
networks (dense baselines, fine-tuning) with ``<scope>_weights/TrainConfig`` (`SCOPES`), so a
profile can scale each experiment alone.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import gin
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lth.experiments import imp
from lth.prune import targets as pruning
from lth.nets import supermask
from lth.data import DataSplits, derive_seed, load_splits, steps_per_epoch
from lth.nets.stack import NetworkStack
from lth.experiments.imp import resolve_device
from lth.nets.models import LeNet5, build_model
from lth.store import RunDir
from lth.train.loop import TrainConfig, evaluate, train

MASK_SPLIT, META_SPLIT = "mask", "meta"
DENSE = "dense"   # control of the weight-trained baselines


def _validate_common(config) -> None:
    if config.trials < 1:
        raise ValueError(f"need trials >= 1, got {config.trials}")


def _validate_densities(densities) -> None:
    if not densities:
        raise ValueError("densities must name at least one density (fraction of weights kept)")
    for density in densities:
        pruning.validate_density(density)


def _data(config, device) -> DataSplits:
    extra = {"synthetic_shape": tuple(config.synthetic_shape)} if config.dataset == "synthetic" else {}
    return load_splits(config.dataset, seed=config.split_seed, **extra).to(device)


# ---- configs -------------------------------------------------------------------------------------

@gin.configurable
@dataclass(frozen=True)
class EdgePopupConfig:
    experiment: str = "strong_edgepopup"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("lenet300", "conv4")
    weight_inits: tuple = ("signed_constant", "kaiming_normal")
    densities: tuple = (0.9, 0.7, 0.5, 0.3, 0.1, 0.05)   # fractions kept (hidden-networks' k)
    dense_baseline: bool = True
    trials: int = 1
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        _validate_common(self)
        _validate_densities(self.densities)
        for init in self.weight_inits:
            supermask._check(init, supermask.WEIGHT_INITS, "weight init")
        for name in self.networks:
            supermask._check(name, ("lenet300", "conv2", "conv4", "conv6"), "edge-popup network")


@gin.configurable
@dataclass(frozen=True)
class PensiaConfig:
    experiment: str = "strong_pensia"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("fc2", "fc4", "lenet5")
    variants: tuple = ("red", "wide")
    # Fractions kept. Pensia's --sparsity is the fraction *pruned*: density = 1 - sparsity.
    densities: tuple = (0.5, 0.25, 0.1, 0.05, 0.02)
    redundancy: int = 5
    redundant_relu: bool = False
    weight_init: str = "kaiming_normal"
    network_lr: dict = field(default_factory=lambda: {"lenet5": 0.01})  # Pensia: lr 0.01 for LeNet-5
    dense_baseline: bool = True
    trials: int = 1
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        _validate_common(self)
        _validate_densities(self.densities)
        for name in self.networks:
            supermask._check(name, PENSIA_NETWORKS, "Pensia network")
        for variant in self.variants:
            supermask._check(variant, ("red", "wide"), "Pensia variant")
        if self.redundancy < 1:
            raise ValueError(f"redundancy r must be >= 1, got {self.redundancy}")
        supermask._check(self.weight_init, supermask.WEIGHT_INITS, "weight init")


@gin.configurable
@dataclass(frozen=True)
class GemMinerConfig:
    experiment: str = "strong_gem_miner"
    dataset: str = "fashion_mnist"   # CIFAR-10 is the paper's; see the recipe
    synthetic_shape: tuple = (3, 32, 32)
    model: str = "resnet20"
    density: float = 0.0372          # Rare Gems' "sparsity" 3.72 (% kept)
    l2: float = 3e-5                 # lambda of lambda * ||p||^2 (applied as SGD weight decay 2 * lambda)
    freeze_period: str = "5ep"       # T: scores are frozen every T
    weight_init: str = "signed_constant"
    controls: tuple = ("shuffle", "reinit", "invert")
    trials: int = 1
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        _validate_common(self)
        pruning.validate_density(self.density)
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        for control in self.controls:
            supermask._check(control, SANITY_CHECKS, "sanity check")
        supermask._check(self.weight_init, supermask.WEIGHT_INITS, "weight init")


@gin.configurable
@dataclass(frozen=True)
class TrainTicketConfig:
    experiment: str = "strong_train_ticket"
    dataset: str = "mnist"
    synthetic_shape: tuple = (1, 28, 28)
    networks: tuple = ("mlp", "cnn")
    weight_init: str = "kaiming_normal"
    trials: int = 1
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self):
        _validate_common(self)
        for name in self.networks:
            supermask._check(name, TICKET_NETWORKS, "train_ticket network")
        supermask._check(self.weight_init, supermask.WEIGHT_INITS, "weight init")


SANITY_CHECKS = ("shuffle", "reinit", "invert")
SCOPES = {EdgePopupConfig: "edgepopup", PensiaConfig: "pensia", GemMinerConfig: "gem_miner",
          TrainTicketConfig: "train_ticket"}


def configs(config_type: type) -> tuple:
    """(config, score TrainConfig, weights TrainConfig) as gin binds them."""
    scope = SCOPES[config_type]
    with gin.config_scope(scope):
        scores = TrainConfig()
    with gin.config_scope(f"{scope}_weights"):
        weights = TrainConfig()
    return config_type(), scores, weights


def operative_config(config, scores_cfg: TrainConfig, weights_cfg: TrainConfig) -> str:
    """The bindings that determine the results; the weights' TrainConfig only where it trains something."""
    text = imp.operative_config(config, scores_cfg).replace("TrainConfig.", f"{SCOPES[type(config)]}/TrainConfig.")
    if isinstance(config, TrainTicketConfig):  # gated and baseline networks train alike, in one scope
        return text
    weights = imp.operative_config(config, weights_cfg).splitlines()
    scope = f"{SCOPES[type(config)]}_weights/"
    return text + "\n".join(scope + line for line in weights if line.startswith("TrainConfig.")) + "\n"


def config_type_bound() -> type | None:
    """Which strong-ticket config the loaded gin recipe binds (by its experiment), if any."""
    for config_type in SCOPES:
        try:
            gin.query_parameter(f"{config_type.__name__}.experiment")
        except ValueError:
            continue
        return config_type
    return None


# ---- networks ---------------------------------------------------------------------------------

def _fc(data: DataSplits, widths: Sequence[int], bias: bool = False) -> nn.Module:
    return build_model("fc", data.input_shape, data.num_classes, widths=tuple(widths), bias=bias, init="kaiming_normal")


PENSIA_WIDTHS = {"fc2": (500,), "fc4": (500, 500, 500), "lenet5": (120, 84)}
PENSIA_NETWORKS = tuple(PENSIA_WIDTHS)


def pensia_network(name: str, data: DataSplits, widths: Sequence[int] | None = None) -> nn.Module:
    """Pensia's targets without biases: FC 784-500-10, FC 784-500-500-500-10, LeNet-5 (its 400-wide
    flatten, fc 120-84-10); ``widths`` replaces the hidden widths (the wide baselines)."""
    widths = tuple(widths or PENSIA_WIDTHS[name])
    if name != "lenet5":
        return _fc(data, widths)
    model = LeNet5(data.input_shape, data.num_classes, bias=False)
    sizes = [model.fc[0].in_features, *widths, data.num_classes]
    model.fc = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:]))
    return model


def fc_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def redundant_weights(model: nn.Module, r: int) -> int:
    """Weights of the RedLayer version: in * r + in * r * out per Linear."""
    return sum(m.in_features * r * (1 + m.out_features) for m in model.modules() if isinstance(m, nn.Linear))


def matched_widths(name: str, data: DataSplits, target: int) -> tuple[int, ...]:
    """Hidden widths scaled by one common factor so that the fc weights come closest to ``target``
    (Pensia's Wide nets: the redundant net's parameter count; 2508 for FC 784-500-10)."""
    base = PENSIA_WIDTHS[name]
    first = pensia_network(name, data).fc[0].in_features

    def count(scale: float) -> int:
        sizes = [first, *(max(1, round(w * scale)) for w in base), data.num_classes]
        return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    low, high = 1.0, 64.0
    for _ in range(60):  # the count grows with the scale: bisect
        mid = (low + high) / 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    best = min((low, high), key=lambda s: abs(count(s) - target))
    return tuple(max(1, round(w * best)) for w in base)


class TicketCNN(nn.Module):
    """train_ticket's SimpleCNN (PyTorch's MNIST example): conv 32, conv 64 (3x3), 2x2 max-pool,
    fc 9216-128, fc 128-10; its dropout layers left out (see the recipe)."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.ModuleList([nn.Conv2d(c, 32, 3), nn.Conv2d(32, 64, 3)])
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        self.fc = nn.ModuleList([nn.Linear(flat, 128), nn.Linear(128, num_classes)])

    def forward(self, x):
        x = F.relu(self.conv[1](F.relu(self.conv[0](x))))
        x = F.max_pool2d(x, 2).flatten(1)
        return self.fc[1](F.relu(self.fc[0](x)))


# network -> (builder, names of the gated layers): train_ticket gates the middle layers only.
TICKET_NETWORKS: dict[str, tuple[Callable[[DataSplits], nn.Module], tuple[str, ...]]] = {
    "mlp": (lambda data: _fc(data, (512, 256, 128), bias=True), ("fc.1", "fc.2")),
    "cnn": (lambda data: TicketCNN(data.input_shape, data.num_classes), ("fc.0",)),
}


def _seeded(make: Callable[[], nn.Module], seed: int) -> nn.Module:
    """Construction draws from torch's global RNG: fork it so every network is a pure function of its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


# ---- groups: one stack each ------------------------------------------------------------------

@dataclass
class Group:
    key: str                        # store key
    network: str                    # rows' experiment column
    control: str | list[str]        # rows' control column: one for all, or one per network
    members: list[tuple[int, int]]  # (trial, level) per network of the stack
    densities: list[float]          # target density per network
    train_cfg: TrainConfig
    build: Callable[[], NetworkStack]
    data_seeds: list[int]
    callbacks: list = field(default_factory=list)
    finish: Callable | None = None  # (stack, history) -> None, after training (e.g. Gem-Miner's last freeze)


class StrongExperiment:
    """Runs a config's groups into the result store; subclasses list the groups."""

    def __init__(self, config, scores_cfg: TrainConfig, weights_cfg: TrainConfig, *, root: str | Path = "runs",
                 device: str | torch.device = "auto", data: DataSplits | None = None):
        self.config, self.scores_cfg, self.weights_cfg = config, scores_cfg, weights_cfg
        self.device = resolve_device(device)
        self.data = data.to(self.device) if data is not None else _data(config, self.device)
        self.run = RunDir(root, config.experiment, operative_config(config, scores_cfg, weights_cfg))
        self.steps = scores_cfg.steps(len(self.data.train))

    def init_seed(self, trial: int) -> int:
        return derive_seed("init", self.config.seed, trial)

    def data_seed(self, trial: int) -> int:
        return derive_seed("data", self.config.seed, trial)

    def groups(self) -> list[Group]:
        raise NotImplementedError

    def run_all(self) -> pd.DataFrame:
        todo = [g for g in self.groups() if not self.run.is_done(g.key)]
        if todo:
            started = time.time()
            self.run.write_manifest(seed=self.config.seed, device=str(self.device),
                                    started_at=datetime.now(timezone.utc).isoformat(),
                                    groups=[g.key for g in self.groups()])
            for group in todo:
                self.run_group(group)
            self.run.write_manifest(finished_at=datetime.now(timezone.utc).isoformat(),
                                    wall_time_s=round(time.time() - started, 2))
        return self.run.read_metrics()

    def run_group(self, group: Group) -> NetworkStack:
        progress = f"{group.key}_progress"
        resume = self.run.load_checkpoint(progress)
        stack = group.build()
        controls = [group.control] * len(group.members) if isinstance(group.control, str) else group.control
        labels = [f"{group.network} {c} trial {t} density {d:g}"
                  for c, (t, _), d in zip(controls, group.members, group.densities)]
        history, _ = train(stack, self.data, group.train_cfg, data_seeds=group.data_seeds, labels=labels,
                           resume=resume, checkpoint=lambda state: self.run.save_checkpoint(progress, state),
                           callbacks=group.callbacks, desc=f"{self.config.experiment} {group.key}")
        if group.finish is not None:
            group.finish(stack, history)
        self.run.write_metrics(group.key, self._rows(group, stack, history))
        self.run.mark_done(group.key)
        self.run.delete_checkpoint(progress)
        return stack

    def _rows(self, group: Group, stack: NetworkStack, history) -> list[dict]:
        densities = stack.density().tolist()
        layers = stack.layer_densities()
        scored_masks = isinstance(stack, supermask.SupermaskStack) and supermask.scored_layers(stack.template)
        masks = stack.layer_masks() if scored_masks else stack.masks
        scored = sum(m[0].numel() for m in masks.values())
        per_epoch = steps_per_epoch(len(self.data.train), group.train_cfg.batch_size)
        rows = []
        for i, (trial, level) in enumerate(group.members):
            control = group.control if isinstance(group.control, str) else group.control[i]
            common = {"experiment": group.network, "trial": trial, "level": level, "density": densities[i],
                      "control": control, "replicate": 0}
            for name, values in layers.items():
                rows.append({**common, "iteration": 0, "split": MASK_SPLIT, "metric": name, "value": float(values[i])})
            rows.append({**common, "iteration": 0, "split": META_SPLIT, "metric": "scored_weights", "value": scored})
            rows.append({**common, "iteration": 0, "split": META_SPLIT, "metric": "steps_per_epoch", "value": per_epoch})
            for key, values in history.values.items():
                split, metric = key.split("/")
                series = torch.stack(values, dim=1)
                iterations = history.iterations[-series.shape[1]:]
                rows += [{**common, "iteration": it, "split": split, "metric": metric, "value": v}
                         for it, v in zip(iterations, series[i].tolist())]
        return rows

    # shared builders
    def _supermask_stack(self, make: Callable[[int], nn.Module], trials_densities: list[tuple[int, float]],
                         **convert) -> supermask.SupermaskStack:
        """One supermask network per (trial, density): a trial's networks share weights and scores."""
        models = [supermask.to_supermask(_seeded(lambda: make(t), self.init_seed(t)), seed=self.init_seed(t),
                                         density=d, **convert) for t, d in trials_densities]
        return supermask.SupermaskStack.from_models(models).to(self.device)

    def _dense_stack(self, make: Callable[[int], nn.Module], trials: Sequence[int], **convert) -> NetworkStack:
        """Weight-trained baselines; ``convert`` (e.g. frozen convs) goes through `to_supermask`."""
        models = []
        for t in trials:
            model = _seeded(lambda: make(t), self.init_seed(t))
            if convert:
                model = supermask.to_supermask(model, seed=self.init_seed(t), **convert)
            models.append(model)
        cls = supermask.SupermaskStack if convert else NetworkStack
        return cls.from_models(models).to(self.device)


def _sweep(trials: int, densities: Sequence[float]) -> tuple[list[tuple[int, int]], list[float]]:
    members = [(t, level) for level in range(len(densities)) for t in range(trials)]
    return members, [densities[level] for _, level in members]


# ---- edge-popup ------------------------------------------------------------------------------

class EdgePopupExperiment(StrongExperiment):
    def _network(self, name: str) -> Callable[[int], nn.Module]:
        shape, classes = self.data.input_shape, self.data.num_classes
        return lambda trial: build_model(name, shape, classes, bias=False, init="kaiming_normal",
                                         seed=self.init_seed(trial))

    def groups(self) -> list[Group]:
        cfg, groups = self.config, []
        trials = list(range(cfg.trials))
        for name in cfg.networks:
            make = self._network(name)
            members, densities = _sweep(cfg.trials, cfg.densities)
            for init in cfg.weight_inits:
                groups.append(Group(
                    f"{name}-{init}", name, init, members, densities, self.scores_cfg,
                    lambda make=make, init=init, m=members, d=densities: self._supermask_stack(
                        make, [(t, dd) for (t, _), dd in zip(m, d)], rule="top_k", weight_init=init),
                    [self.data_seed(t) for t, _ in members]))
            if cfg.dense_baseline:
                groups.append(Group(f"{name}-{DENSE}", name, DENSE, [(t, 0) for t in trials], [1.0] * len(trials),
                                    self.weights_cfg, lambda make=make: self._dense_stack(make, trials),
                                    [self.data_seed(t) for t in trials]))
        return groups


# ---- Pensia et al. Experiment 2 ----------------------------------------------------------------

class PensiaExperiment(StrongExperiment):
    def groups(self) -> list[Group]:
        cfg, groups, data = self.config, [], self.data
        trials = list(range(cfg.trials))
        members, densities = _sweep(cfg.trials, cfg.densities)
        for name in cfg.networks:
            target = redundant_weights(pensia_network(name, data), cfg.redundancy)
            widths = {"red": None, "wide": matched_widths(name, data, target)}
            scores_cfg = self._lr(self.scores_cfg, name)
            convs_frozen = (lambda n: n.startswith("conv")) if name == "lenet5" else None
            for variant in cfg.variants:
                make = lambda trial, name=name, w=widths[variant]: pensia_network(name, data, w)
                convert = dict(rule="top_k", weight_init=cfg.weight_init, frozen=convs_frozen,
                               redundancy=cfg.redundancy if variant == "red" else 0, redundant_relu=cfg.redundant_relu)
                groups.append(Group(
                    f"{name}-{variant}", name, variant, members, densities, scores_cfg,
                    lambda make=make, convert=convert: self._supermask_stack(
                        make, [(t, d) for (t, _), d in zip(members, densities)], **convert),
                    [self.data_seed(t) for t, _ in members]))
            if cfg.dense_baseline:  # LeNet-5's baseline trains its fc layers over the same frozen random convs
                convert = dict(rule="top_k", weight_init=cfg.weight_init, frozen=convs_frozen,
                               scored=lambda n: False) if name == "lenet5" else {}
                groups.append(Group(
                    f"{name}-{DENSE}", name, DENSE, [(t, 0) for t in trials], [1.0] * len(trials),
                    self._lr(self.weights_cfg, name),
                    lambda name=name, convert=convert: self._dense_stack(lambda t: pensia_network(name, data), trials,
                                                                         **convert),
                    [self.data_seed(t) for t in trials]))
        return groups

    def _lr(self, cfg: TrainConfig, name: str) -> TrainConfig:
        lr = self.config.network_lr.get(name)
        return cfg if lr is None else dataclasses.replace(cfg, lr=float(lr))


# ---- Gem-Miner -------------------------------------------------------------------------------

GEM_BEFORE_FINETUNE = "gem_miner_scores"
GEM = "gem_miner"


class GemMinerExperiment(StrongExperiment):
    def __init__(self, config, scores_cfg, weights_cfg, **kwargs):
        if scores_cfg.weight_decay:
            raise ValueError(f"Gem-Miner's score training takes its L2 from GemMinerConfig.l2, not "
                             f"TrainConfig.weight_decay ({scores_cfg.weight_decay}); bind gem_miner/TrainConfig."
                             "weight_decay = 0")
        if scores_cfg.optimizer != "sgd":
            raise ValueError("Gem-Miner's L2 on the scores is applied as SGD weight decay: use optimizer 'sgd'")
        # lambda * ||p||^2 has gradient 2 lambda p: SGD's weight decay 2 lambda, the same update
        scores_cfg = dataclasses.replace(scores_cfg, weight_decay=2 * config.l2)
        super().__init__(config, scores_cfg, weights_cfg, **kwargs)
        per_epoch = steps_per_epoch(len(self.data.train), scores_cfg.batch_size)
        from lth.train.schedules import parse_steps
        period = parse_steps(config.freeze_period, per_epoch)
        if period < 1 or period % self.steps.eval_every:
            raise ValueError(f"the freezing period ({config.freeze_period} = {period} iterations) must be a "
                             f"positive multiple of the evaluation interval ({self.steps.eval_every} iterations): "
                             "freezing runs where training calls back, after an evaluation")
        self.freezes = dict(supermask.freezing_schedule(self.steps.total, period, config.density))

    def _network(self, trial: int) -> nn.Module:
        with_bn = {"bn_affine": False} if self.config.model.startswith(("resnet", "vgg")) else {}
        return build_model(self.config.model, self.data.input_shape, self.data.num_classes, bias=False,
                           init="kaiming_normal", seed=self.init_seed(trial), **with_bn)

    def _freeze(self, iteration: int, stack) -> None:
        if iteration in self.freezes:
            supermask.freeze_lowest(stack, self.freezes[iteration])

    def _last_evaluation(self, stack, history) -> None:
        # The final freeze runs after training's last evaluation: evaluate the networks it left.
        for name, split in (("val", self.data.val), ("test", self.data.test)):
            for metric, value in evaluate(stack, split, self.scores_cfg.eval_batch_size).items():
                history.values[f"{name}/{metric}"][-1] = value.detach().float().cpu()

    def groups(self) -> list[Group]:
        cfg = self.config
        trials = list(range(cfg.trials))
        controls = [GEM, *cfg.controls]
        ft_members = [(t, 0) for _ in controls for t in trials]
        return [
            Group(GEM_BEFORE_FINETUNE, cfg.model, GEM_BEFORE_FINETUNE, [(t, 0) for t in trials],
                  [cfg.density] * len(trials), self.scores_cfg, self._score_stack,
                  [self.data_seed(t) for t in trials], callbacks=[self._freeze], finish=self._finish_scores),
            Group("finetune", cfg.model, [c for c in controls for _ in trials], ft_members, [cfg.density] * len(ft_members),
                  self.weights_cfg, lambda: self._finetune_stack(controls), [self.data_seed(t) for t, _ in ft_members]),
        ]

    def _score_stack(self) -> supermask.SupermaskStack:
        return self._supermask_stack(self._network, [(t, 1.0) for t in range(self.config.trials)],
                                     rule="threshold", weight_init=self.config.weight_init)

    def _finish_scores(self, stack, history) -> None:
        self._last_evaluation(stack, history)
        self.run.save_checkpoint("scores_final", stack.state())  # fine-tuning starts from it

    def _finetune_stack(self, controls: Sequence[str]) -> NetworkStack:
        """trials x (Gem-Miner, each sanity check): the mined masks fixed, weights trained."""
        scores = self._score_stack()
        final = self.run.load_checkpoint("scores_final")
        if final is None:
            raise RuntimeError(f"no trained scores in {self.run.path}: run the score training first")
        scores.load_state(final)
        masks = scores.layer_masks()
        states = []
        for control in controls:
            if control == "shuffle":
                state = supermask.fixed_mask_state(scores, supermask.shuffled_masks(masks, self.config.seed))
            elif control == "invert":
                state = supermask.fixed_mask_state(scores, supermask.inverted_masks(scores, masks))
            elif control == "reinit":
                state = supermask.fixed_mask_state(
                    scores, masks, supermask.reseeded_weights(scores, self.config.seed, self.config.weight_init))
            else:
                state = supermask.fixed_mask_state(scores, masks)
            states.append(state)
        template = self._network(0).to("meta")
        return NetworkStack.from_states(template, states).to(self.device)

# ---- train_ticket ------------------------------------------------------------------------------

class TrainTicketExperiment(StrongExperiment):
    def groups(self) -> list[Group]:
        cfg, groups, data = self.config, [], self.data
        trials = list(range(cfg.trials))
        members, seeds = [(t, 0) for t in trials], [self.data_seed(t) for t in trials]
        for name in cfg.networks:
            make_net, gated = TICKET_NETWORKS[name]
            make = lambda t, make_net=make_net: make_net(data)
            groups.append(Group(
                f"{name}-gated", name, "gated", members, [1.0] * len(trials), self.scores_cfg,
                lambda make=make, gated=gated: self._supermask_stack(
                    make, [(t, 1.0) for t in trials], rule="sign", weight_init=cfg.weight_init,
                    scored=lambda n: n in gated), seeds))
            groups.append(Group(f"{name}-baseline", name, "baseline", members, [1.0] * len(trials), self.scores_cfg,
                                lambda make=make: self._dense_stack(make, trials), seeds))
        return groups


EXPERIMENTS = {EdgePopupConfig: EdgePopupExperiment, PensiaConfig: PensiaExperiment,
               GemMinerConfig: GemMinerExperiment, TrainTicketConfig: TrainTicketExperiment}


def make_experiment(config, scores_cfg, weights_cfg, **kwargs) -> StrongExperiment:
    return EXPERIMENTS[type(config)](config, scores_cfg, weights_cfg, **kwargs)


# ---- analysis ----------------------------------------------------------------------------------

def meta_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per network (experiment, level, control, trial): scored weights and iterations per epoch."""
    rows = metrics[metrics.split == META_SPLIT]
    keys = ["experiment", "level", "control", "trial", "replicate"]
    return rows.pivot_table(index=keys, columns="metric", values="value").reset_index()


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per network, control and density (mean over trials): percent kept, weights remaining, test
    accuracy at the end, in percent (what `python -m lth run` prints)."""
    from lth.results.analysis import per_network
    networks = with_remaining(per_network(metrics), metrics)
    table = networks.groupby(["experiment", "control", "level"], sort=False).agg(
        runs=("trial", "size"), kept_pct=("density", "mean"), remaining_weights=("remaining_weights", "mean"),
        test_acc_final_pct=("final_test_accuracy", "mean")).reset_index()
    table[["kept_pct", "test_acc_final_pct"]] *= 100
    return table.rename(columns={"experiment": "network"})


def with_remaining(networks: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-network frame plus ``remaining_weights`` = density x scored weights (Pensia's x axis)."""
    keys = ["experiment", "level", "control", "trial", "replicate"]
    out = networks.merge(meta_table(metrics)[keys + ["scored_weights"]], on=keys, how="left")
    return out.assign(remaining_weights=out.density * out.scored_weights)


def epochs_to(metrics: pd.DataFrame, accuracy: float = 0.95, split: str = "val") -> pd.DataFrame:
    """Per network: the first epoch whose evaluation reaches ``accuracy`` (NaN if never), the epoch
    of the best accuracy, and that accuracy, on ``split`` (train_ticket's table; its early stop read
    the test set, ours reads validation)."""
    keys = ["experiment", "level", "control", "trial", "replicate"]
    acc = metrics[(metrics.split == split) & (metrics.metric == "accuracy")]
    per_epoch = meta_table(metrics).set_index(keys)["steps_per_epoch"]
    rows = []
    for key, curve in acc.groupby(keys):
        curve = curve.sort_values("iteration")
        reached = curve[curve.value >= accuracy]
        best = curve.loc[curve.value.idxmax()]
        steps = per_epoch.loc[key]
        rows.append({**dict(zip(keys, key)),
                     f"epochs_to_{round(100 * accuracy)}": reached.iteration.iloc[0] / steps if len(reached) else math.nan,
                     "epochs_to_best": best.iteration / steps, f"best_{split}_accuracy": best.value})
    return pd.DataFrame(rows)


# ---- notebooks: run or explain, figures ------------------------------------------------------

LABELS = {"signed_constant": "edge-popup, signed Kaiming constant", "kaiming_normal": "edge-popup, Kaiming normal",
          DENSE: "dense, weights trained", "red": "redundant (r paths per weight), edge-popup",
          "wide": "wide (as many weights), edge-popup", GEM_BEFORE_FINETUNE: "Gem-Miner before fine-tuning",
          GEM: "Gem-Miner fine-tuned", "shuffle": "layerwise mask shuffle, fine-tuned",
          "reinit": "weights reinitialised, fine-tuned", "invert": "scores inverted, fine-tuned",
          "gated": "gates on seeded random weights", "baseline": "trained normally",
          "lenet300": "LeNet-300-100", "conv2": "Conv-2", "conv4": "Conv-4", "conv6": "Conv-6",
          "fc2": "2-layer FC (500 hidden)", "fc4": "4-layer FC (500-500-500 hidden)", "lenet5": "LeNet-5 (frozen random convs)",
          "resnet20": "ResNet-20", "mlp": "MLP (512-256-128 hidden)", "cnn": "CNN conv32-conv64-fc128"}


def label(value) -> str:
    return LABELS.get(value, str(value))


def _outcome_type():
    from lth.notebook import Outcome

    @dataclass
    class StrongOutcome(Outcome):
        """A strong-ticket experiment as a notebook sees it."""
        networks_run: tuple = ()

        def describe(self) -> str:
            if not self.ran:
                return super().describe()
            note = {"paper": "", "smoke": " The **smoke** profile only exercises the code: its numbers measure nothing."}
            extra = note.get(self.profile, f" The **{self.profile}** profile is smaller than the paper's protocol: "
                                           "its numbers indicate, they do not settle.")
            controls = ", ".join(label(c) for c in dict.fromkeys(self.networks.control))
            return (f"**Ran `{self.experiment}`** on {self.dataset_name}, {self.profile} profile: {self.trials} "
                    f"trial{'s' * (self.trials != 1)}, {self.iterations:,} score-training iterations per run; "
                    f"networks {', '.join(label(n) for n in self.networks_run)}; {controls}. "
                    f"Results in `{self.run_path}`.{extra}")

    return StrongOutcome


def run_strong_experiment(config: str, profile: str, bindings=(), root: str | Path = "runs", device: str = "auto"):
    """`lth.notebook.run_experiment` for a strong-ticket recipe: the outcome, or why it did not run."""
    from lth.config import load
    from lth.notebook import _run, as_bindings, resolve_path

    load([config])
    config_type = config_type_bound()
    if config_type is None:
        raise ValueError(f"recipe {config!r} binds none of {', '.join(t.__name__ for t in SCOPES)}")
    recipe_dataset = config_type().dataset
    load([config], profile=profile, bindings=as_bindings(bindings))
    cfg, scores_cfg, weights_cfg = configs(config_type)
    networks = getattr(cfg, "networks", None) or (cfg.model,)
    common = {"dataset": cfg.dataset, "experiment": cfg.experiment, "profile": profile,
              "config_text": operative_config(cfg, scores_cfg, weights_cfg), "trials": cfg.trials,
              "recipe_dataset": recipe_dataset, "networks_run": tuple(networks)}
    return _run(_outcome_type(), lambda: make_experiment(cfg, scores_cfg, weights_cfg, root=resolve_path(root),
                                                          device=device), scores_cfg, common)


def _mean_band(ax, frame: pd.DataFrame, x: str, y: str, name: str, **style) -> None:
    stats = frame.groupby("level").agg(x=(x, "mean"), mean=(y, "mean"), low=(y, "min"), high=(y, "max"),
                                       runs=(y, "size")).sort_values("x")
    line, = ax.plot(stats.x, 100 * stats["mean"], label=f"{name} (n={stats.runs.max()})", markersize=4, **style)
    ax.fill_between(stats.x, 100 * stats.low, 100 * stats.high, color=line.get_color(), alpha=0.15, linewidth=0)


def edgepopup_figure(networks: pd.DataFrame, title: str, column: str = "final_test_accuracy"):
    """Per network: test accuracy against percent of weights kept, one line per weight init,
    the dense trained network as a dashed line."""
    from lth.results import figures
    names = list(dict.fromkeys(networks.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        rows = networks[networks.experiment == name]
        figures.plot_vs_density(ax, rows[rows.control != DENSE], column)
        dense = rows[rows.control == DENSE]
        if not dense.empty:
            ax.axhline(100 * dense[column].mean(), color="black", linestyle="--",
                       label=f"{label(DENSE)} (n={len(dense)})")
        handles, texts = ax.get_legend_handles_labels()
        ax.legend(handles, [_relabel(t) for t in texts], fontsize=8)
        ax.set_title(label(name), fontsize=10)
    fig.suptitle(title)
    return fig


def _relabel(text: str) -> str:
    head, sep, tail = text.partition(" (n=")
    return f"{label(head)}{sep}{tail}"


def pensia_figure(networks: pd.DataFrame, title: str, paper_points: dict | None = None,
                  column: str = "final_test_accuracy"):
    """Per network: test accuracy against remaining weights (log), redundant vs wide, the dense
    trained target as a black dot; the paper's figure read-outs as stars."""
    from lth.results import figures
    names = list(dict.fromkeys(networks.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        rows = networks[networks.experiment == name]
        for i, (control, part) in enumerate((c, p) for c, p in rows.groupby("control", sort=False) if c != DENSE):
            _mean_band(ax, part, "remaining_weights", column, label(control), marker=figures.MARKERS[i], color=f"C{i}")
        dense = rows[rows.control == DENSE]
        if not dense.empty:
            ax.plot(dense.remaining_weights.mean(), 100 * dense[column].mean(), "o", color="black", markersize=7,
                    label=f"{label(DENSE)} (n={len(dense)})")
        if paper_points and name in paper_points:
            for (variant, weights), accuracy in paper_points[name].items():
                ax.plot(weights, accuracy, "*", markersize=11, color="C0" if variant == "red" else
                        ("C1" if variant == "wide" else "black"), markeredgecolor="black", linestyle="none")
            ax.plot([], [], "*", color="grey", markeredgecolor="black", markersize=11, linestyle="none",
                    label="paper's figure (read off, ±2 pp)")
        ax.set_xscale("log")
        ax.set_xlabel("Remaining weights (count)")
        ax.set_ylabel("Test accuracy (%)")
        ax.set_title(label(name), fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def bar_figure(networks: pd.DataFrame, title: str, order: Sequence[str], column: str = "final_test_accuracy"):
    """One bar per control (mean over trials, min/max whiskers), in ``order``."""
    from lth.results import figures
    fig, axes = figures.subplots(1, width=7.5)
    ax = axes[0][0]
    present = [c for c in order if c in set(networks.control)]
    stats = networks.groupby("control")[column].agg(["mean", "min", "max", "size"]).loc[present]
    ax.bar(range(len(present)), 100 * stats["mean"], color=[f"C{i}" for i in range(len(present))],
           yerr=[100 * (stats["mean"] - stats["min"]), 100 * (stats["max"] - stats["mean"])], capsize=4)
    ax.set_xticks(range(len(present)), [textwrap.fill(label(c), 18, break_on_hyphens=False) + f"\n(n={n})" for c, n in
                                        zip(present, stats["size"])], fontsize=8)
    ax.set_ylabel("Test accuracy at the end (%)")
    fig.suptitle(title)
    return fig


def curves_figure(metrics: pd.DataFrame, title: str, split: str = "test"):
    """Per network: accuracy over epochs, one line per control (mean over trials)."""
    from lth.results import figures
    acc = metrics[(metrics.split == split) & (metrics.metric == "accuracy")]
    per_epoch = meta_table(metrics).groupby(["experiment", "control"])["steps_per_epoch"].first()
    names = list(dict.fromkeys(acc.experiment))
    fig, axes = figures.subplots(len(names))
    for ax, name in zip(axes[0], names):
        for i, (control, part) in enumerate(acc[acc.experiment == name].groupby("control", sort=False)):
            curve = part.groupby("iteration")["value"].agg(["mean", "min", "max"])
            epochs = curve.index / per_epoch[(name, control)]
            ax.plot(epochs, 100 * curve["mean"], color=f"C{i}", label=f"{label(control)} (n={part.trial.nunique()})")
            ax.fill_between(epochs, 100 * curve["min"], 100 * curve["max"], color=f"C{i}", alpha=0.15, linewidth=0)
        ax.axhline(95, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(f"{split.capitalize()} accuracy (%)")
        ax.set_ylim(bottom=max(0, ax.get_ylim()[0]))
        ax.set_title(label(name), fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig
