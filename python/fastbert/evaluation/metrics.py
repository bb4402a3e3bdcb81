"""Evaluation numbers for every task, in plain numpy (no scikit-learn, scipy or seqeval at run time).

- :func:`classification_metrics`: single-label classes (``classification`` and ``pair``).
- :func:`multilabel_metrics`: ``(n, C)`` 0/1 indicator matrices.
- :func:`regression_metrics`: MSE, RMSE, MAE, Pearson and Spearman correlation.
- :func:`entity_metrics`: entity-level precision / recall / F1 for BIO tag sequences.
- :func:`stored_confusion`, :func:`read_confusion`: the confusion matrix as JSON files hold it
  (sparse above `DENSE_UP_TO` classes), and back; :func:`scalar_metrics`: the numbers alone.

Conventions, chosen so that the numbers equal the libraries people check them against
(``tests/test_metrics.py`` compares them on generated inputs):

- A ratio whose denominator is zero is 0, as scikit-learn's ``zero_division=0``: precision of a
  class never predicted, recall of a class never present, F1 when both are zero.
- ``macro_f1`` of :func:`classification_metrics` averages over the classes that occur in
  ``y_true`` or ``y_pred`` (scikit-learn's default ``labels=None``), so a class missing from a
  small dev set does not count as an F1 of 0; ``per_class`` still lists every name.
  :func:`multilabel_metrics` averages over all ``C`` columns, which is what scikit-learn does for
  indicator matrices.
- Pearson and Spearman are ``nan`` when an input is constant (scipy returns ``nan`` too, with a
  ``ConstantInputWarning``; we do not warn), when fewer than two pairs are given (scipy raises) and
  when any input is ``nan``.
- :func:`entity_metrics` equals ``seqeval`` (its default conlleval-compatible mode, or
  ``mode="strict", scheme=IOB2``) with ``zero_division=0``.

Every function returns plain Python ``float``/``int`` values, ready for ``json.dumps``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from fastbert.conversions import as_numpy, is_number

__all__ = [
    "DENSE_UP_TO",
    "classification_metrics",
    "confusion_cells",
    "entity_metrics",
    "entity_scores",
    "get_entities",
    "multilabel_metrics",
    "ratio",
    "read_confusion",
    "regression_metrics",
    "scalar_metrics",
    "stored_confusion",
    "with_stored_confusion",
]

EntityMode = Literal["conlleval", "strict"]


# ---------------------------------------------------------------- helpers
def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _prf(tp: np.ndarray, pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts: true positives, predicted positives, actual positives.

    F1 is ``2·tp / (pred + true)``, scikit-learn's formula (equal to the harmonic mean of
    precision and recall, without its rounding), and 0 when ``pred + true == 0``.
    """
    return ratio(tp, pred), ratio(tp, true), ratio(2 * np.asarray(tp), np.asarray(pred) + np.asarray(true))


