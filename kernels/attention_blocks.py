"""Block sizes and sliding-window bounds for the attention kernels (`fastbert.kernels.attention_kernels`).

Plain Python, no Triton: the launchers call these per launch, and ``benches/sweep_attention.py``
replaces the block-size rules to sweep them.
"""

from __future__ import annotations

import torch

from fastbert.kernels.common import interpreting

__all__ = ["backward_config", "forward_config", "kernel_window"]


def forward_config(head_dim: int, dtype: torch.dtype, max_seqlen: int) -> dict[str, int]:
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


def backward_config(head_dim: int, dtype: torch.dtype, max_seqlen: int) -> dict[str, int]:
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


def kernel_window(window_left: int, window_right: int, max_seqlen: int) -> tuple[int, int, bool]:
    """The kernels' (window_left, window_right, HAS_WINDOW) for a window of FlashAttention's convention.

    A negative side (−1) is unbounded; any side ≥ ``max_seqlen`` reaches past every sequence,
    so each is clamped to ``max_seqlen`` (which also keeps the kernels' int32 position
    arithmetic from overflowing). A window that covers every pair of positions of a sequence
    of ``max_seqlen`` (both sides ≥ max_seqlen − 1) is no window: ``HAS_WINDOW`` is False and
    the kernels compile and run exactly as for full attention.
    """
    left = max_seqlen if window_left < 0 else min(window_left, max_seqlen)
    right = max_seqlen if window_right < 0 else min(window_right, max_seqlen)
    return left, right, left < max_seqlen - 1 or right < max_seqlen - 1
