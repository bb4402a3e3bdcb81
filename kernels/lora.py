"""LoRA linear layer fused in Triton: ``y = x Wᵀ + b + s · (x Aᵀ) Bᵀ`` with W (and b) frozen.

Shapes: ``M`` rows of x (all leading dims flattened), ``K`` in_features, ``N``
out_features, ``r`` rank. x: (…, K); W: (N, K); b: (N,); A (``lora_A.weight``):
(r, K); B (``lora_B.weight``): (N, r); s = alpha / r.

Forward, one kernel: each (BLOCK_M × BLOCK_N) output tile streams x over K once
and feeds the same x tile to two products, ``x Wᵀ`` and the rank-r ``x Aᵀ``
(recomputed by every column block of a row block: r/BLOCK_N extra work, about 6 %
at r = 8), then adds ``s · (x Aᵀ) Bᵀ`` and the bias in the epilogue. The unfused
PyTorch/PEFT forward writes and re-reads three (M, N) tensors besides y (the LoRA
branch, its scaled copy, the sum); here only y (M, N) and xa = x Aᵀ (M, r) are written.

Backward, one kernel plus two small products: with dy (M, N) and g = dy B (M, r),
``dx = dy W + s · g A`` comes from one kernel that streams dy over N once for both
``dy W`` and ``g`` (the LoRA part joins in the epilogue); then
``dA = s · gᵀ x`` (r, K) and ``dB = s · dyᵀ (x Aᵀ)`` (N, r) are tall-skinny cuBLAS
products that only read x and dy. No (M, N) or (M, K) intermediate is created
(PEFT's backward makes three: s·dy, the LoRA branch's dx, the sum).

Adapter dropout (``dropout_p`` > 0, PEFT's ``lora_dropout``: applied to x on the
LoRA branch only) is a Bernoulli keep-mask drawn by PyTorch, one byte per element of
x, read by the forward kernel (x ⊙ keep / (1 − p) is formed in registers) and by the
backward kernel; only ``dA`` then needs the dropped x, made as one (M, K) temporary
in the backward pass (PEFT keeps the same tensor alive from forward to backward).

:func:`lora_linear` does not run these kernels by default (``strategy="auto"``): on the
H100, cuBLAS ran the main product in about half the time of this file's Triton GEMM
(kernels/README.md). Without dropout it folds the adapter into the weight and runs the
vendor GEMM (:mod:`fastbert.kernels.lora_merged`); with dropout it runs the frozen layer on the
vendor GEMM and only the adapter's rank-r products in Triton (:mod:`fastbert.kernels.lora_dropout`,
``strategy="split"``). Neither has been timed on a GPU yet. ``strategy="fused"`` runs
this file's kernels, with or without dropout.

Gradients for W and b are computed (with plain PyTorch products) only if they
require grad; in LoRA they do not. Layout (Liger-Kernel's): kernels → launchers
(``torch.library`` custom ops) → ``torch.autograd.Function`` → :func:`lora_linear`
→ the PyTorch reference :func:`lora_linear_reference`.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastbert.kernels.common import dot_precision, dot_width, interpreting, mm, output_buffer, upcast
from fastbert.kernels.lora_dropout import dropout_lora_linear
from fastbert.kernels.lora_merged import (
    check_lora_shapes,
    compute_dtype,
    merged_lora_linear,
    merged_lora_linear_checked,
)

__all__ = ["lora_linear", "lora_linear_reference", "merged_lora_linear"]

#: How :func:`lora_linear` computes: see its docstring.
Strategy = Literal["auto", "merged", "split", "fused"]
STRATEGIES = ("auto", "merged", "split", "fused")

if __package__ != "fastbert.kernels":  # a second import under another name would re-register the ops
    raise ImportError(f"import this module as fastbert.kernels.lora, not {__name__}")

MAX_RANK = 128


# ============================================================================ kernels
@triton.jit
def _tile_ids(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped launch order (Triton's matmul tutorial): GROUP_M row blocks share their column blocks in L2."""
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    group = GROUP_M * num_n
    first_m = (pid // group) * GROUP_M
    size_m = min(num_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group) % size_m
    pid_n = (pid % group) // size_m
    return pid_m, pid_n


@triton.jit
def _lora_fwd_kernel(
    X, KEEP, W, BIAS, A, B, Y, XA,
    M, N, K, R,
    stride_xm, stride_keepm, stride_wn, stride_ar, stride_bn, stride_ym, stride_xam,
    scaling, keep_scale,
    HAS_BIAS: tl.constexpr, HAS_DROPOUT: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(M, BLOCK_M) · cdiv(N, BLOCK_N),). Y = X Wᵀ + b + s·(X' Aᵀ) Bᵀ; XA = X' Aᵀ (written by column block 0).

    X' is X, or X ⊙ KEEP · keep_scale with dropout.
    """
    pid_m, pid_n = _tile_ids(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    offs_r = tl.arange(0, BLOCK_R)
    m_ok = offs_m < M
    n_ok = offs_n < N
    r_ok = offs_r < R
    x_ptrs = X + offs_m.to(tl.int64)[:, None] * stride_xm + offs_k[None, :]
    w_ptrs = W + offs_n.to(tl.int64)[None, :] * stride_wn + offs_k[:, None]  # (BLOCK_K, BLOCK_N) tile of Wᵀ
    a_ptrs = A + offs_r[None, :] * stride_ar + offs_k[:, None]  # (BLOCK_K, BLOCK_R) tile of Aᵀ
    if HAS_DROPOUT:
        keep_ptrs = KEEP + offs_m.to(tl.int64)[:, None] * stride_keepm + offs_k[None, :]
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    xa = tl.zeros([BLOCK_M, BLOCK_R], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            x = tl.load(x_ptrs, mask=m_ok[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=n_ok[None, :], other=0.0)
            a = tl.load(a_ptrs, mask=r_ok[None, :], other=0.0)
        else:
            k_ok = (k0 + offs_k) < K
            x = tl.load(x_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=n_ok[None, :] & k_ok[:, None], other=0.0)
            a = tl.load(a_ptrs, mask=r_ok[None, :] & k_ok[:, None], other=0.0)
        acc += mm(x, w, DOT_PRECISION, UPCAST)
        if HAS_DROPOUT:
            if EVEN_K:
                keep = tl.load(keep_ptrs, mask=m_ok[:, None], other=0)
            else:
                keep = tl.load(keep_ptrs, mask=m_ok[:, None] & k_ok[None, :], other=0)
            x_drop = tl.where(keep != 0, x.to(tl.float32) * keep_scale, 0.0).to(x.dtype)
            xa += mm(x_drop, a, DOT_PRECISION, UPCAST)
            keep_ptrs += BLOCK_K
        else:
            xa += mm(x, a, DOT_PRECISION, UPCAST)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
        a_ptrs += BLOCK_K
    # The LoRA branch goes through the rank-r bottleneck in the input dtype, as in PyTorch/PEFT.
    xa_lo = xa.to(X.dtype.element_ty)
    b = tl.load(
        B + offs_n[None, :] * stride_bn + offs_r[:, None], mask=n_ok[None, :] & r_ok[:, None], other=0.0
    )
    acc += mm(xa_lo, b, DOT_PRECISION, UPCAST) * scaling
    if HAS_BIAS:
        acc += tl.load(BIAS + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(
        Y + offs_m.to(tl.int64)[:, None] * stride_ym + offs_n[None, :],
        acc.to(Y.dtype.element_ty),
        mask=m_ok[:, None] & n_ok[None, :],
    )
    if pid_n == 0:
        tl.store(
            XA + offs_m.to(tl.int64)[:, None] * stride_xam + offs_r[None, :],
            xa_lo,
            mask=m_ok[:, None] & r_ok[None, :],
        )


@triton.jit
def _lora_bwd_dx_kernel(
    DY, W, A, B, KEEP, DX, G,
    M, N, K, R,
    stride_dym, stride_wn, stride_ar, stride_bn, stride_keepm, stride_dxm, stride_gm,
    scaling, keep_scale,
    HAS_DROPOUT: tl.constexpr, EVEN_N: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(M, BLOCK_M) · cdiv(K, BLOCK_K),). DX = DY W + s·(G A) [⊙ KEEP · keep_scale]; G = DY B.

    The (BLOCK_M × BLOCK_K) output tile reduces over N in steps of BLOCK_N; G is
    written by column block 0.
    """
    pid_m, pid_k = _tile_ids(tl.program_id(0), M, K, BLOCK_M, BLOCK_K, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_n = tl.arange(0, BLOCK_N)
    offs_r = tl.arange(0, BLOCK_R)
    m_ok = offs_m < M
    k_ok = offs_k < K
    r_ok = offs_r < R
    dy_ptrs = DY + offs_m.to(tl.int64)[:, None] * stride_dym + offs_n[None, :]
    w_ptrs = W + offs_n.to(tl.int64)[:, None] * stride_wn + offs_k[None, :]  # (BLOCK_N, BLOCK_K) tile of W
    b_ptrs = B + offs_n.to(tl.int64)[:, None] * stride_bn + offs_r[None, :]  # (BLOCK_N, BLOCK_R) tile of B
    acc = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float32)
    g = tl.zeros([BLOCK_M, BLOCK_R], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        if EVEN_N:
            dy = tl.load(dy_ptrs, mask=m_ok[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=k_ok[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=r_ok[None, :], other=0.0)
        else:
            n_ok = (n0 + offs_n) < N
            dy = tl.load(dy_ptrs, mask=m_ok[:, None] & n_ok[None, :], other=0.0)
            w = tl.load(w_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0.0)
            b = tl.load(b_ptrs, mask=n_ok[:, None] & r_ok[None, :], other=0.0)
        acc += mm(dy, w, DOT_PRECISION, UPCAST)
        g += mm(dy, b, DOT_PRECISION, UPCAST)
        dy_ptrs += BLOCK_N
        w_ptrs += BLOCK_N * stride_wn
        b_ptrs += BLOCK_N * stride_bn
    g_lo = g.to(DY.dtype.element_ty)
    a = tl.load(
        A + offs_r[:, None] * stride_ar + offs_k[None, :], mask=r_ok[:, None] & k_ok[None, :], other=0.0
    )
    lora = mm(g_lo, a, DOT_PRECISION, UPCAST) * scaling
    if HAS_DROPOUT:
        keep = tl.load(
            KEEP + offs_m.to(tl.int64)[:, None] * stride_keepm + offs_k[None, :],
            mask=m_ok[:, None] & k_ok[None, :],
            other=0,
        )
        lora = tl.where(keep != 0, lora * keep_scale, 0.0)
    acc += lora
    tl.store(
        DX + offs_m.to(tl.int64)[:, None] * stride_dxm + offs_k[None, :],
        acc.to(DX.dtype.element_ty),
        mask=m_ok[:, None] & k_ok[None, :],
    )
    if pid_k == 0:
        tl.store(
            G + offs_m.to(tl.int64)[:, None] * stride_gm + offs_r[None, :],
            g_lo,
            mask=m_ok[:, None] & r_ok[None, :],
        )


# ============================================================================ launchers
def _fwd_config(dtype: torch.dtype, rank: int, m: int, n: int, device: torch.device) -> dict[str, int]:
    """Forward tile sizes (no autotuning): output tile BLOCK_M × BLOCK_N, reduction step BLOCK_K.

    H100 sweep (bf16, M = 16384, 768 → 768, r = 8; kernels/README.md, "Tuning"): 256 × 128 × 64
    with 8 warps, 3 stages was the best of 8 (13 % ahead of 128 × 128 × 64). It needs ~150 KB
    of shared memory (Hopper has 227 KB) and enough tiles to fill the GPU, else 128 × 128.
    """
    block_r = dot_width(rank)
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_R": block_r, "GROUP_M": 2,
                "num_warps": 4, "num_stages": 1}  # fmt: skip
    if dtype == torch.float32:
        return {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "BLOCK_R": block_r, "GROUP_M": 8,
                "num_warps": 4, "num_stages": 3}  # fmt: skip
    big = _is_hopper(device) and rank <= 32 and triton.cdiv(m, 256) * triton.cdiv(n, 128) >= 256
    return {"BLOCK_M": 256 if big else 128, "BLOCK_N": 128, "BLOCK_K": 64, "BLOCK_R": block_r, "GROUP_M": 8,
            "num_warps": 8, "num_stages": 3}  # fmt: skip


def _dx_config(dtype: torch.dtype, rank: int) -> dict[str, int]:
    """dx tile sizes: output tile BLOCK_M × BLOCK_N (along K), reduction step BLOCK_K (along N).

    Same H100 sweep: 64 × 128 × 64 with 4 warps, 3 stages was the best of 8 for this kernel
    (23 % ahead of the forward's 128 × 128 × 64).
    """
    block_r = dot_width(rank)
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "BLOCK_R": block_r, "GROUP_M": 2,
                "num_warps": 4, "num_stages": 1}  # fmt: skip
    if dtype == torch.float32:
        return {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "BLOCK_R": block_r, "GROUP_M": 8,
                "num_warps": 4, "num_stages": 3}  # fmt: skip
    return {"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 64, "BLOCK_R": block_r, "GROUP_M": 8,
            "num_warps": 4, "num_stages": 3}  # fmt: skip


@functools.cache
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def _is_hopper(device: torch.device) -> bool:
    return device.type == "cuda" and _capability(device.index or 0)[0] == 9


def _rows(t: Tensor) -> Tensor:
    """(…, C) → (M, C) with unit stride along C (a view when possible)."""
    t = t.reshape(-1, t.shape[-1])
    return t if t.stride(-1) == 1 else t.contiguous()


def _lora_fwd_impl(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    keep: Tensor | None,
    keep_scale: float,
) -> tuple[Tensor, Tensor]:
    """x: (M, K); weight: (N, K); bias: (N,); lora_a: (r, K); lora_b: (N, r); keep: (M, K) uint8 or None.

    Returns y (M, N) and xa = x' Aᵀ (M, r), both in x's dtype.
    """
    x, weight, lora_a, lora_b = _rows(x), _rows(weight), _rows(lora_a), _rows(lora_b)
    m, k = x.shape
    n, rank = weight.shape[0], lora_a.shape[0]
    y = output_buffer((m, n), x.dtype, x.device)
    xa = output_buffer((m, rank), x.dtype, x.device)
    if m == 0:
        return y, xa
    cfg = _fwd_config(x.dtype, rank, m, n, x.device)
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]),)
    _lora_fwd_kernel[grid](
        x, keep if keep is not None else x, weight, bias if bias is not None else x, lora_a, lora_b, y, xa,
        m, n, k, rank,
        x.stride(0), keep.stride(0) if keep is not None else 0, weight.stride(0), lora_a.stride(0),
        lora_b.stride(0), y.stride(0), xa.stride(0),
        scaling, keep_scale,
        HAS_BIAS=bias is not None, HAS_DROPOUT=keep is not None, EVEN_K=k % cfg["BLOCK_K"] == 0,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"], BLOCK_R=cfg["BLOCK_R"],
        GROUP_M=cfg["GROUP_M"], DOT_PRECISION=dot_precision(x.dtype), UPCAST=upcast(x.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return y, xa


_lora_fwd = torch.library.custom_op("fastbert::lora_linear_fwd", _lora_fwd_impl, mutates_args=())


@_lora_fwd.register_fake
def _(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    keep: Tensor | None,
    keep_scale: float,
) -> tuple[Tensor, Tensor]:
    m = x.shape[0]
    return x.new_empty((m, weight.shape[0])), x.new_empty((m, lora_a.shape[0]))


def _lora_bwd_dx_impl(
    dy: Tensor,
    weight: Tensor,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    keep: Tensor | None,
    keep_scale: float,
) -> tuple[Tensor, Tensor]:
    """dy: (M, N); weight: (N, K); lora_a: (r, K); lora_b: (N, r). Returns dx (M, K) and g = dy B (M, r)."""
    dy, weight, lora_a, lora_b = _rows(dy), _rows(weight), _rows(lora_a), _rows(lora_b)
    m, n = dy.shape
    k, rank = weight.shape[1], lora_a.shape[0]
    dx = output_buffer((m, k), dy.dtype, dy.device)
    g = output_buffer((m, rank), dy.dtype, dy.device)
    if m == 0:
        return dx, g
    cfg = _dx_config(dy.dtype, rank)
    # Output tile BLOCK_M × BLOCK_N (named BLOCK_K in the kernel: it spans K), reduction step BLOCK_K over N.
    grid = (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(k, cfg["BLOCK_N"]),)
    _lora_bwd_dx_kernel[grid](
        dy, weight, lora_a, lora_b, keep if keep is not None else dy, dx, g,
        m, n, k, rank,
        dy.stride(0), weight.stride(0), lora_a.stride(0), lora_b.stride(0),
        keep.stride(0) if keep is not None else 0, dx.stride(0), g.stride(0),
        scaling, keep_scale,
        HAS_DROPOUT=keep is not None, EVEN_N=n % cfg["BLOCK_K"] == 0,
        BLOCK_M=cfg["BLOCK_M"], BLOCK_K=cfg["BLOCK_N"], BLOCK_N=cfg["BLOCK_K"], BLOCK_R=cfg["BLOCK_R"],
        GROUP_M=cfg["GROUP_M"], DOT_PRECISION=dot_precision(dy.dtype), UPCAST=upcast(dy.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return dx, g


_lora_bwd_dx = torch.library.custom_op("fastbert::lora_linear_bwd_dx", _lora_bwd_dx_impl, mutates_args=())


@_lora_bwd_dx.register_fake
def _(
    dy: Tensor,
    weight: Tensor,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    keep: Tensor | None,
    keep_scale: float,
) -> tuple[Tensor, Tensor]:
    m = dy.shape[0]
    return dy.new_empty((m, weight.shape[1])), dy.new_empty((m, lora_a.shape[0]))


# ============================================================================ autograd
class LoRALinearFunction(torch.autograd.Function):
    """Differentiable wrapper of the two custom ops; see :func:`lora_linear`. x: (M, K), keep: (M, K) uint8 or None.

    Under ``torch.compile`` it calls the registered ops (what gets traced); in eager mode
    their implementations directly, skipping the dispatcher's Python round trip.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        lora_a: Tensor,
        lora_b: Tensor,
        scaling: float,
        keep: Tensor | None,
        keep_scale: float,
    ) -> Tensor:
        fwd = torch.ops.fastbert.lora_linear_fwd if torch.compiler.is_compiling() else _lora_fwd_impl
        y, xa = fwd(x, weight, bias, lora_a, lora_b, scaling, keep, keep_scale)
        ctx.save_for_backward(x, weight, lora_a, lora_b, xa, keep)
        ctx.scaling, ctx.keep_scale, ctx.has_bias = scaling, keep_scale, bias is not None
        return y

    @staticmethod
    def backward(
        ctx: Any, dy: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, None, None, None]:
        x, weight, lora_a, lora_b, xa, keep = ctx.saved_tensors
        need_x, need_w, need_b, need_a, need_bb = ctx.needs_input_grad[:5]
        s = ctx.scaling
        dy = dy.reshape(-1, dy.shape[-1])
        if need_x:
            bwd_dx = (
                torch.ops.fastbert.lora_linear_bwd_dx if torch.compiler.is_compiling() else _lora_bwd_dx_impl
            )
            dx, g = bwd_dx(dy, weight, lora_a, lora_b, s, keep, ctx.keep_scale)
        else:
            dx, g = None, dy @ lora_b
        d_a = d_b = d_w = d_bias = None
        # The scaling goes on the small (M, r) factors, not on the products.
        if need_a:
            # With dropout, the dropped input is the one (M, K) temporary of the backward pass.
            x_lora = x if keep is None else x * keep * ctx.keep_scale
            d_a = (g * s).t() @ x_lora  # (r, K)
        if need_bb:
            d_b = dy.t() @ (xa * s)  # (N, r)
        if need_w:  # not LoRA's case (W frozen); plain PyTorch
            d_w = dy.t() @ x
        if need_b and ctx.has_bias:
            d_bias = dy.sum(0)
        return dx, d_w, d_bias, d_a, d_b, None, None, None


# ============================================================================ functional wrapper
def lora_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    dropout_p: float = 0.0,
    strategy: Strategy = "auto",
    *,
    seed: Tensor | None = None,
) -> Tensor:
    """``x Wᵀ + b + scaling · (dropout(x) Aᵀ) Bᵀ`` (PEFT's ``lora.Linear`` forward), fast.

    x: (…, K); weight: (N, K); bias: (N,) or None; lora_a: (r, K), r ≤ 128; lora_b: (N, r);
    dropout_p: adapter-input dropout, applied as given (pass 0 in eval). Returns (…, N)
    in x's dtype (weights are cast to it; under autocast everything is cast to the
    autocast dtype, as ``F.linear`` would). The Triton kernel needs CUDA tensors (or
    TRITON_INTERPRET=1); the merged strategy runs on any device.
    Differentiable in x, lora_a, lora_b (and weight, bias if they require grad).

    strategy: ``"merged"`` folds the adapter into the weight and runs the vendor GEMM
    (:mod:`fastbert.kernels.lora_merged`; needs ``dropout_p == 0``); ``"split"`` runs the frozen
    layer on the vendor GEMM and the adapter's rank-r products through the dropout mask in
    Triton, the mask regenerated from a counter-based RNG (:mod:`fastbert.kernels.lora_dropout`;
    needs ``dropout_p > 0``); ``"fused"`` runs this module's Triton kernel (one GEMM with the
    adapter in its main loop; the mask drawn by PyTorch and stored); ``"auto"`` (default) takes
    ``merged`` without dropout and ``split`` with it.
    seed: (1,) int64 tensor fixing the ``split`` strategy's mask (default: drawn from
    PyTorch's generator); the ``fused`` strategy draws its mask with ``torch.bernoulli``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, not {strategy!r}")
    if strategy == "merged" and dropout_p != 0.0:
        raise ValueError(f"strategy='merged' needs dropout_p == 0 (got {dropout_p}): use 'split' or 'auto'")
    if strategy == "split" and dropout_p == 0.0:
        raise ValueError("strategy='split' needs dropout_p > 0: without dropout use 'merged' or 'auto'")
    dtype = compute_dtype(x)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"lora_linear computes in fp16, bf16 or fp32, not {dtype}")
    check_lora_shapes(x, weight, bias, lora_a, lora_b)
    k = x.shape[-1]
    n, rank = weight.shape[0], lora_a.shape[0]
    if not 1 <= rank <= MAX_RANK:
        raise ValueError(f"rank {rank} is outside 1..{MAX_RANK} (use fastbert.lora.LoRALinear)")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if strategy == "merged" or (strategy == "auto" and dropout_p == 0.0):
        # Vendor GEMMs, any device; the checks above are the ones merged_lora_linear would make.
        return merged_lora_linear_checked(x, weight, bias, lora_a, lora_b, scaling, dtype)
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"the Triton LoRA kernels run on CUDA tensors (got {x.device}); on the CPU use "
            "lora_linear_reference, strategy='merged' without dropout, or TRITON_INTERPRET=1 to run "
            "the kernels in Triton's interpreter"
        )
    lead = x.shape[:-1]
    x2 = _rows(x.reshape(-1, k).to(dtype))
    weight, lora_a, lora_b = weight.to(dtype), lora_a.to(dtype), lora_b.to(dtype)
    bias = bias.to(dtype) if bias is not None else None
    if strategy in ("auto", "split"):  # with dropout
        y = dropout_lora_linear(x2, weight, bias, lora_a, lora_b, scaling, dropout_p, seed)
        return y.view(*lead, n)
    keep, keep_scale = None, 1.0
    if dropout_p > 0.0:
        keep = torch.empty(x2.shape, dtype=torch.bool, device=x.device).bernoulli_(1.0 - dropout_p)
        keep, keep_scale = keep.view(torch.uint8), 1.0 / (1.0 - dropout_p)
    y = LoRALinearFunction.apply(x2, weight, bias, lora_a, lora_b, float(scaling), keep, keep_scale)
    return y.view(*lead, n)


# ============================================================================ reference
def lora_linear_reference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    keep: Tensor | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """PEFT's formula in the inputs' dtype: ``x Wᵀ + b + s · ((x ⊙ keep / (1 − p)) Aᵀ) Bᵀ``.

    x: (…, K); keep: optional keep-mask shaped like x (the one the kernel drew). Returns (…, N).
    """
    x_lora = x if keep is None else x * keep.to(x.dtype) / (1.0 - dropout_p)
    return torch.nn.functional.linear(x, weight, bias) + (x_lora @ lora_a.t()) @ lora_b.t() * scaling
