"""Dropout-free LoRA by weight merging: ``y = x (W + s·B A)ᵀ + b``, one vendor GEMM each way.

Shapes: x (M, K), W (N, K), b (N,), A (r, K) (``lora_A.weight``), B (N, r)
(``lora_B.weight``), s = alpha / r.

Why. Without adapter dropout (evaluation, inference, or ``lora_dropout = 0``)
``x Wᵀ + s·(x Aᵀ) Bᵀ = x (W + s·B A)ᵀ``. Forming W' = W + s·B A costs N·K·r
multiply-adds and one pass over an (N, K) weight — for BERT-base's 768 → 768 at
r = 8 and 4k tokens, under 1 % of the main product's work — and the forward is
then the frozen layer's own GEMM (cuBLAS on a GPU, oneDNN/MKL on a CPU). The
fused Triton forward in :mod:`fastbert.kernels.lora` runs the same product in a
Triton GEMM; on the H100 that was measured at about 2× cuBLAS's time for this
product (kernels/README.md), so merging wins wherever it applies. With dropout it
does not apply (the two branches see different inputs), and the Triton kernel
stays the fast path.

Backward, W frozen: ``dx = dy W'`` is again the frozen layer's own GEMM (no
(M, K) temporary for the LoRA part); the adapter gradients ``dA = s·(dy B)ᵀ x``
and ``dB = s·dyᵀ (x Aᵀ)`` are tall-skinny products whose only intermediates are
(M, r). ``x Aᵀ`` is formed in the forward right after the GEMM that has just
streamed x (so largely from cache) and saved; ``dy B`` right after ``dx``, which
has just streamed dy. Beyond the frozen layer's two GEMMs the adapter's products
read x and dy twice more each, from cache where they still sit there.

Precision. W' is formed in fp32 and rounded once to the compute dtype — what
autocast does to the fp32 weight of a fully fine-tuned layer — where PEFT rounds
the base product, the rank-r branch and their sum separately. Both errors are of
the order of one rounding of y; the GPU tests hold this path, like the kernel,
to at most twice PyTorch's own error at fp16/bf16.

Where it runs: :class:`fastbert.model.lora.LoRALinear` takes it whenever its dropout is
inactive, on any device; :func:`fastbert.kernels.lora_linear` (``strategy="auto"``)
takes it without dropout. Layout: ``torch.autograd.Function`` →
:func:`merged_lora_linear`; there is no Triton kernel, so no launcher, and this
module imports neither Triton nor fastbert's compiled core: ``LoRALinear`` uses it on
every device, without a GPU or Triton. It lives in ``kernels/`` (as
``fastbert.kernels.lora_merged``) because the Triton LoRA kernel falls back to it, and the
kernels import nothing from the layers above them. The reference is PEFT's formula,
``LoRALinear``'s own path and :func:`fastbert.kernels.lora.lora_linear_reference`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["merged_lora_linear", "merged_weight"]


def check_lora_shapes(x: Tensor, weight: Tensor, bias: Tensor | None, lora_a: Tensor, lora_b: Tensor) -> None:
    """Raise ValueError naming the argument whose shape does not fit x (…, K), W (N, K), A (r, K), B (N, r)."""
    k = x.shape[-1]
    n, rank = weight.shape[0], lora_a.shape[0]
    if weight.dim() != 2 or weight.shape[1] != k:
        raise ValueError(f"weight must be (out_features, {k}), got {tuple(weight.shape)}")
    if lora_a.dim() != 2 or lora_a.shape[1] != k or lora_b.shape != (n, rank):
        raise ValueError(
            f"lora_a must be (r, {k}) and lora_b ({n}, r); got {tuple(lora_a.shape)}, {tuple(lora_b.shape)}"
        )
    if bias is not None and bias.shape != (n,):
        raise ValueError(f"bias must be ({n},), got {tuple(bias.shape)}")


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a linear layer computes ``x`` in: the autocast dtype under autocast (as ``F.linear``), else x's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def merged_weight(
    weight: Tensor, lora_a: Tensor, lora_b: Tensor, scaling: float, dtype: torch.dtype
) -> Tensor:
    """W + s·B A, formed in fp32 (or fp64 for fp64 inputs) and rounded once to ``dtype``. (N, K)."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    return torch.addmm(weight.to(acc), lora_b.to(acc), lora_a.to(acc), alpha=scaling).to(dtype)