def _per_class(
    names: Sequence[str], p: np.ndarray, r: np.ndarray, f: np.ndarray, support: np.ndarray
) -> dict[str, dict[str, float | int]]:
    return {
        str(name): {
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(names)
    }


def _class_ids(x: Any, name: str, num_classes: int) -> np.ndarray:
    a = as_numpy(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one class id per example, shape (n,), got shape {a.shape}")
    if a.size and a.dtype.kind not in "iub":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class ids, not {a.dtype}")
    a = a.astype(np.int64, copy=False)
    bad = (a < 0) | (a >= num_classes)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {a[i]} is not a class id in [0, {num_classes})")
    return a


# ---------------------------------------------------------------- classification
def classification_metrics(y_true: Any, y_pred: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Single-label metrics. ``y_true``, ``y_pred``: ``(n,)`` class ids in ``[0, len(label_names))``.

    Returns ``accuracy``, ``macro_f1`` (over classes present in ``y_true`` or ``y_pred``),
    ``macro_precision``, ``macro_recall``, ``micro_f1`` (equal to accuracy for single-label data,
    as are micro precision and recall), ``weighted_f1``, ``weighted_precision`` and
    ``weighted_recall`` (weights = true support), ``per_class`` ``{name: {precision, recall, f1,
    support}}`` for every name, and ``confusion_matrix`` (``C x C`` ints, rows = true class,
    columns = predicted class).
    """
    c = len(label_names)
    if c == 0:
        raise ValueError("label_names is empty")
    t = _class_ids(y_true, "y_true", c)
    p = _class_ids(y_pred, "y_pred", c)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} examples but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no examples to score")
    cm = np.bincount(t * c + p, minlength=c * c).reshape(c, c)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    prec, rec, f1 = _prf(tp, predicted, support)
    present = (support + predicted) > 0
    micro_f = _prf(tp.sum(), predicted.sum(), support.sum())[2]
    return {
        "accuracy": float(tp.sum() / t.size),
        "macro_f1": float(f1[present].mean()),
        "macro_precision": float(prec[present].mean()),
        "macro_recall": float(rec[present].mean()),
        "micro_f1": float(micro_f),
        "weighted_f1": float(np.dot(f1, support) / support.sum()),
        "weighted_precision": float(np.dot(prec, support) / support.sum()),
        "weighted_recall": float(np.dot(rec, support) / support.sum()),
        "per_class": _per_class(label_names, prec, rec, f1, support),
        "confusion_matrix": cm.tolist(),
    }


# ---------------------------------------------------------------- the confusion matrix in JSON
#: Up to this many classes the confusion matrix is written as ``C x C`` nested lists; above it,
#: sparse. A dev set of n examples fills at most n of the C² cells: written dense (and indented),
#: 5,000 classes made a 276 MB report.json of zeros.
DENSE_UP_TO = 50


def stored_confusion(matrix: Any) -> list[list[int]] | dict[str, Any]:
    """The confusion matrix as JSON files hold it: the ``C x C`` lists up to `DENSE_UP_TO` classes,
    else its non-zero cells in row-major order, ``{"shape": [C, C], "rows": [...], "cols": [...],
    "counts": [...]}``. A matrix already in the sparse form is returned as it is."""
    if isinstance(matrix, dict):
        return matrix
    cm = np.asarray(matrix, dtype=np.int64)
    c = cm.shape[0]
    if c <= DENSE_UP_TO:
        return cm.tolist()
    rows, cols = np.nonzero(cm)
    return {"shape": [c, c], "rows": rows.tolist(), "cols": cols.tolist(), "counts": cm[rows, cols].tolist()}


def confusion_cells(stored: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``(C, rows, cols, counts)``: the non-zero cells of a confusion matrix in either stored form
    (`stored_confusion`; the dense lists are also what versions before the sparse form wrote)."""
    if isinstance(stored, dict):
        shape = stored.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and shape[0] == shape[1]):
            raise ValueError(f"a sparse confusion matrix needs a square shape [C, C], got {shape}")
        c = int(shape[0])
        rows, cols, counts = (np.asarray(stored[k], dtype=np.int64) for k in ("rows", "cols", "counts"))
        if not rows.shape == cols.shape == counts.shape or rows.ndim != 1:
            raise ValueError("a sparse confusion matrix needs rows, cols and counts of one length")
        if rows.size and (min(rows.min(), cols.min()) < 0 or max(rows.max(), cols.max()) >= c):
            raise ValueError(f"a sparse confusion matrix has a cell outside its shape [{c}, {c}]")
        return c, rows, cols, counts
    cm = np.asarray(stored, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    rows, cols = np.nonzero(cm)
    return cm.shape[0], rows, cols, cm[rows, cols]


def read_confusion(stored: Any) -> np.ndarray:
    """A stored confusion matrix, either form (`confusion_cells`), as a ``(C, C)`` int array."""
    c, rows, cols, counts = confusion_cells(stored)
    cm = np.zeros((c, c), dtype=np.int64)
    np.add.at(cm, (rows, cols), counts)
    return cm


def with_stored_confusion(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with every confusion matrix in it (window-level metrics hold one of their own)
    in `stored_confusion`'s form, ready to be written."""
    return {
        k: stored_confusion(v)
        if k == "confusion_matrix"
        else with_stored_confusion(v)
        if isinstance(v, dict)
        else v
        for k, v in metrics.items()
    }


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``metrics`` (and ``None``, a number an evaluation could not give), without the
    per-class tables and the confusion matrix: what a training history keeps of each evaluation."""
    return {k: v for k, v in metrics.items() if v is None or is_number(v)}


# ---------------------------------------------------------------- multi-label
def _indicator(x: Any, name: str) -> np.ndarray:
    a = as_numpy(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (n, C) 0/1 matrix, got shape {a.shape}")
    if a.size and not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must hold only 0 and 1 (threshold scores before scoring them)")
    return a.astype(bool)


def multilabel_metrics(y_true: Any, y_pred: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Multi-label metrics. ``y_true``, ``y_pred``: ``(n, C)`` 0/1 (or bool) indicator matrices.

    Returns ``micro_f1``, ``micro_precision``, ``micro_recall``, ``macro_f1`` (mean over all ``C``
    labels, a label absent from both matrices scoring 0, as scikit-learn), ``weighted_f1``
    (weights = true support; 0 when no label is present at all), ``samples_f1`` (F1 of each
    example's label set, averaged; an example with no true and no predicted label scores 0),
    ``subset_accuracy`` (exact-match ratio), ``hamming_loss`` and ``per_class``.
    """
    t = _indicator(y_true, "y_true")
    p = _indicator(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    n, c = t.shape
    if c != len(label_names):
        raise ValueError(f"the matrices have {c} columns but there are {len(label_names)} label_names")
    if n == 0:
        raise ValueError("no examples to score")
    tp = (t & p).sum(axis=0)
    support = t.sum(axis=0)
    predicted = p.sum(axis=0)
    prec, rec, f1 = _prf(tp, predicted, support)
    micro_p, micro_r, micro_f = _prf(tp.sum(), predicted.sum(), support.sum())
    sample_f1 = _prf((t & p).sum(axis=1), p.sum(axis=1), t.sum(axis=1))[2]
    weighted = float(np.dot(f1, support) / support.sum()) if support.sum() else 0.0
    return {
        "micro_f1": float(micro_f),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "macro_f1": float(f1.mean()) if c else 0.0,
        "weighted_f1": weighted,
        "samples_f1": float(sample_f1.mean()),
        "subset_accuracy": float(np.all(t == p, axis=1).mean()),
        "hamming_loss": float((t != p).mean()) if c else 0.0,
        "per_class": _per_class(label_names, prec, rec, f1, support),
    }


# ---------------------------------------------------------------- regression
def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r as ``scipy.stats.pearsonr`` computes it; ``nan`` where scipy gives ``nan`` or raises."""
    n = x.size
    if n < 2 or np.isnan(x).any() or np.isnan(y).any():
        return math.nan
    if np.all(x == x[0]) or np.all(y == y[0]):  # scipy's exact test for a constant input
        return math.nan
    xm = x - x.mean()
    ym = y - y.mean()
    # Scale by the largest magnitude before the norm so that squares cannot overflow (as scipy).
    xmax, ymax = np.abs(xm).max(), np.abs(ym).max()
    normx = xmax * np.linalg.norm(xm / xmax)
    normy = ymax * np.linalg.norm(ym / ymax)
    r = float(np.clip(np.dot(xm / normx, ym / normy), -1.0, 1.0))
    return float(round(r)) if n == 2 else r  # scipy returns exactly ±1 for two points


def _rank_average(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (``scipy.stats.rankdata(method="average")``)."""
    n = x.size
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.concatenate(([True], xs[1:] != xs[:-1]))
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], n)
    mean_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(new_group) - 1]
    return ranks


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``mse``, ``rmse``, ``mae``, ``pearson``, ``spearman`` for ``(n,)`` real targets and predictions.

    Spearman's rho is Pearson's r of the average ranks (ties share their mean rank), as scipy.
    Both correlations are ``nan`` for a constant input, for fewer than two pairs, or when an
    input holds ``nan`` (a ``nan`` also makes the error metrics ``nan``).
    """
    t = as_numpy(y_true).astype(np.float64).reshape(-1)
    p = as_numpy(y_pred).astype(np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no examples to score")
    err = p - t
    mse = float(np.mean(err * err))
    has_nan = bool(np.isnan(t).any() or np.isnan(p).any())
    return {
        "mse": mse,
        "rmse": math.sqrt(mse) if not math.isnan(mse) else math.nan,
        "mae": float(np.mean(np.abs(err))),
        "pearson": _pearson(t, p),
        "spearman": math.nan if has_nan else _pearson(_rank_average(t), _rank_average(p)),
    }


# ---------------------------------------------------------------- entities
# A tag is "O", or a prefix letter with an optional "-TYPE"; TYPE neither starts nor ends with "-",
# so that seqeval's two type parsers (split on the first "-", or strip "-") agree on it.
_TAG = re.compile(r"([BIES])(?:-([^-](?:.*[^-])?))?", re.DOTALL)


def _parse(tag: Any, allowed: str, where: str) -> tuple[str, str]:
    """``"B-PER"`` → ``("B", "PER")``; ``"O"`` → ``("O", "_")``; a bare ``"B"`` has type ``"_"`` (as seqeval)."""
    if tag == "O":
        return "O", "_"
    m = _TAG.fullmatch(tag) if isinstance(tag, str) else None
    if m is None or m.group(1) not in allowed:
        kinds = ", ".join(f"{a}-TYPE" for a in allowed)
        raise ValueError(f"{where}: tag {tag!r} is not O, {kinds}")
    return m.group(1), m.group(2) or "_"


def _conlleval_chunks(tags: list[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """conlleval.pl's chunking, transcribed from seqeval's ``get_entities`` (end/start_of_chunk).

    Lenient: an ``I-X`` after ``O`` or after another type opens an entity, so IOB1 input (where
    ``B-`` only separates two adjacent entities of one type) is read as IOB1 means it.
    """
    chunks = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, (tag, typ) in enumerate([*tags, ("O", "_")]):
        # end of chunk between i-1 and i
        if prev_tag in "ES" or (prev_tag in "BI" and tag in "BSO") or (prev_tag != "O" and prev_type != typ):
            chunks.append((prev_type, begin, i - 1))
        # start of chunk at i
        if tag in "BS" or (prev_tag in "ESO" and tag in "EI") or (tag != "O" and prev_type != typ):
            begin = i
        prev_tag, prev_type = tag, typ
    return chunks


def _strict_iob2_chunks(tags: list[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """seqeval's ``mode="strict", scheme=IOB2``: an entity is ``B-X`` followed by every ``I-X`` after it.

    An ``I-X`` that does not continue a ``B-X``/``I-X`` of the same type belongs to no entity.
    """
    chunks = []
    i, n = 0, len(tags)
    while i < n:
        tag, typ = tags[i]
        if tag != "B":
            i += 1
            continue
        j = i + 1
        while j < n and tags[j] == ("I", typ):
            j += 1
        chunks.append((typ, i, j - 1))
        i = j
    return chunks


def get_entities(tags: Sequence[str], mode: EntityMode = "conlleval") -> list[tuple[str, int, int]]:
    """Entities of one tag sequence as ``(type, first, last)`` word indices (``last`` inclusive)."""
    if mode not in ("conlleval", "strict"):
        raise ValueError(f"mode must be 'conlleval' or 'strict', not {mode!r}")
    allowed = "BIES" if mode == "conlleval" else "BI"
    parsed = [_parse(t, allowed, f"tag {k}") for k, t in enumerate(tags)]
    return _conlleval_chunks(parsed) if mode == "conlleval" else _strict_iob2_chunks(parsed)


def entity_metrics(
    true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]], mode: EntityMode = "conlleval"
) -> dict[str, Any]:
    """Entity-level scores: an entity counts when its type, first and last word all match.

    ``true_tags``, ``pred_tags``: one list of tags per sentence, sentence by sentence the same
    length. Tags are ``O``, ``B-TYPE``, ``I-TYPE`` (IOB2/BIO; ``E-``/``S-`` are also read in
    ``conlleval`` mode, as seqeval does). Anything else raises ``ValueError``, where seqeval would
    warn and guess.

    ``mode="conlleval"`` (default) chunks like ``conlleval.pl`` and seqeval's default mode:
    lenient, so an entity may open with ``I-``; IOB1 data is therefore scored as IOB1 means it.
    ``mode="strict"`` is seqeval's ``mode="strict", scheme=IOB2``: an entity must open with
    ``B-``; an ``I-X`` that does not continue an ``X`` entity is ignored (so IOB1-style openings
    are not entities: convert IOB1 to IOB2 first).

    Returns micro-averaged ``precision``, ``recall``, ``f1`` over all entities, and ``per_type``
    ``{type: {precision, recall, f1, support}}`` for every type seen in either input (sorted);
    ``support`` is the number of true entities.
    """
    if mode not in ("conlleval", "strict"):
        raise ValueError(f"mode must be 'conlleval' or 'strict', not {mode!r}")
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"true_tags has {len(true_tags)} sentences but pred_tags has {len(pred_tags)}")
    allowed = "BIES" if mode == "conlleval" else "BI"
    chunker = _conlleval_chunks if mode == "conlleval" else _strict_iob2_chunks
    sets: tuple[dict[str, set], dict[str, set]] = ({}, {})
    for s, (true, pred) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(true) != len(pred):
            raise ValueError(f"sentence {s}: {len(true)} true tags but {len(pred)} predicted tags")
        for side, seq, what in ((0, true, "true_tags"), (1, pred, "pred_tags")):
            parsed = [_parse(t, allowed, f"{what}[{s}][{k}]") for k, t in enumerate(seq)]
            for typ, first, last in chunker(parsed):
                sets[side].setdefault(typ, set()).add((s, first, last))
    types = sorted(set(sets[0]) | set(sets[1]))
    empty: set = set()
    tp = np.array([len(sets[0].get(t, empty) & sets[1].get(t, empty)) for t in types], dtype=np.int64)
    n_true = np.array([len(sets[0].get(t, empty)) for t in types], dtype=np.int64)
    n_pred = np.array([len(sets[1].get(t, empty)) for t in types], dtype=np.int64)
    # seqeval takes F1 as the harmonic mean of the rounded precision and recall; so do we, to match.
    prec, rec = ratio(tp, n_pred), ratio(tp, n_true)
    f1 = ratio(2 * prec * rec, prec + rec)
    mp, mr = ratio(tp.sum(), n_pred.sum()), ratio(tp.sum(), n_true.sum())
    return {
        "precision": float(mp),
        "recall": float(mr),
        "f1": float(ratio(2 * mp * mr, mp + mr)),
        "per_type": _per_class(types, prec, rec, f1, n_true),
    }


def _is_iob2(tag_lists: Sequence[Sequence[Sequence[str]]]) -> bool:
    """Whether every tag reads in strict mode: ``O``, or ``B``/``I`` with or without a type."""
    for tags in tag_lists:
        for seq in tags:
            for t in seq:
                m = _TAG.fullmatch(t) if isinstance(t, str) else None
                if t != "O" and (m is None or m.group(1) not in "BI"):
                    return False
    return True


def entity_scores(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, Any]:
    """What evaluation reports for token tasks: `entity_metrics` in ``conlleval`` mode (the
    selection metric, ``f1``), plus the same scores in ``strict`` mode as ``strict_precision``,
    ``strict_recall``, ``strict_f1`` and ``per_type_strict`` when every tag is IOB2 (``O``,
    ``B-``, ``I-``; strict mode has no reading of ``E-``/``S-``).

    The two differ only where an entity opens with ``I-`` (a model's typical slip after a
    wrong ``B-``): ``conlleval`` counts it as an entity, ``strict`` does not.
    """
    out = entity_metrics(true_tags, pred_tags)
    if _is_iob2((true_tags, pred_tags)):
        strict = entity_metrics(true_tags, pred_tags, mode="strict")
        out.update(
            strict_precision=strict["precision"],
            strict_recall=strict["recall"],
            strict_f1=strict["f1"],
            per_type_strict=strict["per_type"],
        )
    return out
