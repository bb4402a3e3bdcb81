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

Attention-probability dropout is fused: a counter-based Philox4x32-10 stream
(``tl.randint4x``) keyed by a per-call seed drawn from PyTorch's generator, one call
for 8 consecutive keys of a query (16 random bits each), with the counter
``(sequence·h + head) << 32 | (query·⌈L/8⌉ + key // 8)`` (positions local to the
sequence), so the backward pass regenerates the same mask without storing it
(:mod:`fastbert.kernels.dropout_rng`). :func:`attention_dropout_mask` materialises that mask for
tests, and :func:`attention_dropout_mask_reference` computes it in NumPy.

All arithmetic accumulates in fp32. fp16/bf16 inputs use the tensor cores; fp32
inputs use full-precision ``ieee`` products unless
``torch.backends.cuda.matmul.allow_tf32`` is set. Head sizes up to 128 (any
size; 32, 64 and 128 are the tuned ones).

Layout (Liger-Kernel's): Triton kernels → launchers (registered as
``torch.library`` custom ops, so ``torch.compile`` traces around them) →
``torch.autograd.Function`` → functional wrappers (:func:`varlen_attention`,
:func:`padded_attention`) → the PyTorch references (:func:`varlen_attention_reference`,
:func:`padded_attention_reference`) that the tests compare against in fp64.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from fastbert.kernels.common import dot_precision, dot_width, interpreting, mm, output_buffer, upcast
from fastbert.kernels.dropout_rng import draw_seed, keep_mask, keep_mask_reference, keep_threshold

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

if __package__ != "fastbert.kernels":  # a second import under another name would re-register the ops
    raise ImportError(f"import this module as fastbert.kernels.attention, not {__name__}")

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 128


