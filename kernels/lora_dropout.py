"""LoRA with adapter dropout, the frozen layer on the vendor GEMM: ``y = x Wᵀ + b + s · (drop(x) Aᵀ) Bᵀ``.

Shapes: x (M, K), W (N, K), b (N,), A (r, K) (``lora_A.weight``), B (N, r)
(``lora_B.weight``), s = alpha / r, dropout probability p, keep-scale c = 1 / (1 − p).

Why. With dropout the adapter sees another input than the frozen layer, so the
adapter cannot be folded into the weight (:mod:`fastbert.kernels.lora_merged`). The fused
kernel (:mod:`fastbert.kernels.lora`) runs the frozen product in a Triton GEMM,
which on the H100 took about 2× cuBLAS's time (kernels/README.md); PEFT's formula
uses cuBLAS but writes the dropped x (M, K) and three (M, N) tensors besides y.
Here the two (M, N)-sized products run where they run fastest, in the vendor GEMM,
and Triton does only what the GEMM cannot: the rank-r products through the
dropout mask, which is regenerated from a counter-based RNG
(:mod:`fastbert.kernels.dropout_rng`, stream 0, rows = tokens, columns = input
features) instead of being drawn, stored and read back (M·K bytes).

Forward: ``y = x Wᵀ + b`` (cuBLAS); ``xa = drop(x) Aᵀ`` (M, r) by
:func:`_lora_down_kernel`, which streams x once; ``y += s · xa Bᵀ`` (cuBLAS
``addmm_`` into y; out of place under ``torch.compile``, where torch 2.11 lost every
gradient through the in-place form). Saved: x, xa and the seed; no mask.

Backward, W frozen: ``dx = dy W`` (cuBLAS), ``g = dy B`` (M, r) and
``dB = s · dyᵀ xa`` (tall-skinny cuBLAS products); then :func:`_lora_up_kernel`
streams x and dx once more, tile by tile: it regenerates the mask, adds the LoRA
part ``keep ⊙ (s · g A) · c`` into dx, and accumulates ``dA = s · gᵀ (keep ⊙ x · c)``
over its share of the rows (per-share partial sums, added in fixed order: no
atomics, so dA is bit-reproducible).

Rounding: x · c is rounded to the input dtype before its product, xa and g are
rounded to it (the rank-r bottleneck, as PyTorch/PEFT round them); the scaling is
applied in fp32. Layout (Liger-Kernel's): kernels → launchers (``torch.library``
custom ops) → ``torch.autograd.Function`` → :func:`dropout_lora_linear` → the
reference :func:`dropout_lora_linear_reference`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from fastbert.kernels.common import dot_precision, dot_width, interpreting, mm, output_buffer, upcast
from fastbert.kernels.dropout_rng import draw_seed, keep_mask, keep_mask_reference, keep_threshold

__all__ = ["dropout_lora_linear", "dropout_lora_linear_reference", "lora_dropout_mask"]

if __package__ != "fastbert.kernels":  # a second import under another name would re-register the ops
    raise ImportError(f"import this module as fastbert.kernels.lora_dropout, not {__name__}")


# ============================================================================ kernels
@triton.jit
def _dropped_x(X, seed, threshold, keep_scale, offs_m, k0, m_ok, K, stride_xm, BLOCK_K: tl.constexpr):
    """(BLOCK_M, BLOCK_K) tile of keep ⊙ x · c at rows ``offs_m``, columns ``k0 …``, in x's dtype; and the mask."""
    cols = k0 + tl.arange(0, BLOCK_K)
    x = tl.load(
        X + offs_m.to(tl.int64)[:, None] * stride_xm + cols[None, :],
        mask=m_ok[:, None] & (cols < K)[None, :],
        other=0.0,
    )
    keep = keep_mask(seed, 0, offs_m, k0, K, threshold, BLOCK_K)
    return tl.where(keep, x.to(tl.float32) * keep_scale, 0.0).to(x.dtype), keep


