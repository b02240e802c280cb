"""How to train: `TrainConfig` (the hyperparameters) and `Steps` (its step strings resolved).

Durations are step strings ('50000it' iterations, '160ep' epochs, or a plain int of
iterations), parsed by the one parser, `lth.train.schedules.parse_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lth.data import steps_per_epoch
from lth import validate as v
from lth.train.schedules import SCHEDULES, parse_steps

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by every network of a stack (frozen; a value of the wrong type or out of
    range raises ValueError naming the field, the value and what is valid).

    Durations ("steps") are an int of iterations or a string '<n>it' (iterations) or '<n>ep'
    (epochs: n * (train size // batch_size) iterations, the
    last partial batch of an epoch dropped).

    Fields (default in brackets):
      iterations: steps, > 0. Length of training ['50000it'].
      batch_size: int >= 1. Training examples per step, per network [60].
      optimizer: 'adam' or 'sgd' ['adam'].
      lr: float > 0. Peak learning rate (before schedule and warmup) [1.2e-3].
      momentum: float >= 0. SGD momentum; unused by Adam [0.0].
      nesterov: bool. SGD Nesterov momentum (needs momentum > 0); unused by Adam [False].
      weight_decay: float >= 0. L2 penalty coefficient added to the gradient (Adam and SGD) [0.0].
      schedule: 'constant', 'multistep' or 'cosine' (see `lth.train.schedules.lr_at`) ['constant'].
      milestones: tuple of steps. Where 'multistep' multiplies the rate by ``gamma`` [()].
      gamma: float > 0. The 'multistep' factor per milestone passed [0.1].
      warmup: steps >= 0. Linear warmup from lr/warmup to lr over this many iterations [0].
      eval_every: steps >= 1. Validation and test evaluation interval [100].
      eval_batch_size: int >= 1. Evaluation batch (memory only; results do not depend on it) [2000].
      checkpoint_every: steps >= 1. Interval of resumable progress checkpoints; each holds every
        network's weights and optimiser moments, so not too often [5000].
      precision: 'fp32' (PyTorch defaults), 'tf32' (matmuls on TF32 tensor cores) or 'bf16'
        (TF32 matmuls plus a bf16-autocast forward pass) ['fp32'].
      compile: bool. torch.compile the training and evaluation forward passes [False].
    """
    iterations: str | int = "50000it"
    batch_size: int = 60
    optimizer: str = "adam"
    lr: float = 1.2e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    milestones: tuple = ()
    gamma: float = 0.1
    warmup: str | int = 0
    eval_every: str | int = 100
    eval_batch_size: int = 2000  # memory only: conv activations of many networks add up
    checkpoint_every: str | int = 5000  # a checkpoint holds every network's weights and moments: not too often
    precision: str = "fp32"  # tf32: matmuls on TF32 tensor cores; bf16: autocast too (see matmul_precision)
    compile: bool = False  # torch.compile training and evaluation forward passes (stacked_losses, stacked_eval_sums)

    def __post_init__(self):
        v.steps(self, "iterations", minimum=1)
        v.integer(self, "batch_size", minimum=1)
        v.choice(self, "optimizer", OPTIMIZERS)
        v.number(self, "lr", above=0)
        v.number(self, "momentum", minimum=0)
        v.flag(self, "nesterov")
        if self.nesterov and self.momentum == 0:
            v.fail(self, "nesterov", "False when momentum is 0 (Nesterov momentum needs TrainConfig.momentum > 0)")
        v.number(self, "weight_decay", minimum=0)
        v.choice(self, "schedule", SCHEDULES)
        v.items(self, "milestones", each=lambda m: _milestone(self, m))
        v.number(self, "gamma", above=0)
        v.steps(self, "warmup", minimum=0)
        v.steps(self, "eval_every", minimum=1)
        v.integer(self, "eval_batch_size", minimum=1)
        v.steps(self, "checkpoint_every", minimum=1)
        v.choice(self, "precision", PRECISIONS)
        v.flag(self, "compile")

    def steps(self, train_size: int) -> "Steps":
        """The step strings in iterations for a training set of ``train_size`` examples.
        Raises ValueError for a malformed step string."""
        per_epoch = steps_per_epoch(train_size, self.batch_size)
        to_it = lambda s: parse_steps(s, per_epoch)
        return Steps(total=to_it(self.iterations), warmup=to_it(self.warmup),
                     eval_every=max(1, to_it(self.eval_every)),
                     checkpoint_every=max(1, to_it(self.checkpoint_every)),
                     milestones=tuple(to_it(m) for m in self.milestones))


def _milestone(cfg: "TrainConfig", milestone) -> None:
    try:
        parse_steps(milestone, 1)
    except ValueError:
        v.fail(cfg, "milestones", "a tuple of durations, e.g. ('80ep', '120ep') or (32000, 48000)")


@dataclass(frozen=True)
class Steps:
    """A TrainConfig's step strings resolved to iterations for one data set (all ints >= 0)."""
    total: int
    warmup: int
    eval_every: int
    checkpoint_every: int
    milestones: tuple[int, ...]
