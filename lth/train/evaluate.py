"""Evaluation of every network of a stack on a whole split: mean loss and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lth.data import Split
from lth.nets.stack import NetworkStack
from lth.train.step import compiled, stacked_logits

@torch.no_grad()
def stacked_eval_sums(template: torch.nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                      x: torch.Tensor, y: torch.Tensor, autocast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) summed loss and (M,) number of correct predictions of every network on one batch ``x``
    shared by all of them. Compiled, the bias and activation passes that vmap leaves after each
    batched matmul fuse with each other and with the loss."""
    logits = stacked_logits(template, params, buffers, x, autocast, shared_input=True)  # (M, B, C)
    loss = F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none").sum(1)
    return loss, (logits.argmax(-1) == y).sum(1)


def evaluate(stack: NetworkStack, split: Split, batch_size: int = 2000, precision: str = "fp32",
             compile: bool = False, *, graphs: dict | None = None) -> dict[str, torch.Tensor]:
    """Mean loss and accuracy of every network on a whole split: {'loss': (M,), 'accuracy': (M,)}
    on the stack's device, accuracy a fraction in [0, 1]. Puts the stack in eval mode.

    ``batch_size``: examples per forward pass (memory only). ``precision``: 'bf16' autocasts the
    forward pass; other values run it in fp32. ``compile``: torch.compile the pass.
    ``graphs``: on a GPU, a dict (initially empty) owned by the caller in which each (stack, split)
    pass is captured once as a CUDA graph and replayed on later calls (validation and test sets are
    fixed tensors, evaluated hundreds of times per training); None evaluates eagerly."""
    if graphs is None:
        return _evaluate(stack, split, batch_size, precision, compile)
    key = (id(stack), id(split))
    if key not in graphs:
        _evaluate(stack, split, batch_size, precision, compile)  # warm up outside the capture
        torch.cuda.synchronize()
        captured = torch.cuda.CUDAGraph()
        with torch.cuda.graph(captured):
            outputs = _evaluate(stack, split, batch_size, precision, compile)
        graphs[key] = (captured, outputs)
    captured, outputs = graphs[key]
    captured.replay()
    return {name: value.clone() for name, value in outputs.items()}


def _evaluate(stack: NetworkStack, split: Split, batch_size: int, precision: str, compile: bool) -> dict[str, torch.Tensor]:
    stack.train(False)
    sums = compiled(stacked_eval_sums) if compile else stacked_eval_sums
    loss = torch.zeros(stack.size, device=stack.device)
    correct = torch.zeros(stack.size, device=stack.device)
    for start in range(0, len(split), batch_size):
        x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        batch_loss, batch_correct = sums(stack.template, stack.params, stack.buffers, x, y, precision == "bf16")
        loss += batch_loss
        correct += batch_correct
    return {"loss": loss / len(split), "accuracy": correct / len(split)}