# ============================================================================ kernels
@triton.jit
def _head_mask(offs_d, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Lanes < HEAD_DIM. All-true as a constant when the head fills the block, so that the
    compiler can still use 16-byte loads (a computed mask would hide that)."""
    if HEAD_DIM == BLOCK_D:
        return tl.full([BLOCK_D], 1, tl.int1)
    return offs_d < HEAD_DIM


@triton.jit
def _load_rows(base, rows, stride, offs_d, mask_d, n_rows, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
               MASK_ROWS: tl.constexpr):  # fmt: skip
    """(len(rows), BLOCK_D) tile of token rows ``rows`` of one head; rows ≥ ``n_rows`` and lanes ≥
    HEAD_DIM read as 0. Without ``MASK_ROWS`` (a block wholly inside the sequence) and with a
    full head the load has no mask at all."""
    ptrs = base + rows[:, None] * stride + offs_d[None, :]
    if MASK_ROWS:
        return tl.load(ptrs, mask=(rows < n_rows)[:, None] & mask_d[None, :], other=0.0)
    if HEAD_DIM == BLOCK_D:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=mask_d[None, :], other=0.0)


@triton.jit
def _attn_fwd_step(
    acc, l_i, m_i, q, k_base, v_base, col0, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
    seed, counter_base, rows, max_seqlen, keep_threshold,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, MASK_COLS: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """One key/value block of the online softmax: returns the updated (acc, l_i, m_i).

    ``MASK_COLS`` is set only for a sequence's last, partial block; every full block
    runs without the bounds checks and the −inf fill, which are a select per score
    and masked loads on the loop's critical path. Scores stay unscaled until
    ``exp2(s · qk_scale − m)``, one fused multiply-add per score; the row maximum is
    taken on the raw scores and scaled once per row (equal, since qk_scale > 0 and
    rounding is monotonic).
    """
    cols = col0 + tl.arange(0, BLOCK_N)
    k = _load_rows(k_base, cols, stride_kt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    s = mm(q, tl.trans(k), DOT_PRECISION, UPCAST)  # (BLOCK_M, BLOCK_N), unscaled
    if MASK_COLS:
        s = tl.where((cols < seqlen)[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s * qk_scale - m_new[:, None])
    # The normaliser sums the probabilities before dropout: softmax first, then drop.
    l_i = l_i * alpha + tl.sum(p, 1)
    if HAS_DROPOUT:
        p = tl.where(keep_mask(seed, counter_base, rows, col0, max_seqlen, keep_threshold, BLOCK_N), p, 0.0)
    v = _load_rows(v_base, cols, stride_vt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    acc = acc * alpha[:, None] + mm(p.to(v.dtype), v, DOT_PRECISION, UPCAST)
    return acc, l_i, m_new


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, Out, LSE, CU_SEQLENS, SEED,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    stride_lse_h,
    nheads, max_seqlen, qk_scale, dropout_p, keep_threshold,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(L, BLOCK_M), B, h). Writes O rows [m·BLOCK_M, …) of one sequence·head and their LSE.

    Scores are kept in log2 units (``qk_scale`` = softmax scale · log2 e) so that the
    exponentials are ``exp2``; ``LSE`` is stored in the same units. The key blocks that
    lie wholly inside the sequence run unmasked; a partial last block, masked
    (:func:`_attn_fwd_step`).
    """
    pid_m = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    start = tl.load(CU_SEQLENS + seq)
    seqlen = tl.load(CU_SEQLENS + seq + 1) - start
    if pid_m * BLOCK_M >= seqlen:
        return
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = _head_mask(offs_d, HEAD_DIM, BLOCK_D)
    row_ok = offs_m < seqlen
    start64 = start.to(tl.int64)
    q_base = Q + start64 * stride_qt + head * stride_qh
    k_base = K + start64 * stride_kt + head * stride_kh
    v_base = V + start64 * stride_vt + head * stride_vh
    q = tl.load(
        q_base + offs_m[:, None] * stride_qt + offs_d[None, :],
        mask=row_ok[:, None] & mask_d[None, :],
        other=0.0,
    )
    seed = 0
    counter_base = 0
    if HAS_DROPOUT:
        seed = tl.load(SEED)
        counter_base = (seq * nheads + head).to(tl.int64) << 32  # the stream of this sequence·head

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    full_end = (seqlen // BLOCK_N) * BLOCK_N
    for start_n in range(0, full_end, BLOCK_N):
        acc, l_i, m_i = _attn_fwd_step(
            acc, l_i, m_i, q, k_base, v_base, start_n, seqlen, offs_d, mask_d, stride_kt, stride_vt,
            qk_scale, seed, counter_base, offs_m, max_seqlen, keep_threshold,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, HAS_DROPOUT, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    if full_end < seqlen:
        acc, l_i, m_i = _attn_fwd_step(
            acc, l_i, m_i, q, k_base, v_base, full_end, seqlen, offs_d, mask_d, stride_kt, stride_vt,
            qk_scale, seed, counter_base, offs_m, max_seqlen, keep_threshold,
            HEAD_DIM, BLOCK_D, BLOCK_N, True, HAS_DROPOUT, DOT_PRECISION, UPCAST,
        )  # fmt: skip

    acc = acc / l_i[:, None]
    if HAS_DROPOUT:
        acc = acc * (1.0 / (1.0 - dropout_p))
    o_base = Out + start64 * stride_ot + head * stride_oh
    tl.store(
        o_base + offs_m[:, None] * stride_ot + offs_d[None, :],
        acc.to(Out.dtype.element_ty),
        mask=row_ok[:, None] & mask_d[None, :],
    )
    tl.store(LSE + head * stride_lse_h + start + offs_m, m_i + tl.log2(l_i), mask=row_ok)


@triton.jit
def _attn_bwd_preprocess_kernel(
    Out, DO, DELTA, total, stride_ot, stride_oh, stride_dot, stride_doh, stride_delta_h,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(T, BLOCK_T), h). ``DELTA[h, t] = Σ_d dO[t, h, d] · O[t, h, d]`` (fp32)."""
    pid = tl.program_id(0)
    head = tl.program_id(1)
    offs_t = pid * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_t[:, None] < total) & _head_mask(offs_d, HEAD_DIM, BLOCK_D)[None, :]
    rows = offs_t.to(tl.int64)[:, None]
    o = tl.load(Out + rows * stride_ot + head * stride_oh + offs_d[None, :], mask=mask, other=0.0)
    do = tl.load(DO + rows * stride_dot + head * stride_doh + offs_d[None, :], mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + head * stride_delta_h + offs_t, delta, mask=offs_t < total)


@triton.jit
def _attn_bwd_dq_step(
    dq, q, do, lse, delta, k_base, v_base, col0, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
    seed, counter_base, rows, max_seqlen, keep_threshold, keep_scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N2: tl.constexpr, MASK_COLS: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """One key block of dQ's loop: returns dq + dS k for keys ``col0 …``. As in the forward, only a
    sequence's last, partial block (``MASK_COLS``) pays for masked loads and the select that zeroes
    its probabilities past the end (there k = 0 already, but exp2(0 − lse) may overflow)."""
    cols = col0 + tl.arange(0, BLOCK_N2)
    k2 = _load_rows(k_base, cols, stride_kt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    v2 = _load_rows(v_base, cols, stride_vt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    s = mm(q, tl.trans(k2), DOT_PRECISION, UPCAST) * qk_scale
    p = tl.exp2(s - lse[:, None])
    if MASK_COLS:
        p = tl.where((cols < seqlen)[None, :], p, 0.0)
    dp = mm(do, tl.trans(v2), DOT_PRECISION, UPCAST)
    if HAS_DROPOUT:
        keep = keep_mask(seed, counter_base, rows, col0, max_seqlen, keep_threshold, BLOCK_N2)
        dp = tl.where(keep, dp * keep_scale, 0.0)
    ds = p * (dp - delta[:, None])
    return dq + mm(ds.to(k2.dtype), k2, DOT_PRECISION, UPCAST)


@triton.jit
def _attn_bwd_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, DK, DV, CU_SEQLENS, SEED,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dqt, stride_dqh, stride_dkt, stride_dkh, stride_dvt, stride_dvh,
    stride_lse_h,
    nheads, max_seqlen, softmax_scale, qk_scale, dropout_p, keep_threshold,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M1: tl.constexpr, BLOCK_N1: tl.constexpr, BLOCK_M2: tl.constexpr, BLOCK_N2: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(L, BLOCK_N1), B, h), BLOCK_N1 == BLOCK_M2.

    Part 1: dK, dV for keys [i·BLOCK_N1, …), looping over query blocks of BLOCK_M1.
    Part 2: dQ for queries [i·BLOCK_M2, …), looping over key blocks of BLOCK_N2.
    With P = softmax(S), dS = P ⊙ (dP − Δ) where dP = dO Vᵀ (through the dropout
    mask) and Δ = rowsum(dO ⊙ O).
    """
    pid = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    start = tl.load(CU_SEQLENS + seq)
    seqlen = tl.load(CU_SEQLENS + seq + 1) - start
    if pid * BLOCK_N1 >= seqlen:
        return
    start64 = start.to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = _head_mask(offs_d, HEAD_DIM, BLOCK_D)
    q_base = Q + start64 * stride_qt + head * stride_qh
    k_base = K + start64 * stride_kt + head * stride_kh
    v_base = V + start64 * stride_vt + head * stride_vh
    do_base = DO + start64 * stride_dot + head * stride_doh
    lse_base = LSE + head * stride_lse_h + start
    delta_base = DELTA + head * stride_lse_h + start
    seed = 0
    counter_base = 0
    keep_scale = 1.0
    if HAS_DROPOUT:
        seed = tl.load(SEED)
        counter_base = (seq * nheads + head).to(tl.int64) << 32
        keep_scale = 1.0 / (1.0 - dropout_p)

    # ---- part 1: dK, dV of one key block
    offs_n = pid * BLOCK_N1 + tl.arange(0, BLOCK_N1)
    kv_mask = (offs_n < seqlen)[:, None] & mask_d[None, :]
    k = tl.load(k_base + offs_n[:, None] * stride_kt + offs_d[None, :], mask=kv_mask, other=0.0)
    v = tl.load(v_base + offs_n[:, None] * stride_vt + offs_d[None, :], mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N1, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N1, BLOCK_D], dtype=tl.float32)
    for start_m in range(0, seqlen, BLOCK_M1):
        rows = start_m + tl.arange(0, BLOCK_M1)
        row_ok = rows < seqlen
        q_mask = row_ok[:, None] & mask_d[None, :]
        q = tl.load(q_base + rows[:, None] * stride_qt + offs_d[None, :], mask=q_mask, other=0.0)
        do = tl.load(do_base + rows[:, None] * stride_dot + offs_d[None, :], mask=q_mask, other=0.0)
        # Rows past the end get LSE = +inf, hence P = 0: they add nothing to dK, dV.
        lse = tl.load(lse_base + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)
        # Transposed scores (keys × queries), so that no tile needs a transpose before its product.
        s_t = mm(k, tl.trans(q), DOT_PRECISION, UPCAST) * qk_scale
        p_t = tl.exp2(s_t - lse[None, :])
        dp_t = mm(v, tl.trans(do), DOT_PRECISION, UPCAST)
        if HAS_DROPOUT:
            keep_t = tl.trans(
                keep_mask(seed, counter_base, rows, pid * BLOCK_N1, max_seqlen, keep_threshold, BLOCK_N1)
            )
            p_drop_t = tl.where(keep_t, p_t * keep_scale, 0.0)
            dp_t = tl.where(keep_t, dp_t * keep_scale, 0.0)
        else:
            p_drop_t = p_t
        dv += mm(p_drop_t.to(do.dtype), do, DOT_PRECISION, UPCAST)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += mm(ds_t.to(q.dtype), q, DOT_PRECISION, UPCAST)
    dk = dk * softmax_scale
    dk_base = DK + start64 * stride_dkt + head * stride_dkh
    dv_base = DV + start64 * stride_dvt + head * stride_dvh
    tl.store(
        dk_base + offs_n[:, None] * stride_dkt + offs_d[None, :], dk.to(DK.dtype.element_ty), mask=kv_mask
    )
    tl.store(
        dv_base + offs_n[:, None] * stride_dvt + offs_d[None, :], dv.to(DV.dtype.element_ty), mask=kv_mask
    )

    # ---- part 2: dQ of one query block
    offs_m = pid * BLOCK_M2 + tl.arange(0, BLOCK_M2)
    row_ok = offs_m < seqlen
    q_mask = row_ok[:, None] & mask_d[None, :]
    q = tl.load(q_base + offs_m[:, None] * stride_qt + offs_d[None, :], mask=q_mask, other=0.0)
    do = tl.load(do_base + offs_m[:, None] * stride_dot + offs_d[None, :], mask=q_mask, other=0.0)
    lse = tl.load(lse_base + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(delta_base + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M2, BLOCK_D], dtype=tl.float32)
    full_end = (seqlen // BLOCK_N2) * BLOCK_N2
    for start_n in range(0, full_end, BLOCK_N2):
        dq = _attn_bwd_dq_step(
            dq, q, do, lse, delta, k_base, v_base, start_n, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
            seed, counter_base, offs_m, max_seqlen, keep_threshold, keep_scale,
            HEAD_DIM, BLOCK_D, BLOCK_N2, False, HAS_DROPOUT, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    if full_end < seqlen:
        dq = _attn_bwd_dq_step(
            dq, q, do, lse, delta, k_base, v_base, full_end, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
            seed, counter_base, offs_m, max_seqlen, keep_threshold, keep_scale,
            HEAD_DIM, BLOCK_D, BLOCK_N2, True, HAS_DROPOUT, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    dq = dq * softmax_scale
    dq_base = DQ + start64 * stride_dqt + head * stride_dqh
    tl.store(
        dq_base + offs_m[:, None] * stride_dqt + offs_d[None, :], dq.to(DQ.dtype.element_ty), mask=q_mask
    )


@triton.jit
def _dropout_mask_kernel(
    MASK, CU_SEQLENS, SEED, nheads, max_seqlen, keep_threshold,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(L, BLOCK_M), B, h). MASK (B, h, L, L) uint8: 1 where the kernels keep a probability."""
    pid_m = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    seqlen = tl.load(CU_SEQLENS + seq + 1) - tl.load(CU_SEQLENS + seq)
    seed = tl.load(SEED)
    bh = seq * nheads + head
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    base = MASK + bh.to(tl.int64) * max_seqlen * max_seqlen
    for start_n in range(0, max_seqlen, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        keep = keep_mask(seed, bh.to(tl.int64) << 32, rows, start_n, max_seqlen, keep_threshold, BLOCK_N)
        valid = (rows[:, None] < seqlen) & (cols[None, :] < seqlen)
        in_bounds = (rows[:, None] < max_seqlen) & (cols[None, :] < max_seqlen)
        tl.store(
            base + rows[:, None] * max_seqlen + cols[None, :], (keep & valid).to(tl.uint8), mask=in_bounds
        )


# ============================================================================ launchers
def _fwd_config(head_dim: int, dtype: torch.dtype, max_seqlen: int) -> dict[str, int]:
    """Fixed block sizes (no autotuning): BLOCK_M queries × BLOCK_N keys per step.

    From a sweep on an H100 (bf16, d = 64; kernels/README.md, "Tuning"): at L = 512,
    128 × 64 with 4 warps and 3 stages was within 2 % of the best of 18; for real
    sentence lengths (≤ 128 tokens) 64 × 32, 2 stages, ran 2.3× faster than that.
    d > 64 is checked for correctness on the GPU but not tuned.
    """
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16, "num_warps": 4, "num_stages": 1}
    if dtype == torch.float32:
        return {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}
    if head_dim <= 64:
        if max_seqlen <= 128:
            return {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}
        return {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3}
    return {"BLOCK_M": 128 if max_seqlen > 64 else 64, "BLOCK_N": 64, "num_warps": 8, "num_stages": 3}


def _bwd_config(head_dim: int, dtype: torch.dtype, max_seqlen: int) -> dict[str, int]:
    """BLOCK_N1 keys own dK/dV and step BLOCK_M1 queries; BLOCK_M2 (= BLOCK_N1) queries own dQ.

    H100 sweep (bf16, d = 64): at L = 512, 32/128/128/32 with 4 warps and 3 stages was the
    best of 10; for lengths ≤ 128, 32/64/64/32 with 2 stages ran 1.7× faster than that.
    """
    if interpreting():
        return {
            "BLOCK_M1": 16,
            "BLOCK_N1": 32,
            "BLOCK_M2": 32,
            "BLOCK_N2": 16,
            "num_warps": 4,
            "num_stages": 1,
        }
    if dtype == torch.float32:
        return {
            "BLOCK_M1": 16,
            "BLOCK_N1": 64,
            "BLOCK_M2": 64,
            "BLOCK_N2": 16,
            "num_warps": 4,
            "num_stages": 1,
        }
    if head_dim <= 64:
        if max_seqlen <= 128:
            return {
                "BLOCK_M1": 32,
                "BLOCK_N1": 64,
                "BLOCK_M2": 64,
                "BLOCK_N2": 32,
                "num_warps": 4,
                "num_stages": 2,
            }
        return {
            "BLOCK_M1": 32,
            "BLOCK_N1": 128,
            "BLOCK_M2": 128,
            "BLOCK_N2": 32,
            "num_warps": 4,
            "num_stages": 3,
        }
    return {"BLOCK_M1": 32, "BLOCK_N1": 64, "BLOCK_M2": 64, "BLOCK_N2": 32, "num_warps": 8, "num_stages": 3}


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


def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _varlen_fwd_impl(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    dropout_p: float,
    softmax_scale: float,
    seed: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """q, k, v: (T, h, d); cu_seqlens: (B+1,) int32. Returns out (T, h, d) and LSE (h, T) fp32, log2 units."""
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    total, nheads, head_dim = q.shape
    out = output_buffer((total, nheads, head_dim), q.dtype, q.device)
    lse = output_buffer((nheads, total), torch.float32, q.device)
    batch = cu_seqlens.numel() - 1
    if total == 0 or batch == 0 or max_seqlen == 0:
        return out, lse
    cfg = _fwd_config(head_dim, q.dtype, max_seqlen)
    grid = (triton.cdiv(max_seqlen, cfg["BLOCK_M"]), batch, nheads)
    has_dropout = dropout_p > 0.0
    _attn_fwd_kernel[grid](
        q, k, v, out, lse, cu_seqlens, seed if has_dropout else cu_seqlens,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        lse.stride(0),
        nheads, max_seqlen, softmax_scale * LOG2E, dropout_p, keep_threshold(dropout_p),
        HEAD_DIM=head_dim, BLOCK_D=dot_width(head_dim), BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        HAS_DROPOUT=has_dropout, DOT_PRECISION=dot_precision(q.dtype), UPCAST=upcast(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return out, lse


_varlen_fwd = torch.library.custom_op("fastbert::varlen_attention_fwd", _varlen_fwd_impl, mutates_args=())


@_varlen_fwd.register_fake
def _(q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale, seed):
    total, nheads, head_dim = q.shape
    return q.new_empty((total, nheads, head_dim)), q.new_empty((nheads, total), dtype=torch.float32)


def _varlen_bwd_impl(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    dropout_p: float,
    softmax_scale: float,
    seed: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """dout, q, k, v, out: (T, h, d); lse: (h, T). Returns dq, dk, dv, each (T, h, d)."""
    dout, q, k, v, out = (_last_dim_contiguous(t) for t in (dout, q, k, v, out))
    total, nheads, head_dim = q.shape
    dq = output_buffer((total, nheads, head_dim), q.dtype, q.device)
    dk = output_buffer((total, nheads, head_dim), k.dtype, k.device)
    dv = output_buffer((total, nheads, head_dim), v.dtype, v.device)
    batch = cu_seqlens.numel() - 1
    if total == 0 or batch == 0 or max_seqlen == 0:
        return dq, dk, dv
    block_d = dot_width(head_dim)
    delta = output_buffer((nheads, total), torch.float32, q.device)
    block_t = 16 if interpreting() else 128
    _attn_bwd_preprocess_kernel[(triton.cdiv(total, block_t), nheads)](
        out, dout, delta, total, out.stride(0), out.stride(1), dout.stride(0), dout.stride(1), delta.stride(0),
        HEAD_DIM=head_dim, BLOCK_D=block_d, BLOCK_T=block_t,
    )  # fmt: skip
    cfg = _bwd_config(head_dim, q.dtype, max_seqlen)
    assert cfg["BLOCK_N1"] == cfg["BLOCK_M2"]
    grid = (triton.cdiv(max_seqlen, cfg["BLOCK_N1"]), batch, nheads)
    has_dropout = dropout_p > 0.0
    _attn_bwd_kernel[grid](
        q, k, v, dout, lse, delta, dq, dk, dv, cu_seqlens, seed if has_dropout else cu_seqlens,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), dout.stride(0), dout.stride(1),
        dq.stride(0), dq.stride(1), dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1),
        lse.stride(0),
        nheads, max_seqlen, softmax_scale, softmax_scale * LOG2E, dropout_p, keep_threshold(dropout_p),
        HEAD_DIM=head_dim, BLOCK_D=block_d,
        BLOCK_M1=cfg["BLOCK_M1"], BLOCK_N1=cfg["BLOCK_N1"], BLOCK_M2=cfg["BLOCK_M2"], BLOCK_N2=cfg["BLOCK_N2"],
        HAS_DROPOUT=has_dropout, DOT_PRECISION=dot_precision(q.dtype), UPCAST=upcast(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return dq, dk, dv


_varlen_bwd = torch.library.custom_op("fastbert::varlen_attention_bwd", _varlen_bwd_impl, mutates_args=())


@_varlen_bwd.register_fake
def _(dout, q, k, v, out, lse, cu_seqlens, max_seqlen, dropout_p, softmax_scale, seed):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


# ============================================================================ autograd
class VarlenAttentionFunction(torch.autograd.Function):
    """Differentiable wrapper of the two custom ops; see :func:`varlen_attention`.

    Under ``torch.compile`` it calls the registered ops (what gets traced); in eager mode
    it calls their implementations directly, skipping the dispatcher's Python round trip
    (tens of microseconds per call, as much as a small batch's whole kernel).
    """

    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale, seed):  # type: ignore[override]
        fwd = torch.ops.fastbert.varlen_attention_fwd if torch.compiler.is_compiling() else _varlen_fwd_impl
        out, lse = fwd(q, k, v, cu_seqlens, max_seqlen, dropout_p, softmax_scale, seed)
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens, seed)
        ctx.max_seqlen, ctx.dropout_p, ctx.softmax_scale = max_seqlen, dropout_p, softmax_scale
        return out

    @staticmethod
    def backward(ctx, dout):  # type: ignore[override]
        q, k, v, out, lse, cu_seqlens, seed = ctx.saved_tensors
        bwd = torch.ops.fastbert.varlen_attention_bwd if torch.compiler.is_compiling() else _varlen_bwd_impl
        dq, dk, dv = bwd(
            dout, q, k, v, out, lse, cu_seqlens, ctx.max_seqlen, ctx.dropout_p, ctx.softmax_scale, seed
        )
        return dq, dk, dv, None, None, None, None, None


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
    seed: Tensor | None = None,
) -> Tensor:
    """Bidirectional attention over a packed batch: ``softmax(q kᵀ · scale) v`` within each sequence.

    q, k, v: (T, h, d), fp16/bf16/fp32, ``d`` ≤ 128; cu_seqlens: (B+1,) int32 on the same
    device; max_seqlen: an int ≥ the longest sequence (sizes the grid; a smaller one
    leaves rows unwritten); dropout_p: attention-probability dropout, applied as given
    (pass 0 in eval, as ``BertLayer`` does); softmax_scale: default ``1/√d``;
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
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else float(softmax_scale)
    if dropout_p > 0.0 and seed is None:
        seed = draw_seed(q.device)
    if dropout_p == 0.0:
        seed = None
    return VarlenAttentionFunction.apply(q, k, v, cu_seqlens, int(max_seqlen), float(dropout_p), scale, seed)


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
) -> Tensor:
    """Attention over a padded batch with a key-padding mask, through the varlen kernel.

    q, k, v: (B, L, h, d); key_padding_mask: (B, L), nonzero/True for real tokens
    (``None``: all real). Returns (B, L, h, d). Padded *query* rows come back as zeros
    (their value is never meant to be used; PyTorch's padded path returns an
    arbitrary mix of the real values there). A row with no real token is all zeros.
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
    out = varlen_attention(qp, kp, vp, cu_seqlens, max_seqlen, dropout_p, softmax_scale)
    return pad_input(out, indices, batch, seqlen)


def attention_dropout_mask(
    cu_seqlens: Tensor, nheads: int, max_seqlen: int, dropout_p: float, seed: Tensor
) -> Tensor:
    """The keep-mask the kernels apply for ``seed``: (B, h, L, L) bool, L = max_seqlen (for tests and references).

    Entry [b, i, q, k] is True where the probability of query q for key k (positions
    within sequence b) survives dropout; False outside the sequence.
    """
    batch = cu_seqlens.numel() - 1
    mask = torch.zeros(batch, nheads, max_seqlen, max_seqlen, dtype=torch.uint8, device=cu_seqlens.device)
    if batch and max_seqlen:
        block = 16 if interpreting() else 64
        _dropout_mask_kernel[(triton.cdiv(max_seqlen, block), batch, nheads)](
            mask,
            cu_seqlens,
            seed,
            nheads,
            max_seqlen,
            keep_threshold(dropout_p),
            BLOCK_M=block,
            BLOCK_N=block,
        )
    return mask.bool()


# ============================================================================ references
def varlen_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    dropout_mask: Tensor | None = None,
) -> Tensor:
    """The textbook formula per sequence, in the inputs' dtype (the tests pass fp64).

    q, k, v: (T, h, d); cu_seqlens: (B+1,). With ``dropout_p > 0`` a keep-mask
    ``dropout_mask`` (B, h, L, L) must be given (e.g. :func:`attention_dropout_mask`):
    ``P ⊙ keep / (1 − p)``. Returns (T, h, d).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else softmax_scale
    if dropout_p > 0 and dropout_mask is None:
        raise ValueError("the reference needs the dropout_mask the kernel used (attention_dropout_mask)")
    bounds = cu_seqlens.tolist()
    outs = []
    for b, (s, e) in enumerate(itertools.pairwise(bounds)):
        scores = torch.einsum("qhd,khd->hqk", q[s:e], k[s:e]) * scale  # (h, n, n)
        probs = scores.softmax(-1)
        if dropout_p > 0:
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
    keep = keep_mask_reference(int(seed.item()), streams, max_seqlen, max_seqlen, dropout_p)
    keep = torch.from_numpy(keep).view(batch, nheads, max_seqlen, max_seqlen)
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
) -> Tensor:
    """``softmax(q kᵀ · scale + mask) v`` on (B, L, h, d), zeros at padded query rows (as :func:`padded_attention`)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if softmax_scale is None else softmax_scale
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if key_padding_mask is None:
        return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
    keep = key_padding_mask.bool()
    scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
    # A row with no real key is all -inf (softmax NaN): give it zero weights instead.
    probs = torch.nan_to_num(scores.softmax(-1), nan=0.0)
    out = torch.einsum("bhqk,bkhd->bqhd", probs, v)
    return out * keep[:, :, None, None].to(out.dtype)
