"""Bidirectional attention over packed variable-length batches: FlashAttention-2 in Triton.

Shapes: ``T`` total tokens of a packed batch, ``B`` sequences, ``h`` heads, ``d``
head size, ``L`` (max) sequence length. A packed batch is the real tokens of all
sequences one after the other, ``(T, h, d)``, with ``cu_seqlens`` (``(B+1,)``
int32, ``cu_seqlens[0] == 0``, ``cu_seqlens[-1] == T``) marking where each starts:
FlashAttention's varlen convention, the one ``fastbert.model`` uses.

Forward (Dao 2023, "FlashAttention-2", Algorithm 1): one program per
(query block, sequence, head) streams the key/value blocks of its own sequence
with an online softmax, so the ``L×L`` score matrix is never stored; it keeps the
row log-sum-exp (fp32, ``(h, T)``) for the backward pass. Backward (Algorithm 2,
laid out as in Triton's fused-attention tutorial): one program per
(block, sequence, head) first accumulates dK, dV for its key block over all query
blocks, then dQ for the query block of the same index over all key blocks.
It recomputes the scores twice (7 block products instead of 5) but needs no
atomics, so gradients are deterministic.

Sliding window (``window_size=(left, right)``, FlashAttention-2's convention, for
ModernBERT's local layers, ``(64, 64)``): query ``i`` attends key ``j`` (positions
local to the sequence) only where ``i − left ≤ j ≤ i + right``; −1 leaves a side
unbounded. Scores outside the window are −inf (probability 0), and every loop visits
only the blocks that meet the window: a query block the key blocks
``[start − left, end + right]``, a key block the query blocks ``[start − right, end + left]``,
so a sequence of length L costs O(L·(left + right + block)), not O(L²). The window is a
constexpr switch (``HAS_WINDOW``), off for ``(-1, -1)`` and for any window that covers
every sequence (both sides ≥ max_seqlen − 1): then the kernels compile to the same code as
without the option. A row whose window holds no key (impossible with sides ≥ 0, since a
query's own key is inside; it happens only to the padding rows past a sequence's end in
a block) gets output 0 and LSE +inf, hence zero gradients.

Attention-probability dropout is fused: a counter-based Philox4x32-10 stream
(``tl.randint4x``) keyed by a per-call seed drawn from PyTorch's generator, one call
for 8 consecutive keys of a query (16 random bits each), with the counter
``(sequence·h + head) << 32 | (query·⌈L/8⌉ + key // 8)`` (positions local to the
sequence), so the backward pass regenerates the same mask without storing it
(:mod:`fastbert.kernels.dropout_rng`). :func:`attention_dropout_mask` materialises that mask for
tests, and :func:`attention_dropout_mask_reference` computes it in NumPy. The window
does not change the stream: a score outside it simply has probability 0 before the mask.

All arithmetic accumulates in fp32. fp16/bf16 inputs use the tensor cores; fp32
inputs use full-precision ``ieee`` products unless
``torch.backends.cuda.matmul.allow_tf32`` is set. Head sizes up to 128 (any
size; 32, 64 and 128 are the tuned ones).

Layout (Liger-Kernel's), over two files: Triton kernels → launchers (registered as
``torch.library`` custom ops, so ``torch.compile`` traces around them; both in
`fastbert.kernels.attention_kernels`) →
``torch.autograd.Function`` → functional wrappers (:func:`varlen_attention`,
:func:`padded_attention`) → the PyTorch references (:func:`varlen_attention_reference`,
:func:`padded_attention_reference`, both with the window through
:func:`window_mask_reference`) that the tests compare against in fp64.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fastbert.kernels.attention_kernels import attention_dropout_mask, varlen_backward, varlen_forward
from fastbert.kernels.common import interpreting
from fastbert.kernels.dropout_rng import draw_seed, keep_mask_reference

__all__ = [
    "attention_dropout_mask",
    "attention_dropout_mask_reference",
    "pad_input",
    "padded_attention",
    "padded_attention_reference",
    "unpad_input",
    "varlen_attention",
    "varlen_attention_reference",
]

if __package__ != "fastbert.kernels":
    raise ImportError(f"import this module as fastbert.kernels.attention, not {__name__}")

MAX_HEAD_DIM = 128


# ============================================================================ argument checks
def _check_window(window_size: Sequence[int]) -> tuple[int, int]:
    """``window_size`` as a pair of ints ``(left, right)``, each ≥ −1; else a ValueError.

    (The message is built only on failure: under ``torch.compile`` the sides may be symbolic
    ints, which dynamo cannot format.)
    """
    if (
        not isinstance(window_size, (tuple, list))
        or len(window_size) != 2
        or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in window_size)
    ):
        raise ValueError(
            f"window_size must be a pair of ints (left, right), -1 for unbounded; got {window_size!r}"
        )
    left, right = (int(w) if isinstance(w, np.integer) else w for w in window_size)
    if left < -1 or right < -1:
        raise ValueError(f"window_size must be a pair of ints (left, right), each >= -1; got {window_size!r}")
    return left, right


def _check(q: Tensor, k: Tensor, v: Tensor, cu_seqlens: Tensor, max_seqlen: int, dropout_p: float) -> None:
    if q.dim() != 3 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must all be (total_tokens, heads, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q, k, v must share one of fp16, bf16, fp32; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"head_dim {q.shape[-1]} > {MAX_HEAD_DIM} is not supported")
    if cu_seqlens.dtype != torch.int32 or cu_seqlens.dim() != 1 or cu_seqlens.numel() < 1:
        raise ValueError(
            f"cu_seqlens must be a 1-D int32 tensor (batch+1,); got {cu_seqlens.dtype}, {tuple(cu_seqlens.shape)}"
        )
    if not (q.device == k.device == v.device == cu_seqlens.device):
        raise ValueError("q, k, v and cu_seqlens must be on one device")
    if q.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"fastbert.kernels run on CUDA tensors (got {q.device}); on the CPU use "
            "varlen_attention_reference, or TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0 and max_seqlen * ((max_seqlen + 7) // 8) >= 2**32:  # the Philox counter's low word
        raise ValueError(f"attention dropout supports max_seqlen ≤ 185360, got {max_seqlen}")


# ============================================================================ autograd
class VarlenAttentionFunction(torch.autograd.Function):
    """Differentiable wrapper of the two custom ops; see :func:`varlen_attention`.

    Under ``torch.compile`` it calls the registered ops (what gets traced); in eager mode
    it calls their implementations directly, skipping the dispatcher's Python round trip
    (tens of microseconds per call, as much as a small batch's whole kernel).
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int,
        dropout_p: float,
        softmax_scale: float,
        seed: Tensor | None,
        window_left: int,
        window_right: int,
    ) -> Tensor:
        fwd = torch.ops.fastbert.varlen_attention_fwd if torch.compiler.is_compiling() else varlen_forward
        out, lse = fwd(
            q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale, seed, window_left, window_right
        )
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens, seed)
        ctx.max_seqlen, ctx.dropout_p, ctx.softmax_scale = max_seqlen, dropout_p, softmax_scale
        ctx.window = (window_left, window_right)
        return out

    @staticmethod
    def backward(
        ctx: Any, dout: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, None, None, None, None, None, None, None]:
        q, k, v, out, lse, cu_seqlens, seed = ctx.saved_tensors
        bwd = torch.ops.fastbert.varlen_attention_bwd if torch.compiler.is_compiling() else varlen_backward
        rest = (ctx.max_seqlen, ctx.dropout_p, ctx.softmax_scale, seed, *ctx.window)
        dq, dk, dv = bwd(dout, q, k, v, out, lse, cu_seqlens, *rest)
        return dq, dk, dv, None, None, None, None, None, None, None


