"""Network architectures of the lottery-ticket papers, plus init and prunable-weight bookkeeping.

Every model is a plain ``nn.Module`` taking ``(B, C, H, W)`` and returning ``(B, num_classes)`` logits.
The training engine runs many copies at once with ``torch.func.functional_call`` under ``vmap``, so forwards
avoid in-place activation ops, ``.item()``, data-dependent Python branches and ``.view`` (inputs under vmap
need not be contiguous).

Layer kinds drive the papers' pruning rules (e.g. LTH prunes the output layer at half the fc rate and leaves
ResNet shortcuts unpruned), so ``prunable_weights`` tags each Linear/Conv2d weight with one of:
``conv``, ``shortcut`` (Conv2d inside a module named ``shortcut`` or torchvision's ``downsample``), ``fc``,
``output`` (the last Linear). Models of the user's own join by name (`lth.nets.user_models.register_model`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.nets.inits import INITS, check_init, initialize, variance_scaling_

__all__ = [
    "INITS",
    "MODELS",
    "build_model",
    "count_weights",

    "initialize",
    "prunable_weights",
]

KINDS = ("conv", "shortcut", "fc", "output")
BIAS = "bias"  # the kind of a bias pruned with the weights (models with prune_biases = True only)


class BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that normalises in fp32 under bf16 autocast. Stacked (vmapped) batch norm rejects
    bf16 inputs with fp32 running statistics; unstacked autocast runs batch norm in fp32 anyway."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float() if x.dtype in (torch.bfloat16, torch.float16) else x)


# --------------------------------------------------------------------------- fully connected


def _linears(sizes: Sequence[int], bias: bool) -> nn.ModuleList:
    """Linear layers sizes[0] -> sizes[1] -> ... -> sizes[-1], created (and so initialised) in order."""
    return nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:]))


def _classify(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """(B, F) features through Linear+ReLU per hidden layer, then the last Linear: (B, classes) logits."""
    for layer in layers[:-1]:
        x = F.relu(layer(x))
    return layers[-1](x)


class FC(nn.Module):
    """Input flattened, then Linear+ReLU per hidden width, then a Linear output layer."""

    def __init__(self, in_features: int, widths: Sequence[int], num_classes: int, bias: bool = True):
        super().__init__()
        self.fc = _linears([in_features, *widths, num_classes], bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _classify(self.fc, x.flatten(1))


# --------------------------------------------------------------------------- LeNet-5 variants


class LeNet5(nn.Module):
    """Classic LeNet-5 with ReLU and max-pooling: conv6-pool-conv16-pool-fc120-fc84-out.

    The original expects 32x32 inputs; smaller ones (MNIST's 28x28) are zero-padded up to 32x32 by the first
    conv, which gives the 400-wide flatten of Pensia et al.'s 400-120-84-10 head. ``widths``: the hidden fc widths.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, bias: bool = True,
                 widths: Sequence[int] = (120, 84)):
        super().__init__()
        c, h, w = input_shape
        pad = (max(0, (32 - h) // 2), max(0, (32 - w) // 2))
        self.conv = nn.ModuleList([
            nn.Conv2d(c, 6, 5, padding=pad, bias=bias),
            nn.Conv2d(6, 16, 5, bias=bias),
        ])
        self.fc = _linears([_conv_out_flat(input_shape, self._features), *widths, num_classes], bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.conv:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _classify(self.fc, self._features(x))


class LeNet5Caffe(nn.Module):
    """Caffe's LeNet (SNIP's LeNet-5-Caffe): conv20-pool-conv50-pool-fc500-out, 'valid' convs.

    As in Caffe and SNIP's code, the convs have no ReLU; only the 500-wide hidden layer does.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, bias: bool = True):
        super().__init__()
        c = input_shape[0]
        self.conv = nn.ModuleList([nn.Conv2d(c, 20, 5, bias=bias), nn.Conv2d(20, 50, 5, bias=bias)])
        self.fc = _linears([_conv_out_flat(input_shape, self._features), 500, num_classes], bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.conv:
            x = F.max_pool2d(conv(x), 2)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _classify(self.fc, self._features(x))


class TicketCNN(nn.Module):
    """catid/train_ticket's SimpleCNN (PyTorch's MNIST example): conv 32, conv 64 (3x3), 2x2 max-pool,
    fc 9216-128, fc 128-out; its dropout layers left out (see the recipe)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.ModuleList([nn.Conv2d(c, 32, 3), nn.Conv2d(32, 64, 3)])
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        self.fc = nn.ModuleList([nn.Linear(flat, 128), nn.Linear(128, num_classes)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv[1](F.relu(self.conv[0](x))))
        x = F.max_pool2d(x, 2).flatten(1)
        return self.fc[1](F.relu(self.fc[0](x)))


# --------------------------------------------------------------------------- Conv-2/4/6 (Frankle & Carbin)


class ConvNet(nn.Module):
    """Frankle & Carbin's Conv-2/4/6: pairs of 3x3 'same' convs, each pair followed by a 2x2 max-pool,
    then fc 256-256-out. ``stages`` = number of conv pairs (1, 2, 3 for Conv-2, -4, -6)."""

    STAGE_WIDTHS = (64, 128, 256, 512)

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, stages: int, bias: bool = True):
        super().__init__()
        channels = [input_shape[0]]
        for width in self.STAGE_WIDTHS[:stages]:
            channels += [width, width]
        self.conv = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1, bias=bias) for a, b in zip(channels[:-1], channels[1:])
        )
        self.fc = _linears([_conv_out_flat(input_shape, self._features), 256, 256, num_classes], bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.conv):
            x = F.relu(conv(x))
            if i % 2 == 1:  # a pool closes every pair of convs
                x = F.max_pool2d(x, 2)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _classify(self.fc, self._features(x))


