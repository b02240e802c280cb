"""Zhou et al.'s learned supermask: a mask sampled from Bernoulli(sigmoid(score)) at every forward pass.

Zhou, Lan, Liu & Yosinski 2019 ("Deconstructing lottery tickets", `train_supermask.py` and
`masked_networks.py` of uber-research/deconstructing-lottery-tickets): each weight has a logit m
(initialised to a constant, 0 by default: p = 0.5); each forward pass samples the mask
b ~ Bernoulli(sigmoid(m)) and computes with ``weight * b``; the backward pass is straight-through
into sigmoid(m) (``b + sigmoid(m) - stop_gradient(sigmoid(m))``). At evaluation the mask is sampled
too (their code's default; it rounds only with ``--round_mask``).

The noise is a counter-based hash, not torch's generator: uniform u = hash(noise seed, draw, stream,
position), a pure function of integers, so a sample is the same on every device, inside ``vmap``
and CUDA graphs, and a run resumed from a checkpoint draws exactly the masks an uninterrupted run
would. The layer's draw counter (a buffer, checkpointed with the network) advances by one at every
training forward pass; evaluation reads stream 1 at the current count without advancing it, so every
evaluation of a stack uses one fixed sample per network, the same one `sample` reports.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
TRAIN_STREAM, EVAL_STREAM = 0, 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (int64 tensors holding values < 2^32; every product stays < 2^63)."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & MASK32
    return x ^ (x >> 16)


def uniform(shape: tuple[int, ...], seed: torch.Tensor, draw: torch.Tensor, stream: int, device=None) -> torch.Tensor:
    """(shape) float32 in [0, 1), 24 random bits each, a pure function of (seed, draw, stream, position).

    ``seed``, ``draw``: 0-d int64 tensors (a layer's buffers; batched under vmap), seed >= 0.
    ``stream``: 0 (training) or 1 (evaluation)."""
    n = 1
    for d in shape:
        n *= int(d)
    index = torch.arange(n, device=device if device is not None else seed.device, dtype=torch.int64)
    key = _mix((seed & MASK32) ^ _mix((seed >> 32) & MASK32) ^ ((draw * 0x85EBCA6B) & MASK32) ^ (stream * 0x27D4EB2F))
    x = _mix(((index * 0x9E3779B1) & MASK32) ^ key)
    return ((x >> 8).to(torch.float32) * (1.0 / (1 << 24))).reshape(shape)


def sample(scores: torch.Tensor, seed: torch.Tensor, draw: torch.Tensor, stream: int) -> torch.Tensor:
    """0/1 mask in ``scores``' dtype: 1 where u < sigmoid(score), u = `uniform` (no gradient)."""
    u = uniform(tuple(scores.shape), seed, draw, stream, scores.device)
    return (u < torch.sigmoid(scores.detach())).to(scores.dtype)


def mask_with_gradient(scores: torch.Tensor, seed: torch.Tensor, draw: torch.Tensor, training: bool) -> torch.Tensor:
    """The sampled mask with Zhou et al.'s straight-through gradient into sigmoid(score)
    (d mask / d score = sigmoid'(score)); training samples stream 0 at ``draw``, evaluation stream 1."""
    soft = torch.sigmoid(scores)
    hard = sample(scores, seed, draw, TRAIN_STREAM if training else EVAL_STREAM)
    return hard + (soft - soft.detach())
