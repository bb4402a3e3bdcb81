"""Over- and under-sampling of the training rows by class (``FinetuneConfig.sampling``).

Drawn once before training, from ``seed``, on the rows the model trains on (texts, or windows
under a ``chunk_*`` long-text policy), never on the dev set, so dev metrics keep the true class
mix. Epochs and steps then count the resampled rows. An alternative to (or, with care, a
complement of) ``class_weights="balanced"``: weights computed after resampling see balanced
classes and come out equal.
"""

from __future__ import annotations

import numpy as np

from fastbert.features.arrays import Features

__all__ = ["resample_features", "resample_indices"]


def resample_indices(labels: np.ndarray, mode: str, seed: int) -> np.ndarray:
    """Row indices that balance the classes of ``labels`` (n,), sorted.

    ``over``: every row once, plus rows of each smaller class drawn with replacement until it
    has as many as the largest class. ``under``: of each class, rows drawn without replacement
    as many as the smallest class has. Classes absent from ``labels`` are ignored.
    """
    labels = np.asarray(labels).reshape(-1)
    if mode not in ("over", "under"):
        raise ValueError(f"sampling must be 'over' or 'under', not {mode!r}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    if not members:
        return np.zeros(0, dtype=np.int64)
    sizes = [len(m) for m in members]
    parts = []
    for m in members:
        if mode == "over":
            parts.append(m)
            parts.append(rng.choice(m, size=max(sizes) - len(m), replace=True))
        else:
            parts.append(rng.choice(m, size=min(sizes), replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def resample_features(feats: Features, mode: str | None, seed: int) -> Features:
    """``feats`` with its rows resampled by `resample_indices` (unchanged for ``mode=None``).

    The result is plain `Features`: any window layout is for merging predictions and does not
    survive resampling (training does not use it).
    """
    if mode is None:
        return feats
    if feats.labels is None or feats.labels.ndim != 1:
        raise ValueError("sampling needs one class label per training row")
    idx = resample_indices(feats.labels, mode, seed)
    return Features(
        input_ids=feats.input_ids[idx],
        token_type_ids=feats.token_type_ids[idx],
        lengths=feats.lengths[idx],
        labels=feats.labels[idx],
        word_ids=feats.word_ids[idx] if feats.word_ids is not None else None,
    )
