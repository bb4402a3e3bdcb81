"""Bootstrap confidence intervals for the headline metrics, all resamples at once.

A bootstrap resample of ``n`` items is a vector of counts ``w`` (how often each item was drawn,
multinomial with ``n`` draws); every metric here is a function of count-weighted sums over items,
so ``B`` resamples are one ``(B, n) @ (n, k)`` product instead of ``B`` Python-level metric calls.
The same functions with ``w = 1`` give the point estimate, which equals `fastbert.metrics`
(``tests/test_report.py`` checks both that and single resamples against the metric functions
run on the explicitly resampled data).

The interval is the percentile interval (Efron & Tibshirani, 1993, ch. 13): the 2.5th and
97.5th percentiles of the resampled metric for 95%. It is seeded, so a report is reproducible.
Resamples where a metric is undefined (a correlation of a constant resample) are left out.
Items are resampled as units: examples, or whole sentences for entity scores (the entities of a
sentence are not independent).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fastbert.evaluation.metrics import ratio

__all__ = [
    "DEFAULT_RESAMPLES",
    "Statistic",
    "bootstrap_intervals",
    "classification_statistic",
    "entity_statistic",
    "multilabel_statistic",
    "regression_statistic",
    "resample_weights",
]

DEFAULT_RESAMPLES = 1000
#: Resample counts held in memory at once (``rows × n`` float64 values): bounds memory for big sets.
_CELLS_PER_CHUNK = 4_000_000

#: Count weights ``(B, n)`` → ``{metric: (B,) values}``.
Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]


# ---------------------------------------------------------------- statistics
def classification_statistic(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> Statistic:
    """``accuracy``, ``macro_f1`` (over classes present in the resample) and ``weighted_f1``."""
    c = num_classes
    t = np.eye(c)[np.asarray(y_true, dtype=np.int64)]
    p = np.eye(c)[np.asarray(y_pred, dtype=np.int64)]
    per_item = np.concatenate([t, p, t * p], axis=1)  # (n, 3C): true, predicted, true positive

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        sums = w @ per_item
        support, predicted, tp = sums[:, :c], sums[:, c : 2 * c], sums[:, 2 * c :]
        f1 = ratio(2 * tp, predicted + support)
        present = (support + predicted) > 0
        total = support.sum(1)
        return {
            "accuracy": ratio(tp.sum(1), total),
            "macro_f1": (f1 * present).sum(1) / present.sum(1),
            "weighted_f1": ratio((f1 * support).sum(1), total),
        }

    return stat


def multilabel_statistic(y_true: np.ndarray, y_pred: np.ndarray) -> Statistic:
    """``micro_f1``, ``macro_f1`` (over all labels) and ``subset_accuracy``."""
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    c = t.shape[1]
    exact = np.all(t == p, axis=1, keepdims=True)
    per_item = np.concatenate([t, p, t & p, exact], axis=1).astype(np.float64)

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        sums = w @ per_item
        support, predicted, tp = sums[:, :c], sums[:, c : 2 * c], sums[:, 2 * c : 3 * c]
        return {
            "micro_f1": ratio(2 * tp.sum(1), predicted.sum(1) + support.sum(1)),
            "macro_f1": ratio(2 * tp, predicted + support).mean(1),
            "subset_accuracy": ratio(sums[:, 3 * c], w.sum(1)),
        }

    return stat


def entity_statistic(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> Statistic:
    """Micro ``precision``, ``recall``, ``f1`` over entities from per-sentence counts.

    F1 is the harmonic mean of precision and recall, as `fastbert.metrics.entity_metrics`
    (and seqeval) compute it.
    """
    per_item = np.stack([tp, n_pred, n_true], axis=1).astype(np.float64)

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        sums = w @ per_item
        prec, rec = ratio(sums[:, 0], sums[:, 1]), ratio(sums[:, 0], sums[:, 2])
        return {"precision": prec, "recall": rec, "f1": ratio(2 * prec * rec, prec + rec)}

    return stat


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(B, n)``: the average rank each item's value gets in each resample (ties share their mean rank).

    A value drawn ``g`` times in a resample, after ``before`` smaller draws, spans ranks
    ``before + 1 … before + g``; every copy gets their mean, ``before + (g + 1) / 2``, as
    ``scipy.stats.rankdata`` gives duplicates.
    """
    order = np.argsort(x, kind="stable")
    sx = x[order]
    starts = np.flatnonzero(np.concatenate(([True], sx[1:] != sx[:-1])))
    group_of = np.empty(x.size, dtype=np.int64)
    group_of[order] = np.cumsum(np.concatenate(([True], sx[1:] != sx[:-1]))) - 1
    g = np.add.reduceat(w[:, order], starts, axis=1)  # draws of each distinct value
    mean_rank = np.cumsum(g, axis=1) - g + (g + 1) / 2
    return mean_rank[:, group_of]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson's r of each resample (``x``, ``y``: ``(n,)`` or ``(B, n)``); ``nan`` for a constant side."""
    total = w.sum(1, keepdims=True)
    xm = x - (w * x).sum(1, keepdims=True) / total
    ym = y - (w * y).sum(1, keepdims=True) / total
    cov = (w * xm * ym).sum(1)
    vx, vy = (w * xm * xm).sum(1), (w * ym * ym).sum(1)
    drawn = w > 0

    def constant(v: np.ndarray) -> np.ndarray:
        v = np.broadcast_to(v, w.shape)
        return np.where(drawn, v, np.inf).min(1) == np.where(drawn, v, -np.inf).max(1)

    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(cov / np.sqrt(vx * vy), -1.0, 1.0)
    return np.where(constant(x) | constant(y), np.nan, r)


def regression_statistic(y_true: np.ndarray, y_pred: np.ndarray) -> Statistic:
    """``mse``, ``mae``, ``pearson`` and ``spearman`` (Pearson's r of the resample's average ranks)."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    err = p - t

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        total = w.sum(1)
        return {
            "mse": (w @ (err * err)) / total,
            "mae": (w @ np.abs(err)) / total,
            "pearson": _weighted_pearson(t, p, w),
            "spearman": _weighted_pearson(_weighted_ranks(t, w), _weighted_ranks(p, w), w),
        }

    return stat


# ---------------------------------------------------------------- resampling
def resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n)`` draw counts: each row is one bootstrap resample of ``n`` items.

    ``n`` uniform draws per row, counted with one ``bincount`` over row-offset indices (a
    multinomial draw gives the same distribution, ten times slower).
    """
    draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def bootstrap_intervals(
    statistic: Statistic,
    n: int,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """``{metric: {"estimate", "low", "high"}}``: the point estimate and its percentile interval.

    ``n``: the number of items ``statistic`` was built on. ``low``/``high`` are ``nan`` when
    there are no items or no resample defines the metric.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples!r}")
    if n == 0:
        return {}
    estimate = statistic(np.ones((1, n)))
    rng = np.random.default_rng(seed)
    rows = max(1, _CELLS_PER_CHUNK // n)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in estimate}
    for start in range(0, resamples, rows):
        values = statistic(resample_weights(n, min(rows, resamples - start), rng))
        for k, v in values.items():
            parts[k].append(v)
    tail = (1 - level) / 2 * 100
    out = {}
    for k, point in estimate.items():
        v = np.concatenate(parts[k])
        v = v[~np.isnan(v)]
        low, high = np.percentile(v, [tail, 100 - tail]) if v.size else (np.nan, np.nan)
        out[k] = {"estimate": float(point[0]), "low": float(low), "high": float(high)}
    return out
