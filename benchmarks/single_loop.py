"""The best single-network PyTorch training loop a performance-minded user would write instead of
the DataLoader loop (as the CIFAR-10 speed-record code bases do), for one masked network:

- the training set resident on the device; for conv nets, augmentation (random flip, 4-pixel
  pad-and-crop) of the whole training set on the device once per epoch;
- the forward pass (with the loss) compiled with torch.compile; bf16 autocast and channels_last
  for conv nets; the optimiser step (gradient masking included) compiled as well;
- the whole step (batch gather, forward, backward, gradient masking, optimiser) captured as one
  CUDA graph of ``chunk`` consecutive steps and replayed, so the host launches one graph per chunk.

On a CPU (or with compile/graphs off) the same body runs eagerly: that is what ``--smoke`` checks.

    loop = SingleLoop("conv2", x, y, batch=60, optimizer="adam", lr=2e-4, precision="bf16", device=dev)
    rate = loop.time(seconds=2.0)   # steps (= network-iterations) per second
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from lth.data import augment_cifar
from lth.nets.models import build_model, prunable_weights
from throughput import settle_compile_workers


class SingleLoop:
    """One masked network (density ~0.5) trained by the fastest single-network loop.

    x: (N, C, H, W) float training images (normalised), y: (N,) int64 labels, on any device (moved
    to ``device``). precision: 'fp32' (full fp32 matmuls), 'tf32' (TF32 matmuls) or 'bf16' (bf16
    autocast, TF32 matmuls). augment: per-epoch flip + crop of the whole set (conv nets). compile:
    torch.compile the loss and the optimiser step. graphs: capture ``chunk`` steps as a CUDA graph
    (CUDA devices only). Raises ValueError for an unknown precision or optimizer."""

    WARMUP = 3  # eager steps before capture (lazy initialisation must not happen inside a graph)

    def __init__(self, model_name: str, x: torch.Tensor, y: torch.Tensor, batch: int, optimizer: str, lr: float,
                 precision: str, device: torch.device, augment: bool = False, compile: bool = True,
                 graphs: bool = True, chunk: int = 50, seed: int = 0):
        if precision not in ("fp32", "tf32", "bf16"):
            raise ValueError(f"precision must be 'fp32', 'tf32' or 'bf16', got {precision!r}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.device, self.batch, self.precision = device, batch, precision
        self.graphs_on = graphs and device.type == "cuda"
        self.chunk = chunk if self.graphs_on else 1
        conv = model_name != "lenet300"
        self.layout = torch.channels_last if conv and device.type == "cuda" else torch.contiguous_format
        self.source = x.to(device)
        self.x = self.source.clone().contiguous(memory_format=self.layout)  # this epoch's (augmented) images
        self.y = y.to(device)
        self.augment = augment
        self.generator = torch.Generator(device=device).manual_seed(seed)
        model = build_model(model_name, tuple(x.shape[1:]), 10, seed=seed).to(device)
        self.model = model.to(memory_format=self.layout) if conv else model
        params = dict(self.model.named_parameters())
        names = list(prunable_weights(self.model))
        self.weights = [params[n] for n in names]
        # each mask in its weight's memory layout, so masking the gradient is one multi-tensor kernel
        self.masks = [torch.empty_like(p, requires_grad=False).copy_(
            torch.rand(p.shape, generator=self.generator, device=device) < 0.5) for p in self.weights]
        with torch.no_grad():
            for p, m in zip(self.weights, self.masks):
                p.mul_(m)
        if optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, capturable=self.graphs_on)
        else:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        self.compiled = compile
        self.loss = torch.compile(self._loss, dynamic=False) if compile else self._loss
        self.update = torch.compile(self._update, dynamic=False) if compile else self._update
        self.steps_per_epoch = len(self.y) // batch
        self.order = torch.empty(self.steps_per_epoch, batch, dtype=torch.long, device=device)
        self.plan = torch.zeros(self.chunk, batch, dtype=torch.long, device=device)
        self.position, self.eager_steps, self.graph = self.steps_per_epoch, 0, None

    # ---- the step ------------------------------------------------------------------------
    def _loss(self, x_all: torch.Tensor, y_all: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        x = x_all[idx].contiguous(memory_format=self.layout)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return F.cross_entropy(self.model(x).float(), y_all[idx])

    def _update(self) -> None:
        torch._foreach_mul_([p.grad for p in self.weights], self.masks)  # the gradient of weight * mask
        self.optimizer.step()

    def _body(self, k: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(self.x, self.y, self.plan[k]).backward()
        self.update()

    # ---- running -------------------------------------------------------------------------
    def _next_chunk(self, count: int) -> None:
        """Fill the plan with the next ``count`` batches; a new epoch re-augments and reshuffles."""
        if self.position + count > self.steps_per_epoch:
            self.order.copy_(torch.randperm(len(self.y), generator=self.generator, device=self.device)
                             [:self.steps_per_epoch * self.batch].view(self.steps_per_epoch, self.batch))
            if self.augment:  # in place: the captured graph keeps reading the same buffer
                self.x.copy_(augment_cifar(self.source, self.generator))
            self.position = 0
        self.plan[:count].copy_(self.order[self.position:self.position + count])
        self.position += count

    def run(self, steps: int) -> None:
        """Train ``steps`` steps (whole chunks once the graph is captured)."""
        self.model.train()
        done = 0
        while done < steps:
            self._next_chunk(self.chunk)
            if self.graph is not None:
                self.graph.replay()
            elif self.graphs_on and self.eager_steps >= self.WARMUP:
                torch.cuda.synchronize(self.device)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    for k in range(self.chunk):
                        self._body(k)
                self.graph.replay()
            else:
                for k in range(self.chunk):
                    self._body(k)
                self.eager_steps += self.chunk
            done += self.chunk

    def time(self, seconds: float = 2.0, probe: int = 10) -> float:
        """Steps per second over about ``seconds`` (at least ``probe`` steps, whole chunks), after a
        warm-up that compiles and captures (not timed)."""
        _sync(self.device)
        self.run((self.WARMUP + 2) * self.chunk if self.graphs_on else 1)
        _sync(self.device)
        if self.compiled:
            settle_compile_workers(self.device)
        start = time.perf_counter()
        probe = self.chunk * max(1, probe // self.chunk)
        self.run(probe)
        _sync(self.device)
        rate = probe / max(time.perf_counter() - start, 1e-6)
        steps = max(probe, int(rate * seconds) // self.chunk * self.chunk)
        start = time.perf_counter()
        self.run(steps)
        _sync(self.device)
        elapsed = time.perf_counter() - start
        self.check_masks()
        return steps / elapsed

    def check_masks(self) -> None:
        """Raise AssertionError if a masked weight moved or a weight is not finite."""
        for p, m in zip(self.weights, self.masks):
            if not torch.isfinite(p).all() or bool(((p != 0) & (m == 0)).any()):
                raise AssertionError("single loop: a masked weight moved or a weight is not finite")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
