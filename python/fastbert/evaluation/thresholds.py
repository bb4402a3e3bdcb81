"""Decision thresholds: tuned on dev after training, applied at every prediction, saved with the model.

- Binary single-label tasks (``classification``/``pair`` with two labels): one cut on
  ``P(label_names[1])``, the one that maximises the model-selection metric on dev
  (:func:`tune_binary_threshold`). The argmax is the cut at 0.5; a class-imbalanced task often
  scores better elsewhere.
- ``multilabel``: one cut per label, maximising that label's F1 (:func:`tune_multilabel_thresholds`).

``FineTunedModel.thresholds`` holds them: shape ``(1,)`` for a binary task, ``(C,)`` for
multilabel, ``None`` for the argmax (and 0.5 for every label). They are tuned on the calibrated
probabilities that `FineTunedModel.predict_proba` returns, so that ``probs >= thresholds``
reproduces ``predict``. Dev scores after tuning on dev are optimistic: report a test set.
"""

from __future__ import annotations

import numpy as np

from fastbert.evaluation.metrics import ratio

__all__ = ["BINARY_METRICS", "decide", "tune_binary_threshold", "tune_multilabel_thresholds"]

#: The selection metrics a binary cut can be tuned for (keys of `classification_metrics`);
#: any other metric (``loss``, ...) tunes for ``macro_f1``.
BINARY_METRICS = (
    "accuracy",
    "micro_f1",
    "macro_f1",
    "macro_precision",
    "macro_recall",
    "weighted_f1",
    "weighted_precision",
    "weighted_recall",
)


def decide(task: str, probs: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """Predictions from probabilities: ``(n,)`` class ids, or an ``(n, C)`` bool matrix for multilabel."""
    if task == "multilabel":
        th = thresholds if thresholds is not None else np.full(probs.shape[-1], 0.5)
        return probs >= th
    if thresholds is not None and probs.shape[-1] == 2:
        return (probs[..., 1] >= thresholds[0]).astype(np.int64)
    return probs.argmax(-1)


def _cut_scores(p1: np.ndarray, y: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``metric`` of every distinct cut "predict class 1 when p1 >= t", and those ``t``.

    The cuts run from "nothing is class 1" to "everything is": ``k`` items predicted positive,
    for ``k`` at each run of equal probabilities (highest first). All counts come from one
    cumulative sum; the formulas are `fastbert.metrics.classification_metrics`'s.
    """
    n = p1.size
    order = np.argsort(-p1, kind="stable")
    sp = p1[order]
    ends = np.flatnonzero(np.append(sp[1:] != sp[:-1], True))
    k = np.concatenate(([0], ends + 1)).astype(np.float64)  # items predicted 1
    tp1 = np.concatenate(([0], np.cumsum(y[order] == 1)[ends])).astype(np.float64)
    n1 = float((y == 1).sum())
    n0 = n - n1
    tp0 = n0 - (k - tp1)
    pred = np.stack([n - k, k])  # (2, cuts)
    true = np.array([[n0], [n1]])
    tp = np.stack([tp0, tp1])
    prec, rec, f1 = ratio(tp, pred), ratio(tp, true), ratio(2 * tp, pred + true)
    present = (pred + true) > 0
    n_present = present.sum(0)
    scores = {
        "accuracy": (tp0 + tp1) / n,
        "micro_f1": (tp0 + tp1) / n,
        "macro_f1": (f1 * present).sum(0) / n_present,
        "macro_precision": (prec * present).sum(0) / n_present,
        "macro_recall": (rec * present).sum(0) / n_present,
        "weighted_f1": (f1 * true).sum(0) / n,
        "weighted_precision": (prec * true).sum(0) / n,
        "weighted_recall": (rec * true).sum(0) / n,
    }
    # Halfway between neighbouring distinct probabilities, so that float noise in a recomputed
    # probability does not flip a dev decision; 1 and 0 bound the two extreme cuts.
    upper = np.concatenate(([1.0], sp[ends]))
    lower = np.concatenate((sp[ends], [0.0]))
    cuts = (upper + lower) / 2
    if sp[0] >= 1.0:  # the "nothing is class 1" cut must lie above a probability of exactly 1
        cuts[0] = np.nextafter(1.0, 2.0)
    return scores[metric if metric in scores else "macro_f1"], cuts


def tune_binary_threshold(p1: np.ndarray, y: np.ndarray, metric: str = "macro_f1") -> float:
    """The cut on ``p1 = P(class 1)`` that maximises ``metric`` on ``(p1, y)``; 0.5 if ``y`` has one class.

    ``p1``: ``(n,)`` probabilities, ``y``: ``(n,)`` 0/1 labels. Among equally good cuts, the one
    nearest 0.5 wins, so the argmax stays when it is already the best.
    """
    p1 = np.asarray(p1, dtype=np.float64).reshape(-1)
    y = np.asarray(y).reshape(-1)
    if p1.shape != y.shape:
        raise ValueError(f"p1 has {p1.size} values but y has {y.size}")
    if np.unique(y).size < 2:
        return 0.5
    scores, cuts = _cut_scores(p1, y, metric)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


def tune_multilabel_thresholds(probs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per class, the threshold on dev that maximises that class's F1 (0.5 when the class never occurs).

    A grid of 0.05 … 0.95: a per-label cut on a small dev set overfits less on a coarse grid.
    """
    grid = np.linspace(0.05, 0.95, 19)
    out = np.full(probs.shape[1], 0.5)
    for c in range(probs.shape[1]):
        t = truth[:, c] > 0.5
        if not t.any():
            continue
        best = -1.0
        for th in grid:
            p = probs[:, c] >= th
            tp = float((p & t).sum())
            f1 = 2 * tp / max(float(p.sum() + t.sum()), 1.0)
            if f1 > best:
                best, out[c] = f1, th
    return out
