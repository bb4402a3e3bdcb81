"""The dev split taken from the training data when no dev set is given: stratified, deterministic."""

from __future__ import annotations

import numpy as np

from fastbert.data.examples import Examples
from fastbert.errors import DataError

__all__ = ["stratified_split"]


# ---------------------------------------------------------------- split
def _strata(ex: Examples) -> np.ndarray:
    """A group id per example that the dev split keeps in proportion.

    classification/pair: the class; multi-label: the example's rarest label (-1 for none);
    regression: one of up to 10 quantile bins of the target; token: the sentence's rarest tag;
    mlm: one group.
    """
    n = len(ex)
    labels = ex.labels
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    if isinstance(labels, list):  # token
        counts = np.bincount(np.concatenate(labels), minlength=len(ex.label_names or ()))
        return np.array([int(a[np.argmin(counts[a])]) for a in labels], dtype=np.int64)
    if labels.ndim == 2:  # multilabel
        freq = labels.sum(axis=0)
        masked = np.where(labels > 0, freq[None, :], np.inf)
        rarest = np.argmin(masked, axis=1)
        return np.where(labels.any(axis=1), rarest, -1).astype(np.int64)
    if labels.dtype.kind == "f":  # regression
        bins = min(10, max(1, n // 10))
        edges = np.quantile(labels, np.linspace(0, 1, bins + 1)[1:-1])
        return np.searchsorted(edges, labels, side="right").astype(np.int64)
    return labels.astype(np.int64)


def stratified_split(ex: Examples, dev_fraction: float = 0.1, seed: int = 0) -> tuple[Examples, Examples]:
    """Split off ``round(n · dev_fraction)`` examples as a dev set, each stratum in proportion.

    Strata: see ``_strata`` (classes; rarest label; target quantile bins; rarest tag). Each
    stratum gives the floor or the ceiling of its proportional share (largest remainders first,
    random tie-break) and keeps at least one example in train; so dev can be a little smaller
    than asked when there are single-example strata (and takes one example when all are). Both parts keep the original order, ``rows`` and ``label_names``.
    Deterministic for a given ``seed``.
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), not {dev_fraction!r}")
    n = len(ex)
    if n < 2:
        raise DataError(f"{ex.source}: {n} example(s) cannot be split into train and dev")
    rng = np.random.default_rng(seed)
    groups = _strata(ex)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n_dev = min(n - 1, max(1, round(n * dev_fraction)))
    exact = counts * (n_dev / n)
    quota = np.floor(exact).astype(np.int64)  # < counts, as n_dev < n
    # Each stratum gets floor or ceil of its share, and keeps one example in train.
    room = np.minimum(counts - 1, np.ceil(exact).astype(np.int64)) - quota
    order = np.lexsort((rng.random(uniq.size), -(exact - np.floor(exact))))
    short = n_dev - int(quota.sum())
    for g in order:
        if short <= 0:
            break
        if room[g] > 0:
            quota[g] += 1
            room[g] -= 1
            short -= 1
    dev_mask = np.zeros(n, dtype=bool)
    for g in range(uniq.size):
        members = np.flatnonzero(inverse == g)
        if quota[g]:
            dev_mask[rng.choice(members, size=int(quota[g]), replace=False)] = True
    if not dev_mask.any():  # every stratum a singleton: take one example anyway
        dev_mask[rng.integers(n)] = True
    return ex.subset(np.flatnonzero(~dev_mask)), ex.subset(np.flatnonzero(dev_mask))
