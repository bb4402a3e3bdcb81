"""Attention for the encoders, on padded ``(B, L, h, d)`` or packed ``(T, h, d)`` batches.

Shapes: ``B`` batch, ``L`` padded length, ``T`` total real tokens in a packed batch, ``h`` heads,
``d`` head size; ``cu_seqlens`` ``(B+1,)`` int32 holds cumulative lengths (FlashAttention's
convention).

- `padded_attention`: PyTorch's ``scaled_dot_product_attention`` with a key-padding mask (or,
  with dropout on the CPU, `math_attention`, whose mask comes from the Rust core);
- `repad_attention`: packed tensors scattered into a padded batch and back, the CPU path for the
  packed layout (PyTorch has no variable-length attention on the CPU); on CUDA
  `fastbert.kernels.varlen_attention` takes its place without re-padding;
- `first_query_attention`: one query per sequence, for a last layer that only the pooler reads;
- `eager_attention`: the textbook formula, the reference the fast paths are tested against.

Each takes an optional ``window=(left, right)``, FlashAttention-2's sliding window (ModernBERT's
local layers): query ``i`` sees key ``j`` only where ``i − left ≤ j ≤ i + right``, positions
counted within the sequence; −1 leaves that side unbounded. The kernels take the same pair as
``window_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from fastbert.model.dropout import dropout, fast_dropout_applies

__all__ = [
    "Attend",
    "VarlenAttention",
    "Window",
    "band_mask",
    "eager_attention",
    "first_query_attention",
    "math_attention",
    "packed_positions",
    "padded_attention",
    "repad_attention",
]

#: A sliding window ``(left, right)``: query ``i`` sees key ``j`` iff ``i − left ≤ j ≤ i + right``
#: (−1: that side unbounded).
Window = tuple[int, int]


class VarlenAttention(Protocol):
    """A variable-length attention kernel (`fastbert.kernels.varlen_attention` is one).

    (q, k, v: (T, h, d), cu_seqlens: (B+1,) int32, max_seqlen, dropout_p) -> (T, h, d);
    ``window_size`` as `Window`, ``(-1, -1)`` for full attention. The six inputs are
    positional-only here, so any callable taking them in this order (whatever it names them) fits.
    """

    def __call__(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        dropout_p: float,
        /,
        *,
        window_size: Window = (-1, -1),
    ) -> Tensor: ...


#: (q, k, v, dropout_p) -> attention output, in whatever layout the function was made for.
Attend = Callable[[Tensor, Tensor, Tensor, float], Tensor]


def band_mask(
    query_length: int, key_length: int, window: Window, device: torch.device | None = None
) -> Tensor:
    """(Lq, Lk) bool, True where query ``i`` may see key ``j``: ``i − left ≤ j ≤ i + right``
    (−1: that side unbounded). Queries and keys both count from position 0."""
    left, right = window
    i = torch.arange(query_length, device=device)[:, None]
    j = torch.arange(key_length, device=device)[None, :]
    inside = torch.ones(query_length, key_length, dtype=torch.bool, device=device)
    if left >= 0:
        inside &= j >= i - left
    if right >= 0:
        inside &= j <= i + right
    return inside


def padded_attention(mask: Tensor | None, *, window: Window | None = None) -> Attend:
    """Attention over ``(B, L, h, d)`` with an optional ``(B, L)`` key-padding mask (1 = real)
    and an optional sliding ``window`` (queries and keys both at positions 0, 1, ...; a query
    block shorter than the keys, as in `first_query_attention`, sits at the first positions)."""
    bias = None
    if mask is not None:
        # Additive bias: 0 for real keys, the dtype's minimum for padding (as transformers does).
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    band_bias: dict[tuple[int, int, torch.dtype], Tensor] = {}  # -> (B or 1, 1, Lq, Lk), made once

    def windowed(lq: int, lk: int, like: Tensor) -> Tensor:
        key = (lq, lk, like.dtype)
        if key not in band_bias:
            allowed = band_mask(lq, lk, window or (-1, -1), like.device)[None, None]  # (1, 1, Lq, Lk)
            if mask is not None:
                allowed = allowed & mask[:, None, None, :].bool()  # (B, 1, Lq, Lk)
            # One fill, not a band bias plus a padding bias: two dtype minimums would add up to
            # −inf, and a padding query whose window holds no real key would give NaN (and NaN
            # gradients into the real keys) instead of a harmless uniform row. In q's own dtype,
            # whose minimum is finite (float32's would round to −inf in fp16).
            band_bias[key] = like.new_zeros(allowed.shape).masked_fill_(~allowed, torch.finfo(like.dtype).min)
        return band_bias[key]

    def attend(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> Tensor:
        qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))  # (B, h, L, d)
        if window is None:
            b = None if bias is None else bias.to(q.dtype)
        else:
            b = windowed(q.shape[1], k.shape[1], q)
        if fast_dropout_applies(q, dropout_p):
            out = math_attention(qt, kt, vt, b, dropout_p)
        else:
            out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=b, dropout_p=dropout_p)
        return out.transpose(1, 2)  # (B, L, h, d)

    return attend


def math_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, dropout_p: float) -> Tensor:
    """SDPA's math path, ``dropout(softmax(q kᵀ / √d + bias)) v``, with `fastbert.dropout`'s mask.

    q: (B, h, Lq, d); k, v: (B, h, L, d); bias: broadcastable to (B, h, Lq, L). With dropout,
    PyTorch's CPU SDPA takes this same path (the probabilities materialised) and draws their
    mask with ``bernoulli_``, the slowest part of it; here the Rust core draws it."""
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))  # (B, h, Lq, L)
    if bias is not None:
        scores = scores.add_(bias)
    return torch.matmul(dropout(scores.softmax(-1), dropout_p), v)


def eager_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    dropout_p: float = 0.0,
    *,
    window: Window | None = None,
) -> Tensor:
    """The textbook formula, ``softmax(q kᵀ / √d + bias) v``: the reference the fast paths are tested against.

    q, k, v: (B, L, h, d); mask: (B, L) with 1 for real tokens; window: a sliding window
    (`band_mask`). Returns (B, L, h, d).
    """
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, torch.finfo(scores.dtype).min)
    if window is not None:
        outside = ~band_mask(q.shape[1], k.shape[1], window, q.device)  # (Lq, Lk)
        scores = scores.masked_fill(outside, torch.finfo(scores.dtype).min)
    probs = F.dropout(scores.softmax(-1), dropout_p)
    return torch.einsum("bhqk,bkhd->bqhd", probs, v)


class Repadder:
    """Scatters packed ``(T, h, d)`` tensors into a right-padded ``(B, L, h, d)`` batch and back."""

    def __init__(self, cu_seqlens: Tensor, max_seqlen: int) -> None:
        lengths = cu_seqlens[1:] - cu_seqlens[:-1]
        self.batch, self.max_seqlen = lengths.numel(), max_seqlen
        positions = torch.arange(max_seqlen, device=cu_seqlens.device)
        self.mask = positions[None, :] < lengths[:, None]  # (B, L) bool
        self.index = self.mask.flatten().nonzero().squeeze(1)  # (T,) slots of real tokens in B*L

    def pad(self, t: Tensor) -> Tensor:
        h, d = t.shape[1:]
        out = t.new_zeros(self.batch * self.max_seqlen, h, d)
        out[self.index] = t
        return out.view(self.batch, self.max_seqlen, h, d)

    def unpad(self, t: Tensor) -> Tensor:
        return t.reshape(self.batch * self.max_seqlen, *t.shape[2:])[self.index]


def repad_attention(cu_seqlens: Tensor, max_seqlen: int, *, window: Window | None = None) -> Attend:
    """Varlen attention for packed ``(T, h, d)`` tensors, by scattering into a padded batch.

    The CPU path: PyTorch has no variable-length attention on the CPU, so only this
    step pays for padding; every position-wise layer around it runs on real tokens.
    ``window``: a sliding window over the positions within each sequence (`band_mask`).
    """
    r = Repadder(cu_seqlens, max_seqlen)
    attend = padded_attention(r.mask, window=window)

    def attend_packed(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> Tensor:
        return r.unpad(attend(r.pad(q), r.pad(k), r.pad(v), dropout_p))

    return attend_packed


def first_query_attention(cu_seqlens: Tensor, max_seqlen: int, *, window: Window | None = None) -> Attend:
    """Attention of each sequence's first token over all of its packed keys.

    q: (B, h, d), one query per sequence; k, v: (T, h, d) packed. Returns (B, h, d): row ``b``
    equals row ``cu_seqlens[b]`` of full attention (with ``window``, of windowed attention: the
    query sits at position 0, so it sees keys ``0 … right``). Padded SDPA with one query per
    sequence is cheap on any device, so no kernel is needed for it.
    """
    r = Repadder(cu_seqlens, max_seqlen)
    attend = padded_attention(r.mask, window=window)

    def attend_first(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> Tensor:
        return attend(q[:, None], r.pad(k), r.pad(v), dropout_p)[:, 0]  # (B, h, d)

    return attend_first


def packed_positions(cu_seqlens: Tensor, total: int) -> Tensor:
    """Position ids (T,) restarting at 0 at every sequence start."""
    starts = torch.repeat_interleave(
        cu_seqlens[:-1], (cu_seqlens[1:] - cu_seqlens[:-1]).long(), output_size=total
    )
    return torch.arange(total, device=cu_seqlens.device) - starts.long()