@triton.jit
def _lora_down_kernel(
    X, A, XA, SEED,
    M, K, R, stride_xm, stride_ar, stride_xam,
    keep_threshold, keep_scale,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(M, BLOCK_M),). XA = (keep ⊙ X · c) Aᵀ, (M, R), streaming X over K once."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_k = tl.arange(0, BLOCK_K)
    offs_r = tl.arange(0, BLOCK_R)
    m_ok = offs_m < M
    r_ok = offs_r < R
    seed = tl.load(SEED)
    xa = tl.zeros([BLOCK_M, BLOCK_R], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x_drop, _ = _dropped_x(X, seed, keep_threshold, keep_scale, offs_m, k0, m_ok, K, stride_xm, BLOCK_K)
        cols = k0 + offs_k
        a = tl.load(  # (BLOCK_K, BLOCK_R) tile of Aᵀ
            A + offs_r[None, :] * stride_ar + cols[:, None],
            mask=r_ok[None, :] & (cols < K)[:, None],
            other=0.0,
        )
        xa += mm(x_drop, a, DOT_PRECISION, UPCAST)
    tl.store(
        XA + offs_m.to(tl.int64)[:, None] * stride_xam + offs_r[None, :],
        xa.to(XA.dtype.element_ty),
        mask=m_ok[:, None] & r_ok[None, :],
    )


@triton.jit
def _lora_up_kernel(
    G, A, X, DX, DX_OUT, DA_PART, SEED,
    M, K, R, stride_gm, stride_ar, stride_xm, stride_dxm, stride_dxom, stride_dap, stride_dar,
    scaling, keep_threshold, keep_scale,
    HAS_DX: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Grid (cdiv(K, BLOCK_K), shares). For columns [k·BLOCK_K, …) and row blocks share, share + shares, …:

    DX_OUT = DX + keep ⊙ (s · G A) · c (DX_OUT may be DX: in place) and
    DA_PART[share] = Σ Gᵀ (keep ⊙ X · c) (fp32, unscaled).
    """
    pid_k = tl.program_id(0)
    share = tl.program_id(1)
    shares = tl.num_programs(1)
    k0 = pid_k * BLOCK_K
    cols = k0 + tl.arange(0, BLOCK_K)
    offs_r = tl.arange(0, BLOCK_R)
    k_ok = cols < K
    r_ok = offs_r < R
    a = tl.load(
        A + offs_r[:, None] * stride_ar + cols[None, :], mask=r_ok[:, None] & k_ok[None, :], other=0.0
    )
    seed = tl.load(SEED)
    da = tl.zeros([BLOCK_R, BLOCK_K], dtype=tl.float32)
    for m0 in range(share * BLOCK_M, M, shares * BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        m_ok = offs_m < M
        g = tl.load(
            G + offs_m.to(tl.int64)[:, None] * stride_gm + offs_r[None, :],
            mask=m_ok[:, None] & r_ok[None, :],
            other=0.0,
        )
        x_drop, keep = _dropped_x(
            X, seed, keep_threshold, keep_scale, offs_m, k0, m_ok, K, stride_xm, BLOCK_K
        )
        da += mm(tl.trans(g), x_drop, DOT_PRECISION, UPCAST)
        if HAS_DX:
            lora = mm(g, a, DOT_PRECISION, UPCAST) * (scaling * keep_scale)
            rows64 = offs_m.to(tl.int64)[:, None]
            tile_ok = m_ok[:, None] & k_ok[None, :]
            dx = tl.load(DX + rows64 * stride_dxm + cols[None, :], mask=tile_ok, other=0.0).to(tl.float32)
            tl.store(
                DX_OUT + rows64 * stride_dxom + cols[None, :],
                (dx + tl.where(keep, lora, 0.0)).to(DX_OUT.dtype.element_ty),
                mask=tile_ok,
            )
    tl.store(
        DA_PART + share * stride_dap + offs_r[:, None] * stride_dar + cols[None, :],
        da,
        mask=r_ok[:, None] & k_ok[None, :],
    )


@triton.jit
def _mask_kernel(MASK, SEED, M, K, keep_threshold, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """Grid (cdiv(M, BLOCK_M), cdiv(K, BLOCK_K)). MASK (M, K) uint8: 1 where the kernels keep x."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    k0 = tl.program_id(1) * BLOCK_K
    cols = k0 + tl.arange(0, BLOCK_K)
    keep = keep_mask(tl.load(SEED), 0, offs_m, k0, K, keep_threshold, BLOCK_K)
    tl.store(
        MASK + offs_m.to(tl.int64)[:, None] * K + cols[None, :],
        keep.to(tl.uint8),
        mask=(offs_m < M)[:, None] & (cols < K)[None, :],
    )


# ============================================================================ launchers
def _config(dtype: torch.dtype) -> dict[str, int]:
    """Tile sizes (not tuned on a GPU yet): a tile of x is BLOCK_M × BLOCK_K; BLOCK_K is a multiple of 8 (the RNG)."""
    if interpreting():
        return {"BLOCK_M": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1}
    if dtype == torch.float32:
        return {"BLOCK_M": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3}
    return {"BLOCK_M": 64, "BLOCK_K": 64, "num_warps": 4, "num_stages": 3}


@functools.cache
def _multiprocessors(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _shares(m: int, k: int, block_m: int, block_k: int, device: torch.device) -> int:
    """Row shares of the backward kernel: enough programs for ~4 per SM, each share at least 4 row blocks."""
    row_blocks = triton.cdiv(m, block_m)
    if device.type != "cuda":  # the interpreter: more than one share, so the partial sums are exercised
        return min(row_blocks, 3)
    wanted = triton.cdiv(4 * _multiprocessors(device.index or 0), triton.cdiv(k, block_k))
    return max(1, min(wanted, triton.cdiv(row_blocks, 4)))


def _lora_down_impl(x: Tensor, lora_a: Tensor, seed: Tensor, dropout_p: float) -> Tensor:
    """x: (M, K); lora_a: (r, K); seed: (1,) int64. Returns xa = (keep ⊙ x · c) Aᵀ, (M, r), x's dtype."""
    m, k = x.shape
    rank = lora_a.shape[0]
    xa = output_buffer((m, rank), x.dtype, x.device)
    if m == 0:
        return xa
    cfg = _config(x.dtype)
    _lora_down_kernel[(triton.cdiv(m, cfg["BLOCK_M"]),)](
        x, lora_a, xa, seed,
        m, k, rank, x.stride(0), lora_a.stride(0), xa.stride(0),
        keep_threshold(dropout_p), 1.0 / (1.0 - dropout_p),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_K=cfg["BLOCK_K"], BLOCK_R=dot_width(rank),
        DOT_PRECISION=dot_precision(x.dtype), UPCAST=upcast(x.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return xa


_lora_down = torch.library.custom_op("fastbert::lora_dropout_down", _lora_down_impl, mutates_args=())


@_lora_down.register_fake
def _(x: Tensor, lora_a: Tensor, seed: Tensor, dropout_p: float) -> Tensor:
    return x.new_empty((x.shape[0], lora_a.shape[0]))


def _lora_up_launch(
    g: Tensor,
    lora_a: Tensor,
    x: Tensor,
    dx: Tensor | None,
    dx_out: Tensor | None,
    seed: Tensor,
    scaling: float,
    dropout_p: float,
) -> Tensor:
    """g = dy B: (M, r); x, dx, dx_out: (M, K) (dx_out = dx + the adapter's part; it may be dx
    itself, or both None). Returns dA = s · gᵀ (keep ⊙ x · c), (r, K) fp32."""
    m, k = x.shape
    rank = lora_a.shape[0]
    if m == 0:
        return torch.zeros(rank, k, dtype=torch.float32, device=x.device)
    cfg = _config(x.dtype)
    shares = _shares(m, k, cfg["BLOCK_M"], cfg["BLOCK_K"], x.device)
    da_part = output_buffer((shares, rank, k), torch.float32, x.device)
    has_dx = dx is not None
    dx_stride = dx_out_stride = 0
    if dx is not None:
        assert dx_out is not None, "dx_out comes with dx"
        dx_stride, dx_out_stride = dx.stride(0), dx_out.stride(0)
    _lora_up_kernel[(triton.cdiv(k, cfg["BLOCK_K"]), shares)](
        g, lora_a, x, dx if has_dx else x, dx_out if has_dx else x, da_part, seed,
        m, k, rank, g.stride(0), lora_a.stride(0), x.stride(0),
        dx_stride, dx_out_stride, da_part.stride(0), da_part.stride(1),
        scaling, keep_threshold(dropout_p), 1.0 / (1.0 - dropout_p),
        HAS_DX=has_dx, BLOCK_M=cfg["BLOCK_M"], BLOCK_K=cfg["BLOCK_K"], BLOCK_R=dot_width(rank),
        DOT_PRECISION=dot_precision(x.dtype), UPCAST=upcast(x.dtype),
        num_warps=cfg["num_warps"], num_stages=cfg["num_stages"],
    )  # fmt: skip
    return da_part.sum(0) * scaling


def _lora_up_impl(
    g: Tensor,
    lora_a: Tensor,
    x: Tensor,
    dx: Tensor | None,
    seed: Tensor,
    scaling: float,
    dropout_p: float,
) -> tuple[Tensor, Tensor]:
    """The functional form that ``torch.compile`` traces: returns (dx + the adapter's part, or an
    empty (0,) tensor when dx is None; dA). A registered op that returns new tensors leaves
    nothing to functionalize; eager backward passes call :func:`_lora_up_launch` in place
    instead (no second (M, K) buffer)."""
    dx_out = output_buffer(dx.shape, dx.dtype, dx.device) if dx is not None else x.new_empty(0)
    da = _lora_up_launch(g, lora_a, x, dx, dx_out if dx is not None else None, seed, scaling, dropout_p)
    return dx_out, da


_lora_up = torch.library.custom_op("fastbert::lora_dropout_up", _lora_up_impl, mutates_args=())


@_lora_up.register_fake
def _(
    g: Tensor,
    lora_a: Tensor,
    x: Tensor,
    dx: Tensor | None,
    seed: Tensor,
    scaling: float,
    dropout_p: float,
) -> tuple[Tensor, Tensor]:
    dx_out = dx.new_empty(dx.shape) if dx is not None else x.new_empty(0)
    return dx_out, x.new_empty((lora_a.shape[0], x.shape[1]), dtype=torch.float32)


# ============================================================================ autograd
class DropoutLoRALinearFunction(torch.autograd.Function):
    """Differentiable wrapper of the two custom ops and the vendor GEMMs; see the module docstring.

    x: (M, K) and weight, bias, lora_a, lora_b all in one compute dtype; seed: (1,) int64.
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
        dropout_p: float,
        seed: Tensor,
    ) -> Tensor:
        down = torch.ops.fastbert.lora_dropout_down if torch.compiler.is_compiling() else _lora_down_impl
        with torch.autocast(x.device.type, enabled=False):  # every dtype below is chosen
            y = F.linear(x, weight, bias)
            xa = down(x, lora_a, seed, dropout_p)
            if torch.compiler.is_compiling():  # torch 2.11 lost every gradient through the in-place form
                y = torch.addmm(y, xa, lora_b.t(), alpha=scaling)
            else:
                y = y.addmm_(xa, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(x, weight, lora_a, lora_b, xa, seed)
        ctx.scaling, ctx.dropout_p = scaling, dropout_p
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(
        ctx: Any, dy: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, None, None, None]:
        x, weight, lora_a, lora_b, xa, seed = ctx.saved_tensors
        need_x, need_w, need_bias, need_a, need_b = ctx.needs_input_grad[:5]
        s = ctx.scaling
        dx = d_w = d_bias = d_a = d_b = None
        with torch.autocast(dy.device.type, enabled=False):
            if need_x:
                dx = dy @ weight  # the frozen layer's part; the kernel adds the adapter's in place
            if need_x or need_a:
                g = dy @ lora_b  # (M, r), rounded to the dtype as PEFT rounds it
                if torch.compiler.is_compiling():
                    dx_out, da = torch.ops.fastbert.lora_dropout_up(g, lora_a, x, dx, seed, s, ctx.dropout_p)
                    if dx is not None:
                        dx = dx_out
                else:  # in place into dx
                    da = _lora_up_launch(g, lora_a, x, dx, dx, seed, s, ctx.dropout_p)
                d_a = da.to(lora_a.dtype) if need_a else None
            if need_b:
                d_b = dy.t() @ (xa * s)  # (N, r); the scaling on the small factor
            if need_w:  # not LoRA's case (W frozen)
                d_w = dy.t() @ x
            if need_bias and ctx.has_bias:
                d_bias = dy.sum(0)
        return dx, d_w, d_bias, d_a, d_b, None, None, None


# ============================================================================ functional wrapper
def dropout_lora_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    dropout_p: float,
    seed: Tensor | None = None,
) -> Tensor:
    """``x Wᵀ + b + scaling · (dropout(x) Aᵀ) Bᵀ``: the frozen layer on cuBLAS, the adapter in Triton.

    x: (M, K) in the compute dtype, with weight, bias, lora_a, lora_b cast to it (the
    caller, :func:`fastbert.kernels.lora_linear`, has checked shapes and dtypes);
    dropout_p in (0, 1); seed: (1,) int64 tensor fixing the mask (default: drawn from
    PyTorch's generator, so ``torch.manual_seed`` governs it). Returns (M, N).
    """
    if seed is None:
        seed = draw_seed(x.device)
    return DropoutLoRALinearFunction.apply(
        x, weight, bias, lora_a, lora_b, float(scaling), float(dropout_p), seed
    )


def lora_dropout_mask(m: int, k: int, dropout_p: float, seed: Tensor) -> Tensor:
    """The keep-mask the kernels apply to an (M, K) input for ``seed``: (M, K) bool (for tests)."""
    mask = torch.zeros(m, k, dtype=torch.uint8, device=seed.device)
    if m and k:
        block = 16 if interpreting() else 64
        _mask_kernel[(triton.cdiv(m, block), triton.cdiv(k, block))](
            mask, seed, m, k, keep_threshold(dropout_p), BLOCK_M=block, BLOCK_K=block
        )
    return mask.bool()


# ============================================================================ reference
def dropout_lora_linear_reference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    dropout_p: float,
    seed: Tensor,
) -> Tensor:
    """PEFT's formula with the mask of :func:`fastbert.kernels.dropout_rng.keep_mask_reference` (NumPy Philox).

    x: (M, K), in any dtype (the tests pass fp64). Returns (M, N).
    """
    m, k = x.shape
    keep = keep_mask_reference(int(seed.item()), np.zeros(1), m, k, dropout_p)[0]
    x_lora = x * torch.from_numpy(keep).to(device=x.device, dtype=x.dtype) / (1.0 - dropout_p)
    return F.linear(x, weight, bias) + (x_lora @ lora_a.t()) @ lora_b.t() * scaling
