"""Your own models under IMP and pruning at initialisation: torchvision's ResNet-18 adapted to 32x32
inputs, and a small MLP written here. Run it (seconds on a laptop, synthetic CIFAR-shaped data):

    python examples/user_models.py

A factory is any callable returning an ``nn.Module``; ``lth.register_model`` names it. It is called
with the config's ``model_kwargs`` and, where its signature names them, ``input_shape`` (C, H, W)
and ``num_classes``. Prunable weights are its ``nn.Linear`` and ``nn.Conv2d`` weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import lth


def cifar_resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs: a 3x3 stride-1 stem convolution and no max-pool
    (the CIFAR adaptation of He et al. 2016); 11.2M weights."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class MLP(nn.Module):
    """Flatten, then Linear + ReLU per hidden width, then a Linear output layer."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, hidden: tuple[int, ...] = (64, 32)):
        super().__init__()
        sizes = [math.prod(input_shape), *hidden, num_classes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


lth.register_model("cifar_resnet18", cifar_resnet18)
lth.register_model("my_mlp", MLP)   # a class is a factory too: MLP(input_shape=..., num_classes=..., **model_kwargs)


def main(root: str = "runs") -> None:
    from lth.data import load_splits
    from lth.experiments import kind_of
    from lth.experiments.imp import ImpConfig
    from lth.experiments.pai import PaiConfig
    from lth.experiments.runner import Runner
    from lth.results.analysis import level_table
    from lth.train.config import TrainConfig

    data = load_splits("synthetic", synthetic_shape=(3, 32, 32), synthetic_sizes=(256, 64, 64))
    train = TrainConfig(iterations="8it", batch_size=32, lr=1e-3, eval_every="4it")
    # ResNet-18: convolutions pruned 20% per level, the output layer 10%, torchvision's downsample
    # convolutions (kind 'shortcut') kept, as the LTH papers leave ResNet shortcuts unpruned.
    resnet = ImpConfig(experiment="user_resnet18", dataset="synthetic", model="cifar_resnet18", init="kaiming_normal",
                       levels=1, rates={"conv": 0.2, "output": 0.1})
    mlp = ImpConfig(experiment="user_mlp", dataset="synthetic", model="my_mlp", model_kwargs={"hidden": (64, 32)},
                    levels=2)
    for config in (resnet, mlp):
        result = Runner(kind_of("imp"), config, {"": train}, root=root, device="auto", data=data).run()
        print(f"{config.model}: IMP\n{level_table(result.metrics).to_string(index=False)}\n")
    snip = PaiConfig(experiment="user_mlp_snip", dataset="synthetic", model="my_mlp", methods=("snip",),
                     densities=(0.1,))
    result = Runner(kind_of("pai"), snip, {"pai": train}, root=root, device="auto", data=data).run()
    print(f"my_mlp: SNIP at density 0.1\n{level_table(result.metrics).to_string(index=False)}")


if __name__ == "__main__":
    main()
