"""Length-bucketed batches: similar lengths together, so little is spent on padding.

The plan shuffles, cuts the shuffled order into pools of ``pool`` batches, sorts
each pool by length and cuts it into batches (by count, or under a padded-token
budget), then shuffles the batches. Every example appears once per epoch; the
plan depends only on (lengths, sizes, seed, epoch), so every DDP rank computes
the same one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bucketed_batches"]


def bucketed_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int = 0,
    token_budget: int | None = None,
    pool: int = 50,
    shuffle: bool = True,
) -> list[np.ndarray]:
    """Index arrays, one per batch. ``token_budget`` caps ``len(batch) * max_len(batch)``."""
    n = len(lengths)
    if n == 0:
        return []
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    batches: list[np.ndarray] = []
    step = batch_size * pool
    for start in range(0, n, step):
        chunk = order[start : start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        if token_budget is None:
            batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
        else:
            batches.extend(_by_budget(chunk, lengths, batch_size, token_budget))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _by_budget(sorted_idx: np.ndarray, lengths: np.ndarray, batch_size: int, budget: int) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    current: list[int] = []
    longest = 0
    for i in sorted_idx:
        longest_if = max(longest, int(lengths[i]))
        if current and (len(current) >= batch_size or longest_if * (len(current) + 1) > budget):
            out.append(np.array(current))
            current, longest_if = [], int(lengths[i])
        current.append(i)
        longest = longest_if
    if current:
        out.append(np.array(current))
    return out