class MergedLoRALinearFunction(torch.autograd.Function):
    """y = x W'ᵀ + b with W' = W + s·B A; see the module docstring. x: (M, K) in the compute dtype.

    weight, bias, lora_a, lora_b keep their own dtypes (fp32 adapters under bf16
    autocast, say); their gradients come back in those dtypes.
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
    ) -> Tensor:
        dtype = x.dtype
        need_x, need_w, _, need_a, need_b = ctx.needs_input_grad[:5]
        # Autocast would recast every product below to its own dtype; the dtypes here are chosen.
        with torch.autocast(x.device.type, enabled=False):
            w_eff = merged_weight(weight, lora_a, lora_b, scaling, dtype)
            y = F.linear(x, w_eff, bias.to(dtype) if bias is not None else None)
            b_lo = lora_b.to(dtype) if need_a else None
            # x Aᵀ now, while x is still in cache from the GEMM above; dB needs it.
            xa = x @ lora_a.to(dtype).t() if need_b else None
        ctx.save_for_backward(x if (need_a or need_w) else None, w_eff if need_x else None, b_lo, xa)
        ctx.scaling = scaling
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None, lora_a.dtype, lora_b.dtype)
        return y

    @staticmethod
    def backward(
        ctx: Any, dy: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, None]:
        x, w_eff, b_lo, xa = ctx.saved_tensors
        need_x, need_w, need_bias, need_a, need_b = ctx.needs_input_grad[:5]
        w_dtype, bias_dtype, a_dtype, b_dtype = ctx.dtypes
        s = ctx.scaling
        dx = d_w = d_bias = d_a = d_b = None
        with torch.autocast(dy.device.type, enabled=False):
            if need_x:
                dx = dy @ w_eff  # (M, K): dy W + s·(dy B) A in one product
            # The scaling goes on the small (M, r) factors, not on the products.
            if need_a:
                d_a = ((dy @ b_lo) * s).t() @ x  # (r, K)
                d_a = d_a.to(a_dtype)
            if need_b:
                d_b = (dy.t() @ (xa * s)).to(b_dtype)  # (N, r)
            if need_w:  # not LoRA's case (W frozen)
                d_w = (dy.t() @ x).to(w_dtype)
            if need_bias and bias_dtype is not None:
                d_bias = dy.sum(0).to(bias_dtype)
        return dx, d_w, d_bias, d_a, d_b, None


def merged_lora_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, lora_a: Tensor, lora_b: Tensor, scaling: float
) -> Tensor:
    """``x Wᵀ + b + scaling · (x Aᵀ) Bᵀ`` as ``x (W + scaling·B A)ᵀ + b``: LoRA without adapter dropout.

    x: (…, K); weight: (N, K); bias: (N,) or None; lora_a: (r, K); lora_b: (N, r).
    Returns (…, N) in x's dtype, or the autocast dtype under autocast (as ``F.linear``).
    Any device, any rank; differentiable in x, lora_a, lora_b (and weight, bias if they
    require grad).
    """
    dtype = compute_dtype(x)
    if not dtype.is_floating_point:
        raise ValueError(f"merged_lora_linear computes in a floating-point dtype, not {dtype}")
    check_lora_shapes(x, weight, bias, lora_a, lora_b)
    return merged_lora_linear_checked(x, weight, bias, lora_a, lora_b, scaling, dtype)


def merged_lora_linear_checked(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_a: Tensor,
    lora_b: Tensor,
    scaling: float,
    dtype: torch.dtype,
) -> Tensor:
    """:func:`merged_lora_linear` for a caller that has checked the shapes and resolved ``dtype``
    (``fastbert.kernels.lora_linear``), so that a layer call checks its arguments once."""
    k, n = x.shape[-1], weight.shape[0]
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k).to(dtype)
    inputs = (x2, weight, bias, lora_a, lora_b)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        y = MergedLoRALinearFunction.apply(x2, weight, bias, lora_a, lora_b, float(scaling))
    else:  # inference: nothing to save, and no x Aᵀ for a backward that will not come
        with torch.autocast(x.device.type, enabled=False):
            w_eff = merged_weight(weight, lora_a, lora_b, scaling, dtype)
            y = F.linear(x2, w_eff, bias.to(dtype) if bias is not None else None)
    return y.view(*lead, n)
