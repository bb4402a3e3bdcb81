"""One prediction per text from features of any ``long_text`` policy.

`predict_documents` runs the model over `Features` (one row per text: ``truncate``,
``head_tail``) or `WindowFeatures` (one row per window) and merges windows back into texts
(their window-level metrics are `fastbert.evaluation.windows`'):

- ``chunk_vote``: the class most windows predict (their argmax), ties going to the larger mean
  logit. As scores it gives ``log p`` with ``p_c = (votes_c + ½·softmax(mean logits)_c) /
  (windows + ½)``: the vote shares with half a vote spread by the mean prediction. Its argmax is
  exactly the majority vote with that tie-break (half a vote never outweighs a whole one), it
  is never 0 (so temperature scaling and dev thresholds work on it as on any logits), and
  ``softmax(log p) = p`` is what ``predict_proba`` returns before calibration.
- ``chunk_mean_logits``: the mean of the windows' logits (regression: their mean prediction).
- ``chunk_mean_pool``: the classifier applied to the mean of the windows' sentence vectors
  (`fastbert.features.window_pool`).
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

from fastbert.config import FinetuneConfig
from fastbert.features.arrays import Features, WindowFeatures
from fastbert.features.batches import predict_logits
from fastbert.features.window_pool import pooled_logits
from fastbert.model.heads import SequenceClassifier
from fastbert.text.chunk import merge_token_predictions, merge_windows

__all__ = ["DocumentOutputs", "predict_documents", "vote_log_shares", "word_rows"]


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
        if not isinstance(model, SequenceClassifier):
            raise TypeError(
                f"chunk_mean_pool classifies mean window vectors: it needs a SequenceClassifier, not {type(model).__name__}"
            )
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


def word_rows(token_rows: np.ndarray, word_ids: np.ndarray, word_counts: Any) -> list[np.ndarray]:
    """Per text, one row per word: the row of the word's first token (how a word is tagged).

    token_rows: (texts, T, C); word_ids: (texts, T), the word of each column, -1 for none (the
    ``word_ids`` of `DocumentOutputs`); word_counts: (texts,) words per text. Returns one
    ``(words, C)`` float32 array per text, NaN for words cut off by truncation (no token).
    """
    out = []
    for i, n_words in enumerate(word_counts):
        row = np.full((int(n_words), token_rows.shape[-1]), np.nan, dtype=np.float32)
        cols = np.flatnonzero(word_ids[i] >= 0)
        ids, first = np.unique(word_ids[i][cols], return_index=True)
        keep = ids < n_words
        row[ids[keep]] = token_rows[i, cols[first[keep]]]
        out.append(row)
    return out
