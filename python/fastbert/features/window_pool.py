"""``long_text="chunk_mean_pool"``: classify the mean of a text's window vectors, in training too.

Classifying each window and averaging the logits is ``chunk_mean_logits``; averaging the windows'
sentence vectors (pooler output, or mean/attention pooling) *after* training each window alone
would give the very same numbers, because the classifier is linear. So this policy trains on
whole texts: the encoder reads every window of a text, the vectors are averaged, and the
classifier and the loss see one example per text (the hierarchical pooling of Pappagari et al.,
2019, *Hierarchical Transformers for Long Document Classification*, with a mean as the
aggregator). Caveat: a training step holds every window of its texts, so texts with many
windows cost memory in proportion; lower ``batch_size`` for very long texts.

`train` cuts batches of rows, so a text is laid out as one row of ``W`` slots of ``L`` columns
(`slot_features`); `WindowMeanPool` turns the rows back into windows. Prediction needs no slots:
`pooled_logits` runs the windows in ordinary batches and averages their vectors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fastbert.features.arrays import Features, WindowFeatures
from fastbert.features.batches import predict_logits
from fastbert.model.heads import SequenceClassifier
from fastbert.text.chunk import merge_windows

__all__ = ["SLOT_PAD_TYPE", "WindowMeanPool", "pooled_logits", "slot_features"]

#: Token type of the padding inside a window's slot (and of empty slots); no real token has it.
SLOT_PAD_TYPE = -1


def slot_features(feats: WindowFeatures) -> Features:
    """One row per text: its windows side by side, each in a slot of ``L`` columns.

    input_ids, token_type_ids: (texts, W·L) int32, ``W`` = the most windows of any text and
    ``L`` = the window width; padding within a slot has token type ``SLOT_PAD_TYPE``; lengths:
    (texts,) = windows × ``L``, so `train`'s batches cut rows at slot boundaries; labels: the
    text's label (that of its first window).
    """
    mapping = feats.window_to_sample
    n = feats.num_documents
    width = feats.input_ids.shape[1]
    counts = feats.windows_per_document()
    slots = int(counts.max()) if n else 0
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    slot = np.arange(len(mapping)) - first[mapping]  # windows of a text are contiguous, in order
    real = np.arange(width)[None, :] < feats.lengths[:, None]
    ids = np.zeros((n, slots, width), dtype=np.int32)
    types = np.full((n, slots, width), SLOT_PAD_TYPE, dtype=np.int32)
    ids[mapping, slot] = np.where(real, feats.input_ids, 0)
    types[mapping, slot] = np.where(real, feats.token_type_ids, SLOT_PAD_TYPE)
    labels = feats.labels[first] if feats.labels is not None else None
    return Features(
        input_ids=ids.reshape(n, slots * width),
        token_type_ids=types.reshape(n, slots * width),
        lengths=(counts * width).astype(np.int64),
        labels=labels,
    )


class WindowMeanPool(nn.Module):
    """The training view of a `SequenceClassifier` under ``chunk_mean_pool``.

    forward: rows of `slot_features`, (B, W·L) → logits (B, num_labels). It owns no parameters:
    its state is the head's (under the prefix ``head.``), so the trained head is saved as usual.
    """

    def __init__(self, head: SequenceClassifier, slot_width: int) -> None:
        super().__init__()
        self.head = head
        self.slot_width = slot_width

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        bsz = input_ids.shape[0]
        width = self.slot_width
        ids = input_ids.reshape(-1, width)  # (B·W, L)
        types = token_type_ids.reshape(-1, width)
        # `make_batch`'s mask covers a text's slots; the slot padding is marked by its token type.
        mask = (types != SLOT_PAD_TYPE) & attention_mask.reshape(-1, width).bool()
        present = mask[:, 0]  # a window starts with [CLS]; an empty slot has no real token
        text = torch.arange(bsz, device=ids.device).repeat_interleave(ids.shape[0] // bsz)[present]
        vectors = self.head.sentence_vectors(
            ids[present], mask[present].long(), types[present].clamp_min(0)
        ).float()  # (windows, H)
        sums = vectors.new_zeros(bsz, vectors.shape[1]).index_add_(0, text, vectors)
        counts = torch.bincount(text, minlength=bsz).clamp_min(1).to(vectors.dtype)
        means = sums / counts[:, None]  # (B, H)
        return self.head.classify(means)


class _SentenceVectors(nn.Module):
    """A head seen through its `sentence_vectors`, for `predict_logits`."""

    def __init__(self, head: SequenceClassifier) -> None:
        super().__init__()
        self.head = head

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> Tensor:
        return self.head.sentence_vectors(input_ids, attention_mask, token_type_ids)


@torch.no_grad()
def pooled_logits(
    head: SequenceClassifier, feats: WindowFeatures, batch_size: int, device: torch.device, precision: str
) -> tuple[np.ndarray, np.ndarray]:
    """(per-text logits (texts, C) of the mean window vector, per-window logits (windows, C)).

    The per-window logits classify each window's vector alone: the window-level metrics.
    """
    vectors = predict_logits(_SentenceVectors(head), feats, batch_size, device, precision)  # (windows, H)
    # merge_windows' "mean" is the per-text mean of any per-window rows (here vectors, not logits).
    _, means = merge_windows(
        feats.window_to_sample, vectors, strategy="mean", num_samples=feats.num_documents
    )
    weight = next(head.parameters())

    def classify(x: np.ndarray) -> np.ndarray:
        return head.classify(torch.from_numpy(x).to(weight.device, weight.dtype)).float().cpu().numpy()

    return classify(means), classify(vectors)