# --------------------------------------------------------------------------- CIFAR ResNets


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN; identity shortcut, or 1x1 stride-2 conv+BN when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, bn_affine: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_ch, affine=bn_affine)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_ch, affine=bn_affine)
        # The name "shortcut" is what prunable_weights keys on.
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), BatchNorm2d(out_ch, affine=bn_affine))
            if stride != 1 or in_ch != out_ch
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al. (2016) CIFAR ResNet of depth 6D+2: conv+BN, 3 stages of D blocks (widths W, 2W, 4W; stages
    2 and 3 start with stride 2), global average pool, Linear output."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        depth: int,
        width: int = 16,
        bias: bool = True,
        bn_affine: bool = True,
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6D+2, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.conv = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        self.bn = BatchNorm2d(width, affine=bn_affine)
        blocks, in_ch = [], width
        for stage in range(3):
            out_ch = width * 2**stage
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride, bn_affine))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- CIFAR VGG

_VGG_PLANS = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512),
}


class CifarVGG(nn.Module):
    """CIFAR VGG (Liu et al. / open_lth): 3x3 conv+BN+ReLU per plan entry, "M" = 2x2 max-pool, then global
    average pool and a single Linear output layer. Convs have no bias since BN follows each one."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        depth: int,
        bias: bool = True,
        bn_affine: bool = True,
    ):
        super().__init__()
        convs, bns, self._pool_after = [], [], []
        in_ch = input_shape[0]
        for entry in _VGG_PLANS[depth]:
            if entry == "M":
                self._pool_after[-1] = True
                continue
            convs.append(nn.Conv2d(in_ch, entry, 3, padding=1, bias=False))
            bns.append(BatchNorm2d(entry, affine=bn_affine))
            self._pool_after.append(False)
            in_ch = entry
        self.conv = nn.ModuleList(convs)
        self.bn = nn.ModuleList(bns)
        self.fc = nn.Linear(in_ch, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, bn, pool in zip(self.conv, self.bn, self._pool_after):
            x = F.relu(bn(conv(x)))
            if pool:
                x = F.max_pool2d(x, 2)
        return self.fc(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- registry


def _conv_out_flat(input_shape: tuple[int, int, int], features: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Flatten size after ``features`` for one input, from a throwaway zero pass (no RNG is drawn)."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).shape[1]


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lenet300": lambda shape, n, **kw: FC(math.prod(shape), (300, 100), n, **kw),
    "fc": lambda shape, n, *, widths, **kw: FC(math.prod(shape), tuple(widths), n, **kw),
    "lenet5": LeNet5,
    "lenet5_caffe": LeNet5Caffe,
    "ticket_cnn": TicketCNN,
    "conv2": lambda shape, n, **kw: ConvNet(shape, n, stages=1, **kw),
    "conv4": lambda shape, n, **kw: ConvNet(shape, n, stages=2, **kw),
    "conv6": lambda shape, n, **kw: ConvNet(shape, n, stages=3, **kw),
    "resnet20": lambda shape, n, **kw: CifarResNet(shape, n, depth=20, **kw),
    "resnet32": lambda shape, n, **kw: CifarResNet(shape, n, depth=32, **kw),
    "resnet56": lambda shape, n, **kw: CifarResNet(shape, n, depth=56, **kw),
    "vgg16": lambda shape, n, **kw: CifarVGG(shape, n, depth=16, **kw),
    "vgg19": lambda shape, n, **kw: CifarVGG(shape, n, depth=19, **kw),
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)  # built in; lth.nets.user_models.model_names adds the registered
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}  # lth.nets.user_models.register_model: name -> factory
PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)  # what prunable_weights looks for (subclasses too)


def build_model(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    init: str = "glorot_normal",
    seed: int | None = None,
    **kwargs,
) -> nn.Module:
    """Build model ``name`` (built-in, or registered with `register_model`) for ``(C, H, W)`` inputs
    and initialise it with ``init`` (``"default"`` keeps the weights the constructor drew).

    With a ``seed`` the result is bit-identical across calls (construction and init both draw from it);
    without one, torch's global RNG is used. ``kwargs`` go to the architecture (e.g. ``widths``, ``bias``,
    ``width``, ``bn_affine``) or to the registered factory.
    Raises ValueError for an unknown name, or a registered factory that returns no ``nn.Module`` or
    one without prunable layers.
    """
    if name not in _BUILDERS and name not in _REGISTERED:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join((*MODELS, *_REGISTERED))} "
                         "(or register your own with lth.register_model(name, factory))")
    check_init(init)
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
    make = (lambda: _BUILDERS[name](input_shape, num_classes, **kwargs)) if name in _BUILDERS \
        else (lambda: _call_factory(name, input_shape, num_classes, kwargs))
    if seed is None:
        model = make()
        initialize(model, init)
        return model
    # fork_rng keeps the caller's global RNG stream untouched by torch's default constructors.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make()
    initialize(model, init, torch.Generator().manual_seed(seed))
    return model


# --------------------------------------------------------------------------- the user's models (lth.nets.user_models)


def _call_factory(name: str, input_shape: tuple[int, int, int], num_classes: int, kwargs: dict) -> nn.Module:
    factory = _REGISTERED[name]
    try:
        named = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        named = {}
    extra = {k: v for k, v in (("input_shape", input_shape), ("num_classes", num_classes))
             if k in named and k not in kwargs}
    model = factory(**kwargs, **extra)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model factory {name!r} returned a {type(model).__name__}, not a torch.nn.Module")
    if not prunable_weights(model):
        found = sorted({type(m).__name__ for m in model.modules()})
        raise ValueError(f"model {name!r} has no prunable layers: looked for "
                         f"{', '.join('torch.nn.' + t.__name__ for t in PRUNABLE_TYPES)} (and their subclasses); "
                         f"its modules are {', '.join(found)}")
    return model


# --------------------------------------------------------------------------- prunable weights


def prunable_weights(model: nn.Module) -> dict[str, str]:
    """Map the parameter name of every Linear/Conv2d weight to its kind, in registration order.

    The last registered Linear is ``"output"``; Conv2d under a module named ``shortcut`` (ours) or
    ``downsample`` (torchvision's ResNets) is ``"shortcut"``; other Conv2d are ``"conv"``, other Linear ``"fc"``.
    A model with the attribute ``prune_biases = True`` (SNIP's code prunes biases in the same top-k as
    weights; `lth.experiments.pai`) also lists each Linear/Conv2d bias, of kind ``"bias"``, after the weights.
    """
    kinds: dict[str, str] = {}
    last_linear = None
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, nn.Conv2d):
            is_shortcut = bool({"shortcut", "downsample"} & set(module_name.split(".")))
            kinds[prefix + "weight"] = "shortcut" if is_shortcut else "conv"
        elif isinstance(module, nn.Linear):
            kinds[prefix + "weight"] = "fc"
            last_linear = prefix + "weight"
    if last_linear is not None:
        kinds[last_linear] = "output"
    if getattr(model, "prune_biases", False):
        for module_name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                kinds[f"{module_name}.bias" if module_name else "bias"] = BIAS
    return kinds


def count_weights(model: nn.Module, kinds: Iterable[str] | str | None = None) -> int:
    """Number of prunable weights, optionally only those of the given kind(s)."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    wanted = None if kinds is None else set(kinds)
    if wanted is not None and not wanted <= set(KINDS):
        raise ValueError(f"unknown kinds {sorted(wanted - set(KINDS))}; expected some of {', '.join(KINDS)}")
    params = dict(model.named_parameters())
    return sum(params[name].numel() for name, kind in prunable_weights(model).items() if wanted is None or kind in wanted)
