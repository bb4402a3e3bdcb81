"""Texts longer than ``max_length``: features for the ``long_text`` policies of `FinetuneConfig`.

The same function makes the training and the prediction features, so a policy is applied the
same way in both (and `fastbert.load` gets it back from the saved config):

- ``truncate``: keep the first ``max_length - 2`` tokens (`fastbert.features.featurize` does it).
- ``head_tail``: keep the first ``head`` and the last ``max_length - 2 - head`` tokens,
  ``[CLS] head… tail… [SEP]``. Sun et al. (2019), *How to Fine-Tune BERT for Text
  Classification?*, found 128 head + 382 tail tokens best on IMDb and Sogou; the default
  ``head`` scales their 128 of 510 to ``max_length``.
- ``chunk_vote``, ``chunk_mean_logits``, ``chunk_mean_pool``: the Rust sliding windows of
  `fastbert.text.chunk.chunk_texts` (the windows of ``tokenizers``' overflow with ``stride``), one
  feature row per window (`WindowFeatures`), each labelled with its text's label. Merging the
  windows' predictions back into one per text is `fastbert.features.inference`' job;
  ``chunk_mean_pool`` trains on whole texts through `fastbert.features.window_pool`.

For pairs the windows cut the second text and repeat the first whole in every window
(``only_second``, the SQuAD layout: question + passage windows).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fastbert.config import FinetuneConfig
from fastbert.data.examples import Examples
from fastbert.features.arrays import Features, WindowFeatures
from fastbert.text.align import b_to_i_map, word_labels_to_token_labels
from fastbert.text.chunk import LAYOUT_KEYS, chunk_texts, merge_token_predictions
from fastbert.text.tokenizer import Tokenizer

__all__ = [
    "CHUNK_POLICIES",
    "featurize_long",
    "head_tail_features",
    "head_tail_reference",
    "is_chunked",
    "resolved_head",
    "resolved_stride",
    "window_features",
]

CHUNK_POLICIES = ("chunk_vote", "chunk_mean_logits", "chunk_mean_pool")

#: Sun et al. (2019) keep 128 head tokens of BERT's 510 (512 minus [CLS] and [SEP]).
_SUN_HEAD, _SUN_ROOM = 128, 510


def is_chunked(cfg: FinetuneConfig) -> bool:
    return cfg.long_text in CHUNK_POLICIES


def resolved_stride(cfg: FinetuneConfig) -> int:
    """Tokens shared by consecutive windows: ``long_text_stride``, by default a quarter of the room."""
    if cfg.long_text_stride is not None:
        return int(cfg.long_text_stride)
    return (int(cfg.max_length) - 2) // 4


def resolved_head(cfg: FinetuneConfig) -> int:
    """``head_tail``'s head tokens: ``long_text_head``, by default Sun et al.'s share of the room."""
    if cfg.long_text_head is not None:
        return int(cfg.long_text_head)
    return round((int(cfg.max_length) - 2) * _SUN_HEAD / _SUN_ROOM)


def featurize_long(tok: Tokenizer, ex: Examples, cfg: FinetuneConfig) -> Features:
    """The features of every policy but ``truncate``: `Features` (``head_tail``) or `WindowFeatures`."""
    if cfg.long_text == "head_tail":
        return head_tail_features(tok, ex, cfg)
    if is_chunked(cfg):
        return window_features(tok, ex, cfg)
    raise ValueError(f"featurize_long does not handle long_text={cfg.long_text!r}")


def _class_labels(ex: Examples, cfg: FinetuneConfig) -> np.ndarray | None:
    return np.asarray(ex.labels) if ex.labels is not None and cfg.task != "mlm" else None


# ----------------------------------------------------------------------------- head + tail
def head_tail_features(tok: Tokenizer, ex: Examples, cfg: FinetuneConfig) -> Features:
    """One row per text: the text whole when it fits, else ``[CLS] head tokens, tail tokens [SEP]``.

    Three Rust batch calls, none holding a whole long text: every text truncated to
    ``max_length`` (the answer for texts that fit), then only the texts that filled it, once cut
    to their first ``head`` tokens and once to their last ``tail`` (``truncation_side="left"``).
    A text of exactly ``room`` tokens fills the row too; head + tail is then the whole text, so
    it comes out unchanged either way.
    """
    if ex.pairs is not None:
        raise ValueError("long_text='head_tail' keeps the ends of one text; for pairs use a chunk_* policy")
    if tok.num_special_tokens_to_add(pair=False) != 2:
        raise ValueError("long_text='head_tail' expects one start and one end special token ([CLS] … [SEP])")
    texts = list(ex.texts)
    length = int(cfg.max_length)
    room = length - 2
    head = resolved_head(cfg)
    tail = room - head
    whole = tok(texts, truncation=True, max_length=length, padding=True)
    ids = whole["input_ids"].astype(np.int32)
    lengths = whole["attention_mask"].sum(1).astype(np.int64)
    cut = np.flatnonzero(lengths == length)
    if len(cut):
        long_texts = [texts[i] for i in cut]
        cuts: tuple[tuple[int, int, Literal["right", "left"]], ...] = (
            (1, head, "right"),
            (1 + head, tail, "left"),
        )
        for start, count, side in cuts:
            if count == 0:
                continue
            part = tok(
                long_texts,
                add_special_tokens=False,
                truncation=True,
                max_length=count,
                truncation_side=side,
                padding=True,
            )["input_ids"]
            # Every cut text has at least `room` >= `count` tokens: each part is exactly `count` wide.
            assert part.shape == (len(cut), count), (part.shape, count)
            ids[cut, start : start + count] = part
    return Features(
        input_ids=ids,
        token_type_ids=whole["token_type_ids"].astype(np.int32),
        lengths=lengths,
        labels=_class_labels(ex, cfg),
    )


# ----------------------------------------------------------------------------- windows
def window_features(tok: Tokenizer, ex: Examples, cfg: FinetuneConfig) -> WindowFeatures:
    """One row per window of ``max_length`` tokens overlapping by the stride, in text order."""
    token = cfg.task == "token"
    stride = resolved_stride(cfg)
    try:
        chunks = chunk_texts(
            tok,
            list(ex.texts),
            max_length=cfg.max_length,
            stride=stride,
            pairs=list(ex.pairs) if ex.pairs is not None else None,
            is_split_into_words=token,
            return_offsets_mapping=False,
            return_word_ids=token,
        )
    except ValueError as e:
        hint = (
            "; for pairs the windows cut the second text and repeat the first whole in each, so every "
            "first text must leave more than the stride free: raise max_length, lower long_text_stride "
            "or shorten the first texts"
            if ex.pairs is not None
            else ""
        )
        raise ValueError(
            f"long_text={cfg.long_text!r} cannot cut windows of max_length {cfg.max_length} with stride "
            f"{stride} (long_text_stride): {e}{hint}"
        ) from None
    mapping = chunks["window_to_sample"]
    labels: np.ndarray | None = None
    word_ids = document_word_ids = None
    if token:
        word_ids = chunks["word_ids"]
        # Each text's tokens, special tokens excluded, with their word: the stitched columns.
        document_word_ids = merge_token_predictions(chunks, word_ids)
        if ex.labels is not None:
            b_to_i = b_to_i_map(ex.label_names) if cfg.label_strategy == "all" and ex.label_names else None
            labels = word_labels_to_token_labels(
                word_ids, ex.labels, strategy=cfg.label_strategy, b_to_i=b_to_i, row_to_sample=mapping
            ).astype(np.int64)
    else:
        doc_labels = _class_labels(ex, cfg)
        labels = doc_labels[mapping] if doc_labels is not None else None
    return WindowFeatures(
        input_ids=chunks["input_ids"].astype(np.int32),
        token_type_ids=chunks["token_type_ids"].astype(np.int32),
        lengths=chunks["attention_mask"].sum(1).astype(np.int64),
        labels=labels,
        word_ids=word_ids.astype(np.int32) if word_ids is not None else None,
        layout={k: chunks[k] for k in LAYOUT_KEYS},
        num_documents=len(ex.texts),
        document_word_ids=document_word_ids,
    )


# ----------------------------------------------------------------------------- reference
def head_tail_reference(token_ids: list[int], room: int, head: int, cls: int, sep: int) -> list[int]:
    """``head_tail``'s row for a text whose tokens (no special tokens) are ``token_ids``."""
    if len(token_ids) <= room:
        return [cls, *token_ids, sep]
    tail = room - head
    kept_tail = token_ids[len(token_ids) - tail :] if tail else []
    return [cls, *token_ids[:head], *kept_tail, sep]
