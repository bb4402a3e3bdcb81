"""One prediction per text from features of any ``long_text`` policy, and window-level metrics.

`predict_documents` runs the model over `fastbert.train.Features` (one row per text:
``truncate``, ``head_tail``) or `fastbert.long_text.WindowFeatures` (one row per window) and
merges windows back into texts:

- ``chunk_vote``: the class most windows predict (their argmax), ties going to the larger mean
  logit. As scores it gives ``log p`` with ``p_c = (votes_c + ½·softmax(mean logits)_c) /
  (windows + ½)``: the vote shares with half a vote spread by the mean prediction. Its argmax is
  exactly the majority vote with that tie-break (half a vote never outweighs a whole one), it
  is never 0 (so temperature scaling and dev thresholds work on it as on any logits), and
  ``softmax(log p) = p`` is what ``predict_proba`` returns before calibration.
- ``chunk_mean_logits``: the mean of the windows' logits (regression: their mean prediction).
- ``chunk_mean_pool``: the classifier applied to the mean of the windows' sentence vectors
  (`fastbert.window_pool`).
- token tasks (any ``chunk_*``): each token's logits come from the window where it has the most
  context on its shorter side (BERT's ``run_squad.py`` rule, `merge_token_predictions`); a word
  is then tagged by its first token, as without windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fastbert import metrics as metrics_mod
from fastbert.align import token_to_word_predictions
from fastbert.chunk import merge_token_predictions, merge_windows
from fastbert.config import FinetuneConfig
from fastbert.long_text import WindowFeatures
from fastbert.train import Features, predict_logits
from fastbert.window_pool import pooled_logits


@dataclass
class DocumentOutputs:
    """A model's outputs, one per text.

    logits: (texts, C) (``chunk_vote``: log vote shares, see the module docstring); token tasks
        (texts, T, C), with columns as in ``word_ids``.
    word_ids: token tasks (texts, T), the word of each logits column, -1 for none. Without
        windows these are the featurized rows (special tokens included); with windows a text's
        own tokens, special tokens excluded.
    window_logits: windowed texts: (windows, C), or (windows, L, C) for token tasks.
    """

    logits: np.ndarray
    word_ids: np.ndarray | None = None
    window_logits: np.ndarray | None = None


def predict_documents(
    model: nn.Module, feats: Features, cfg: FinetuneConfig, batch_size: int, device: torch.device
) -> DocumentOutputs:
    """Run ``model`` over ``feats`` and merge windows (if any) into texts, by ``cfg.long_text``."""
    if not isinstance(feats, WindowFeatures):
        logits = predict_logits(model, feats, batch_size, device, cfg.precision)
        return DocumentOutputs(logits, word_ids=feats.word_ids)
    mapping, n = feats.window_to_sample, feats.num_documents
    if cfg.task == "token":
        window = predict_logits(model, feats, batch_size, device, cfg.precision)  # (windows, L, C)
        stitched = merge_token_predictions(feats.layout, window, strategy="max_context")  # (texts, T, C)
        # NaN marks columns past a text's end; zeros, as in the padding of unwindowed logits.
        return DocumentOutputs(
            np.nan_to_num(stitched, nan=0.0), word_ids=feats.document_word_ids, window_logits=window
        )
    if cfg.long_text == "chunk_mean_pool":
        logits, window = pooled_logits(model, feats, batch_size, device, cfg.precision)
        return DocumentOutputs(logits, window_logits=window)
    window = predict_logits(model, feats, batch_size, device, cfg.precision)  # (windows, C)
    _, mean = merge_windows(mapping, window, strategy="mean", num_samples=n)
    if cfg.long_text == "chunk_vote":
        _, shares = merge_windows(mapping, window, strategy="vote", num_samples=n)
        return DocumentOutputs(
            vote_log_shares(shares, mean, feats.windows_per_document()), window_logits=window
        )
    return DocumentOutputs(mean, window_logits=window)


def vote_log_shares(shares: np.ndarray, mean_logits: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """``chunk_vote``'s scores: ``log((votes + ½·softmax(mean logits)) / (windows + ½))``.

    shares: (texts, C) fraction of windows voting for each class; mean_logits: (texts, C);
    windows: (texts,) windows per text. See the module docstring for why this form.
    """
    n = windows.astype(np.float64)[:, None]
    mean = mean_logits.astype(np.float64)
    soft = np.exp(mean - mean.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    return np.log((shares * n + 0.5 * soft) / (n + 0.5)).astype(np.float32)


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
        level = metrics_mod.classification_metrics(labels, window.argmax(-1), label_names)
    elif task == "multilabel":
        th = thresholds if thresholds is not None else np.full(len(label_names), 0.5)
        level = metrics_mod.multilabel_metrics(labels > 0.5, 1 / (1 + np.exp(-window)) >= th, label_names)
    elif task == "regression":
        level = metrics_mod.regression_metrics(labels.astype(np.float64), window[:, 0].astype(np.float64))
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
    return metrics_mod.entity_scores(true_tags, pred_tags)