# ============================================================================ functional wrappers
def varlen_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    *,
    window_size: tuple[int, int] = (-1, -1),
    seed: Tensor | None = None,
) -> Tensor:
    """Bidirectional attention over a packed batch: ``softmax(q kᵀ · scale) v`` within each sequence.

    q, k, v: (T, h, d), fp16/bf16/fp32, ``d`` ≤ 128; cu_seqlens: (B+1,) int32 on the same
    device; max_seqlen: an int ≥ the longest sequence (sizes the grid; a smaller one
    leaves rows unwritten); dropout_p: attention-probability dropout, applied as given
    (pass 0 in eval, as ``BertLayer`` does); softmax_scale: default ``1/√d``;
    window_size: ``(left, right)``, FlashAttention-2's sliding window: query ``i`` attends
    key ``j`` (positions within the sequence) only where ``i − left ≤ j ≤ i + right``; −1
    leaves that side unbounded; the default ``(-1, -1)`` is full attention (ModernBERT's
    local layers: ``(64, 64)``, i.e. ``|i − j| ≤ local_attention // 2``);
    seed: optional (1,) int64 tensor fixing the dropout stream (default: drawn from
    PyTorch's generator). Returns (T, h, d) in the inputs' dtype; differentiable in q, k, v.

    The positional order matches ``fastbert.model.BertModel.attention_fn``
    ``(q, k, v, cu_seqlens, max_seqlen, dropout_p)``, so this function can be assigned there as is.
    Under autocast, fp32 inputs are cast to the autocast dtype first (as SDPA does).
    """
    if torch.is_autocast_enabled(q.device.type) and q.dtype == torch.float32:
        dtype = torch.get_autocast_dtype(q.device.type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    _check(q, k, v, cu_seqlens, max_seqlen, dropout_p)
    left, right = _check_window(window_size)
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else float(softmax_scale)
    if dropout_p > 0.0 and seed is None:
        seed = draw_seed(q.device)
    if dropout_p == 0.0:
        seed = None
    return VarlenAttentionFunction.apply(
        q, k, v, cu_seqlens, int(max_seqlen), float(dropout_p), scale, seed, left, right
    )


def unpad_input(x: Tensor, key_padding_mask: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """Pack the real tokens of a padded batch (as flash-attention's ``unpad_input``).

    x: (B, L, ...); key_padding_mask: (B, L), nonzero/True for real tokens (any pattern,
    not only right padding; the order of a row's tokens is kept). Returns
    (packed (T, ...), indices (T,) into the flattened B·L positions, cu_seqlens (B+1,) int32, max_seqlen).
    Synchronises with the device once (max_seqlen).
    """
    mask = key_padding_mask.bool()
    lengths = mask.sum(1, dtype=torch.int32)
    indices = mask.flatten().nonzero().squeeze(1)
    cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    max_seqlen = int(lengths.max()) if lengths.numel() else 0
    packed = x.reshape(-1, *x.shape[2:]).index_select(0, indices)
    return packed, indices, cu_seqlens, max_seqlen


def pad_input(packed: Tensor, indices: Tensor, batch: int, seqlen: int) -> Tensor:
    """Inverse of :func:`unpad_input`: (T, ...) → (B, L, ...), zeros at padding positions."""
    out = packed.new_zeros(batch * seqlen, *packed.shape[1:])
    return out.index_copy(0, indices, packed).view(batch, seqlen, *packed.shape[1:])


def padded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    *,
    window_size: tuple[int, int] = (-1, -1),
) -> Tensor:
    """Attention over a padded batch with a key-padding mask, through the varlen kernel.

    q, k, v: (B, L, h, d); key_padding_mask: (B, L), nonzero/True for real tokens
    (``None``: all real). Returns (B, L, h, d). Padded *query* rows come back as zeros
    (their value is never meant to be used; PyTorch's padded path returns an
    arbitrary mix of the real values there). A row with no real token is all zeros.
    window_size: as in :func:`varlen_attention`; positions count a row's real tokens
    only (the padded positions themselves under right padding).
    """
    batch, seqlen = q.shape[:2]
    if key_padding_mask is None:
        key_padding_mask = torch.ones(batch, seqlen, dtype=torch.bool, device=q.device)
    if key_padding_mask.shape != (batch, seqlen):
        raise ValueError(
            f"key_padding_mask must be (B, L) = {(batch, seqlen)}, got {tuple(key_padding_mask.shape)}"
        )
    qp, indices, cu_seqlens, max_seqlen = unpad_input(q, key_padding_mask)
    kp = k.reshape(-1, *k.shape[2:]).index_select(0, indices)
    vp = v.reshape(-1, *v.shape[2:]).index_select(0, indices)
    out = varlen_attention(
        qp, kp, vp, cu_seqlens, max_seqlen, dropout_p, softmax_scale, window_size=window_size
    )
    return pad_input(out, indices, batch, seqlen)


# ============================================================================ references
def window_mask_reference(positions: Tensor, window_size: Sequence[int]) -> Tensor:
    """(…, n, n) bool from positions (…, n): True where query ``i`` may attend key ``j``,
    ``pos_i − left ≤ pos_j ≤ pos_i + right`` (−1: that side unbounded)."""
    left, right = _check_window(window_size)
    diff = positions[..., None, :] - positions[..., :, None]  # key − query
    inside = torch.ones_like(diff, dtype=torch.bool)
    if left >= 0:
        inside &= diff >= -left
    if right >= 0:
        inside &= diff <= right
    return inside


def varlen_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    dropout_mask: Tensor | None = None,
    window_size: tuple[int, int] = (-1, -1),
) -> Tensor:
    """The textbook formula per sequence, in the inputs' dtype (the tests pass fp64).

    q, k, v: (T, h, d); cu_seqlens: (B+1,). With ``dropout_p > 0`` a keep-mask
    ``dropout_mask`` (B, h, L, L) must be given (e.g. :func:`attention_dropout_mask`):
    ``P ⊙ keep / (1 − p)``. window_size: scores outside the window are −inf before the
    softmax (:func:`window_mask_reference`). Returns (T, h, d).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else softmax_scale
    if dropout_p > 0 and dropout_mask is None:
        raise ValueError("the reference needs the dropout_mask the kernel used (attention_dropout_mask)")
    windowed = _check_window(window_size) != (-1, -1)
    bounds = cu_seqlens.tolist()
    outs = []
    for b, (s, e) in enumerate(itertools.pairwise(bounds)):
        scores = torch.einsum("qhd,khd->hqk", q[s:e], k[s:e]) * scale  # (h, n, n)
        if windowed:
            inside = window_mask_reference(torch.arange(e - s, device=q.device), window_size)  # (n, n)
            scores = scores.masked_fill(~inside, float("-inf"))
        probs = scores.softmax(-1)
        if dropout_p > 0 and dropout_mask is not None:  # (not None: checked above)
            n = e - s
            probs = probs * dropout_mask[b, :, :n, :n].to(probs.dtype) / (1.0 - dropout_p)
        outs.append(torch.einsum("hqk,khd->qhd", probs, v[s:e]))
    return torch.cat(outs) if outs else q.new_zeros(q.shape)


def attention_dropout_mask_reference(
    cu_seqlens: Tensor, nheads: int, max_seqlen: int, dropout_p: float, seed: Tensor
) -> Tensor:
    """:func:`attention_dropout_mask` computed in NumPy from the Philox4x32-10 definition (the kernels' contract).

    Stream ``sequence·h + head``, rows = queries, columns = keys, row pitch ``max_seqlen``
    (:func:`fastbert.kernels.dropout_rng.keep_mask_reference`). Returns (B, h, L, L) bool,
    False outside each sequence.
    """
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).cpu().tolist()
    batch = len(lengths)
    streams = np.arange(batch * nheads)
    keep_np = keep_mask_reference(int(seed.item()), streams, max_seqlen, max_seqlen, dropout_p)
    keep = torch.from_numpy(keep_np).view(batch, nheads, max_seqlen, max_seqlen)
    inside = torch.zeros(batch, 1, max_seqlen, max_seqlen, dtype=torch.bool)
    for b, n in enumerate(lengths):
        inside[b, :, :n, :n] = True
    return (keep & inside).to(cu_seqlens.device)


def padded_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
) -> Tensor:
    """``softmax(q kᵀ · scale + mask) v`` on (B, L, h, d), zeros at padded query rows (as :func:`padded_attention`).

    window_size: as in :func:`padded_attention`, over the positions among a row's real tokens.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else softmax_scale
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    batch, seqlen = q.shape[:2]
    if _check_window(window_size) != (-1, -1):
        if key_padding_mask is None:
            positions = torch.arange(seqlen, device=q.device).expand(batch, seqlen)
        else:
            positions = key_padding_mask.bool().long().cumsum(1) - 1  # rank among the row's real tokens
        inside = window_mask_reference(positions, window_size)  # (B, L, L)
        scores = scores.masked_fill(~inside[:, None], float("-inf"))
    if key_padding_mask is None:
        return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
    keep = key_padding_mask.bool()
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    # A row with no real key is all -inf (softmax NaN): give it zero weights instead.
    probs = torch.nan_to_num(scores.softmax(-1), nan=0.0)
    out = torch.einsum("bhqk,bkhd->bqhd", probs, v)
    return out * keep[:, :, None, None].to(out.dtype)
