"""What every kernel file of fastbert.kernels shares: the matrix product helper and the launchers' switches.

- :func:`mm`: ``tl.dot`` with fp32 accumulation, and the one workaround the
  interpreter needs;
- :func:`interpreting`, :func:`upcast`, :func:`dot_precision`: how a launcher
  picks the kernels' constexprs for a dtype, on a GPU or in Triton's interpreter;
- :func:`dot_width`: the padded size of a small matrix dimension fed to ``tl.dot``;
- :func:`output_buffer`: output allocation that tests can poison.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["dot_precision", "dot_width", "interpreting", "mm", "output_buffer", "upcast"]


@triton.jit
def mm(a, b, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """``tl.dot`` with fp32 accumulation. ``UPCAST`` (set only under TRITON_INTERPRET for bf16):
    Triton 3.9's interpreter multiplies bf16 tiles wrongly, so they are widened first; the
    products of bf16 values are exact in fp32, so this is what the tensor cores compute."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


def interpreting() -> bool:
    """True under Triton's interpreter (``TRITON_INTERPRET=1``): the kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def upcast(dtype: torch.dtype) -> bool:
    """The ``UPCAST`` constexpr of :func:`mm` for inputs of ``dtype``."""
    return dtype == torch.bfloat16 and interpreting()


def dot_precision(dtype: torch.dtype) -> str:
    """The ``PRECISION`` constexpr of :func:`mm`: fp32 inputs get exact (``ieee``) products unless
    the user opted into TF32 for matmuls, as PyTorch does; ignored by Triton for fp16/bf16."""
    if upcast(dtype) or (dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32):
        return "ieee"
    return "tf32"


def dot_width(n: int) -> int:
    """The block width for a dimension of size ``n`` (a head size, a LoRA rank) that enters
    ``tl.dot``: a power of two, and at least 16, the smallest the tensor cores take."""
    return max(16, triton.next_power_of_2(n))


def output_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised output; NaN-filled when FASTBERT_KERNELS_POISON=1, so that tests see any
    element a kernel left unwritten."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if os.environ.get("FASTBERT_KERNELS_POISON") == "1":
        out.fill_(float("nan"))
    return out
