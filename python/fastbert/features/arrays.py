"""`Features`: the token arrays of a data set, what training and prediction read.

One featurization (`fastbert.features.featurize`) tokenizes every example once, in Rust, into
padded int32 arrays; batches are cut from them (`fastbert.features.batches`). A long-text policy
that cuts texts into windows gives `WindowFeatures`: one row per window, plus the layout that
merges the windows' predictions back into texts (`fastbert.features.inference`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Features", "WindowFeatures", "document_word_ids"]


@dataclass
class Features:
    """Token ids of every example, padded to the longest example, plus targets.

    input_ids, token_type_ids: (n, L) int32; lengths: (n,) real tokens per row.
    labels: classification/pair (n,) int64; multilabel (n, C) float32; regression (n,)
    float32; token (n, L) int64 with -100 on ignored tokens; mlm None.
    word_ids: (n, L) int32, -1 for none (token and mlm tasks).
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray | None = None
    word_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class WindowFeatures(Features):
    """`Features` with one row per window, and what is needed to merge windows back into texts.

    input_ids, token_type_ids: (windows, L) int32; lengths: (windows,); labels: the text's label
    on each of its windows ((windows,), (windows, C), or token labels (windows, L));
    word_ids (token tasks): (windows, L), word index within the text, -1 for none.
    """

    #: ``chunk_texts``' layout arrays (``window_to_sample`` (windows,), ``window_token_start``,
    #: ``window_token_end``, ``source_token_index`` (windows, L), ``sample_num_tokens`` (texts,)).
    layout: dict[str, np.ndarray] = field(default_factory=dict)
    #: Number of texts (every text has at least one window).
    num_documents: int = 0
    #: Token tasks: (texts, T) word index of each of a text's T tokens (special tokens excluded),
    #: -1 past its end: the columns of the stitched per-token logits.
    document_word_ids: np.ndarray | None = None

    @property
    def window_to_sample(self) -> np.ndarray:
        return self.layout["window_to_sample"]

    def windows_per_document(self) -> np.ndarray:
        """(texts,) int64."""
        return np.bincount(self.window_to_sample, minlength=self.num_documents)


def document_word_ids(feats: Features) -> np.ndarray | None:
    """Token tasks: the word of each column of the per-text logits (`fastbert.features.inference`)."""
    return feats.document_word_ids if isinstance(feats, WindowFeatures) else feats.word_ids
