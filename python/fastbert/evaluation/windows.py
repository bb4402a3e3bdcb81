"""Window-level metrics of texts cut into windows (the ``chunk_*`` long-text policies).

How the texts were cut, and the task's metrics over windows judged one by one, each labelled with
its text's label: what the merged per-text metrics hide about the windows themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbert.config import FinetuneConfig
from fastbert.evaluation.metrics import (
    classification_metrics,
    entity_scores,
    multilabel_metrics,
    regression_metrics,
)
from fastbert.features.arrays import WindowFeatures
from fastbert.features.inference import DocumentOutputs
from fastbert.text.align import token_to_word_predictions

__all__ = ["window_report"]


def window_report(
    cfg: FinetuneConfig,
    label_names: list[str],
    thresholds: np.ndarray | None,
    word_labels: Any,
    feats: WindowFeatures,
    out: DocumentOutputs,
) -> dict[str, Any]:
    """How the texts were cut, and the metrics of the windows judged one by one.

    ``documents``: texts; ``documents_chunked``: texts cut into more than one window;
    ``windows``: windows in all; ``window_level``: the task's metrics over windows, each labelled
    with its text's label (token tasks: over each window's words). ``word_labels``: token tasks,
    the texts' word tag ids (``Examples.labels``).
    """
    counts = feats.windows_per_document()
    report: dict[str, Any] = {
        "documents": int(feats.num_documents),
        "documents_chunked": int((counts > 1).sum()),
        "windows": len(feats),
    }
    window, labels = out.window_logits, feats.labels
    if window is None or labels is None:
        return report
    task = cfg.task
    if task in ("classification", "pair"):
        level = classification_metrics(labels, window.argmax(-1), label_names)
    elif task == "multilabel":
        th = thresholds if thresholds is not None else np.full(len(label_names), 0.5)
        level = multilabel_metrics(labels > 0.5, 1 / (1 + np.exp(-window)) >= th, label_names)
    elif task == "regression":
        level = regression_metrics(labels.astype(np.float64), window[:, 0].astype(np.float64))
    else:
        level = _token_window_metrics(label_names, word_labels, feats, window)
    report["window_level"] = level
    return report


def _token_window_metrics(
    names: list[str], word_labels: Any, feats: WindowFeatures, window: np.ndarray
) -> dict[str, Any]:
    """Entity metrics with every window a sentence of the words it holds (entities cut at its edges)."""
    assert feats.word_ids is not None
    predicted = token_to_word_predictions(feats.word_ids, window, "first")  # (windows, words)
    true_tags, pred_tags = [], []
    for w, s in enumerate(feats.window_to_sample.tolist()):
        words = np.unique(feats.word_ids[w][feats.word_ids[w] >= 0])
        true_tags.append([names[int(word_labels[s][i])] for i in words])
        pred_tags.append([names[int(predicted[w, i])] for i in words])
    return entity_scores(true_tags, pred_tags)
