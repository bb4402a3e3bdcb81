"""Triton kernels for fastbert: variable-length attention and fused LoRA.

(This file is ``fastbert/kernels/__init__.py`` once built: the build copies
``kernels/*.py`` to ``python/fastbert/kernels/`` and renames ``_init.py``; see
``build_backend/fastbert_build.py``. The source folder has no ``__init__.py`` on
purpose: ``kernels`` is also the name of a PyPI package that ``transformers``
probes for, and a regular package of that name on ``sys.path`` — the repository
root, under ``python -m pytest`` — would be imported in its place.)

Import as ``fastbert.kernels``. Importing this package needs neither a GPU nor
Triton: the kernel modules load on first use of a name below.

- :func:`varlen_attention` — FlashAttention-2-style forward and backward over
  packed ``(total_tokens, heads, head_dim)`` batches with ``cu_seqlens``; its
  signature fits ``fastbert.model.BertModel.attention_fn``.
- :func:`padded_attention` — the same for ``(batch, seqlen, heads, head_dim)``
  with a key-padding mask (unpads, runs the varlen kernel, pads back).
- :func:`lora_linear` — ``y = x Wᵀ + b + s·(x Aᵀ) Bᵀ`` in one kernel; backward gives
  dx, dA, dB (W frozen). Without adapter dropout it runs :func:`merged_lora_linear`:
  the adapter folded into the weight, one vendor GEMM each way (no Triton; any device).

Each kernel module holds its PyTorch reference (``*_reference``) beside it.
"""

from __future__ import annotations

import importlib
from typing import Any

if __name__ != "fastbert.kernels":  # e.g. `import kernels` from the repository root
    raise ImportError(
        f"this package must be imported as fastbert.kernels, not {__name__}: "
        "run `python -m build_backend.sync` (or build/install fastbert) and `import fastbert.kernels`"
    )

_LAZY = {
    "varlen_attention": "attention",
    "padded_attention": "attention",
    "varlen_attention_reference": "attention",
    "padded_attention_reference": "attention",
    "attention_dropout_mask": "attention",
    "attention_dropout_mask_reference": "attention",
    "unpad_input": "attention",
    "pad_input": "attention",
    "lora_linear": "lora",
    "lora_linear_reference": "lora",
    "merged_lora_linear": "lora",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
