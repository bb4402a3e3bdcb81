"""The Triton kernels of `fastbert.kernels.attention` and their launchers (see its docstring).

Kernels → launchers (their block sizes and window bounds come from
`fastbert.kernels.attention_blocks`), each launcher registered as a ``torch.library``
custom op so that ``torch.compile`` traces around it. The autograd Function, the wrappers and
the references are in `fastbert.kernels.attention`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastbert.kernels.attention_blocks import backward_config, forward_config, kernel_window
from fastbert.kernels.common import dot_precision, dot_width, interpreting, mm, output_buffer, upcast
from fastbert.kernels.dropout_rng import keep_mask, keep_threshold

__all__ = [
    "attention_dropout_mask",
    "backward_config",
    "forward_config",
    "kernel_window",
    "varlen_backward",
    "varlen_forward",
]

if __package__ != "fastbert.kernels":  # a second import under another name would re-register the ops
    raise ImportError(f"import this module as fastbert.kernels.attention_kernels, not {__name__}")

LOG2E = 1.4426950408889634


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
def _in_window(rows, cols, window_left, window_right):
    """(len(rows), len(cols)) bool: query ``rows[i]`` may attend key ``cols[j]``, i.e.
    ``row − window_left ≤ col ≤ row + window_right`` (positions local to the sequence; the
    launcher has already replaced an unbounded side, −1, by ``max_seqlen``)."""
    diff = cols[None, :] - rows[:, None]
    return (diff >= -window_left) & (diff <= window_right)


@triton.jit
def _attn_fwd_step(
    acc, l_i, m_i, q, k_base, v_base, col0, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
    seed, counter_base, rows, max_seqlen, keep_threshold, window_left, window_right,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, MASK_COLS: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):  # fmt: skip
    """One key/value block of the online softmax: returns the updated (acc, l_i, m_i).

    ``MASK_COLS`` is set only for a sequence's last, partial block; every full block
    runs without the bounds checks and the −inf fill, which are a select per score
    and masked loads on the loop's critical path. Scores stay unscaled until
    ``exp2(s · qk_scale − m)``, one fused multiply-add per score; the row maximum is
    taken on the raw scores and scaled once per row (equal, since qk_scale > 0 and
    rounding is monotonic).

    ``HAS_WINDOW`` (a sliding window): scores outside the window become −inf. A row may
    then see a block with no key in its window while its running maximum is still −inf;
    the exponentials subtract 0 instead of that −inf (−inf − −inf would be NaN), which
    gives the row weight 0 in this block, as it should.
    """
    cols = col0 + tl.arange(0, BLOCK_N)
    k = _load_rows(k_base, cols, stride_kt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    s = mm(q, tl.trans(k), DOT_PRECISION, UPCAST)  # (BLOCK_M, BLOCK_N), unscaled
    if MASK_COLS:
        s = tl.where((cols < seqlen)[None, :], s, float("-inf"))
    if HAS_WINDOW:
        s = tl.where(_in_window(rows, cols, window_left, window_right), s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    if HAS_WINDOW:
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_sub = m_new
    alpha = tl.exp2(m_i - m_sub)
    p = tl.exp2(s * qk_scale - m_sub[:, None])
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
    nheads, max_seqlen, qk_scale, dropout_p, keep_threshold, window_left, window_right,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(L, BLOCK_M), B, h). Writes O rows [m·BLOCK_M, …) of one sequence·head and their LSE.

    Scores are kept in log2 units (``qk_scale`` = softmax scale · log2 e) so that the
    exponentials are ``exp2``; ``LSE`` is stored in the same units. The key blocks that
    lie wholly inside the sequence run unmasked; a partial last block, masked
    (:func:`_attn_fwd_step`). With ``HAS_WINDOW`` only the key blocks that meet the
    window of some row of this block, ``[m·BLOCK_M − window_left, (m+1)·BLOCK_M − 1 +
    window_right]``, are visited: O(BLOCK_M + window) keys per query block, not O(L).
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
    # Key range [lo, end) of full blocks, then the partial block at full_end if it lies below hi.
    lo = 0
    end = full_end
    hi = seqlen
    if HAS_WINDOW:
        lo = (tl.maximum(pid_m * BLOCK_M - window_left, 0) // BLOCK_N) * BLOCK_N
        hi = tl.minimum(pid_m * BLOCK_M + BLOCK_M + window_right, seqlen)
        end = tl.minimum(full_end, hi)
    for start_n in range(lo, end, BLOCK_N):
        acc, l_i, m_i = _attn_fwd_step(
            acc, l_i, m_i, q, k_base, v_base, start_n, seqlen, offs_d, mask_d, stride_kt, stride_vt,
            qk_scale, seed, counter_base, offs_m, max_seqlen, keep_threshold, window_left, window_right,
            HEAD_DIM, BLOCK_D, BLOCK_N, False, HAS_DROPOUT, HAS_WINDOW, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    if full_end < hi:
        acc, l_i, m_i = _attn_fwd_step(
            acc, l_i, m_i, q, k_base, v_base, full_end, seqlen, offs_d, mask_d, stride_kt, stride_vt,
            qk_scale, seed, counter_base, offs_m, max_seqlen, keep_threshold, window_left, window_right,
            HEAD_DIM, BLOCK_D, BLOCK_N, True, HAS_DROPOUT, HAS_WINDOW, DOT_PRECISION, UPCAST,
        )  # fmt: skip

    if HAS_WINDOW:
        # A row whose window holds no key (impossible for a real row: its own key is always
        # inside) gets output 0 and LSE +inf, so that the backward gives it P = 0.
        # (Rows past the end of the sequence can be such rows: l_safe keeps log2(0) out.)
        empty = l_i == 0.0
        l_safe = tl.where(empty, 1.0, l_i)
        acc = acc / l_safe[:, None]
    else:
        acc = acc / l_i[:, None]
    if HAS_DROPOUT:
        acc = acc * (1.0 / (1.0 - dropout_p))
    o_base = Out + start64 * stride_ot + head * stride_oh
    tl.store(
        o_base + offs_m[:, None] * stride_ot + offs_d[None, :],
        acc.to(Out.dtype.element_ty),
        mask=row_ok[:, None] & mask_d[None, :],
    )
    if HAS_WINDOW:
        lse_row = tl.where(empty, float("inf"), m_i + tl.log2(l_safe))
        tl.store(LSE + head * stride_lse_h + start + offs_m, lse_row, mask=row_ok)
    else:
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
    seed, counter_base, rows, max_seqlen, keep_threshold, keep_scale, window_left, window_right,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N2: tl.constexpr, MASK_COLS: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):  # fmt: skip
    """One key block of dQ's loop: returns dq + dS k for keys ``col0 …``. As in the forward, only a
    sequence's last, partial block (``MASK_COLS``) pays for masked loads and the select that zeroes
    its probabilities past the end (there k = 0 already, but exp2(0 − lse) may overflow).
    ``HAS_WINDOW`` zeroes the probabilities outside the window the same way."""
    cols = col0 + tl.arange(0, BLOCK_N2)
    k2 = _load_rows(k_base, cols, stride_kt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    v2 = _load_rows(v_base, cols, stride_vt, offs_d, mask_d, seqlen, HEAD_DIM, BLOCK_D, MASK_COLS)
    s = mm(q, tl.trans(k2), DOT_PRECISION, UPCAST) * qk_scale
    p = tl.exp2(s - lse[:, None])
    if MASK_COLS:
        p = tl.where((cols < seqlen)[None, :], p, 0.0)
    if HAS_WINDOW:
        p = tl.where(_in_window(rows, cols, window_left, window_right), p, 0.0)
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
    nheads, max_seqlen, softmax_scale, qk_scale, dropout_p, keep_threshold, window_left, window_right,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M1: tl.constexpr, BLOCK_N1: tl.constexpr, BLOCK_M2: tl.constexpr, BLOCK_N2: tl.constexpr,
    HAS_DROPOUT: tl.constexpr, HAS_WINDOW: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(L, BLOCK_N1), B, h), BLOCK_N1 == BLOCK_M2.

    Part 1: dK, dV for keys [i·BLOCK_N1, …), looping over query blocks of BLOCK_M1.
    Part 2: dQ for queries [i·BLOCK_M2, …), looping over key blocks of BLOCK_N2.
    With P = softmax(S), dS = P ⊙ (dP − Δ) where dP = dO Vᵀ (through the dropout
    mask) and Δ = rowsum(dO ⊙ O).

    With ``HAS_WINDOW`` P is zeroed outside the window, and each loop visits only the
    blocks that meet it: the keys ``[i·BLOCK_N1, (i+1)·BLOCK_N1)`` are attended by the
    queries ``[i·BLOCK_N1 − window_right, (i+1)·BLOCK_N1 − 1 + window_left]`` (part 1),
    and the queries of part 2 attend keys as in the forward.
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
    lo1 = 0
    hi1 = seqlen
    if HAS_WINDOW:
        lo1 = (tl.maximum(pid * BLOCK_N1 - window_right, 0) // BLOCK_M1) * BLOCK_M1
        hi1 = tl.minimum(pid * BLOCK_N1 + BLOCK_N1 + window_left, seqlen)
    for start_m in range(lo1, hi1, BLOCK_M1):
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
        if HAS_WINDOW:  # _in_window transposed: key offs_n[j] (row) − query rows[i] (column)
            diff_t = offs_n[:, None] - rows[None, :]
            p_t = tl.where((diff_t >= -window_left) & (diff_t <= window_right), p_t, 0.0)
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
    lo2 = 0
    end2 = full_end
    hi2 = seqlen
    if HAS_WINDOW:
        lo2 = (tl.maximum(pid * BLOCK_M2 - window_left, 0) // BLOCK_N2) * BLOCK_N2
        hi2 = tl.minimum(pid * BLOCK_M2 + BLOCK_M2 + window_right, seqlen)
        end2 = tl.minimum(full_end, hi2)
    for start_n in range(lo2, end2, BLOCK_N2):
        dq = _attn_bwd_dq_step(
            dq, q, do, lse, delta, k_base, v_base, start_n, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
            seed, counter_base, offs_m, max_seqlen, keep_threshold, keep_scale, window_left, window_right,
            HEAD_DIM, BLOCK_D, BLOCK_N2, False, HAS_DROPOUT, HAS_WINDOW, DOT_PRECISION, UPCAST,
        )  # fmt: skip
    if full_end < hi2:
        dq = _attn_bwd_dq_step(
            dq, q, do, lse, delta, k_base, v_base, full_end, seqlen, offs_d, mask_d, stride_kt, stride_vt, qk_scale,
            seed, counter_base, offs_m, max_seqlen, keep_threshold, keep_scale, window_left, window_right,
            HEAD_DIM, BLOCK_D, BLOCK_N2, True, HAS_DROPOUT, HAS_WINDOW, DOT_PRECISION, UPCAST,
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
def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def varlen_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    dropout_p: float,
    softmax_scale: float,
    seed: Tensor | None,
    window_left: int = -1,
    window_right: int = -1,
) -> tuple[Tensor, Tensor]:
    """q, k, v: (T, h, d); cu_seqlens: (B+1,) int32. Returns out (T, h, d) and LSE (h, T) fp32, log2 units.

    window_left, window_right: the sliding window (−1: unbounded), see :func:`kernel_window`.
    """
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    total, nheads, head_dim = q.shape
    out = output_buffer((total, nheads, head_dim), q.dtype, q.device)
    lse = output_buffer((nheads, total), torch.float32, q.device)
    batch = cu_seqlens.numel() - 1
    if total == 0 or batch == 0 or max_seqlen == 0:
        return out, lse
    cfg = forward_config(head_dim, q.dtype, max_seqlen)
    grid = (triton.cdiv(max_seqlen, cfg["BLOCK_M"]), batch, nheads)
    has_dropout = dropout_p > 0.0
    left, right, has_window = kernel_window(window_left, window_right, max_seqlen)
    _attn_fwd_kernel[grid](
        q, k, v, out, lse, cu_seqlens, seed if has_dropout else cu_seqlens,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        lse.stride(0),
        nheads, max_seqlen, softmax_scale * LOG2E, dropout_p, keep_threshold(dropout_p), left, right,
        HEAD_DIM=head_dim, BLOCK_D=dot_width(head_dim), BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        HAS_DROPOUT=has_dropout, HAS_WINDOW=has_window, DOT_PRECISION=dot_precision(q.dtype),
        UPCAST=upcast(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return out, lse


_varlen_fwd = torch.library.custom_op("fastbert::varlen_attention_fwd", varlen_forward, mutates_args=())


@_varlen_fwd.register_fake
def _(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    dropout_p: float,
    softmax_scale: float,
    seed: Tensor | None,
    window_left: int = -1,
    window_right: int = -1,
) -> tuple[Tensor, Tensor]:
    total, nheads, head_dim = q.shape
    return q.new_empty((total, nheads, head_dim)), q.new_empty((nheads, total), dtype=torch.float32)


def varlen_backward(
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
    window_left: int = -1,
    window_right: int = -1,
) -> tuple[Tensor, Tensor, Tensor]:
    """dout, q, k, v, out: (T, h, d); lse: (h, T). Returns dq, dk, dv, each (T, h, d).

    The window must be the forward's.
    """
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
    cfg = backward_config(head_dim, q.dtype, max_seqlen)
    assert cfg["BLOCK_N1"] == cfg["BLOCK_M2"]
    grid = (triton.cdiv(max_seqlen, cfg["BLOCK_N1"]), batch, nheads)
    has_dropout = dropout_p > 0.0
    left, right, has_window = kernel_window(window_left, window_right, max_seqlen)
    _attn_bwd_kernel[grid](
        q, k, v, dout, lse, delta, dq, dk, dv, cu_seqlens, seed if has_dropout else cu_seqlens,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), dout.stride(0), dout.stride(1),
        dq.stride(0), dq.stride(1), dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1),
        lse.stride(0),
        nheads, max_seqlen, softmax_scale, softmax_scale * LOG2E, dropout_p, keep_threshold(dropout_p),
        left, right,
        HEAD_DIM=head_dim, BLOCK_D=block_d,
        BLOCK_M1=cfg["BLOCK_M1"], BLOCK_N1=cfg["BLOCK_N1"], BLOCK_M2=cfg["BLOCK_M2"], BLOCK_N2=cfg["BLOCK_N2"],
        HAS_DROPOUT=has_dropout, HAS_WINDOW=has_window, DOT_PRECISION=dot_precision(q.dtype),
        UPCAST=upcast(q.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return dq, dk, dv


_varlen_bwd = torch.library.custom_op("fastbert::varlen_attention_bwd", varlen_backward, mutates_args=())


@_varlen_bwd.register_fake
def _(
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
    window_left: int = -1,
    window_right: int = -1,
) -> tuple[Tensor, Tensor, Tensor]:
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


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
