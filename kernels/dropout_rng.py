"""Counter-based dropout masks for the Triton kernels: Philox4x32-10, one call for 8 elements.

A mask element is a function of (seed, stream, row, column) alone, never of the
tiling, so a backward pass that tiles differently from its forward regenerates
the same mask instead of storing it. Elements ``8g … 8g+7`` of a row share one
Philox call (``tl.randint4x``: 4 × 32 random bits), 16 bits each: element ``8g + j``
takes the ``j``-th 16-bit half-word (low half of word 0, high half of word 0, low
half of word 1, …) and survives where it is ≥ round(p·2¹⁶), so p is rounded to a
multiple of 2⁻¹⁶. The Philox counter is the 64-bit integer
``stream · 2³² + row · ⌈n_cols / 8⌉ + g`` (its low and high words are the first two
counter words; the other two are 0), the key the seed's two 32-bit words.

Why 8 per call: ``tl.rand`` runs a whole Philox (about 60 instructions) for every
element and keeps one of its four words; in the attention kernels that was 7/8 of
the inner loop's instructions with dropout on (kernels/README.md).

Users: attention dropout (stream = sequence·heads + head, rows = queries, columns =
keys; the caller keeps ``row · ⌈n_cols/8⌉ + g`` below 2³²) and LoRA's adapter-input
dropout (stream 0, rows = tokens, columns = input features; the 64-bit counter
simply runs on). :func:`keep_mask_reference` is the same stream computed in NumPy
from the Philox definition, for the tests.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["draw_seed", "keep_mask_reference", "keep_threshold", "philox_reference"]


def draw_seed(device: torch.device) -> Tensor:
    """A (1,) int64 Philox seed from PyTorch's generator for ``device`` (so torch.manual_seed governs dropout).

    Drawn on the device, without a host sync; kept ≥ 2**32 so that Triton always sees a
    64-bit seed (one compiled variant) with 62 random bits.
    """
    return torch.randint(2**32, 2**62, (1,), device=device, dtype=torch.int64)


def keep_threshold(dropout_p: float) -> int:
    """``dropout_p`` in units of 2⁻¹⁶, rounded: an element survives where its 16-bit uniform is ≥ this.

    Computed on the host and passed to the kernels as an integer, so that every kernel and
    the reference use the same value.
    """
    return int(dropout_p * 65536.0 + 0.5)


# ============================================================================ kernels
@triton.jit
def _halves_kept(r, threshold):
    """The two 16-bit halves of the 32-bit random block ``r`` (low, high), each compared with ``threshold``."""
    r = r.to(tl.uint32, bitcast=True)
    return (r & 0xFFFF) >= threshold, (r >> 16) >= threshold


@triton.jit
def keep_mask(seed, counter_base, rows, col0, n_cols, threshold, BLOCK_N: tl.constexpr):
    """Keep-mask (len(rows), BLOCK_N) for ``rows`` and columns ``col0 … col0 + BLOCK_N − 1``.

    counter_base: ``stream << 32`` as int64 (or 0 for stream 0); threshold:
    :func:`keep_threshold`. ``col0`` must be a multiple of 8 (every block start is);
    ``n_cols`` fixes the row pitch of the counter, so every caller of one stream must
    pass the same value.
    """
    tl.static_assert(BLOCK_N % 8 == 0)
    groups = col0 // 8 + tl.arange(0, BLOCK_N // 8)
    groups_per_row = (n_cols + 7) // 8
    offsets = rows.to(tl.int64)[:, None] * groups_per_row + groups[None, :] + counter_base
    r0, r1, r2, r3 = tl.randint4x(seed, offsets)
    u0, u1 = _halves_kept(r0, threshold)
    u2, u3 = _halves_kept(r1, threshold)
    u4, u5 = _halves_kept(r2, threshold)
    u6, u7 = _halves_kept(r3, threshold)
    # Column 8g + j takes u_j[:, g]: interleave(E, O) puts E's columns at the even places and
    # O's at the odd ones, so two levels more spread u0 … u7 in order.
    even = tl.interleave(tl.interleave(u0, u4), tl.interleave(u2, u6))
    odd = tl.interleave(tl.interleave(u1, u5), tl.interleave(u3, u7))
    return tl.interleave(even, odd)


# ============================================================================ reference
def philox_reference(seed: int, counters: np.ndarray) -> tuple[np.ndarray, ...]:
    """Philox4x32-10 (Salmon et al. 2011) as ``tl.randint4x`` runs it: the four 32-bit output words.

    seed: the 64-bit key (its low and high words); counters: uint64, each the first two
    counter words (low, high), the other two 0. Returns four uint64 arrays of 32-bit values.
    """
    word = np.uint64(0xFFFFFFFF)
    counters = np.asarray(counters, dtype=np.uint64)
    c0, c1 = counters & word, counters >> np.uint64(32)
    c2 = c3 = np.zeros_like(c0)
    seed %= 2**64
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    round_a, round_b = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for _ in range(10):
        prod_b, prod_a = round_b * c2, round_a * c0  # both factors < 2³²: exact in uint64
        c0, c1, c2, c3 = (
            (prod_b >> np.uint64(32)) ^ c1 ^ k0,
            prod_b & word,
            (prod_a >> np.uint64(32)) ^ c3 ^ k1,
            prod_a & word,
        )
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & word, (k1 + np.uint64(0xBB67AE85)) & word
    return c0, c1, c2, c3


def keep_mask_reference(
    seed: int, streams: np.ndarray, n_rows: int, n_cols: int, dropout_p: float
) -> np.ndarray:
    """:func:`keep_mask` over whole rows, in NumPy: (len(streams), n_rows, n_cols) bool."""
    threshold = keep_threshold(dropout_p)
    stream = np.asarray(streams, dtype=np.uint64)[:, None, None]
    rows = np.arange(n_rows, dtype=np.uint64)[None, :, None]
    cols = np.arange(n_cols, dtype=np.uint64)[None, None, :]
    counters = (stream << np.uint64(32)) + rows * np.uint64(triton.cdiv(n_cols, 8)) + cols // np.uint64(8)
    words = np.stack(philox_reference(seed, counters))
    j = np.broadcast_to((cols % np.uint64(8)).astype(np.int64), counters.shape)
    picked = np.take_along_axis(words, (j // 2)[None], 0)[0]
    half = (picked >> (np.uint64(16) * (j % 2).astype(np.uint64))) & np.uint64(0xFFFF)
    return half >= threshold
