"""Dropout whose CPU masks come from the Rust core.

Why: ``torch.nn.functional.dropout`` on the CPU draws its mask with ``bernoulli_`` from one
sequential generator, and in a MiniLM training step on 2 cores dropout took about a fifth of
the step (495 ms with dropout 0.1, 398 ms with it off; most of it on the attention
probabilities, ``(B, heads, L, L)``). `fastbert._core.dropout_scale` fills the same kind of
scale tensor (0 where dropped, ``1 / (1 - p)`` elsewhere) from a counter-based generator in
parallel; the forward is then one multiply, and autograd's backward multiplies the gradient
by the same tensor, as PyTorch's does.

Each call draws its 64-bit seed from PyTorch's default generator, so ``torch.manual_seed``
(and `fastbert.training.seeds.seed_everything`) makes runs repeatable as before; the masks differ from
PyTorch's own, with the same distribution. Off the CPU, for dtypes other than float32, and
for ``p`` outside ``(0, 1)`` PyTorch's dropout runs; ``FASTBERT_FAST_DROPOUT=0`` makes it run
everywhere. :func:`dropout_scale_reference` is the numpy reference of the generator.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import fastbert._core as _core

__all__ = ["Dropout", "dropout", "dropout_scale_reference", "fast_dropout_applies"]

#: ``FASTBERT_FAST_DROPOUT=0``: PyTorch's dropout everywhere (read at import).
ENABLED = os.environ.get("FASTBERT_FAST_DROPOUT", "1") != "0"
_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)


def fast_dropout_applies(x: Tensor, p: float) -> bool:
    """Whether :func:`dropout` with ``training=True`` takes the Rust path for ``x``."""
    return ENABLED and 0.0 < p < 1.0 and x.device.type == "cpu" and x.dtype == torch.float32


def draw_seed() -> int:
    """A 64-bit seed from PyTorch's default CPU generator."""
    return int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64)) & (2**64 - 1)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``torch.nn.functional.dropout(x, p, training)``, with the mask from the Rust core on the CPU."""
    if not training or p == 0.0:
        return x
    if not fast_dropout_applies(x, p):
        return F.dropout(x, p, training=True)
    scale = torch.from_numpy(_core.dropout_scale(x.numel(), float(p), draw_seed()))
    return x * scale.view(x.shape)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same name, no parameters, so state dicts are unchanged) using :func:`dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


def dropout_scale_reference(n: int, p: float, seed: int) -> np.ndarray:
    """What ``_core.dropout_scale(n, p, seed)`` returns, element by element in numpy.

    Element ``i``'s draw is 32 bits of ``mix64(seed + (i // 2 + 1) * γ)`` (low half for even
    ``i``, high half for odd); it is dropped when the draw is below ``round(p · 2³²)``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), not {p}")
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in Rust
        k = np.arange(n, dtype=_U64) // _U64(2) + _U64(1)
        z = _U64(seed) + k * _GOLDEN
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        z = z ^ (z >> _U64(31))
    odd = (np.arange(n) % 2).astype(bool)
    draws = np.where(odd, z >> _U64(32), z & _U64(0xFFFFFFFF))
    threshold = math.floor(p * 2.0**32 + 0.5)  # Rust's f64::round: halves away from zero
    keep = np.float32(1.0 / (1.0 - p))
    return np.where(draws < threshold, np.float32(0.0), keep).astype(np.float32)
